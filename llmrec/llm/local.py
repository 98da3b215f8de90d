"""``TransformersLLM``: the ``LLM`` interface over a local transformers model, with an optional LoRA adapter.

Scoring is one forward pass over the chat prompt: the logits at the last position, read at each
option's token id (the LlamaRec verbalizer). Generation is greedy; streaming runs ``generate`` in a
thread with transformers' ``TextIteratorStreamer``. torch, transformers and peft are imported lazily.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.errors import ConfigError, ModelError
from llmrec.llm.base import Messages, check_task
from llmrec.llm.generation import GREEDY, greedy_kwargs
from llmrec.llm.prefix_cache import NoPrefix, PrefixCache
from llmrec.llm.transformers_backend import load_causal_lm

log = logging.getLogger(__name__)


def check_adapter(adapter_dir: Path, base_name: str) -> dict[str, Any]:
    """Refuse pickled adapters and adapters trained on another base model; return the adapter config."""
    adapter_dir = Path(adapter_dir)
    config_path = adapter_dir / "adapter_config.json"
    if not config_path.is_file():
        raise ModelError(f"adapter folder {adapter_dir} has no adapter_config.json; pass a folder saved by peft")
    if not (adapter_dir / "adapter_model.safetensors").is_file():
        pickled = [p.name for p in adapter_dir.glob("*.bin")] + [p.name for p in adapter_dir.glob("*.pt")]
        hint = f" (found pickled {', '.join(pickled)}, which is never loaded)" if pickled else ""
        raise ModelError(f"adapter {adapter_dir} has no adapter_model.safetensors{hint}; re-save it as safetensors")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    card_path = adapter_dir / "adapter_card.json"
    declared = json.loads(card_path.read_text(encoding="utf-8")).get("base_model") if card_path.is_file() else None
    declared = declared or config.get("base_model_name_or_path") or ""
    if declared and Path(str(declared)).name != base_name and declared != base_name:
        raise ModelError(
            f"adapter {adapter_dir} was trained for base model {declared!r}, not {base_name!r}; "
            f"use --model {Path(str(declared)).name} or another adapter"
        )
    return config


def task_adapters(
    adapters: Mapping[str, str | Path] | str | Path | None = None,
    *,
    adapter: str | Path | None = None,
    explain_adapter: str | Path | None = None,
) -> dict[str, Path]:
    """``{task: adapter folder}`` from the mapping and the older keywords; refuses unknown tasks and conflicts."""
    if isinstance(adapters, (str, Path)):  # the third positional argument used to be the ranker's adapter
        adapters = {"rank": adapters}
    merged = {str(task): Path(path) for task, path in (adapters or {}).items() if path is not None}
    for task, path in (("rank", adapter), ("explain", explain_adapter)):
        if path is None:
            continue
        if task in merged and merged[task] != Path(path):
            raise ConfigError(f"two adapters for task {task!r}: {merged[task]} and {path}; pass one")
        merged[task] = Path(path)
    for task in merged:
        check_task(task)
    return merged


class TransformersLLM:
    """A prepared model folder (safetensors) loaded on the CPU or a GPU, with a LoRA adapter per task.

    ``adapters`` maps a task ("rank", "explain", "understand") to a peft adapter folder; all are loaded
    as named adapters on one copy of the base model, and a task without one runs on the base weights.
    ``adapter=`` and ``explain_adapter=`` are the older spellings of ``adapters={"rank": ...}`` and
    ``adapters={"explain": ...}``.
    """

    def __init__(
        self,
        folder: str | Path,
        name: str | None = None,
        adapters: Mapping[str, str | Path] | str | Path | None = None,
        dtype: str = "float32",
        threads: int | None = None,
        explain_adapter: str | Path | None = None,
        reuse_prefix: bool = True,
        *,
        adapter: str | Path | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.name = name or self.folder.name
        self.adapters = task_adapters(adapters, adapter=adapter, explain_adapter=explain_adapter)
        self.model, self.tokenizer = load_causal_lm(self.folder, dtype=dtype, threads=threads)
        # One peft adapter per distinct folder, named after the first task that uses it.
        self._adapter_names: dict[str, str] = {}
        loaded: dict[Path, str] = {}
        for task, path in self.adapters.items():
            if path in loaded:
                self._adapter_names[task] = loaded[path]
                continue
            check_adapter(path, self.name)
            if not loaded:
                from peft import PeftModel

                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=task, is_trainable=False)
            else:
                self.model.load_adapter(str(path), adapter_name=task, is_trainable=False)
            loaded[path] = self._adapter_names[task] = task
        self.model.eval()
        self.adapter = self.adapters.get("rank")
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 4096) or 4096)
        self._token_ids: dict[str, int] = {}
        self._lock = threading.Lock()  # switching adapters and running the model is one step
        self.prefixes = PrefixCache(self.model, self.tokenizer) if reuse_prefix else NoPrefix()
        self._json: Any = None

    @contextlib.contextmanager
    def _task(self, task: str) -> Iterator[None]:
        """Run under ``task``'s adapter, or the base weights when it has none (call with the lock held)."""
        check_task(task)
        if not self._adapter_names:
            yield
        elif task in self._adapter_names:
            self.model.set_adapter(self._adapter_names[task])
            yield
        else:
            with self.model.disable_adapter():
                yield

    def _cache_key(self, task: str) -> str:
        """Prefix caches are shared by tasks that run the same weights."""
        return self._adapter_names.get(task, "base")

    # Helpers -------------------------------------------------------------------------------
    def _encode(self, messages: Messages) -> Any:
        return self.tokenizer.apply_chat_template(
            [dict(m) for m in messages], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )

    def option_token_id(self, option: str) -> int:
        """The single token that spells ``option`` at the start of the reply."""
        if option not in self._token_ids:
            ids = self.tokenizer.encode(option, add_special_tokens=False)
            if len(ids) != 1:
                raise ConfigError(f"option {option!r} is {len(ids)} tokens for {self.name}; use single-token labels")
            self._token_ids[option] = ids[0]
        return self._token_ids[option]

    def count_tokens(self, messages: Messages) -> int:
        return int(self._encode(messages)["input_ids"].shape[1])

    # LLM interface -------------------------------------------------------------------------
    def score_options(self, messages: Messages, options: Sequence[str], *, task: str = "rank") -> np.ndarray:
        return self.score_options_batch([messages], options, task=task)[0]

    def score_options_batch(self, batch: Sequence[Messages], options: Sequence[str], *,
                            task: str = "rank") -> np.ndarray:  # fmt: skip
        """(len(batch), len(options)) logits; prompts are left-padded into one forward pass."""
        import torch

        ids = [self.option_token_id(o) for o in options]
        encoded = [self._encode(m)["input_ids"][0] for m in batch]
        width = max(len(e) for e in encoded)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        attention = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, tokens in enumerate(encoded):
            input_ids[row, width - len(tokens) :] = tokens
            attention[row, width - len(tokens) :] = 1
        with self._lock, self._task(task), torch.inference_mode():
            if len(batch) == 1:  # one prompt: reuse the longest prefix kept from an earlier prompt
                tokens = encoded[0].tolist()
                start, cache = self.prefixes.longest(tokens, self._cache_key(task))
                cache = cache if cache is not None else self._empty_cache()
                out = self.model(input_ids=input_ids[:, start:].to(self.model.device), logits_to_keep=1,
                                 use_cache=True, **self.prefixes.kwargs(cache))  # fmt: skip
                self.prefixes.put(tokens, self._cache_key(task), getattr(out, self.prefixes.keyword, None))
            else:
                out = self.model(input_ids=input_ids.to(self.model.device),
                                 attention_mask=attention.to(self.model.device), logits_to_keep=1)  # fmt: skip
        logits = out.logits[:, -1, :].float()
        return logits[:, ids].cpu().numpy()

    def generate(self, messages: Messages, max_new_tokens: int = 64, *, task: str = "explain") -> str:
        return "".join(self.stream(messages, max_new_tokens, task=task))

    def stream(self, messages: Messages, max_new_tokens: int = 64, *, task: str = "explain") -> Iterator[str]:
        from transformers import TextIteratorStreamer

        check_task(task)
        inputs = {k: v.to(self.model.device) for k, v in self._encode(messages).items()}
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=300)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with self._lock, self._task(task):
                    ids = inputs["input_ids"][0].tolist()
                    cache = self._reused(ids, task)
                    self.model.generate(**inputs, max_new_tokens=max_new_tokens, streamer=streamer,
                                        pad_token_id=self.tokenizer.pad_token_id, **self.prefixes.kwargs(cache),
                                        **greedy_kwargs(len(ids)))  # fmt: skip
                    self.prefixes.put(ids, self._cache_key(task), cache)
            except BaseException as exc:  # surfaced to the caller after the stream ends
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        yield from streamer
        thread.join()
        if errors:
            raise RuntimeError(f"generation failed: {errors[0]}") from errors[0]

    def generate_json(self, messages: Messages, schema: Mapping[str, Any], max_new_tokens: int = 256, *,
                      task: str = "understand") -> str:  # fmt: skip
        """Greedy reply constrained by outlines-core to JSON valid against ``schema`` (see ``constrained``)."""
        import torch
        from transformers import LogitsProcessorList

        from llmrec.llm.constrained import JsonConstraint

        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        check_task(task)
        if self._json is None:
            self._json = JsonConstraint(self.tokenizer)
        processor = self._json.processor(schema)
        inputs = {k: v.to(self.model.device) for k, v in self._encode(messages).items()}
        ids = inputs["input_ids"][0].tolist()
        options = {**GREEDY, "logits_processor": LogitsProcessorList([processor])}
        with self._lock, self._task(task), torch.inference_mode():
            cache = self._reused(ids, task)
            output = self.model.generate(**inputs, max_new_tokens=max_new_tokens,
                                         pad_token_id=self.tokenizer.pad_token_id, **self.prefixes.kwargs(cache),
                                         **options)  # fmt: skip
            self.prefixes.put(ids, self._cache_key(task), cache)
        return self.tokenizer.decode(output[0, len(ids) :], skip_special_tokens=True).strip()

    def _empty_cache(self) -> Any:
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    def _reused(self, ids: Sequence[int], task: str) -> Any:
        """The cache ``generate`` starts from: a kept prefix of ``ids``, else an empty one to keep afterwards
        (None when reuse is off). Call with the lock held."""
        if isinstance(self.prefixes, NoPrefix):
            return None
        _, cache = self.prefixes.longest(list(ids), self._cache_key(task))
        return cache if cache is not None else self._empty_cache()
