"""One-time export of a prepared model to OpenVINO IR, cached by content hash (the one OpenVINO conversion).

The export is made from the prepared safetensors folder (``llmrec.llm.prepare_model``) with
``openvino.convert_model`` on a thin wrapper around the transformers model, so that:

- the key/value cache is explicit (inputs ``past.<layer>.key|value``, outputs ``present.*``): the runtime
  keeps it in numpy and reuses any prefix of an earlier prompt (``openvino_backend``);
- only the last position's logits come out (``logits_to_keep=1``);
- every linear layer of the decoder has a LoRA slot (inputs ``lora.<module>.A`` [r, in] and ``.B`` [out, r],
  scale folded into B), so one export serves the base model and every adapter: the runtime feeds each
  task's LoRA weights (zeros for none) instead of holding a merged copy per adapter.

The folder is ``<cache>/exports/openvino/<model>-<key16>``; the key hashes the base weights' sha256, the
export format, the OpenVINO/transformers/torch versions and the options. It is written atomically and
holds ``manifest.json`` (the key's inputs, file sizes and sha256s, dimensions, slots) and ``probes/``:
the transformers path's label logits on a fixed prompt, for the base weights and for each adapter
(by the adapter's sha256). The runtime refuses an export whose files, key or probe do not match.

Run as ``python -m llmrec.llm.export FOLDER OUT [--adapter DIR ...]`` (``load_llm`` does, in a child
process, so the app never holds the torch weights).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import importlib.metadata
import inspect
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmrec.errors import ModelError
from llmrec.fileutil import atomic_dir, atomic_file, sha256_file

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1
WEIGHTS = ("f16", "f32")  # how the IR stores weights; f16 halves the disk, scores move by ~0.005
PROBE_LABELS = "ABCDEFGHIJKLMNOPQRST"
PROBE_MESSAGES = (
    {"role": "system", "content": "You are a movie recommender. Reply with the letter of one candidate."},
    {"role": "user", "content": "History: Alien (1979), Heat (1995), Toy Story (1995).\nCandidates:\n"
                                + "\n".join(f"{c}. Film {i}" for i, c in enumerate(PROBE_LABELS))
                                + "\nWhich candidate will the user enjoy most next? Answer with its letter only."},
)  # fmt: skip


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def _weight_files(folder: Path) -> list[Path]:
    files = [*sorted(folder.glob("*.safetensors")), folder / "config.json"]
    if not files[:-1]:
        raise ModelError(f"{folder} has no .safetensors weights; fix: run prepare_model first")
    return files


def base_hashes(folder: str | Path, cache_file: Path | None = None) -> dict[str, str]:
    """sha256 of each weight file and config.json of a prepared folder; remembered by (size, mtime) in
    ``cache_file`` so a second start does not read 2 GB again."""
    folder = Path(folder).resolve()
    known: dict[str, Any] = {}
    if cache_file is not None and cache_file.is_file():
        try:
            known = json.loads(cache_file.read_text(encoding="utf-8"))
        except ValueError:
            known = {}
    out: dict[str, str] = {}
    changed = False
    for path in _weight_files(folder):
        stat = path.stat()
        entry = known.get(str(path))
        if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
            out[path.name] = entry["sha256"]
            continue
        out[path.name] = sha256_file(path)
        known[str(path)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": out[path.name]}
        changed = True
    if changed and cache_file is not None:
        with atomic_file(cache_file) as tmp:
            tmp.write_text(json.dumps(known, indent=1), encoding="utf-8")
    return out


def adapter_id(adapter: str | Path | None) -> str:
    """'base', or the sha256 of an adapter's weights and config (names its probe)."""
    if adapter is None:
        return "base"
    adapter = Path(adapter)
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        digest.update(sha256_file(adapter / name).encode())
    return digest.hexdigest()


def identity(folder: str | Path, weights: str = "f16", cache_file: Path | None = None) -> dict[str, Any]:
    """Everything an export depends on; its hash is the export's key."""
    if weights not in WEIGHTS:
        raise ModelError(f"export weights {weights!r} is not one of {', '.join(WEIGHTS)}")
    return {"format": EXPORT_FORMAT, "base_sha256": base_hashes(folder, cache_file), "weights": weights,
            "openvino": _version("openvino"), "transformers": _version("transformers"),
            "torch": _version("torch")}  # fmt: skip


def export_key(ident: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


# The conversion ----------------------------------------------------------------------------------
class _Wrapper:
    """Builds the traced module: (input_ids, attention_mask, position_ids, *past, *lora) -> (logits, *present)."""

    @staticmethod
    def build(model: Any) -> tuple[Any, list[tuple[str, int, int]], list[Any]]:
        import torch
        from transformers import DynamicCache

        decoder = model.get_decoder()
        slots = [(f"model.layers.{name}", m.in_features, m.out_features)
                 for name, m in decoder.layers.named_modules() if isinstance(m, torch.nn.Linear)]  # fmt: skip
        n_layers = model.config.num_hidden_layers
        modules = dict(model.named_modules())
        # transformers 5.2x calls it ``cache``; earlier releases ``past_key_values``.
        keyword = "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"
        handles: list[Any] = []

        class Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model
                self.current: dict[str, tuple[Any, Any]] = {}
                for name, _, _ in slots:
                    handles.append(modules[name].register_forward_hook(self._hook(name)))

            def _hook(self, name: str) -> Any:
                def add_lora(module: Any, inputs: Any, output: Any) -> Any:
                    a, b = self.current[name]
                    return output + torch.matmul(torch.matmul(inputs[0], a.transpose(0, 1)), b.transpose(0, 1))

                return add_lora

            def forward(self, input_ids: Any, attention_mask: Any, position_ids: Any, *flat: Any) -> Any:
                past, lora = flat[: 2 * n_layers], flat[2 * n_layers :]
                self.current = {name: (lora[2 * i], lora[2 * i + 1]) for i, (name, _, _) in enumerate(slots)}
                cache = DynamicCache(config=self.model.config)
                # Set each layer's tensors directly: DynamicLayer.update concatenates onto an empty tensor,
                # which OpenVINO's converter cannot type.
                for i, layer in enumerate(cache.layers):
                    layer.keys, layer.values, layer.is_initialized = past[2 * i], past[2 * i + 1], True
                    layer.device, layer.dtype = past[2 * i].device, past[2 * i].dtype
                out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                 use_cache=True, logits_to_keep=1, **{keyword: cache})  # fmt: skip
                present = [t for layer in getattr(out, keyword).layers for t in (layer.keys, layer.values)]
                return (out.logits[:, -1, :], *present)

        return Wrapped(), slots, handles


def dims(config: Any) -> dict[str, int]:
    heads = config.num_attention_heads
    return {"layers": config.num_hidden_layers, "kv_heads": getattr(config, "num_key_value_heads", None) or heads,
            "head_dim": getattr(config, "head_dim", None) or config.hidden_size // heads,
            "vocab": config.vocab_size}  # fmt: skip


def convert(model: Any, out_dir: Path, weights: str) -> dict[str, Any]:
    """Trace ``model`` (transformers, float32, eval) into ``out_dir/model.xml|bin``; the manifest's shape part."""
    import openvino as ov
    import torch

    wrapped, slots, handles = _Wrapper.build(model)
    d = dims(model.config)
    past_len, new = 8, 4  # any small sizes: every dimension is dynamic in the converted model
    example = [torch.ones((1, new), dtype=torch.long), torch.ones((1, past_len + new), dtype=torch.long),
               torch.arange(past_len, past_len + new).unsqueeze(0)]  # fmt: skip
    example += [torch.zeros((1, d["kv_heads"], past_len, d["head_dim"])) for _ in range(2 * d["layers"])]
    for _, n_in, n_out in slots:
        example += [torch.zeros((1, n_in)), torch.zeros((n_out, 1))]
    try:
        with torch.no_grad():
            converted = ov.convert_model(wrapped, example_input=tuple(example))
    finally:
        for handle in handles:  # the model is used again (probes): leave it as it was
            handle.remove()
    names = ["input_ids", "attention_mask", "position_ids"]
    names += [f"past.{i}.{kv}" for i in range(d["layers"]) for kv in ("key", "value")]
    names += [f"lora.{name}.{ab}" for name, _, _ in slots for ab in ("A", "B")]
    outputs = ["logits"] + [f"present.{i}.{kv}" for i in range(d["layers"]) for kv in ("key", "value")]
    if len(converted.inputs) != len(names) or len(converted.outputs) != len(outputs):
        raise ModelError(f"the converted model has {len(converted.inputs)} inputs and {len(converted.outputs)} "
                         f"outputs, expected {len(names)} and {len(outputs)}")  # fmt: skip
    for port, name in zip(converted.inputs, names):
        port.get_tensor().set_names({name})
    for port, name in zip(converted.outputs, outputs):
        port.get_tensor().set_names({name})
    ov.save_model(converted, out_dir / "model.xml", compress_to_fp16=weights == "f16")
    return {"dims": d, "slots": [list(s) for s in slots]}


def probe_logits(model: Any, tokenizer: Any) -> list[float]:
    """The transformers path's logits of the probe labels (what the runtime must reproduce)."""
    import torch

    ids = tokenizer.apply_chat_template(list(PROBE_MESSAGES), add_generation_prompt=True, tokenize=True,
                                        return_dict=True)["input_ids"]  # fmt: skip
    labels = [tokenizer.encode(c, add_special_tokens=False)[0] for c in PROBE_LABELS]
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids]), logits_to_keep=1).logits[0, -1]
    return [float(logits[i]) for i in labels]


def write_probe(export_dir: Path, adapter: str | Path | None, logits: Sequence[float]) -> None:
    probe = {"adapter": str(adapter) if adapter else None, "labels": PROBE_LABELS, "logits": list(logits)}
    with atomic_file(export_dir / "probes" / f"{adapter_id(adapter)}.json") as tmp:
        tmp.write_text(json.dumps(probe), encoding="utf-8")


def add_probes(folder: Path, export_dir: Path, adapters: Sequence[Path], model: Any = None, tokenizer: Any = None
               ) -> None:  # fmt: skip
    """Record the transformers path's probe logits for ``adapters`` (loaded with peft, as ``TransformersLLM``)."""
    from llmrec.llm.transformers_backend import load_causal_lm

    if model is None:
        model, tokenizer = load_causal_lm(folder)
    for adapter in adapters:
        from peft import PeftModel

        tuned = PeftModel.from_pretrained(model, str(adapter), is_trainable=False).eval()
        write_probe(export_dir, adapter, probe_logits(tuned, tokenizer))
        model = tuned.unload()


def export(folder: str | Path, out_dir: str | Path, adapters: Sequence[str | Path] = (), weights: str = "f16",
           cache_file: Path | None = None) -> Path:  # fmt: skip
    """Convert ``folder`` into ``out_dir`` (atomically) with probes for the base and each adapter; ``out_dir``."""
    import time

    from llmrec.llm.transformers_backend import load_causal_lm

    folder, out_dir = Path(folder), Path(out_dir)
    ident = identity(folder, weights, cache_file)
    started = time.perf_counter()
    model, tokenizer = load_causal_lm(folder)
    with atomic_dir(out_dir) as tmp:
        shape = convert(model, tmp, weights)
        write_probe(tmp, None, probe_logits(model, tokenizer))
        add_probes(folder, tmp, [Path(a) for a in adapters], model, tokenizer)
        files = {name: {"size": (tmp / name).stat().st_size, "sha256": sha256_file(tmp / name)}
                 for name in ("model.xml", "model.bin")}  # fmt: skip
        manifest = {"key": export_key(ident), "identity": ident, "files": files, **shape,
                    "source": str(folder.resolve()), "seconds": round(time.perf_counter() - started, 1),
                    "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    log.info("exported %s to %s in %.0f s", folder.name, out_dir, time.perf_counter() - started)
    return out_dir


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmrec.llm.export", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="prepared model folder (safetensors)")
    parser.add_argument("out", type=Path, help="export folder to write")
    parser.add_argument("--adapter", type=Path, action="append", default=[], help="peft adapter to probe")
    parser.add_argument("--weights", choices=WEIGHTS, default="f16")
    parser.add_argument("--hash-cache", type=Path, default=None)
    parser.add_argument("--probes-only", action="store_true", help="only add the adapters' probes to OUT")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.probes_only:
            add_probes(args.folder, args.out, args.adapter)
        else:
            export(args.folder, args.out, args.adapter, args.weights, args.hash_cache)
    except Exception as exc:  # one line for the parent process to show
        print(f"export failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
