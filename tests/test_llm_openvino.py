"""The OpenVINO runtime's guards without a model: manifests, LoRA files, and load_llm's fallbacks."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from llmrec.errors import ConfigError, ModelError
from llmrec.fileutil import sha256_file
from llmrec.llm import runtime
from llmrec.llm.openvino_backend import load_lora, read_manifest

SLOTS = [["model.layers.0.self_attn.q_proj", 8, 8], ["model.layers.0.mlp.down_proj", 16, 8]]


def make_export(folder: Path, key: str = "k" * 64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.xml").write_text("<net/>")
    (folder / "model.bin").write_bytes(b"\0" * 64)
    files = {n: {"size": (folder / n).stat().st_size, "sha256": sha256_file(folder / n)}
             for n in ("model.xml", "model.bin")}  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps({"key": key, "files": files, "slots": SLOTS}))
    return folder


def test_a_sound_manifest_is_read_and_every_kind_of_damage_is_one_clear_error(tmp_path: Path):
    export = make_export(tmp_path / "export")
    assert read_manifest(export, "k" * 64)["slots"] == SLOTS
    with pytest.raises(ModelError, match="made for other weights"):
        read_manifest(export, "o" * 64)
    (export / "model.bin").write_bytes(b"\1" * 64)  # same size, other bytes
    with pytest.raises(ModelError, match="does not match its sha256"):
        read_manifest(export)
    read_manifest(export, verify_files=False)  # the quick check only looks at sizes
    (export / "model.bin").write_bytes(b"\0" * 10)
    with pytest.raises(ModelError, match="wrong size"):
        read_manifest(export, verify_files=False)
    (export / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="no readable manifest"):
        read_manifest(export)


def make_adapter(folder: Path, config: dict, tensors: dict[str, np.ndarray]) -> Path:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4, **config}))
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    return folder


def lora_tensors(module: str = "model.layers.0.self_attn.q_proj", n_in: int = 8, n_out: int = 8):
    prefix = f"base_model.model.{module}"
    return {f"{prefix}.lora_A.weight": np.ones((2, n_in), np.float32),
            f"{prefix}.lora_B.weight": np.full((n_out, 2), 0.5, np.float32)}  # fmt: skip


def test_lora_weights_map_to_slots_with_the_scale_folded_into_b(tmp_path: Path):
    lora = load_lora(make_adapter(tmp_path / "a", {}, lora_tensors()), SLOTS)
    a, b = lora["model.layers.0.self_attn.q_proj"]
    assert a.shape == (2, 8) and b.shape == (8, 2)
    np.testing.assert_allclose(b, 0.5 * 4 / 2)  # alpha / r
    rs = load_lora(make_adapter(tmp_path / "rs", {"use_rslora": True}, lora_tensors()), SLOTS)
    np.testing.assert_allclose(rs["model.layers.0.self_attn.q_proj"][1], 0.5 * 4 / 2**0.5)  # alpha / sqrt(r)


@pytest.mark.parametrize(("config", "tensors", "says"), [
    ({"use_dora": True}, lora_tensors(), "use_dora"),
    ({"modules_to_save": ["lm_head"]}, lora_tensors(), "modules_to_save"),
    ({}, lora_tensors("model.layers.0.self_attn.k_proj"), "has no LoRA slot"),
    ({}, lora_tensors(n_in=4), "shapes"),
    ({}, {}, "holds no LoRA weights"),
])  # fmt: skip
def test_adapters_the_slots_cannot_apply_are_refused(tmp_path: Path, config, tensors, says):
    with pytest.raises(ModelError, match=says):
        load_lora(make_adapter(tmp_path / "a", config, tensors), SLOTS)


class StubTransformersLLM:
    def __init__(self, folder, name=None, adapters=None, dtype="float32", threads=None):
        self.folder, self.name, self.adapters = folder, name, adapters


@pytest.fixture
def stub_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("llmrec.llm.local.TransformersLLM", StubTransformersLLM)


def test_openvino_not_installed_falls_back_with_one_warning(tmp_path, monkeypatch, caplog, stub_transformers):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    with caplog.at_level(logging.WARNING, logger="llmrec.llm.runtime"):
        llm = runtime.load_llm(tmp_path, "m", {"rank": tmp_path / "r"}, cache_dir=tmp_path)
    assert isinstance(llm, StubTransformersLLM) and llm.adapters == {"rank": tmp_path / "r"}
    (record,) = caplog.records
    assert "openvino is not installed" in record.getMessage() and "\n" not in record.getMessage()


def test_a_cpu_openvino_cannot_run_on_falls_back(tmp_path, monkeypatch, caplog, stub_transformers):
    import openvino

    class NoCPU:
        available_devices = ()

    monkeypatch.setattr(openvino, "Core", NoCPU)
    with caplog.at_level(logging.WARNING, logger="llmrec.llm.runtime"):
        assert isinstance(runtime.load_llm(tmp_path, cache_dir=tmp_path), StubTransformersLLM)
    assert "cannot run on this processor" in caplog.text


def test_a_folder_without_weights_falls_back_and_the_transformers_runtime_is_asked_for_by_name(
        tmp_path, caplog, stub_transformers):  # fmt: skip
    (tmp_path / "config.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="llmrec.llm.runtime"):
        assert isinstance(runtime.load_llm(tmp_path, cache_dir=tmp_path), StubTransformersLLM)
    assert "no .safetensors weights" in caplog.text
    caplog.clear()
    assert isinstance(runtime.load_llm(tmp_path, runtime="transformers"), StubTransformersLLM)
    assert not caplog.records
    with pytest.raises(ConfigError, match="runtime 'onnx'"):
        runtime.load_llm(tmp_path, runtime="onnx")
