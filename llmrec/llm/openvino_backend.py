"""``OpenVINOLLM``: the ``LLM`` interface over an OpenVINO export (``llmrec.llm.export``), on the CPU.

One compiled model serves every task: each task's LoRA adapter is read from its peft folder and fed
into the export's LoRA slots (zeros for a task without one), so nothing is merged or held twice. The
key/value cache lives in numpy and is reused across prompts (``session.PrefixStore``): a ranking
prompt computes only what follows the longest prefix it shares with a recent prompt, and only the
last position's logits are ever computed. Generation is greedy in a Python loop, with the same logits
processors as the transformers path (the reply-only repetition guard, the JSON-schema constraint).

Weights run in bfloat16 where the CPU has native bf16 (AVX512-BF16, AMX), else float32 —
OpenVINO's own choice unless ``precision`` says otherwise. Loading refuses (``ModelError``) an export
whose files or key do not match, an adapter it cannot apply, and any weights whose probe logits differ
from the transformers path's beyond the precision's tolerance; ``load_llm`` then falls back.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.errors import ConfigError, ModelError
from llmrec.fileutil import sha256_file
from llmrec.llm.base import Messages, check_task
from llmrec.llm.export import PROBE_LABELS, PROBE_MESSAGES, adapter_id
from llmrec.llm.session import Cache, PrefixStore

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "f32", "bf16")
# Largest |logit difference| to the transformers float32 path on the probe prompt: f16-stored weights move
# logits by ~0.005; bf16 arithmetic by ~0.1-0.2 on a 900-token prompt.
TOLERANCE = {"f32": 0.05, "bf16": 0.75}


class MissingProbe(ModelError):
    """The export has no probe logits yet for these adapters (recorded by ``python -m llmrec.llm.export``)."""

    def __init__(self, adapters: Sequence[Path]) -> None:
        super().__init__(f"no probe recorded for adapter {', '.join(str(a) for a in adapters)}")
        self.adapters = list(adapters)


def read_manifest(export_dir: Path, expected_key: str | None = None, verify_files: bool = True) -> dict[str, Any]:
    """The export's manifest after checking its key and (``verify_files``) each file's size and sha256."""
    path = export_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = manifest["files"]
        key = manifest["key"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ModelError(f"export {export_dir} has no readable manifest.json; it will be made again") from None
    if expected_key is not None and key != expected_key:
        raise ModelError(f"export {export_dir} was made for other weights, options or library versions (key "
                         f"{key[:12]}, expected {expected_key[:12]})")  # fmt: skip
    for name, meta in files.items():
        file = export_dir / name
        if not file.is_file() or file.stat().st_size != meta["size"]:
            raise ModelError(f"export file {file} is missing or has the wrong size (corrupted or incomplete)")
        if verify_files and sha256_file(file) != meta["sha256"]:
            raise ModelError(f"export file {file} does not match its sha256 (corrupted)")
    return manifest


def load_lora(adapter: Path, slots: Sequence[Sequence[Any]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{slot: (A [r, in], B*scale [out, r])}`` from a peft LoRA folder; refuses what the slots cannot apply."""
    from safetensors.numpy import load_file

    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    unsupported = [k for k in ("use_dora", "modules_to_save", "rank_pattern", "alpha_pattern", "lora_bias")
                   if config.get(k)]  # fmt: skip
    if config.get("peft_type", "LORA") != "LORA" or unsupported or config.get("bias", "none") != "none":
        raise ModelError(f"adapter {adapter} uses {', '.join(unsupported) or config.get('peft_type')} "
                         "which the OpenVINO runtime does not apply")  # fmt: skip
    rank = int(config["r"])
    scale = float(config["lora_alpha"]) / (rank**0.5 if config.get("use_rslora") else rank)
    shapes = {name: (int(n_in), int(n_out)) for name, n_in, n_out in slots}
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key, a in weights.items():
        if ".lora_A." not in key:
            continue
        module = key.split(".lora_A.")[0]
        slot = module[module.index("model.layers.") :] if "model.layers." in module else module
        b = weights.get(key.replace(".lora_A.", ".lora_B."))
        if slot not in shapes or b is None:
            raise ModelError(f"adapter {adapter} changes {module}, which has no LoRA slot in the export")
        n_in, n_out = shapes[slot]
        if a.shape[1] != n_in or b.shape[0] != n_out or a.shape[0] != b.shape[1]:
            raise ModelError(f"adapter {adapter}: {module} has shapes {a.shape}/{b.shape}, not {n_in} in, {n_out} out")
        out[slot] = (np.ascontiguousarray(a, dtype=np.float32), np.ascontiguousarray(b * scale, dtype=np.float32))
    if not out:
        raise ModelError(f"adapter {adapter} holds no LoRA weights")
    return out


class OpenVINOLLM:
    """An OpenVINO export of ``folder`` with one LoRA adapter per task ("rank", "explain", "understand")."""

    runtime = "openvino"

    def __init__(
        self,
        export_dir: str | Path,
        folder: str | Path,
        name: str | None = None,
        adapters: Mapping[str, Path] | None = None,
        *,
        threads: int | None = None,
        precision: str = "auto",
        expected_key: str | None = None,
        reuse_prefix: bool = True,
        verify_files: bool = True,
    ) -> None:
        import openvino as ov
        from transformers import AutoTokenizer, GenerationConfig

        if precision not in PRECISIONS:
            raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be a positive number, got {threads}")
        self.export_dir, self.folder = Path(export_dir), Path(folder)
        self.name = name or self.folder.name
        self.manifest = read_manifest(self.export_dir, expected_key, verify_files)
        dims = self.manifest["dims"]
        self._layers, self._kv_heads, self._head_dim = dims["layers"], dims["kv_heads"], dims["head_dim"]
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True, trust_remote_code=False)
        if self.tokenizer.pad_token_id is None and self.tokenizer.eos_token_id is not None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.context_length = int(json.loads((self.folder / "config.json").read_text()).get(
            "max_position_embeddings", 4096))  # fmt: skip
        try:
            eos = GenerationConfig.from_pretrained(self.folder, local_files_only=True).eos_token_id
        except OSError:
            eos = None
        eos_ids = eos if isinstance(eos, list) else [eos]
        self._eos = {int(e) for e in [*eos_ids, self.tokenizer.eos_token_id] if e is not None}

        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if precision != "auto":
            config["INFERENCE_PRECISION_HINT"] = precision
        core = ov.Core()
        try:
            compiled = core.compile_model(str(self.export_dir / "model.xml"), "CPU", config)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "compile failed"
            raise ModelError(f"OpenVINO could not compile {self.export_dir} on this CPU: {first[:200]}") from None
        hint = str(compiled.get_property("INFERENCE_PRECISION_HINT"))  # e.g. "<Type: 'bfloat16'>"
        self.precision = "bf16" if "bf16" in hint or "bfloat16" in hint else "f32"
        self._request = compiled.create_infer_request()
        # Re-entrant: a caller may score between the pieces of a stream it is reading (the stream re-feeds its
        # adapter before each step).
        self._lock = threading.RLock()
        self.prefixes = PrefixStore() if reuse_prefix else None

        slots = self.manifest["slots"]
        self._zero_lora = {name: (np.zeros((1, n_in), np.float32), np.zeros((n_out, 1), np.float32))
                           for name, n_in, n_out in slots}  # fmt: skip
        self.adapters = {check_task(t): Path(p) for t, p in (adapters or {}).items()}
        self.adapter = self.adapters.get("rank")
        self._lora: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        self._weights_of: dict[str, str] = {}  # task -> adapter id (the prefix store's key)
        for task, path in self.adapters.items():
            ident = adapter_id(path)
            if ident not in self._lora:
                self._lora[ident] = {**self._zero_lora, **load_lora(path, slots)}
            self._weights_of[task] = ident
        self._active: str | None = None
        self._token_ids: dict[str, int] = {}
        missing = [p for p in dict.fromkeys(self.adapters.values())
                   if not (self.export_dir / "probes" / f"{adapter_id(p)}.json").is_file()]  # fmt: skip
        if missing:
            raise MissingProbe(missing)
        for ident in ("base", *self._lora):
            self._check_probe(ident)

    # Weights and the forward pass ------------------------------------------------------------
    def _weights(self, task: str) -> str:
        return self._weights_of.get(check_task(task), "base")

    def _activate(self, ident: str) -> None:
        """Feed ``ident``'s LoRA weights (zeros for the base) into the slots (call with the lock held)."""
        if self._active == ident:
            return
        import openvino as ov

        for slot, (a, b) in (self._lora.get(ident) or self._zero_lora).items():
            self._request.set_tensor(f"lora.{slot}.A", ov.Tensor(a))
            self._request.set_tensor(f"lora.{slot}.B", ov.Tensor(b))
        self._active = ident

    def _forward(self, ids: Sequence[int], past: Cache | None) -> tuple[np.ndarray, Cache]:
        """Logits of the last of ``ids`` after ``past`` (its cache) and the cache of all tokens (lock held)."""
        n_past = past[0].shape[2] if past else 0
        if past is None:
            empty = np.zeros((1, self._kv_heads, 0, self._head_dim), np.float32)
            past = [empty] * (2 * self._layers)
        feed: dict[str, np.ndarray] = {
            "input_ids": np.asarray([ids], dtype=np.int64),
            "attention_mask": np.ones((1, n_past + len(ids)), dtype=np.int64),
            "position_ids": np.arange(n_past, n_past + len(ids), dtype=np.int64)[None],
        }
        for i in range(self._layers):
            feed[f"past.{i}.key"] = np.ascontiguousarray(past[2 * i])
            feed[f"past.{i}.value"] = np.ascontiguousarray(past[2 * i + 1])
        self._request.infer(feed)
        logits = self._request.get_tensor("logits").data.reshape(-1)[-self.manifest["dims"]["vocab"] :].copy()
        present = [self._request.get_tensor(f"present.{i}.{kv}").data.copy()
                   for i in range(self._layers) for kv in ("key", "value")]  # fmt: skip
        return logits, present

    def _prefill(self, ids: Sequence[int], ident: str) -> tuple[np.ndarray, Cache]:
        """Logits after the prompt ``ids`` and its cache, reusing a stored prefix (lock held)."""
        self._activate(ident)
        start, past = self.prefixes.longest(ident, ids) if self.prefixes else (0, None)
        logits, cache = self._forward(list(ids[start:]), past)
        if self.prefixes:
            self.prefixes.put(ident, ids, cache)
        return logits, cache

    def _check_probe(self, ident: str) -> None:
        probe_path = self.export_dir / "probes" / f"{ident}.json"
        if not probe_path.is_file():
            raise ModelError(f"export {self.export_dir} has no probe for the base model (incomplete)")
        expected = np.asarray(json.loads(probe_path.read_text(encoding="utf-8"))["logits"], dtype=np.float32)
        ids = self._encode(PROBE_MESSAGES)
        with self._lock:
            self._activate(ident)
            logits, _ = self._forward(ids, None)
        got = logits[[self.option_token_id(c) for c in PROBE_LABELS]]
        worst = float(np.abs(got - expected).max())
        if not np.isfinite(worst) or worst > TOLERANCE[self.precision] or got.argmax() != expected.argmax():
            which = "the base model" if ident == "base" else f"adapter {ident[:12]}"
            raise ModelError(f"OpenVINO scores for {which} differ from the transformers path by {worst:.3f} "
                             f"({self.precision}); not used")  # fmt: skip
        log.debug("probe %s: max |diff| %.4f (%s)", ident[:12], worst, self.precision)

    # Helpers ---------------------------------------------------------------------------------
    def _encode(self, messages: Messages) -> list[int]:
        return list(self.tokenizer.apply_chat_template([dict(m) for m in messages], add_generation_prompt=True,
                                                       tokenize=True, return_dict=True)["input_ids"])  # fmt: skip

    def option_token_id(self, option: str) -> int:
        if option not in self._token_ids:
            ids = self.tokenizer.encode(option, add_special_tokens=False)
            if len(ids) != 1:
                raise ConfigError(f"option {option!r} is {len(ids)} tokens for {self.name}; use single-token labels")
            self._token_ids[option] = ids[0]
        return self._token_ids[option]

    def count_tokens(self, messages: Messages) -> int:
        return len(self._encode(messages))

    # LLM interface ---------------------------------------------------------------------------
    def score_options(self, messages: Messages, options: Sequence[str], *, task: str = "rank") -> np.ndarray:
        ids = self._encode(messages)
        option_ids = [self.option_token_id(o) for o in options]
        with self._lock:
            logits, _ = self._prefill(ids, self._weights(task))
        return logits[option_ids].astype(np.float32)

    def generate(self, messages: Messages, max_new_tokens: int = 64, *, task: str = "explain") -> str:
        return "".join(self.stream(messages, max_new_tokens, task=task))

    def stream(self, messages: Messages, max_new_tokens: int = 64, *, task: str = "explain") -> Iterator[str]:
        from llmrec.llm.generation import ReplyNoRepeatNGram

        ids = self._encode(messages)
        yield from self._decode(ids, max_new_tokens, task, [ReplyNoRepeatNGram(8, len(ids))])

    def generate_json(self, messages: Messages, schema: Mapping[str, Any], max_new_tokens: int = 256, *,
                      task: str = "understand") -> str:  # fmt: skip
        from llmrec.llm.constrained import JsonConstraint

        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if getattr(self, "_json", None) is None:
            self._json = JsonConstraint(self.tokenizer)
        processor = self._json.processor(schema)
        return "".join(self._decode(self._encode(messages), max_new_tokens, task, [processor])).strip()

    def _decode(self, ids: list[int], max_new_tokens: int, task: str, processors: Sequence[Any]) -> Iterator[str]:
        """Greedy tokens after ``ids`` through transformers-style ``processors``, as text pieces."""
        import torch

        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        ident = self._weights(task)
        reply: list[int] = []
        shown = ""
        with self._lock:
            logits, cache = self._prefill(ids, ident)
            while True:
                scores = torch.from_numpy(logits[None].copy())
                sequence = torch.tensor([ids + reply])
                for processor in processors:
                    scores = processor(sequence, scores)
                token = int(scores[0].argmax())
                if token in self._eos:
                    break
                reply.append(token)
                text = self.tokenizer.decode(reply, skip_special_tokens=True)
                if not text.endswith("\ufffd"):  # an unfinished multi-byte character waits for its next token
                    yield text[len(shown) :]
                    shown = text
                if len(reply) >= max_new_tokens:
                    break
                self._activate(ident)
                logits, cache = self._forward([token], cache)
        tail = self.tokenizer.decode(reply, skip_special_tokens=True)[len(shown) :]
        if tail:
            yield tail
