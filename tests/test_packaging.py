"""The package as it ships: every sub-package listed for the wheel, prompts and adapters found as package data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_for_the_wheel():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for top in ("llmrec", "finetune", "ui")
             for p in (REPO / top).rglob("__init__.py")}  # fmt: skip
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages in pyproject.toml"


def test_prompts_and_adapters_are_found_from_any_working_directory(tmp_path):
    code = ("from llmrec.prompts import load_prompt; from llmrec.adapters import shipped_adapter; "
            "print(load_prompt('rank').ref, shipped_adapter('qwen2.5-coder-0.5b-instruct', 'explain') is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert out.stdout.split()[1] == "True" and out.stdout.startswith("rank@")


def test_llmrec_imports_neither_ui_nor_finetune_except_in_the_cli():
    offenders = []
    for path in (REPO / "llmrec").rglob("*.py"):
        if path.name == "cli.py":
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] in ("import", "from") and words[1].split(".")[0] in ("ui", "finetune"):
                offenders.append(f"{path.relative_to(REPO)}: {line.strip()}")
    assert not offenders
