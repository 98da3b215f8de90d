"""Evaluation protocols: how a ``SequenceData`` becomes fit data, validation cases and test cases.

``loo`` (default) -- the leave-one-out protocol of LlamaRec: each user's last item is the test
target and the second-to-last the validation target. Validation predicts the validation item from
the training items (models fitted on training items); test predicts the test item from training +
validation items, with models refitted on training + validation items (``final_fit``; this is the
policy that reproduces the reference baseline table, see BENCHMARKS-evaluation.md). Every item is
ranked. Masking is exactly LlamaRec's: it sets -inf on the items of the model's input sequence,
which LlamaRec truncates to the last 200 (its ``max_len`` for MovieLens), so a user's older items
stay rankable. Scorers still receive the whole history.

``loo-fullmask`` -- ``loo`` with the whole input history masked (what DESIGN.md's wording "training
items masked" literally says); numbers are higher on data sets with long histories.

``temporal`` -- a global temporal split. The cut-off is the 0.8 quantile of all interaction
timestamps; models are fitted on every interaction before it. Test users are users with at least
one interaction before and one at/after the cut-off; their targets are all their items at/after
the cut-off that are not already in their history, their input is their whole history before it
(all of it masked). Users who appear only after the cut-off are left out (they would be cold-start
users). Validation repeats the construction inside the training period with the 0.7 quantile as
cut-off and the 0.8 one as end.

``loo-sampled100`` -- ``loo`` but each target is ranked only against 100 negatives drawn uniformly
(seeded) from the items the user never interacted with. Only when asked for by name; every output
carries the protocol name, and sampled numbers are not comparable with full-ranking ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from llmrec.baselines.base import TrainData, ValidationSet
from llmrec.errors import ConfigError

if TYPE_CHECKING:
    from llmrec.data.split import SequenceData

FINAL_FIT_POLICIES = ("train+valid", "train")
LLAMAREC_MAX_LEN = 200  # LlamaRec's input length for MovieLens: only these most recent items are masked


@dataclass(frozen=True)
class EvalSet:
    """Evaluation cases: who, what the model sees (also what is masked), what is relevant."""

    users: np.ndarray  # dense user ids
    histories: tuple[np.ndarray, ...]  # scorer input; these items get score -inf
    targets: tuple[np.ndarray, ...]  # relevant dense items per user (one for leave-one-out)
    candidates: tuple[np.ndarray, ...] | None = None  # sampled protocols: the only items ranked
    masked: tuple[np.ndarray, ...] | None = None  # items scored -inf; None = the whole input history

    def __post_init__(self) -> None:
        n = len(self.users)
        if len(self.histories) != n or len(self.targets) != n:
            raise ConfigError(f"EvalSet: {n} users, {len(self.histories)} histories, {len(self.targets)} targets")
        for name in ("candidates", "masked"):
            column = getattr(self, name)
            if column is not None and len(column) != n:
                raise ConfigError(f"EvalSet: {n} users but {len(column)} {name} lists")

    @property
    def mask_items(self) -> tuple[np.ndarray, ...]:
        return self.histories if self.masked is None else self.masked

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_relevant(self) -> np.ndarray:
        return np.array([len(t) for t in self.targets], dtype=np.int64)

    def subset(self, rows: slice) -> EvalSet:
        return EvalSet(
            self.users[rows],
            self.histories[rows],
            self.targets[rows],
            None if self.candidates is None else self.candidates[rows],
            None if self.masked is None else self.masked[rows],
        )

    def take(self, rows: np.ndarray) -> EvalSet:
        """The cases at positions ``rows`` (an index array), in that order."""
        pick = [int(r) for r in rows]

        def column(values: tuple[np.ndarray, ...] | None) -> tuple[np.ndarray, ...] | None:
            return None if values is None else tuple(values[r] for r in pick)

        return EvalSet(self.users[pick], column(self.histories), column(self.targets), column(self.candidates),
                       column(self.masked))  # fmt: skip

    def validation_set(self) -> ValidationSet:
        return ValidationSet(self.users, self.histories, self.targets, self.masked)


@dataclass(frozen=True)
class Split:
    """Everything the harness needs for one protocol on one data set."""

    protocol: str
    description: str
    n_items: int
    tune_train: TrainData  # fit data for the hyper-parameter search
    valid: EvalSet  # scored by models fitted on tune_train
    final_train: TrainData  # fit data for the test run
    test: EvalSet  # scored by models fitted on final_train
    final_fit: str = "train+valid"

    @property
    def sampled(self) -> bool:
        return self.test.candidates is not None


def mask_scores(scores: np.ndarray, eval_set: EvalSet) -> np.ndarray:
    """In place: -inf on each user's masked items (LlamaRec) and, if sampled, on every non-candidate."""
    if eval_set.candidates is not None:
        allowed = np.zeros(scores.shape, dtype=bool)
        rows = np.repeat(np.arange(len(scores)), [len(c) for c in eval_set.candidates])
        allowed[rows, np.concatenate(eval_set.candidates)] = True
        scores[~allowed] = -np.inf
    masked = eval_set.mask_items
    lengths = [len(h) for h in masked]
    if sum(lengths):
        rows = np.repeat(np.arange(len(scores)), lengths)
        scores[rows, np.concatenate(masked).astype(np.int64)] = -np.inf
    return scores


def _column(values: tuple[np.ndarray, ...], stop: int) -> tuple[np.ndarray, ...]:
    return tuple(v[:stop] for v in values)


def _window(histories: tuple[np.ndarray, ...], window: int | None) -> tuple[np.ndarray, ...] | None:
    return None if window is None else tuple(h[-window:] for h in histories)


def loo_split(
    seq: SequenceData, seed: int = 0, final_fit: str = "train+valid", mask_window: int | None = LLAMAREC_MAX_LEN
) -> Split:
    """LlamaRec leave-one-out: validate on the second-to-last item, test on the last.

    ``mask_window`` = how many of the most recent input items are masked: LlamaRec's 200 (its
    max_len, the model only ever sees the last 200 items) or ``None`` for the whole history.
    """
    if final_fit not in FINAL_FIT_POLICIES:
        raise ConfigError(f"final_fit must be one of {', '.join(FINAL_FIT_POLICIES)}, got {final_fit!r}")
    if mask_window is not None and mask_window < 1:
        raise ConfigError(f"mask_window must be >= 1 or None (mask everything), got {mask_window}")
    users = np.arange(seq.n_users, dtype=np.int64)
    train_hist = tuple(seq.train(u) for u in range(seq.n_users))
    test_hist = tuple(seq.test_input(u) for u in range(seq.n_users))
    valid_targets = tuple(np.array([seq.valid_target(u)]) for u in range(seq.n_users))
    test_targets = tuple(np.array([seq.test_target(u)]) for u in range(seq.n_users))
    valid = EvalSet(users, train_hist, valid_targets, masked=_window(train_hist, mask_window))
    test = EvalSet(users, test_hist, test_targets, masked=_window(test_hist, mask_window))
    tune = TrainData(
        seq.n_users,
        seq.n_items,
        train_hist,
        _column(seq.ratings, -2),
        _column(seq.timestamps, -2),
        seed=seed,
        validation=valid.validation_set(),
    )
    if final_fit == "train":
        final = tune
    else:
        final = TrainData(
            seq.n_users, seq.n_items, test_hist, _column(seq.ratings, -1), _column(seq.timestamps, -1), seed=seed
        )
    masking = "whole input history masked" if mask_window is None else f"last {mask_window} input items masked"
    description = (
        "leave-one-out (LlamaRec): last item = test, second-to-last = validation; full ranking over all items; "
        f"{masking}; test-time model fitted on {final_fit}"
    )
    name = (
        "loo"
        if mask_window == LLAMAREC_MAX_LEN
        else ("loo-fullmask" if mask_window is None else f"loo-mask{mask_window}")
    )
    return Split(name, description, seq.n_items, tune, valid, final, test, final_fit)


def _before(
    seq: SequenceData, cut: int
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    keep = [ts < cut for ts in seq.timestamps]
    return (
        tuple(s[k] for s, k in zip(seq.sequences, keep)),
        tuple(r[k] for r, k in zip(seq.ratings, keep)),
        tuple(t[k] for t, k in zip(seq.timestamps, keep)),
    )


def _temporal_cases(seq: SequenceData, lower: int, upper: int | None) -> EvalSet:
    """Users with history before ``lower`` and new items in [lower, upper) (no upper bound if None)."""
    users, histories, targets = [], [], []
    for u, (items, ts) in enumerate(zip(seq.sequences, seq.timestamps)):
        history = items[ts < lower]
        window = ts >= lower if upper is None else (ts >= lower) & (ts < upper)
        later = np.setdiff1d(items[window], history)
        if len(history) and len(later):
            users.append(u)
            histories.append(history)
            targets.append(later)
    return EvalSet(np.array(users, dtype=np.int64), tuple(histories), tuple(targets))


def temporal_split(seq: SequenceData, seed: int = 0, quantile: float = 0.8, valid_quantile: float = 0.7) -> Split:
    """Global temporal split at the ``quantile`` of all timestamps (validation at ``valid_quantile``)."""
    if not 0 < valid_quantile < quantile < 1:
        raise ConfigError(f"need 0 < valid_quantile < quantile < 1, got {valid_quantile}, {quantile}")
    stamps = np.concatenate(seq.timestamps)
    cut = int(np.quantile(stamps, quantile, method="lower"))
    valid_cut = int(np.quantile(stamps, valid_quantile, method="lower"))
    if valid_cut >= cut:
        raise ConfigError(f"temporal split: the {valid_quantile} and {quantile} quantiles coincide; too few timestamps")
    valid = _temporal_cases(seq, valid_cut, cut)
    test = _temporal_cases(seq, cut, None)
    if not valid.n_users or not test.n_users:
        raise ConfigError("temporal split leaves no validation or test users; use the loo protocol")
    tune = TrainData(seq.n_users, seq.n_items, *_before(seq, valid_cut), seed=seed, validation=valid.validation_set())
    final = TrainData(seq.n_users, seq.n_items, *_before(seq, cut), seed=seed)
    description = (
        f"global temporal split: fit on interactions before the {quantile:.2f} timestamp quantile ({cut}); test users "
        "= users with items on both sides, targets = all their later new items; validation the same at the "
        f"{valid_quantile:.2f} quantile ({valid_cut}); full ranking, input history masked"
    )
    return Split("temporal", description, seq.n_items, tune, valid, final, test, "before cut-off")


def _with_sampled_negatives(cases: EvalSet, seq: SequenceData, rng: np.random.Generator, n: int) -> EvalSet:
    all_items = np.arange(seq.n_items)
    candidates = []
    for u, target in zip(cases.users, cases.targets):
        pool = np.setdiff1d(all_items, seq.sequences[u], assume_unique=False)
        negatives = rng.choice(pool, size=min(n, len(pool)), replace=False)
        candidates.append(np.concatenate([np.asarray(target, dtype=np.int64), np.sort(negatives)]))
    return EvalSet(cases.users, cases.histories, cases.targets, tuple(candidates))


def sampled_loo_split(
    seq: SequenceData, seed: int = 0, n_negatives: int = 100, final_fit: str = "train+valid"
) -> Split:
    """``loo`` with each target ranked among ``n_negatives`` uniformly sampled unseen items."""
    base = loo_split(seq, seed, final_fit, mask_window=None)  # candidates never include seen items anyway
    rng = np.random.default_rng(seed)
    valid = _with_sampled_negatives(base.valid, seq, rng, n_negatives)
    test = _with_sampled_negatives(base.test, seq, rng, n_negatives)
    description = (
        f"SAMPLED: leave-one-out, target ranked against {n_negatives} uniformly sampled unseen items (seed {seed}); "
        "not comparable with full-ranking numbers"
    )
    return Split(f"loo-sampled{n_negatives}", description, seq.n_items, base.tune_train, valid, base.final_train, test,
                 final_fit)  # fmt: skip


PROTOCOLS: dict[str, Callable[..., Split]] = {
    "loo": loo_split,
    "loo-fullmask": lambda seq, seed=0, **kw: loo_split(seq, seed, mask_window=None, **kw),
    "temporal": temporal_split,
    "loo-sampled100": lambda seq, seed=0, **kw: sampled_loo_split(seq, seed, 100, **kw),
}


def make_split(protocol: str, seq: SequenceData, seed: int = 0, **options: Any) -> Split:
    """Build the named protocol's split; unknown names raise ConfigError listing the known ones."""
    try:
        builder = PROTOCOLS[protocol]
    except KeyError:
        raise ConfigError(f"unknown protocol {protocol!r}; known protocols: {', '.join(PROTOCOLS)}") from None
    return builder(seq, seed, **options)
