"""Supervised examples for the LLM ranker, built from the training split only.

The retriever is fitted on every user's training items (``seq.train(u)``: all but the last two).
A training example is a (user, position) pair inside that training part: the history is the items
before the position, the answer is the item at it. Its candidates are the retriever's top-K for the
history (the history itself masked, as the live retriever masks what a user has seen). With
``mode="retrieved"`` (the default) an example is kept only when the true item is in the top-K, and the
candidates keep the retriever's order (``order="retrieval"``), exactly as inference shows them, so the
label is the retriever's rank; ``order="shuffled"`` puts them in a seeded random order instead. With
``"insert"`` a missing true item replaces the K-th candidate; with ``"random"`` the list is the true item
and K-1 uniformly drawn items the user has not seen before the position (LlamaRec's training lists); both
must be shuffled. ``n_examples=-1`` takes every position of every user (LlamaRec). Validation and test
items never become answers.

Evaluation cases follow the LlamaRec protocol: the retriever's top-K for the whole input (training
items for validation, training + validation for test), in retrieval order, the target counting as a
miss when it was not retrieved. Prompts come from ``LLMRanker.messages``, so training and inference
prompts are the same text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmrec.errors import ConfigError
from llmrec.types import Candidate, HistoryEntry, UserProfile

if TYPE_CHECKING:
    from llmrec.baselines import Scorer
    from llmrec.data.split import SequenceData
    from llmrec.ranking import LLMRanker

log = logging.getLogger(__name__)

SPLITS = ("valid", "test")
_SCORE_BATCH = 256


@dataclass(frozen=True)
class Example:
    """One training prompt: ``candidates[target]`` is the item the user chose at ``position``."""

    user: int  # dense user id
    position: int  # index into seq.train(user) of the answer; the history is train[:position]
    candidates: tuple[int, ...]  # dense item ids in the order they are labelled A, B, ...
    target: int  # index of the true item in ``candidates``

    @property
    def target_item(self) -> int:
        return self.candidates[self.target]


@dataclass(frozen=True)
class EvalCase:
    """One held-out item to rank: the input history, the retriever's candidates in its order, the target."""

    user: int
    split: str  # "valid" or "test"
    history_length: int  # the input is seq.sequences[user][:history_length]
    candidates: tuple[int, ...]  # retrieval order
    target_item: int

    @property
    def target_index(self) -> int:
        """Position of the target among the candidates, or -1 when it was not retrieved."""
        return self.candidates.index(self.target_item) if self.target_item in self.candidates else -1


# Retriever ----------------------------------------------------------------------------------
def resolve_retriever(name: str) -> str:
    """``auto`` -> ``sasrec`` when registered, else ``ease``; any other name must be registered."""
    from llmrec.baselines import scorer_names

    names = scorer_names()
    if name == "auto":
        return "sasrec" if "sasrec" in names else "ease"
    if name not in names:
        raise ConfigError(f"finetune: unknown retriever {name!r}; known: {', '.join(names)}")
    return name


def training_data(seq: SequenceData, seed: int = 0) -> Any:
    """``TrainData`` of the training items only, with the validation item for models that stop early."""
    from llmrec.baselines import TrainData, ValidationSet

    users = np.arange(seq.n_users, dtype=np.int64)
    histories = tuple(seq.train(u) for u in range(seq.n_users))
    validation = ValidationSet(users, histories, tuple(np.array([seq.valid_target(u)]) for u in users))
    return TrainData(
        seq.n_users, seq.n_items, histories, tuple(r[:-2] for r in seq.ratings), tuple(t[:-2] for t in seq.timestamps),
        seed=seed, validation=validation,
    )  # fmt: skip


def fit_retriever(
    seq: SequenceData, name: str, params: dict[str, Any] | None = None, seed: int = 0, cache_dir: Path | None = None
) -> Scorer:
    """The named scorer fitted on the training split (never sees a validation or test item as input). With
    ``cache_dir``, models that train for minutes (SASRec) train once per data, settings and seed and are
    then loaded from ``<cache>/finetune/``."""
    log.info("fitting the %s retriever on the training items of %d users", name, seq.n_users)
    return _fit_cached(seq, name, params, seed, training_data(seq, seed), cache_dir, "train")


def _fit_cached(seq: SequenceData, name: str, params: dict[str, Any] | None, seed: int, data: Any,
                cache_dir: Path | None, tag: str) -> Scorer:  # fmt: skip
    import hashlib
    import json

    from llmrec.baselines import get_checkpointed_scorer, get_scorer

    if cache_dir is None:
        return get_scorer(name, **(params or {})).fit(data)
    digest = hashlib.sha256(np.concatenate(data.histories).astype(np.int64).tobytes())
    digest.update(json.dumps([params or {}, seed], sort_keys=True).encode())
    folder = Path(cache_dir) / "finetune" / f"{seq.name}-{name}-{tag}-{digest.hexdigest()[:12]}"
    return get_checkpointed_scorer(name, folder, **(params or {})).fit(data)


class OutOfFoldScorer:
    """Scores each user with a retriever that never saw that user's items (issue 16).

    A retriever fitted on the training items has learnt their transitions: on positions inside them it finds the
    next item far more often than on the validation item (EASE: 65 % against 15 % at Recall@20 on ml-latest-small),
    so training lists built with it look nothing like the lists the ranker meets at inference. Users are split
    into ``len(scorers)`` seeded folds; ``scorers[k]`` was fitted on every user outside fold ``k``.
    """

    def __init__(self, scorers: Sequence[Any], fold_of_user: np.ndarray) -> None:
        self.scorers = list(scorers)
        self.fold_of_user = np.asarray(fold_of_user, dtype=np.int64)

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        out: np.ndarray | None = None
        for fold, scorer in enumerate(self.scorers):
            rows = np.flatnonzero(self.fold_of_user[users] == fold)
            if not len(rows):
                continue
            # the fold's users are unknown to its scorer: scored from their history alone (-1)
            block = np.asarray(scorer.score(np.full(len(rows), -1), [histories[r] for r in rows]), dtype=np.float32)
            if out is None:
                out = np.zeros((len(users), block.shape[1]), dtype=np.float32)
            out[rows] = block
        assert out is not None
        return out


def fit_out_of_fold(seq: SequenceData, name: str, params: dict[str, Any] | None, seed: int, folds: int,
                    cache_dir: Path | None = None) -> OutOfFoldScorer:  # fmt: skip
    """``folds`` retrievers, each fitted on the training items of the users outside one seeded fold."""
    from llmrec.baselines import TrainData, ValidationSet

    fold_of_user = np.random.default_rng([seed, folds]).permutation(seq.n_users) % folds
    full = training_data(seq, seed)
    scorers = []
    for fold in range(folds):
        keep = fold_of_user != fold
        histories = tuple(h if k else h[:0] for h, k in zip(full.histories, keep))
        users = np.flatnonzero(keep)
        valid = full.validation
        validation = ValidationSet(users, tuple(valid.histories[u] for u in users),
                                   tuple(valid.targets[u] for u in users))  # fmt: skip
        data = TrainData(seq.n_users, seq.n_items, histories, seed=seed, validation=validation)
        scorers.append(_fit_cached(seq, name, params, seed, data, cache_dir, f"fold{fold}of{folds}"))
    log.info("out-of-fold retrievers: %d %s models, each fitted without one fold of users", folds, name)
    return OutOfFoldScorer(scorers, fold_of_user)


def retrieve(scorer: Any, users: Sequence[int], histories: Sequence[np.ndarray], k: int) -> np.ndarray:
    """(len(users), k) top-k dense ids per history, every history item masked; ties to the lower id, -1 padded."""
    from llmrec.evaluation.metrics import top_k

    out = np.full((len(users), k), -1, dtype=np.int64)
    for start in range(0, len(users), _SCORE_BATCH):
        stop = start + _SCORE_BATCH
        block = [np.asarray(h, dtype=np.int64) for h in histories[start:stop]]
        scores = np.array(scorer.score(np.asarray(users[start:stop], dtype=np.int64), block), dtype=np.float32)
        for row, history in enumerate(block):
            scores[row, history] = -np.inf
        out[start:stop] = top_k(scores, k)
    return out


# Training examples --------------------------------------------------------------------------
def sample_positions(seq: SequenceData, n: int, min_history: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """``n`` distinct (user, position) pairs: users in shuffled rounds (each user equally often), a uniform
    position in ``[min_history, len(train))`` each time; ``n = -1``: every such pair, in a seeded order."""
    lengths = np.array([len(seq.train(u)) for u in range(seq.n_users)])
    eligible = np.flatnonzero(lengths > max(min_history, 0))
    if not len(eligible):
        raise ConfigError(f"finetune: no user has more than min_history={min_history} training items")
    if n < 0:
        every = [(int(u), p) for u in eligible for p in range(min_history, int(lengths[u]))]
        return [every[i] for i in rng.permutation(len(every))]
    capacity = int((lengths[eligible] - min_history).sum())
    n = min(n, capacity)
    chosen: set[tuple[int, int]] = set()
    out: list[tuple[int, int]] = []
    while len(out) < n:
        for user in rng.permutation(eligible):
            position = int(rng.integers(min_history, lengths[user]))
            if (int(user), position) not in chosen:
                chosen.add((int(user), position))
                out.append((int(user), position))
                if len(out) == n:
                    break
    return out


def build_examples(
    seq: SequenceData,
    scorer: Any,
    n_examples: int,
    n_candidates: int = 20,
    seed: int = 0,
    mode: str = "retrieved",
    min_history: int = 1,
    order: str | None = None,
) -> list[Example]:
    """Training examples from the training split; see the module docstring for the recipe. ``order`` defaults to
    'retrieval' for ``mode="retrieved"`` and 'shuffled' otherwise."""
    if mode not in ("retrieved", "insert", "random"):
        raise ConfigError(f"finetune: candidate mode must be 'retrieved', 'insert' or 'random', got {mode!r}")
    order = order or ("retrieval" if mode == "retrieved" else "shuffled")
    if order not in ("retrieval", "shuffled") or (mode != "retrieved" and order == "retrieval"):
        raise ConfigError(f"finetune: candidate order {order!r} does not go with mode {mode!r}; use 'shuffled'")
    rng = np.random.default_rng(seed)
    # Sample more positions than needed when examples whose answer was not retrieved are dropped.
    draw = n_examples if mode != "retrieved" or n_examples < 0 else 4 * n_examples
    pairs = sample_positions(seq, draw, max(min_history, 1), rng)
    wanted = len(pairs) if n_examples < 0 else n_examples
    examples: list[Example] = []
    for start in range(0, len(pairs), _SCORE_BATCH):
        chunk = pairs[start : start + _SCORE_BATCH]
        histories = [seq.train(u)[:p] for u, p in chunk]
        top = retrieve(scorer, [u for u, _ in chunk], histories, n_candidates) if mode != "random" else None
        for row, (user, position) in enumerate(chunk):
            truth = int(seq.train(user)[position])
            if top is None:
                items = [truth, *random_negatives(seq.n_items, histories[row], truth, n_candidates - 1, rng)]
            else:
                items = [int(i) for i in top[row] if i >= 0]
            if truth not in items:
                if mode == "retrieved":
                    continue
                items = [*items[: n_candidates - 1], truth]
            listed = tuple(items) if order == "retrieval" else tuple(items[i] for i in rng.permutation(len(items)))
            examples.append(Example(user, position, listed, listed.index(truth)))
            if len(examples) == wanted:
                break
        if len(examples) == wanted:
            break
    kept = len(examples)
    log.info("built %d training examples (%s mode, %s order) from %d positions", kept, mode, order, len(pairs))
    if n_examples > 0 and kept < n_examples:
        log.warning("only %d of %d requested examples had their answer among the candidates", kept, n_examples)
    return examples


def random_negatives(n_items: int, seen: np.ndarray, truth: int, k: int, rng: np.random.Generator) -> list[int]:
    """``k`` distinct items drawn uniformly from those not in ``seen`` and not ``truth`` (fewer if there are not
    that many)."""
    banned = {int(i) for i in seen} | {truth}
    pool_size = n_items - len(banned)
    if pool_size <= 3 * k:  # a small catalogue: draw from the explicit pool
        pool = np.setdiff1d(np.arange(n_items), np.fromiter(banned, dtype=np.int64))
        return [int(i) for i in rng.choice(pool, size=min(k, len(pool)), replace=False)]
    out: list[int] = []
    while len(out) < k:
        item = int(rng.integers(0, n_items))
        if item not in banned:
            banned.add(item)
            out.append(item)
    return out


# Evaluation cases ---------------------------------------------------------------------------
def select_users(n_users: int, count: int, seed: int) -> np.ndarray:
    """A seeded, sorted subset of ``count`` users (all of them when count is -1 or too large)."""
    if count < 0 or count >= n_users:
        return np.arange(n_users, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n_users, size=count, replace=False)).astype(np.int64)


def build_eval_cases(
    seq: SequenceData, scorer: Any, users: Sequence[int], split: str, n_candidates: int = 20
) -> list[EvalCase]:
    """The retriever's top-K (retrieval order) for each user's validation or test input."""
    if split not in SPLITS:
        raise ConfigError(f"finetune: split must be one of {', '.join(SPLITS)}, got {split!r}")
    users = [int(u) for u in users]
    length = {"valid": -2, "test": -1}[split]
    histories = [seq.sequences[u][:length] for u in users]
    top = retrieve(scorer, users, histories, n_candidates)
    cases = []
    for user, history, retrieved in zip(users, histories, top):
        target = seq.valid_target(user) if split == "valid" else seq.test_target(user)
        cases.append(EvalCase(user, split, len(history), tuple(int(i) for i in retrieved if i >= 0), int(target)))
    return cases


# Prompts ------------------------------------------------------------------------------------
def profile_for(seq: SequenceData, user: int, stop: int, max_history: int) -> UserProfile:
    """The user's items ``sequences[user][:stop]`` (the last ``max_history`` of them) as a profile."""
    begin = max(0, stop - max_history)
    entries = []
    for item, rating, stamp in zip(
        seq.sequences[user][begin:stop], seq.ratings[user][begin:stop], seq.timestamps[user][begin:stop]
    ):
        entries.append(HistoryEntry(seq.item_ids[int(item)], None if np.isnan(rating) else float(rating), int(stamp)))
    return UserProfile(user_id=seq.user_ids[user], history=tuple(entries))


def window_for(seq: SequenceData, candidates: Sequence[int]) -> list[Candidate]:
    """Candidates in the order they are labelled."""
    return [Candidate(seq.item_ids[int(i)], 0.0, ("retriever",)) for i in candidates]


def example_messages(ranker: LLMRanker, seq: SequenceData, example: Example) -> list[dict[str, str]]:
    """The exact inference prompt for a training example (the whole history: the ranker cuts its own window, which
    with ``rank@2`` moves in steps and so may show more than ``max_history`` items)."""
    profile = profile_for(seq, example.user, example.position, example.position)
    return ranker.messages(profile, window_for(seq, example.candidates))


def case_messages(ranker: LLMRanker, seq: SequenceData, case: EvalCase) -> list[dict[str, str]]:
    """The exact inference prompt for an evaluation case (the whole history, as for a training example)."""
    profile = profile_for(seq, case.user, case.history_length, case.history_length)
    return ranker.messages(profile, window_for(seq, case.candidates))


def describe_examples(seq: SequenceData, examples: Sequence[Example]) -> dict[str, Any]:
    """Counts for the adapter card."""
    targets = np.bincount([e.target for e in examples], minlength=max((len(e.candidates) for e in examples),
                                                                      default=0))  # fmt: skip
    return {
        "examples": len(examples),
        "example_users": len({e.user for e in examples}),
        "mean_history": float(np.mean([e.position for e in examples])) if examples else 0.0,
        "answer_label_counts": targets.tolist(),
    }
