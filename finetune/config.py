"""``LoraTrainConfig``: every setting of a LoRA fine-tuning run, documented once, validated on construction.

A run is described by a flat TOML file whose keys are the field names below (``configs/default.toml``,
``configs/smoke.toml``). Unknown keys and bad values raise ``ConfigError`` naming the key and the fix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmrec.config import read_toml
from llmrec.errors import ConfigError

CANDIDATE_MODES = ("retrieved", "insert", "random")
CANDIDATE_ORDERS = ("retrieval", "shuffled")
TASKS = ("rank", "explain", "understand")
MAX_LABELS = 20  # the ranker's labels A..T


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass(frozen=True)
class LoraTrainConfig:
    """A LoRA fine-tuning run of the LLM ranker (the LlamaRec verbalizer) on one data set's training split."""

    # What is trained -------------------------------------------------------------------------
    task: str = field(
        default="rank",
        metadata=_help("'rank': the ranker's verbalizer (label of the next item among the candidates); 'explain': "
                       "the explainer (evidence -> one sentence that passes the faithfulness check); 'understand': "
                       "reading chat messages (context + message -> the Reading JSON)"),
    )  # fmt: skip
    base_model: str = field(
        default="qwen2.5-coder-0.5b-instruct",
        metadata=_help("registry name of the causal LM to adapt (see `llmrec models`); recorded in the card"),
    )
    target_modules: tuple[str, ...] = field(
        default=("q_proj", "k_proj", "v_proj", "o_proj"),
        metadata=_help("linear layers that get LoRA matrices"),
    )
    lora_layers: int = field(
        default=0,
        metadata=_help("adapt only the top N transformer layers (0 = all); fewer layers make the backward pass "
                       "cheaper on a CPU"),
    )  # fmt: skip
    r: int = field(default=8, metadata=_help("LoRA rank"))
    alpha: float = field(default=16.0, metadata=_help("LoRA alpha (the update is scaled by alpha / r)"))
    dropout: float = field(default=0.05, metadata=_help("dropout on the LoRA input during training"))

    # Data ------------------------------------------------------------------------------------
    dataset: str = field(default="ml-latest-small", metadata=_help("data set name or folder (llmrec.data)"))
    data_dir: str | None = field(default=None, metadata=_help("folder holding the named data sets"))
    cache_dir: str | None = field(default=None, metadata=_help("llmrec cache (prepared models); None = default"))
    kind: str = field(default="movie", metadata=_help("what the items are, as the ranking prompt names them"))
    retriever: str = field(
        default="auto",
        metadata=_help("collaborative scorer that proposes the candidates (llmrec.baselines name); "
                       "'auto' = sasrec when registered, else ease"),
    )  # fmt: skip
    retriever_params: dict[str, Any] = field(
        default_factory=dict, metadata=_help("hyper-parameters passed to the retriever")
    )
    retriever_folds: int = field(
        default=0,
        metadata=_help("build training lists with out-of-fold retrievers: K >= 2 retrievers, each fitted without one "
                       "of K user folds, score each user (a retriever fitted on the training items has learnt their "
                       "transitions and finds the answer 4x as often as at test); 0 = the one retriever"),
    )  # fmt: skip
    candidates: str = field(
        default="retrieved",
        metadata=_help("'retrieved': keep only examples whose true next item is in the retriever's top-K; "
                       "'insert': put a missing true item in place of the retriever's K-th; 'random': the true item "
                       "and K-1 uniformly drawn unseen items (LlamaRec's training lists)"),
    )  # fmt: skip
    candidate_order: str = field(
        default="retrieval",
        metadata=_help("order of a training list's candidates: 'retrieval' (the retriever's order, as inference "
                       "shows them; the letter is the retriever's rank) or 'shuffled' (needed by 'insert' and "
                       "'random', whose answer position would otherwise give it away)"),
    )  # fmt: skip
    prompt: str = field(
        default="rank",
        metadata=_help("prompt template as task or task@version (prompts/<task>/v<N>.toml); 'rank_retrieval' says "
                       "the candidates are in the retriever's order, best first"),
    )  # fmt: skip
    kl_weight: float = field(
        default=0.0,
        metadata=_help("weight of KL(zero-shot || adapter) over the labels, added to the loss: keeps the zero-shot "
                       "model's preferences (one extra forward pass without the adapter per example)"),
    )  # fmt: skip
    checks: bool = field(
        default=False,
        metadata=_help("before training, run the four checks (target letters, prompt identity, zero-shot better "
                       "than random on training lists, overfitting 64 prompts) and stop when one fails"),
    )  # fmt: skip
    n_candidates: int = field(default=20, metadata=_help("candidates per prompt (K <= 20, labels A..T)"))
    blend: float = field(
        default=0.0,
        metadata=_help("LLMRanker.blend (0 = the LLM's order; towards 1 the retrieval order) used for validation, "
                       "early stopping and the reported figures; recorded in the card as the ranker setting"),
    )  # fmt: skip
    max_history: int = field(default=20, metadata=_help("most recent history items shown in the prompt"))
    min_history: int = field(default=1, metadata=_help("shortest history prefix a training example may have"))
    examples: int = field(
        default=2000,
        metadata=_help("training examples built (sampled user positions); -1 = every training position of every user"),
    )
    valid_users: int = field(
        default=64,
        metadata=_help("users whose validation item is ranked at each evaluation (-1 = all); only those whose "
                       "item the retriever found cost a forward pass"),
    )  # fmt: skip
    test_users: int = field(
        default=0, metadata=_help("users evaluated on the test item after training (0 = none, -1 = all)")
    )
    synthetic_share: float = field(
        default=0.4,
        metadata=_help("task 'understand': share of the training pairs that are synthetic template messages "
                       "(the rest are ReDial seeker turns)"),
    )  # fmt: skip
    redial_liked_only_keep: float = field(
        default=1.0,
        metadata=_help("task 'understand': share of the ReDial turns whose reading is only liked films (most of the "
                       "seekers' labels are 'liked') kept in the training pool; lower it to balance the stances"),
    )  # fmt: skip

    # Optimisation ----------------------------------------------------------------------------
    learning_rate: float = field(default=2e-4, metadata=_help("peak AdamW learning rate"))
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay"))
    warmup_steps: int = field(default=10, metadata=_help("linear warm-up steps, then linear decay to 10%"))
    grad_clip: float = field(default=1.0, metadata=_help("gradient norm clip (0 = off)"))
    max_steps: int = field(default=200, metadata=_help("optimizer updates"))
    batch_size: int = field(default=1, metadata=_help("examples per forward pass"))
    grad_accum: int = field(default=8, metadata=_help("forward passes accumulated per update"))
    eval_every: int = field(default=25, metadata=_help("validate every N updates (0 = only at the start and end)"))
    patience: int = field(default=3, metadata=_help("stop after this many validations without improvement"))
    max_seconds: float = field(default=0.0, metadata=_help("time budget of the training loop in seconds (0 = none)"))
    seed: int = field(default=0, metadata=_help("seeds the retriever, the sampling, LoRA init and dropout"))

    # Runtime ---------------------------------------------------------------------------------
    threads: int | None = field(default=None, metadata=_help("torch CPU threads (None = torch's default)"))
    eval_batch_size: int = field(default=4, metadata=_help("prompts per forward pass when scoring"))
    keep_checkpoint: bool = field(
        default=True, metadata=_help("keep <out>/checkpoint (optimizer state) after the run for --resume")
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        object.__setattr__(self, "retriever_params", dict(self.retriever_params))
        positive = ("r", "n_candidates", "max_steps", "batch_size", "grad_accum", "eval_batch_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"finetune: {name} must be >= 1, got {getattr(self, name)}")
        if self.retriever_folds == 1 or self.retriever_folds < 0:
            raise ConfigError(f"finetune: retriever_folds must be 0 (off) or >= 2, got {self.retriever_folds}")
        for name in ("lora_layers", "warmup_steps", "eval_every", "patience", "max_history", "min_history"):
            if getattr(self, name) < 0:
                raise ConfigError(f"finetune: {name} must be >= 0, got {getattr(self, name)}")
        if self.examples < 1 and self.examples != -1:
            raise ConfigError(f"finetune: examples must be -1 (every position) or >= 1, got {self.examples}")
        if self.candidate_order not in CANDIDATE_ORDERS:
            raise ConfigError(f"finetune: candidate_order must be one of {', '.join(CANDIDATE_ORDERS)}, "
                              f"got {self.candidate_order!r}")  # fmt: skip
        if self.candidates in ("insert", "random") and self.candidate_order == "retrieval":
            raise ConfigError(f"finetune: candidates = {self.candidates!r} needs candidate_order = 'shuffled' (in a "
                              "fixed order the answer's position would give it away)")  # fmt: skip
        if not 0.0 <= self.synthetic_share < 1.0 or not 0.0 < self.redial_liked_only_keep <= 1.0:
            raise ConfigError(f"finetune: synthetic_share must be in [0, 1) and redial_liked_only_keep in (0, 1], got "
                              f"{self.synthetic_share}, {self.redial_liked_only_keep}")  # fmt: skip
        if self.kl_weight < 0:
            raise ConfigError(f"finetune: kl_weight must be >= 0, got {self.kl_weight}")
        if not self.prompt or self.prompt.count("@") > 1:
            raise ConfigError(f"finetune: prompt must be 'task' or 'task@version', got {self.prompt!r}")
        if self.n_candidates > MAX_LABELS:
            raise ConfigError(f"finetune: n_candidates must be <= {MAX_LABELS} (labels A..T), got {self.n_candidates}")
        if self.task not in TASKS:
            raise ConfigError(f"finetune: task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.candidates not in CANDIDATE_MODES:
            raise ConfigError(f"finetune: candidates must be one of {', '.join(CANDIDATE_MODES)}, "
                              f"got {self.candidates!r}")  # fmt: skip
        if not 0.0 <= self.blend <= 1.0:
            raise ConfigError(f"finetune: blend must be within [0, 1], got {self.blend}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"finetune: dropout must be in [0, 1), got {self.dropout}")
        if self.alpha <= 0 or self.learning_rate <= 0:
            raise ConfigError(f"finetune: alpha and learning_rate must be > 0, got {self.alpha}, {self.learning_rate}")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.max_seconds < 0:
            raise ConfigError("finetune: weight_decay, grad_clip and max_seconds must be >= 0")
        if self.valid_users < 1 and self.valid_users != -1:
            raise ConfigError(f"finetune: valid_users must be -1 (all) or a count >= 1, got {self.valid_users}")
        if self.test_users < -1:
            raise ConfigError(f"finetune: test_users must be -1 (all), 0 (none) or a count, got {self.test_users}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"finetune: threads must be >= 1, got {self.threads}")
        if not self.target_modules or not all(isinstance(m, str) and m for m in self.target_modules):
            raise ConfigError(f"finetune: target_modules must be non-empty names, got {self.target_modules!r}")
        if not self.base_model or not self.kind:
            raise ConfigError("finetune: base_model and kind must be non-empty")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["target_modules"] = list(self.target_modules)
        return out

    def replace(self, **changes: Any) -> LoraTrainConfig:
        return build_config({**self.to_dict(), **changes})


def field_help() -> dict[str, str]:
    """``{field name: help text}`` for every setting."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(LoraTrainConfig)}


def build_config(values: dict[str, Any]) -> LoraTrainConfig:
    """A validated config from a mapping of field names; unknown names are refused."""
    known = field_help()
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"finetune: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        return LoraTrainConfig(**values)
    except TypeError as exc:
        raise ConfigError(f"finetune: {exc}") from None


def load_config(path: str | Path) -> LoraTrainConfig:
    """Read a flat TOML file of ``LoraTrainConfig`` fields."""
    return build_config(read_toml(path, "finetune config"))
