"""Start the Gradio app on 127.0.0.1 and a free port, in this process, for the UI tests."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ui.app import AppSettings, build_app, launch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunningApp:
    app: Any  # the gr.Blocks
    url: str
    port: int
    store_path: Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_app(store_path: Path, factory: Callable[[], Any] | None = None, *, ready_timeout: float = 120.0,
                **settings: Any) -> Iterator[RunningApp]:  # fmt: skip
    """The app on the fake pipeline (or ``factory``'s recommender), served until the block ends."""
    if factory is None:
        from fixtures_catalog import fake_recommender

        factory = fake_recommender
    options = {"dataset_label": "toy catalogue (tests)", "stream_delay": 0.0, **settings}
    app = build_app(factory, store_path, AppSettings(**options))
    port = free_port()
    url = launch(app, "127.0.0.1", port, block=False, quiet=True)
    try:
        service = app.llmrec_service
        deadline = time.monotonic() + ready_timeout
        while not service.ready.wait(0.2):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the app's recommender was not ready within {ready_timeout:.0f} s")
        yield RunningApp(app, url, port, store_path)
    finally:
        app.close()


# -- measuring: `python tests/ui_server.py --help` (numbers for BENCHMARKS-ui.md) ----------------------
def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _session(url: str, genre: str, timings: list[tuple[str, float]]) -> None:
    """One newcomer through the app's API: onboarding, a list, why, like, refine, ask again."""
    from gradio_client import Client

    client = Client(url, verbose=False)

    def timed(kind: str, *args: Any, api_name: str) -> tuple:
        started = time.perf_counter()
        result = client.predict(*args, api_name=api_name)
        timings.append((kind, time.perf_counter() - started))
        return tuple(result)

    out = timed("start", "", api_name="/start")
    user, history = out[0], out[1]
    cards: list = []
    for message in (genre, "Just recommend", "Something newer", "Recommend something"):
        out = timed("send", message, history, user, api_name="/send")[1:]
        history, cards = out[1], out[2] or cards
        if message == "Just recommend" and cards:
            out = timed("why", cards[0]["item_id"], "why", history, user, api_name="/act")
            out = timed("like", cards[0]["item_id"], "like", out[1], user, api_name="/act")
            history = out[1]


def measure(args: Any) -> dict[str, Any]:
    """Time to the first recommendations after the app starts, then reply latency under concurrent sessions."""
    import threading

    from gradio_client import Client

    if args.fake:
        from fixtures_catalog import fake_recommender

        def factory() -> Any:
            return fake_recommender(ranker={"kind": args.ranker}, explainer={"kind": args.explainer})
    else:
        from llmrec.config import RecommenderConfig
        from llmrec.pipeline import Recommender

        config = RecommenderConfig().updated(data={"dataset": args.dataset, "data_dir": args.data_dir},
                                             ranker={"kind": args.ranker}, explainer={"kind": args.explainer},
                                             cache_dir=args.cache_dir)  # fmt: skip

        def factory() -> Any:
            return Recommender(config)

    store = Path(args.store)
    started = time.perf_counter()
    app = build_app(factory, store, AppSettings(dataset_label=args.dataset))
    url = launch(app, "127.0.0.1", free_port(), block=False, quiet=True)
    try:
        client = Client(url, verbose=False)
        out = client.predict("", api_name="/start")
        greeting = time.perf_counter() - started
        user, history = out[0], out[1]
        out = client.predict("Sci-Fi", history, user, api_name="/send")
        out = client.predict("Just recommend", out[2], user, api_name="/send")
        first = time.perf_counter() - started
        assert out[3], f"no recommendations: {out[2][-1]}"
        log.info("first recommendations %.1f s after start (greeting at %.1f s)", first, greeting)
        timings: list[tuple[str, float]] = []
        genres = ["Sci-Fi", "Comedy", "Drama", "Animation", "Thriller", "Romance", "Action", "Horror"]
        threads = [threading.Thread(target=_session, args=(url, genres[n % len(genres)], timings))
                   for n in range(args.sessions)]  # fmt: skip
        wall = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - wall
    finally:
        app.close()
    replies = [t for kind, t in timings if kind != "start"]
    result = {"ranker": args.ranker, "explainer": args.explainer, "fake": args.fake, "greeting_s": round(greeting, 2),
              "first_recommendations_s": round(first, 2), "sessions": args.sessions, "replies": len(replies),
              "p50_s": round(_percentile(replies, 50), 3), "p95_s": round(_percentile(replies, 95), 3),
              "max_s": round(max(replies, default=float("nan")), 3), "concurrent_wall_s": round(wall, 2)}  # fmt: skip
    for kind in ("start", "send", "why", "like"):
        values = [t for k, t in timings if k == kind]
        result[kind] = {"n": len(values), "p50_s": round(_percentile(values, 50), 3),
                        "p95_s": round(_percentile(values, 95), 3)}  # fmt: skip
    return result


def main() -> None:
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(description="Measure the app: first recommendations and concurrent latency.")
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--store", default="/tmp/llmrec-ui-bench.sqlite")
    parser.add_argument("--ranker", default="passthrough", choices=["passthrough", "llm"])
    parser.add_argument("--explainer", default="template", choices=["template", "llm"])
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--fake", action="store_true", help="the fake pipeline of the tests instead of real data")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    sys.stdout.write(json.dumps(measure(args), indent=2) + "\n")


if __name__ == "__main__":
    main()
