"""Config: defaults, TOML loading and messages that name the bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmrec.config import RecommenderConfig, load_config
from llmrec.errors import ConfigError


def test_defaults_are_valid():
    config = RecommenderConfig()
    assert config.retrieval.retriever == "hybrid" and config.llm.model == "qwen2.5-coder-0.5b-instruct"


def test_load_from_toml_and_override(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text('k = 5\n[retrieval]\nretriever = "text"\ndiversity = 0.3\n[ranker]\nkind = "llm"\n')
    config = load_config(path)
    got = (config.k, config.retrieval.retriever, config.retrieval.diversity, config.ranker.kind)
    assert got == (5, "text", 0.3, "llm")
    assert config.updated(retrieval={"candidates": 50, "cf_model": None}).retrieval.candidates == 50


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[retrieval]\ndiversity = 2\n", "retrieval.diversity=2"),
        ('[ranker]\nkind = "magic"\n', "ranker.kind='magic'"),
        ("[retrieval]\nnope = 1\n", "retrieval.nope=1"),
        ("k = [", "not valid TOML"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, text: str, message: str):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        load_config(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
