"""The commands that recommend, end to end as a user runs them: `recommend`, `why`, `chat --json`, `evaluate`.

Each runs the real CLI in a subprocess. The first set uses a small fixture catalogue (tests/data/tiny-movies) and the
fakes that ship with llmrec (hashing embedder, scripted language model, MostPop) through `--config`; the second set
runs the real packaged models on ml-latest-small.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
TINY = DATA / "tiny-movies"
FAKE = DATA / "fake-models.toml"


def llmrec(*args: str, cache: Path, stdin: str | None = None, cwd: Path | None = None,
           timeout: int = 900) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run([sys.executable, "-m", "llmrec.cli", *args, "--cache-dir", str(cache)], input=stdin,
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)  # fmt: skip


def ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return out.stdout


# -- on the fixture catalogue with the fake models ----------------------------------------------------------
def test_recommend_json_with_the_llm_ranker_and_explanations(tmp_path):
    rows = json.loads(ok(llmrec("recommend", str(TINY), "--config", str(FAKE), "--user", "u1", "--explain", "-k", "4",
                                "--json", cache=tmp_path, cwd=tmp_path)))  # fmt: skip
    items = {line.split(",")[0] for line in (TINY / "items.csv").read_text(encoding="utf-8").splitlines()[1:]}
    assert len(rows) == 4 and {r["item_id"] for r in rows} <= items  # the data set's own ids
    assert all(r["explanation"] and r["evidence"]["stage_scores"] for r in rows)
    assert all(any(stage == "llm" for stage, _ in r["evidence"]["stage_scores"]) for r in rows)  # the LLM ranked


def test_recommend_flags_override_the_config_file(tmp_path):
    rows = json.loads(ok(llmrec("recommend", str(TINY), "--config", str(FAKE), "--query", "a comedy from the 2000s",
                                "--ranker", "passthrough", "--json", cache=tmp_path)))  # fmt: skip
    assert rows and all("Comedy" in r["genres"] and 2000 <= r["year"] <= 2009 for r in rows)
    assert not any("llm" in r["sources"] for r in rows)
    bad = llmrec("recommend", str(TINY), "--config", str(FAKE), "--user", "u1", "--ranker", "magic", cache=tmp_path)
    assert bad.returncode == 2 and "unknown ranker 'magic'" in bad.stderr and "Traceback" not in bad.stderr


def test_why_json_says_where_the_item_stands(tmp_path):
    row = json.loads(ok(llmrec("why", str(TINY), "--config", str(FAKE), "--user", "u1", "--item", "9", "--json",
                               cache=tmp_path)))  # fmt: skip
    assert row["item_id"] == "9" and row["explanation"] and row["position"]
    unknown = llmrec("why", str(TINY), "--config", str(FAKE), "--user", "u1", "--item", "999", cache=tmp_path)
    assert unknown.returncode != 0 and "unknown item id '999'" in unknown.stderr


def test_chat_json_prints_one_object_per_turn(tmp_path):
    said = "I loved The Matrix\nrecommend something\nquit\n"
    out = ok(llmrec("chat", str(TINY), "--config", str(FAKE), "--json", "--user", "e2e", stdin=said, cache=tmp_path))
    turns = [json.loads(line) for line in out.splitlines()]
    assert [t["user"] for t in turns] == [None, "I loved The Matrix", "recommend something", "quit"]
    assert turns[-1]["ended"] and all(t["reply"] for t in turns)
    assert {"item_id": "9", "title": "The Matrix (1999)"} in turns[1]["profile"]["liked"]
    shown = [c for t in turns for c in t["cards"]]
    assert shown and all(c["item_id"] != "9" for c in shown)  # never the liked film itself


def test_evaluate_with_the_pipeline_ranker(tmp_path):
    report = json.loads(ok(llmrec("evaluate", str(TINY), "--config", str(FAKE), "--models", "pop", "--ranker", "llm",
                                  "--json", cache=tmp_path)))  # fmt: skip
    rows = report["results"]
    assert "pop" in rows and any(name.startswith("pop+llm") and "zero-shot" in name for name in rows)
    assert all(0.0 <= r["ndcg@10"] <= 1.0 for r in rows.values()) and not report["errors"]
    two = llmrec("evaluate", str(TINY), "--config", str(FAKE), "--models", "pop,ease", "--ranker", "llm",
                 cache=tmp_path)
    assert two.returncode == 2 and "re-ranks one retriever" in two.stderr
    unnamed = llmrec("evaluate", str(TINY), "--config", str(FAKE), "--ranker", "llm", cache=tmp_path)
    assert unnamed.returncode == 2 and "pass one model" in unnamed.stderr  # no fusion ships for it: name one


def test_offline_refuses_to_download(tmp_path):
    out = llmrec("recommend", "ml-1m", "--user", "1", "--offline", cache=tmp_path)
    assert out.returncode == 2 and "ml-1m" in out.stderr and "Traceback" not in out.stderr


# -- on the real packaged models ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["recommend", "why"])
@pytest.mark.real_model
@pytest.mark.slow
def test_real_models_recommend_and_why(command, shared_data, session_cache, tmp_path):
    base = ["ml-latest-small", "--data-dir", str(shared_data), "--user", "1", "--ranker", "llm", "--json"]
    if command == "recommend":
        rows = json.loads(ok(llmrec("recommend", *base, "--explain", "-k", "3", cache=session_cache, cwd=tmp_path)))
        assert len(rows) == 3 and all(r["explanation"] for r in rows)
        assert all(any(stage == "llm" for stage, _ in r["evidence"]["stage_scores"]) for r in rows)
    else:
        row = json.loads(ok(llmrec("why", *base, "--item", "2571", cache=session_cache, cwd=tmp_path)))
        assert row["title"] == "The Matrix (1999)" and row["explanation"]


@pytest.mark.real_model
@pytest.mark.slow
def test_real_models_chat_json(shared_data, session_cache):
    said = "I loved Inception and The Dark Knight, but I hate horror movies\nrecommend something\nquit\n"
    out = ok(llmrec("chat", "ml-latest-small", "--data-dir", str(shared_data), "--json", "--user", "real-e2e",
                    stdin=said, cache=session_cache))  # fmt: skip
    turns = [json.loads(line) for line in out.splitlines()]
    assert len(turns) == 4 and turns[-1]["ended"] and all("profile" in t for t in turns)
    # issue 13's done-when: both films liked, horror avoided, recommendations without horror
    from llmrec.data import load_dataset

    profile = turns[2]["profile"]
    assert {f["title"] for f in profile["liked"]} == {"Inception (2010)", "The Dark Knight (2008)"}
    assert profile["avoided_genres"] == ["Horror"]
    items = load_dataset("ml-latest-small", data_dir=shared_data).items
    cards = [c["item_id"] for t in turns[1:3] for c in t["cards"]]
    assert cards and not [i for i in cards if "Horror" in items[i].genres]


@pytest.mark.real_model
@pytest.mark.slow
def test_real_models_evaluate_llm_ranker(shared_data, session_cache):
    report = json.loads(ok(llmrec("evaluate", "ml-latest-small", "--data-dir", str(shared_data), "--models", "ease",
                                  "--ranker", "llm", "--max-users", "3", "--json", cache=session_cache)))  # fmt: skip
    assert "ease" in report["results"] and len(report["results"]) >= 2 and not report["errors"]
