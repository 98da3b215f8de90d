"""The LLM interface without a model: task names, adapter mappings, the fake's scripted JSON replies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmrec.errors import ConfigError
from llmrec.llm.base import LLM, FakeLLM, check_task
from llmrec.llm.local import task_adapters

MESSAGES = [{"role": "user", "content": "I loved Alien; nothing gory."}]
SCHEMA = {"type": "object", "properties": {"intent": {"type": "string"}}}


def test_fake_replies_to_json_calls_exactly_as_scripted_and_records_schema_and_task():
    llm = FakeLLM(replies=["an explanation"], json_replies=['{"intent": "why"}', '{"intent": '])
    assert isinstance(llm, LLM)
    assert llm.generate_json(MESSAGES, SCHEMA) == '{"intent": "why"}'
    assert llm.generate_json(MESSAGES, SCHEMA, task="explain") == '{"intent": '  # broken JSON is passed through
    assert llm.generate_json(MESSAGES, SCHEMA) == "an explanation"  # then the plain replies
    assert llm.generate_json(MESSAGES, SCHEMA) == ""
    assert llm.schemas == [SCHEMA] * 4
    assert llm.tasks == ["understand", "explain", "understand", "understand"]


def test_fake_records_the_task_of_every_call_and_refuses_unknown_ones():
    llm = FakeLLM(replies=["one two"])
    llm.score_options(MESSAGES, ["A", "B"])
    assert "".join(llm.stream(MESSAGES, task="understand")).split() == ["one", "two"]
    assert llm.tasks == ["rank", "understand"]
    with pytest.raises(ConfigError, match="unknown LLM task 'ranking'"):
        llm.score_options(MESSAGES, ["A"], task="ranking")


def test_fake_scores_do_not_depend_on_the_task():
    llm = FakeLLM()
    np.testing.assert_array_equal(llm.score_options(MESSAGES, ["A", "B"]),
                                  llm.score_options(MESSAGES, ["A", "B"], task="understand"))  # fmt: skip


def test_task_adapters_merge_the_mapping_and_the_older_keywords(tmp_path: Path):
    rank, explain = tmp_path / "rank", tmp_path / "explain"
    assert task_adapters(None) == {}
    assert task_adapters(adapter=rank, explain_adapter=explain) == {"rank": rank, "explain": explain}
    assert task_adapters({"understand": str(explain)}, adapter=rank) == {"understand": explain, "rank": rank}
    assert task_adapters(rank) == {"rank": rank}  # the old third positional argument
    assert task_adapters({"rank": rank, "explain": None}) == {"rank": rank}
    assert task_adapters({"rank": rank}, adapter=rank) == {"rank": rank}
    with pytest.raises(ConfigError, match="two adapters for task 'rank'"):
        task_adapters({"rank": rank}, adapter=explain)
    with pytest.raises(ConfigError, match="unknown LLM task 'chat'"):
        task_adapters({"chat": rank})


def test_check_task_names_the_tasks():
    assert check_task("understand") == "understand"
    with pytest.raises(ConfigError, match="rank, explain, understand"):
        check_task("")


def test_schema_key_keeps_the_field_order_and_refuses_what_is_not_json():
    from llmrec.llm.constrained import schema_key

    assert schema_key({"b": 1, "a": [2]}) == json.dumps({"b": 1, "a": [2]}) != schema_key({"a": [2], "b": 1})
    with pytest.raises(ConfigError, match="must be a mapping"):
        schema_key('{"type": "object"}')  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not serialisable"):
        schema_key({"default": object()})
