"""Schema-constrained JSON and task-keyed adapters on the real packaged SmolLM2-135M."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal

import jsonschema
import numpy as np
import pytest
from pydantic import BaseModel, Field, TypeAdapter

from llmrec.errors import ConfigError
from llmrec.llm.local import TransformersLLM

pytestmark = [pytest.mark.real_model, pytest.mark.slow]
NAME = "smollm2-135m-instruct"


class Reading(BaseModel):
    intent: Literal["recommend", "why", "feedback", "refine", "other"]
    titles: list[str] = Field(max_length=3)
    mood: str | None = Field(max_length=40)
    newer: bool


@dataclasses.dataclass(frozen=True)
class Rating:
    title: str
    stars: int


MESSAGES = [
    {"role": "system", "content": "Read the user's message into JSON: intent, titles they mention, mood, newer."},
    {"role": "user", "content": "I loved Alien and Heat. Something dark, and newer films please."},
]


@pytest.fixture(scope="module")
def small_llm(session_cache: Path) -> TransformersLLM:
    from llmrec.llm import prepare_model

    return TransformersLLM(prepare_model(NAME, cache_dir=session_cache), name=NAME, threads=2)


def test_json_from_a_pydantic_schema_parses_and_validates(small_llm: TransformersLLM):
    schema = Reading.model_json_schema()
    text = small_llm.generate_json(MESSAGES, schema, max_new_tokens=120)
    jsonschema.validate(json.loads(text), schema)
    assert list(json.loads(text)) == list(schema["properties"])  # written in the schema's field order
    Reading.model_validate_json(text)
    assert small_llm.generate_json(MESSAGES, schema, max_new_tokens=120) == text  # greedy: the same again


def test_json_from_a_dataclass_schema_validates_and_plain_text_would_not(small_llm: TransformersLLM):
    schema = TypeAdapter(Rating).json_schema()
    messages = [{"role": "user", "content": "Rate the film Alien out of 5 stars."}]
    value = TypeAdapter(Rating).validate_json(small_llm.generate_json(messages, schema, max_new_tokens=60))
    assert isinstance(value.stars, int) and isinstance(value.title, str)
    with pytest.raises(ValueError):  # unconstrained, the small model answers in prose
        json.loads(small_llm.generate(messages, 30))


def test_the_system_turn_cache_does_not_change_json(small_llm: TransformersLLM):
    plain = TransformersLLM(small_llm.folder, name=NAME, threads=2, reuse_prefix=False)
    schema = Reading.model_json_schema()
    assert plain.generate_json(MESSAGES, schema, 120) == small_llm.generate_json(MESSAGES, schema, 120)


def test_a_bad_schema_or_task_is_one_clear_error(small_llm: TransformersLLM):
    with pytest.raises(ConfigError, match="must be a mapping"):
        small_llm.generate_json(MESSAGES, "object", 10)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown LLM task"):
        small_llm.generate_json(MESSAGES, Reading.model_json_schema(), 10, task="chat")


def test_each_task_runs_under_its_own_adapter_and_the_rest_on_the_base_weights(small_llm: TransformersLLM,
                                                                                tmp_path: Path):  # fmt: skip
    from peft import LoraConfig, get_peft_model

    adapter = tmp_path / "understand"
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)  # random: it acts
    peft_model = get_peft_model(small_llm.model, config)
    peft_model.save_pretrained(adapter)
    small_llm.model = peft_model.unload()  # leave the shared base model as it was
    llm = TransformersLLM(small_llm.folder, name=NAME, threads=2, adapters={"understand": adapter, "explain": adapter})
    assert llm._adapter_names == {"understand": "understand", "explain": "understand"}  # loaded once
    labels = ["A", "B", "C"]
    base = small_llm.score_options(MESSAGES, labels)
    np.testing.assert_allclose(llm.score_options(MESSAGES, labels), base, atol=1e-4)  # rank: base weights
    tuned = llm.score_options(MESSAGES, labels, task="understand")
    assert not np.allclose(tuned, base, atol=1e-3)
    np.testing.assert_allclose(llm.score_options(MESSAGES, labels, task="explain"), tuned, atol=1e-4)
