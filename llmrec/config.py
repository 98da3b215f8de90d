"""Configuration: one pydantic model per pipeline component, nested in ``RecommenderConfig``.

Values are validated when the config is built; errors name the field and the bad value. A config can
be loaded from TOML (``[retrieval]``, ``[ranker]``, ... tables) and overridden by CLI options.
Model-specific hyper-parameters live beside each model (``Scorer.Config`` dataclasses).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llmrec.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _known(registry: str, kind: str) -> str:
    """``kind`` when the named registry of ``llmrec.pipeline.parts`` knows it (else a ValueError naming them)."""
    from llmrec.errors import ConfigError as _Unknown
    from llmrec.pipeline import parts

    try:
        return getattr(parts, registry).spec(kind).kind
    except _Unknown as exc:
        raise ValueError(str(exc)) from None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    dataset: str = Field("ml-latest-small", description="A named data set or a data folder.")
    data_dir: Path | None = Field(None, description="Folder holding the named data set folders.")
    min_count: int = Field(5, ge=1, description="k of the iterative k-core filter (1: none).")
    allow_download: bool = Field(True, description="Download a missing named data set (--offline: never).")


class EmbedderConfig(_Section):
    name: str = Field("all-minilm-l6-v2", description="Embedding model name (see `llmrec models list`).")
    batch_size: int = Field(64, ge=1, le=4096, description="Texts embedded per batch.")


class IndexConfig(_Section):
    store: Path | None = Field(None, description="Chroma folder; default: <cache>/stores/<dataset>-<embedder>.")
    chroma_url: str | None = Field(None, description="URL of a `chroma run` server instead of a local folder.")
    timeout_s: float = Field(10.0, gt=0, description="Seconds to wait for a Chroma server.")


class RetrievalConfig(_Section):
    retriever: str = Field("hybrid", description="Candidate source: hybrid, text, cf or dialogue.")
    cf_model: str = Field("ease", description="Collaborative scorer used by the cf and hybrid retrievers.")
    dialogue_weight: float = Field(
        1.0, ge=0.0, le=10.0,
        description="Weight of the dialogue scorer (films recommended together in conversations: ReDial's training "
                    "dialogues) in the hybrid retriever, beside text 0.25 and cf 1, for profiles of conversation size "
                    "(see dialogue_max_liked); 0: left out. On by default: on all 342 ReDial development dialogues "
                    "it lifts the chat's Recall@10 from 0.052 to 0.082 (docs/benchmarks/redial.md).",
    )  # fmt: skip
    dialogue_max_liked: int = Field(
        5, ge=0, le=10_000,
        description="The dialogue scorer joins the hybrid only for profiles with at most this many liked films: "
                    "beyond, the rating history speaks and the dialogues dilute it (benchmarks/retrieval.py).",
    )  # fmt: skip
    dialogue_file: Path | None = Field(
        None, description="Training dialogues of the dialogue scorer (ReDial JSON lines, .gz allowed; the movie list "
        "movies_with_mentions.csv beside it); default: <data dir>/redial/train.jsonl.gz.",
    )  # fmt: skip
    quality_prior: bool = Field(
        True, description="Lists built from little evidence (a genre, a mood, a phrase, a few titles) favour films "
        "many people rated, and rated well (a Bayesian average blended with relevance).",
    )  # fmt: skip
    candidates: int = Field(20, ge=1, le=1000, description="Candidates passed to the ranker.")
    diversity: float = Field(0.0, ge=0.0, le=1.0, description="MMR trade-off: 0 = relevance only.")

    _kind = field_validator("retriever")(lambda value: _known("RETRIEVERS", value))


class LLMConfig(_Section):
    model: str = Field("qwen2.5-coder-0.5b-instruct", description="Language model name.")
    backend: str = Field("auto", description="Where the model runs: auto (a server when url is set, else this "
                         "machine), local, openai or fake (scripted, for tests).")
    adapter: Path | None = Field(None, description="LoRA adapter of the ranker; default: the shipped one, if any.")
    explain_adapter: Path | None = Field(
        None, description="LoRA adapter of the explainer; default: the shipped one (<adapter>/explain), if any."
    )
    understand_adapter: Path | None = Field(
        None, description="LoRA adapter that reads chat messages; default: the shipped one (<adapter>/understand)."
    )
    use_default_adapter: bool = Field(True, description="Load the adapter shipped for the model when none is given.")
    runtime: Literal["auto", "openvino", "transformers"] = Field(
        "auto", description="Local runtime: auto (OpenVINO, exported once and checked against transformers on a "
        "probe prompt, else transformers with a one-line warning), openvino (same) or transformers."
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="Weights' dtype (transformers).")
    precision: Literal["auto", "f32", "bf16"] = Field(
        "auto", description="OpenVINO's inference precision: auto (bf16 where the CPU has it, else f32), f32 or bf16. "
        "A fusion model whose card names one runs the model in it (f32 gives the same label scores on every CPU)."
    )
    threads: int | None = Field(None, ge=1, description="CPU threads for torch; default: torch's choice.")
    allow_network: bool = Field(False, description="Allow a Hugging Face Hub download of the model.")
    url: str | None = Field(
        None,
        description="OpenAI-compatible server (…/v1) to use instead of a local model; --model names the served "
        "model or adapter.",
    )

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str) -> str:
        return value if value == "auto" else _known("LLM_BACKENDS", value)


class RankerConfig(_Section):
    kind: str = Field("passthrough", description="Re-ranker after retrieval: llm, fused or passthrough.")
    fusion: bool = Field(
        True,
        description="The llm ranker over cf retrieval orders by the fusion model shipped for this language model, "
                    "data set and collaborative model (the model's label scores with the retriever's ranks and "
                    "scores, fitted on validation; the best pipeline measured) when one ships; false, or a blend or "
                    "adapter given: the blend of the model's and the retriever's ranks.",
    )  # fmt: skip
    max_history: int = Field(20, ge=0, le=200, description="Most recent history items shown to the LLM.")
    blend: float | None = Field(
        None, ge=0.0, le=1.0,
        description="Weight of the retrieval rank in the final score; default: the blend validated in the ranker "
                    "adapter's card; a model without one gets the default model's zero-shot blend.",
    )  # fmt: skip

    _kind = field_validator("kind")(lambda value: _known("RANKERS", value))


class ExplainerConfig(_Section):
    kind: str = Field("template", description="How explanations are written: llm or template.")
    max_new_tokens: int = Field(60, ge=8, le=400, description="Longest LLM explanation in tokens.")

    _kind = field_validator("kind")(lambda value: _known("EXPLAINERS", value))


class UnderstandingConfig(_Section):
    # Rules by default, measured (BENCHMARKS.md, understanding): the hybrid reads liked/disliked titles better
    # (test F1 0.86 against 0.82; ReDial stance 0.73 against 0.66), but in the app its model call made the reply
    # text wait for the shared model: p50 7.0-7.5 s against 1.7 s with the rules (one session). Opt in with "hybrid".
    kind: str = Field("rules", description="How chat messages are read: rules (exact phrases, stance words, the "
                      "catalogue's titles and genres; instant), hybrid (the rules, and the language model with its "
                      "understanding adapter deciding the stances where the rules found none) or llm (the language "
                      "model reads every message, schema-constrained, rules for exact phrases and as the "
                      "fallback).")  # fmt: skip
    max_new_tokens: int = Field(96, ge=16, le=512, description="Longest reading the model may write, in tokens.")
    prompt_version: int | None = Field(
        None, ge=1, description="Version of prompts/understand/ to use; default: the one the understanding adapter's "
        "card names (v1 without an adapter). Set it for a server that serves the adapter (--llm-url).",
    )  # fmt: skip

    _kind = field_validator("kind")(lambda value: _known("UNDERSTANDERS", value))


class RecommenderConfig(_Section):
    data: DataConfig = DataConfig()
    embedder: EmbedderConfig = EmbedderConfig()
    index: IndexConfig = IndexConfig()
    retrieval: RetrievalConfig = RetrievalConfig()
    llm: LLMConfig = LLMConfig()
    ranker: RankerConfig = RankerConfig()
    explainer: ExplainerConfig = ExplainerConfig()
    understanding: UnderstandingConfig = UnderstandingConfig()
    k: int = Field(10, ge=1, le=500, description="Recommendations returned.")
    seed: int = Field(0, description="Seed for everything random.")
    cache_dir: Path | None = Field(None, description="Cache folder; default ~/.cache/llmrec.")

    def updated(self, **sections: dict) -> RecommenderConfig:
        """A copy with some fields of some sections replaced (validated again); None values are ignored."""
        data = self.model_dump()
        for section, values in sections.items():
            if isinstance(data.get(section), dict):
                data[section].update({k: v for k, v in values.items() if v is not None})
            elif values is not None:
                data[section] = values
        return build_config(data)


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"invalid config value {where}={first.get('input')!r}: {message}"


def build_config(data: dict) -> RecommenderConfig:
    try:
        return RecommenderConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{_describe(exc)}; fix the value (see `llmrec --help`)") from None


def read_toml(path: str | Path, what: str = "config file") -> dict:
    """The TOML file at ``path`` as a dict; a missing or malformed file is a one-line ConfigError naming ``what``."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} not found; check the path") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}; fix the syntax") from None


def load_config(path: str | Path) -> RecommenderConfig:
    """Read a TOML file of config sections."""
    return build_config(read_toml(path))
