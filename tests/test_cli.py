"""The CLI: JSON output with the data set's own ids, one-line errors, non-zero exits, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmrec.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)  # fmt: skip


def test_help_lists_the_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("data", "models"):
        assert command in out.stdout


def test_help_shows_the_config_sections_it_names():
    out = subprocess.run([sys.executable, "-m", "llmrec.cli", "evaluate", "--help"], capture_output=True, text=True,
                         timeout=600, env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    assert out.returncode == 0 and "([ranker], [llm], ...)" in out.stdout  # not eaten as rich markup


def test_help_does_not_import_heavy_libraries():
    heavy = "('torch', 'transformers', 'pandas', 'chromadb', 'gradio')"
    code = f"import sys, llmrec.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_data_info_json_on_real_data(shared_data: Path):
    out = run_cli("data", "info", "ml-latest-small", "--data-dir", str(shared_data), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert (info["users"], info["items"], info["interactions"]) == (610, 3650, 90274)


def test_data_info_ml100k_offline_without_shared(tmp_path: Path):
    out = run_cli("data", "info", "ml-100k", "--json", "--offline", "--cache-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert (info["users"], info["items"], info["interactions"]) == (943, 1348, 99278)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("data", "info", "nope"), "unknown data set 'nope'"),
        (("data", "info", "ml-latest-small", "--data-dir", "/does/not/exist"), "is not a folder"),
        (("data", "info", "ml-1m", "--offline"), "ml-1m not found"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(args: tuple[str, ...], message: str, tmp_path: Path):
    out = run_cli(*args, "--cache-dir", str(tmp_path))
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_malformed_folder_is_a_clean_error(tmp_path: Path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "movies.csv").write_text("movieId,title,genres\n1,A (1990),Drama\n")
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,x,1\n")
    out = run_cli("data", "info", str(folder), "--cache-dir", str(tmp_path))
    assert out.returncode == 2 and "line 2" in out.stderr and "Traceback" not in out.stderr


def test_the_app_ranks_and_explains_with_the_language_model_unless_told_otherwise(tmp_path):
    from llmrec.cli import _app_kinds

    assert _app_kinds(None, None, None) == ("llm", "llm")
    assert _app_kinds(None, "passthrough", "template") == ("passthrough", "template")
    chosen = tmp_path / "classic.toml"
    chosen.write_text('[ranker]\nkind = "passthrough"\n', encoding="utf-8")
    assert _app_kinds(chosen, None, None) == ("passthrough", "llm")  # the file's choice stands, the rest defaults
    assert _app_kinds(chosen, "llm", "template") == ("llm", "template")  # a flag beats the file
