"""Prompts are versioned data with strict rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmrec.errors import ConfigError
from llmrec.prompts import load_prompt, load_prompt_ref


def test_item_text_prompt_is_versioned():
    tpl = load_prompt("item_text")
    assert tpl.ref == "item_text@1"


def test_missing_and_unknown_variables_are_errors():
    tpl = load_prompt("item_text")
    values = dict.fromkeys(tpl.variables, "x")
    with pytest.raises(ConfigError, match=r"missing variables \['year'\]"):
        tpl.render(**{k: v for k, v in values.items() if k != "year"})
    with pytest.raises(ConfigError, match=r"unknown variables \['extra'\]"):
        tpl.render(**values, extra="y")


def test_template_and_declaration_must_agree(tmp_path: Path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "v1.toml").write_text('variables = ["a"]\ntemplate = "{a} {b}"\n')
    with pytest.raises(ConfigError, match="declares"):
        load_prompt("t", prompts_dir=tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        load_prompt("t", 7, prompts_dir=tmp_path)


def test_values_are_data_not_format_strings():
    tpl = load_prompt("item_text")
    text = tpl.render(title="{year} {__class__}", year=1999, genres="", keywords="", tags="", description="")
    assert text.startswith("{year} {__class__}")


def test_a_reference_names_a_version_or_the_highest():
    assert load_prompt_ref("rank@1") == load_prompt("rank", 1)
    assert load_prompt_ref("rank") == load_prompt("rank") and load_prompt_ref("rank").version >= 2
    assert load_prompt_ref(load_prompt("rank", 1).ref) == load_prompt("rank", 1)  # the inverse of .ref
