"""Load a prepared causal LM with transformers and generate greedily through its chat template.

torch and transformers are imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llmrec.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")


def load_causal_lm(folder: str | Path, dtype: str = "float32", threads: int | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) from a safetensors folder, in eval mode, on the CPU; no remote code, no network."""
    if dtype not in DTYPES:
        raise ConfigError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be a positive number, got {threads}")
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ModelError(f"{folder} is not a model folder (no config.json); fix: run prepare_model first")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if threads is not None:
        torch.set_num_threads(threads)
    common = {"local_files_only": True, "trust_remote_code": False}
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, **common)
        model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=getattr(torch, dtype), use_safetensors=True, **common
        )
    except (OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"could not load the model in {folder}: {first}; fix: prepare the model again") from None
    model.eval()
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    log.info("loaded %s (%s, %d threads)", folder.name, dtype, torch.get_num_threads())
    return model, tokenizer


def generate_text(
    model: Any, tokenizer: Any, messages: Sequence[Mapping[str, str]], max_new_tokens: int = 32
) -> str:
    """The model's greedy reply to chat ``messages`` (``[{"role": ..., "content": ...}]``), stripped."""
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError("the tokenizer has no chat template; fix: use an instruct/chat model")
    import torch

    inputs = tokenizer.apply_chat_template(
        [dict(m) for m in messages], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    inputs = {key: value.to(model.device) for key, value in inputs.items()}
    prompt_length = inputs["input_ids"].shape[1]
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=tokenizer.pad_token_id,
        )
    return tokenizer.decode(output[0, prompt_length:], skip_special_tokens=True).strip()
