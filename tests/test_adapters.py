"""The adapter card as a typed value: the shipped cards read back, the validated blend, malformed cards."""

from __future__ import annotations

import json

import pytest

from llmrec.adapters import AdapterCard, LoraMethod, read_card, shipped_adapter, task_folder
from llmrec.errors import ModelError
from llmrec.resources import adapters_dir

MODEL = "qwen2.5-coder-0.5b-instruct"


def card(**settings) -> AdapterCard:
    method = LoraMethod(r=8, alpha=16.0, dropout=0.05, target_modules=("q_proj",), layers="top 8", loss="ce")
    return AdapterCard(task="rank", base_model=MODEL, base_model_sha256="ab", method=method, settings=settings)


@pytest.mark.parametrize("task", ["rank", "explain", "understand"])
def test_the_shipped_cards_read_back_unchanged(task):
    folder = shipped_adapter(MODEL, task)
    assert folder is not None and folder == task_folder(adapters_dir() / MODEL, task)
    raw = json.loads((folder / "adapter_card.json").read_text(encoding="utf-8"))
    typed = read_card(folder)
    assert typed.task == task and typed.base_model == MODEL and typed.prompt.startswith(f"{task}@")
    again = typed.to_json()
    assert {k: v for k, v in again.items() if k != "task"} == {k: v for k, v in raw.items() if k != "task"}


def test_the_blend_comes_from_the_card(tmp_path):
    assert read_card(None) is None and read_card(tmp_path) is None  # no adapter, no card
    sweeps = {"lora": {"ndcg@10_by_blend": {"0": 0.05, "0.5": 0.07, "0.9": 0.07}},
              "zero_shot": {"ndcg@10_by_blend": {"0": 0.06, "0.98": 0.08}}}  # fmt: skip
    written = AdapterCard(**{**card(blend=0.9).__dict__, "validation": sweeps})
    written.write(tmp_path)
    loaded = read_card(tmp_path)
    assert loaded == written
    assert loaded.validated_blend() == 0.5  # the best validation NDCG; a tie goes to the more LLM-driven blend
    assert loaded.validated_blend(zero_shot=True) == 0.98
    assert card(blend=0.9, blend_validated=0.8).validated_blend() == 0.8
    assert card(blend=0.9).validated_blend() == 0.9  # no sweep: the training blend


def test_malformed_cards_are_one_line_errors(tmp_path):
    (tmp_path / "adapter_card.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match="cannot be read"):
        read_card(tmp_path)
    (tmp_path / "adapter_card.json").write_text(json.dumps({"task": "rank", "base_model": MODEL}), encoding="utf-8")
    with pytest.raises(ModelError, match=r"malformed.*method"):
        read_card(tmp_path)
    with pytest.raises(ModelError, match="unknown"):
        AdapterCard(**{**card().__dict__, "task": "dance"})
    assert shipped_adapter("no-such-model") is None


def test_the_understanding_adapter_loads_only_when_the_model_reads_messages(tmp_path):
    from llmrec.config import RecommenderConfig
    from llmrec.pipeline.parts import adapter_paths

    rules = RecommenderConfig().updated(understanding={"kind": "rules"})  # the understanding adapter would never run
    assert set(adapter_paths(rules)) == {"rank", "explain"}
    model = rules.updated(understanding={"kind": "llm"})
    assert adapter_paths(model)["understand"] == shipped_adapter(MODEL, "understand")
    hybrid = RecommenderConfig().updated(understanding={"kind": "hybrid"})  # the model decides stances rules miss
    assert RecommenderConfig().understanding.kind == "rules" and adapter_paths(hybrid) == adapter_paths(model)
    assert adapter_paths(model.updated(llm={"use_default_adapter": False})) == {}
    given = rules.updated(llm={"understand_adapter": str(tmp_path)})  # one the user names is always loaded
    assert adapter_paths(given)["understand"] == tmp_path
