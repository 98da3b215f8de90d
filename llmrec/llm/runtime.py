"""``load_llm``: the one constructor of a local language model, on the fastest runtime that is sound.

``runtime="auto"`` (and ``"openvino"``) loads the OpenVINO export of the prepared model, making it
first when it is missing or stale (a child process runs ``python -m llmrec.llm.export``, about a
minute for the 0.5B model; later starts reuse it). Whatever goes wrong on that road — OpenVINO not
installed, a CPU it cannot run on, an export that is corrupted or made for other weights, an adapter
it cannot apply, scores that differ from the transformers path on the probe prompt — is logged as one
warning line and the transformers runtime is used instead, so a score is never wrong, only slower.
A corrupted or stale export is made again once before giving up.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmrec.errors import ConfigError, ModelError
from llmrec.llm.base import LLM

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "openvino", "transformers")
EXPORT_TIMEOUT_S = 3600


def exports_dir(cache_dir: str | Path | None = None) -> Path:
    """``<cache>/exports/openvino``."""
    from llmrec.paths import resolve_cache_dir

    return resolve_cache_dir(cache_dir) / "exports" / "openvino"


def load_llm(
    folder: str | Path,
    name: str | None = None,
    adapters: Mapping[str, str | Path] | None = None,
    *,
    runtime: str = "auto",
    threads: int | None = None,
    cache_dir: str | Path | None = None,
    dtype: str = "float32",
    precision: str = "auto",
) -> LLM:
    """A local LLM for the prepared model ``folder`` with ``adapters`` ({task: peft folder}).

    ``runtime``: "auto"/"openvino" (OpenVINO, falling back to transformers with a warning) or
    "transformers". ``dtype`` is the transformers runtime's; ``precision`` OpenVINO's ("auto": bf16 where
    the CPU has it, else f32; "f32"; "bf16").
    """
    from llmrec.llm.local import TransformersLLM, task_adapters

    if runtime not in RUNTIMES:
        raise ConfigError(f"LLM runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    folder = Path(folder)
    tasks = task_adapters(adapters)
    if runtime != "transformers":
        try:
            return load_openvino(folder, name, tasks, threads=threads, cache_dir=cache_dir, precision=precision)
        except ModelError as exc:
            log.warning("OpenVINO runtime not used: %s; falling back to transformers (slower)", exc)
    return TransformersLLM(folder, name=name, adapters=tasks, dtype=dtype, threads=threads)


def load_openvino(folder: Path, name: str | None, adapters: Mapping[str, Path], *, threads: int | None = None,
                  cache_dir: str | Path | None = None, precision: str = "auto", weights: str = "f16",
                  ) -> Any:  # fmt: skip
    """The OpenVINO runtime, exporting first when needed; ``ModelError`` (one line) when it cannot be used."""
    try:
        import openvino as ov
    except ImportError:
        raise ModelError("openvino is not installed (pip install 'openvino>=2025.1')") from None
    try:
        cpu_ok = "CPU" in ov.Core().available_devices
    except RuntimeError:
        cpu_ok = False
    if not cpu_ok:
        raise ModelError("OpenVINO's CPU plugin cannot run on this processor (it needs SSE4.2 or newer)")
    from filelock import FileLock

    from llmrec.llm.export import export_key, identity
    from llmrec.llm.openvino_backend import MissingProbe, OpenVINOLLM

    root = exports_dir(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    ident = identity(folder, weights, cache_file=root / "base-hashes.json")
    key = export_key(ident)
    target = root / f"{name or folder.name}-{key[:16]}"
    with FileLock(str(root / f"{target.name}.lock")):
        for attempt in (1, 2):
            if not (target / "manifest.json").is_file():
                _run_export(folder, target, list(adapters.values()), weights, root)
            try:
                return OpenVINOLLM(target, folder, name, adapters, threads=threads, precision=precision,
                                   expected_key=key)  # fmt: skip
            except MissingProbe as missing:
                _run_export(folder, target, missing.adapters, weights, root, probes_only=True)
            except ModelError as exc:
                if attempt == 2 or "differ from the transformers path" in str(exc) or "does not apply" in str(exc):
                    raise
                log.warning("%s; exporting again", exc)
                _remove(target)
        return OpenVINOLLM(target, folder, name, adapters, threads=threads, precision=precision, expected_key=key)


def _remove(target: Path) -> None:
    import shutil

    shutil.rmtree(target, ignore_errors=True)


def _run_export(folder: Path, target: Path, adapters: list[Path], weights: str, root: Path,
                probes_only: bool = False) -> None:  # fmt: skip
    """``python -m llmrec.llm.export`` in a child process (its torch copy of the weights dies with it)."""
    command = [sys.executable, "-m", "llmrec.llm.export", str(folder), str(target), "--weights", weights,
               "--hash-cache", str(root / "base-hashes.json")]  # fmt: skip
    for adapter in adapters:
        command += ["--adapter", str(adapter)]
    if probes_only:
        command.append("--probes-only")
    log.info("%s the OpenVINO export of %s (once; about a minute per 0.5B parameters)",
             "probing adapters for" if probes_only else "making", folder.name)  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise ModelError(f"the OpenVINO export of {folder.name} took longer than {EXPORT_TIMEOUT_S} s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise ModelError(lines[-1] if lines else f"the OpenVINO export of {folder.name} failed")
