"""The OpenVINO runtime on the real packaged SmolLM2-135M against the transformers path: scores, text, JSON,
adapters, prefix reuse, and a damaged export or probe that must never give a wrong score."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from fixtures_catalog import ITEMS, PROFILE, candidates
from llmrec.errors import ModelError
from llmrec.llm.local import TransformersLLM
from llmrec.ranking import LLMRanker

pytestmark = [pytest.mark.real_model, pytest.mark.slow]
NAME = "smollm2-135m-instruct"
LABELS = list("ABCDEFGHIJKLMNOPQRST")


@pytest.fixture(scope="module")
def folder(session_cache: Path) -> Path:
    from llmrec.llm import prepare_model

    return prepare_model(NAME, cache_dir=session_cache)


@pytest.fixture(scope="module")
def adapter(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA with random (non-zero) weights on attention and MLP projections of two layers."""
    import torch
    from peft import LoraConfig, get_peft_model

    from llmrec.llm.transformers_backend import load_causal_lm

    torch.manual_seed(0)
    model, _ = load_causal_lm(folder)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], layers_to_transform=[2, 5],
                        init_lora_weights=False)  # fmt: skip
    out = tmp_path_factory.mktemp("adapter") / "rank"
    get_peft_model(model, config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def ov_llm(folder: Path, adapter: Path, session_cache: Path):
    from llmrec.llm.runtime import load_llm

    llm = load_llm(folder, NAME, {"rank": adapter}, runtime="openvino", threads=2, cache_dir=session_cache,
                   precision="f32")  # fmt: skip
    assert getattr(llm, "runtime", None) == "openvino"  # not the fallback
    return llm


@pytest.fixture(scope="module")
def reference(folder: Path, adapter: Path) -> TransformersLLM:
    return TransformersLLM(folder, name=NAME, adapters={"rank": adapter}, threads=2, reuse_prefix=False)


def ranking_prompts(n: int = 3) -> list[list[dict[str, str]]]:
    """Prompts of one conversation: the same user, a different candidate list each turn."""
    from llmrec.llm.base import FakeLLM

    ranker = LLMRanker(FakeLLM(), ITEMS)
    ids = [str(i) for i in range(2, 22)]
    return [ranker.messages(PROFILE, candidates(ids[k:] + ids[:k])) for k in range(n)]


def test_scores_agree_with_transformers_under_the_adapter_and_without_it(ov_llm, reference):
    for messages in ranking_prompts():
        for task in ("rank", "explain"):  # explain has no adapter here: the base weights
            got, want = ov_llm.score_options(messages, LABELS, task=task), reference.score_options(messages, LABELS,
                                                                                                 task=task)  # fmt: skip
            assert got.argmax() == want.argmax()
            np.testing.assert_allclose(got, want, atol=0.05)
    messages = ranking_prompts(1)[0]
    assert not np.allclose(ov_llm.score_options(messages, LABELS), ov_llm.score_options(messages, LABELS,
                                                                                          task="explain"), atol=1e-2)


def test_reusing_a_conversation_prefix_changes_no_score(ov_llm, folder, adapter):
    from llmrec.llm.openvino_backend import OpenVINOLLM

    plain = OpenVINOLLM(ov_llm.export_dir, folder, NAME, {"rank": adapter}, threads=2, precision="f32",
                        reuse_prefix=False, verify_files=False)  # fmt: skip
    before = ov_llm.prefixes.reused_tokens
    for messages in ranking_prompts(4):
        np.testing.assert_allclose(ov_llm.score_options(messages, LABELS), plain.score_options(messages, LABELS),
                                   atol=1e-3)  # fmt: skip
    assert ov_llm.prefixes.reused_tokens - before > 3 * 100  # history and preferences were not computed again


def test_greedy_text_and_json_match_the_transformers_path(ov_llm, reference):
    for messages in ([{"role": "user", "content": "Say hello in one short sentence."}], ranking_prompts(1)[0]):
        assert ov_llm.generate(messages, 24) == reference.generate(messages, 24)
    film = [{"role": "user", "content": "Name a famous film."}]
    pieces = list(ov_llm.stream(film, 12))
    assert len(pieces) > 1 and "".join(pieces) == reference.generate(film, 12)
    schema = {"type": "object", "required": ["title", "stars"],
              "properties": {"title": {"type": "string", "maxLength": 30}, "stars": {"type": "integer"}}}  # fmt: skip
    rate = [{"role": "user", "content": "Rate the film Alien out of 5 stars."}]
    text = ov_llm.generate_json(rate, schema, 40)
    assert text == reference.generate_json(rate, schema, 40)
    assert set(json.loads(text)) == {"title", "stars"}


def test_a_corrupted_export_file_is_refused(ov_llm, folder, tmp_path):
    from llmrec.llm.openvino_backend import OpenVINOLLM

    copy = tmp_path / "export"
    shutil.copytree(ov_llm.export_dir, copy)
    with open(copy / "model.bin", "r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelError, match="sha256"):
        OpenVINOLLM(copy, folder, NAME)
    with pytest.raises(ModelError, match="made for other weights"):
        OpenVINOLLM(ov_llm.export_dir, folder, NAME, expected_key="0" * 64, verify_files=False)


def test_scores_that_disagree_with_the_probe_fall_back_to_transformers(ov_llm, folder, session_cache, caplog):
    from llmrec.llm.runtime import load_llm

    probe = ov_llm.export_dir / "probes" / "base.json"
    saved = probe.read_text()
    data = json.loads(saved)
    data["logits"] = [x + (3.0 if i == 0 else 0.0) for i, x in enumerate(data["logits"])]  # as if for other weights
    probe.write_text(json.dumps(data))
    try:
        with caplog.at_level(logging.WARNING, logger="llmrec.llm.runtime"):
            llm = load_llm(folder, NAME, runtime="openvino", threads=2, cache_dir=session_cache, precision="f32")
    finally:
        probe.write_text(saved)
    assert isinstance(llm, TransformersLLM)
    assert "differ from the transformers path" in caplog.text and "falling back to transformers" in caplog.text


def test_scoring_between_the_pieces_of_a_stream_changes_neither(ov_llm, reference):
    film = [{"role": "user", "content": "Name a famous film."}]
    messages = ranking_prompts(1)[0]
    stream = ov_llm.stream(film, 12)  # explain: the base weights
    first = next(stream)
    scores = ov_llm.score_options(messages, LABELS)  # rank: the adapter, in the same thread, mid-stream
    assert first + "".join(stream) == reference.generate(film, 12)
    np.testing.assert_allclose(scores, reference.score_options(messages, LABELS), atol=0.05)


def test_f32_label_scores_do_not_depend_on_the_thread_count(folder, adapter, session_cache):
    """Why a fusion card pins f32: the same prompts in the same order give the same label scores however the work is
    split (bf16 moved them by 0.03 on average on the 0.5B model and reordered 10 of 12 lists; docs/benchmarks/
    ranking.md section 14). Fresh models, because a reused conversation prefix moves scores in the 7th digit."""
    from llmrec.llm.runtime import load_llm

    one, two = (load_llm(folder, NAME, {"rank": adapter}, runtime="openvino", threads=n, cache_dir=session_cache,
                         precision="f32") for n in (1, 2))  # fmt: skip
    assert one.precision == two.precision == "f32"
    for messages in ranking_prompts():
        np.testing.assert_array_equal(one.score_options(messages, LABELS), two.score_options(messages, LABELS))
