"""The app never waits for the language model: until it has loaded, turns run the classic pipeline."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from llmrec.config import load_config
from llmrec.pipeline import Recommender, parts
from ui.service import Service

DATA = Path(__file__).parent / "data"


@pytest.fixture
def config(tmp_path: Path):
    return load_config(DATA / "fake-models.toml").updated(data={"dataset": str(DATA / "tiny-movies")},
                                                          cache_dir=tmp_path)  # fmt: skip


def test_turns_use_the_classic_pipeline_until_the_language_model_has_loaded(config, tmp_path, monkeypatch):
    gate, real = threading.Event(), parts.build_llm
    monkeypatch.setattr(parts, "build_llm", lambda cfg: gate.wait(30) and real(cfg))
    service = Service(Recommender(config), tmp_path / "profiles.sqlite", "tiny", llm_wait_s=0.05)
    service.start()
    service.wait()  # ready without the model
    assert service.loading and "loading the language model" in service.status()[0]
    early = service.recommender(service.default_choice)
    assert (early.config.ranker.kind, early.config.explainer.kind, early.config.understanding.kind) == (
        "passthrough", "template", "rules")
    assert early.recommend(early.profile(query="space"), k=3).items  # it recommends meanwhile
    gate.set()
    assert service.llm_ready.wait(30)
    late = service.recommender(service.default_choice)
    assert (late.config.ranker.kind, late.config.explainer.kind) == ("llm", "llm")
    assert not service.loading and "language model" not in service.status()[0]


def test_a_model_that_cannot_load_leaves_the_app_serving_and_saying_so(config, tmp_path, monkeypatch):
    def broken(cfg):
        raise RuntimeError("no such model")

    monkeypatch.setattr(parts, "build_llm", broken)
    service = Service(Recommender(config), tmp_path / "profiles.sqlite", "tiny", llm_wait_s=0.05)
    service.start()
    service.wait()
    assert service.llm_ready.wait(30)
    assert "without the language model (RuntimeError)" in service.status()[0]
    rec = service.recommender(service.default_choice)
    assert rec.config.ranker.kind == "passthrough"
    assert rec.recommend(rec.profile(query="space"), k=3).items
