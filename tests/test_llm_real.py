"""The transformers backend behind the LLM interface, on the real packaged SmolLM2-135M."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fixtures_catalog import ITEMS, PROFILE, candidates
from llmrec.errors import ModelError
from llmrec.llm.local import TransformersLLM, check_adapter
from llmrec.ranking import LLMRanker

pytestmark = pytest.mark.real_model
NAME = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def small_llm(session_cache: Path) -> TransformersLLM:
    from llmrec.llm import prepare_model

    return TransformersLLM(prepare_model(NAME, cache_dir=session_cache), name=NAME, threads=2)


def test_scores_are_one_logit_per_option_and_batching_agrees(small_llm: TransformersLLM):
    messages = [{"role": "user", "content": "Pick a letter: A or B. Answer with the letter."}]
    single = small_llm.score_options(messages, ["A", "B", "C"])
    other = [{"role": "user", "content": "A longer, different prompt so that padding is needed. Answer A or B."}]
    batch = small_llm.score_options_batch([messages, other], ["A", "B", "C"])
    assert single.shape == (3,) and np.all(np.isfinite(single))
    np.testing.assert_allclose(batch[0], single, atol=1e-3)


def test_real_llm_ranks_twenty_candidates(small_llm: TransformersLLM):
    ranker = LLMRanker(small_llm, ITEMS)
    cands = candidates([str(i) for i in range(2, 22)])
    ranked = ranker.rank(PROFILE, cands, 20)
    assert ranker.last_note == ""
    assert sorted(c.item_id for c in ranked) == sorted(c.item_id for c in cands)
    assert all(c.evidence.stage_scores[-1][0] == "llm" for c in ranked)


def test_streaming_generation_yields_text(small_llm: TransformersLLM):
    pieces = list(small_llm.stream([{"role": "user", "content": "Say hello."}], max_new_tokens=8))
    assert "".join(pieces).strip()


def test_lora_adapter_loads_and_mismatches_are_refused(small_llm: TransformersLLM, tmp_path: Path):
    from peft import LoraConfig, get_peft_model

    adapter = tmp_path / "adapter"
    peft_model = get_peft_model(small_llm.model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    peft_model.save_pretrained(adapter)
    small_llm.model = peft_model.unload()  # leave the shared base model as it was
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert Path(config["base_model_name_or_path"]).name == NAME
    loaded = TransformersLLM(small_llm.folder, name=NAME, adapter=adapter)
    assert loaded.adapter == adapter
    with pytest.raises(ModelError, match="trained for base model"):
        check_adapter(adapter, "qwen2.5-coder-0.5b-instruct")
    (adapter / "adapter_model.safetensors").rename(adapter / "adapter_model.bin")
    with pytest.raises(ModelError, match=r"pickled adapter_model\.bin"):
        check_adapter(adapter, NAME)


def test_the_prefix_prompts_share_is_computed_once_and_changes_nothing(small_llm: TransformersLLM,
                                                                       session_cache: Path):  # fmt: skip
    from llmrec.llm import prepare_model

    plain = TransformersLLM(prepare_model(NAME, cache_dir=session_cache), name=NAME, threads=2, reuse_prefix=False)
    system = {"role": "system", "content": "You are a movie recommender. Reply with the letter of one candidate."}
    history = "History: Alien, Heat, Up, Cars, Brave, Solaris, Shrek, Toy Story, Fargo, Amelie."
    prompts = [[system, {"role": "user", "content": f"{history} Candidates: A. {a} B. {b} C. Toy Story. "
                                                    "Answer with the letter."}]
               for a, b in (("Solaris", "Shrek"), ("Heat", "Up"), ("Brave", "Cars"))]  # fmt: skip
    before, reused = small_llm.prefixes.misses, small_llm.prefixes.reused_tokens
    for messages in prompts:
        np.testing.assert_allclose(small_llm.score_options(messages, ["A", "B", "C"]),
                                   plain.score_options(messages, ["A", "B", "C"]), atol=1e-4)  # fmt: skip
    assert small_llm.prefixes.misses == before + 1  # the first prompt; the others start from its cache
    shared = small_llm.count_tokens([system, {"role": "user", "content": history}]) - 8
    assert small_llm.prefixes.reused_tokens - reused >= 2 * shared  # system turn and history, twice
    assert small_llm.generate(prompts[0], 12) == plain.generate(prompts[0], 12)
    assert small_llm.generate(prompts[1], 12) == plain.generate(prompts[1], 12)  # from the first one's cache
    no_system = [{"role": "user", "content": "Answer A or B."}]  # nothing to reuse: computed as a whole
    np.testing.assert_allclose(small_llm.score_options(no_system, ["A", "B"]),
                               plain.score_options(no_system, ["A", "B"]), atol=1e-4)  # fmt: skip
