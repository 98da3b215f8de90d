"""Simulated newcomers: how fast onboarding by dialogue reaches useful recommendations.

    python benchmarks/onboarding.py --data-dir ../shared/data --users 200 --seed 0 [--questions both]
        [--composition today|new]

Each test user's history is hidden; a simulator answers the onboarding questions from the user's
hidden *training* history only (a genre question with their most-liked genre; "Have you seen X?"
with "Loved it" when X is a liked training item, "Not for me" when it is another training item,
"Haven't seen it" otherwise; once onboarding is over, it names its most recent liked training
item). ``--opening``: how it answers the app's welcome (which offers genre chips): ``genre`` (default) with
that genre, so the app goes on to its "Have you seen X?" questions; ``film`` by naming its most recent liked
film, as before 2026-12-01 (the app then asks for a genre, a liked film plus a genre is already enough, and no
"Have you seen X?" question is ever asked, so ``split`` and ``random`` below cannot differ). After 0, 1, 2, 3
and 5 answers the pipeline recommends 10 items and the held-out test item
is looked up. Baselines on the same users: most-popular, and the full-history pipeline.

``--questions``: ``split`` asks what the app asks (the popular film whose genres split the current
candidates most evenly), ``random`` a film drawn at random (seeded) from the same popular pool, ``both``
runs each on the same users. ``--composition new`` swaps the engine's retriever for the composition
proposed by issue 14 (text, EASE, dialogue co-occurrence and suggestion popularity fused by RRF, under the
quality prior); ``today`` keeps the configured pipeline (since issue 14: the quality prior on cold-start
profiles, counted here without the test ratings). The collaborative model never sees the test items; the
chat reads the simulated answers by rules unless ``--understanding llm``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.baselines import TrainData, get_scorer
from llmrec.chat import onboarding
from llmrec.chat.engine import Conversation
from llmrec.chat.present import WELCOME
from llmrec.chat.store import ProfileStore
from llmrec.config import RecommenderConfig
from llmrec.data import preprocess
from llmrec.pipeline import Recommender
from llmrec.types import HistoryEntry, UserProfile

CHECKPOINTS = (0, 1, 2, 3, 5)


def ndcg_at_10(ranked: list[str], target: str) -> float:
    return 1.0 / math.log2(ranked.index(target) + 2) if target in ranked[:10] else 0.0


def answer(reply_text: str, liked: list[str], train: set[str], items, genres: list[str], used: set[str],
           opening: str = "genre") -> str:  # fmt: skip
    if "What kind of movie" in reply_text or (opening == "genre" and reply_text == WELCOME):
        return genres[0] if genres else "skip"
    if "Have you seen" in reply_text:
        for item_id in list(train):
            title = items[item_id].display_title
            if f"seen {title} (" in reply_text or f"seen {title}?" in reply_text:
                return "Loved it" if item_id in liked else "Not for me"
        return "Haven't seen it"
    for item_id in liked:  # onboarding is over: volunteer a liked film
        if item_id not in used:
            used.add(item_id)
            return f'I loved "{items[item_id].display_title}"'
    return "recommend"


def random_questions(seed: int) -> Any:
    """A stand-in for ``onboarding.next_item_question``: a film drawn at random from the same popular pool."""
    rng = np.random.default_rng(seed)

    def pick(state, items, popularity, pool) -> str | None:
        asked = set(state.asked_items) | set(state.liked) | set(state.disliked) | set(state.seen)
        popular = [i for i in sorted(popularity, key=lambda i: (-popularity[i], i)) if i in items and i not in asked]
        popular = popular[: onboarding.POPULAR_POOL]
        if state.wanted_genres:
            popular = [i for i in popular if set(state.wanted_genres) & set(items[i].genres)] or popular
        return str(popular[int(rng.integers(len(popular)))]) if popular else None

    return pick


def prior_without(rec: Recommender, test_items: dict[str, str]) -> Any:
    """The quality prior from every rating except the users' held-out test items."""
    from llmrec.retrieval.prior import QualityPrior

    inter = rec.dataset.interactions
    keep = np.array([test_items.get(u) != i for u, i in zip(inter.user_ids, inter.item_ids)])
    return QualityPrior.from_interactions(type(inter)(inter.user_ids[keep], inter.item_ids[keep], inter.ratings[keep],
                                                      inter.timestamps[keep]))  # fmt: skip


def composed(rec: Recommender, data_dir: Path, test_items: dict[str, str]) -> Any:
    """The issue-14 composition over the recommender's own parts (its EASE never saw the test items)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from redial import PRODUCT_WEIGHTS, RRF_K, hybrid

    from llmrec.data.redial import TRAIN_FILE, load_dialogues, load_redial_catalogue
    from llmrec.retrieval.collaborative import CollaborativeRetriever
    from llmrec.retrieval.dialogue import DialogueModel, DialogueRetriever, SuggestionPopularityRetriever
    from llmrec.retrieval.prior import PriorRetriever
    from llmrec.retrieval.text import TextRetriever

    items = rec.items
    counts = Counter(rec.dataset.interactions.item_ids.tolist())
    catalogue = load_redial_catalogue(data_dir, popularity=counts)
    model = DialogueModel.fit(load_dialogues(data_dir / TRAIN_FILE), catalogue.items)
    to_model = catalogue.from_movielens(items)
    prior = prior_without(rec, test_items)

    def build(profile: UserProfile) -> Any:
        scorer, seq = rec.collaborative
        parts = {"text": TextRetriever(rec.index, rec.embedder, items=items),
                 "cf": CollaborativeRetriever(scorer, seq, label="ease", items=items),
                 "dialogue": DialogueRetriever(model, items, to_model=to_model),
                 "popularity": SuggestionPopularityRetriever(model, items, to_model=to_model)}  # fmt: skip
        return PriorRetriever(hybrid(parts, PRODUCT_WEIGHTS, RRF_K), prior, items)

    return build


# Speed (issue 14 item 5): on 2 shared cores a 200-user run took over half an hour a question mode. cProfile on 5
# users put ~85% of the time in text retrieval: every cold-start list asks the text retriever for ~3000 items
# (prior pool 1000, fusion x3), so Chroma returns ~9000 vectors a call (~0.5 s), the genre answer is embedded again
# on every turn (~0.4 s), and each profile is retrieved twice (the chat's question pool after an answer, then the
# checkpoint's list for the same profile). The caches below remove that repetition and nothing else: the same
# inputs give the same outputs (same stored vectors, same embedding of the same texts, same deterministic
# retrieval for the same profile), so the figures are those of the uncached run (checked on 5 users, both modes).
class VectorsInMemory:
    """The vector store with every item vector read once: ``get_vectors`` from memory, the rest from the store."""

    def __init__(self, index: Any) -> None:
        self._index = index
        self._vectors = index.get_vectors(index.ids())

    def get_vectors(self, ids: Any) -> dict[str, np.ndarray]:
        return {i: self._vectors[i] for i in ids if i in self._vectors}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)


def embed_once(embedder: Any) -> None:
    """The embedder remembers what it embedded (the same genre answer is embedded on every turn otherwise)."""
    embed, seen = embedder.embed, {}

    def embed_cached(texts: Any, show_progress: bool = False) -> np.ndarray:
        key = tuple(texts)
        if key not in seen:
            seen[key] = embed(texts, show_progress=show_progress)
        return seen[key].copy()

    embedder.embed = embed_cached


class Remembered:
    """A retriever that returns its last few answers again for the same profile and depth (a small LRU, so the
    memory stays flat over 200 users): the chat asks for the question pool, then the checkpoint for its list, both
    from the same profile and, under the quality prior, the same inner depth."""

    def __init__(self, inner: Any, cache: OrderedDict, level: str) -> None:
        self.inner, self.cache, self.level, self.name = inner, cache, level, inner.name

    def retrieve(self, profile: UserProfile, k: int) -> list:
        key = (self.level, type(self.inner).__name__, repr(profile), k)
        if key in self.cache:
            self.cache.move_to_end(key)
        else:
            self.cache[key] = self.inner.retrieve(profile, k)
            while len(self.cache) > 16:
                self.cache.popitem(last=False)
        return list(self.cache[key])


def remember_retrieval(rec: Recommender) -> None:
    """Wrap the retriever ``rec`` builds for each profile (and a prior's inner one) in ``Remembered``."""
    build, cache = rec.retriever, OrderedDict()

    def retriever(profile: UserProfile) -> tuple[Any, list[str]]:
        found, notes = build(profile)
        if found is None:
            return found, notes
        if hasattr(found, "inner"):
            found.inner = Remembered(found.inner, cache, "inner")
        return Remembered(found, cache, "outer"), notes

    rec.retriever = retriever  # type: ignore[method-assign]


def run(rec: Recommender, seq: Any, users: np.ndarray, popular: list[str], question: Any,
        opening: str = "genre") -> dict[int, list[float]]:  # fmt: skip
    original = onboarding.next_item_question
    if question is not None:
        onboarding.next_item_question = question
    scores: dict[int, list[float]] = {n: [] for n in CHECKPOINTS}
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None  # the simulated chats' store: no disk syncs
    store = ProfileStore(Path(tempfile.mkdtemp(dir=shm)) / "sim.sqlite")
    try:
        for u in users:
            ids = [seq.item_ids[i] for i in seq.train(u)]
            ratings = seq.ratings[u][: len(ids)]
            liked = [i for i, r in zip(ids, ratings) if np.isnan(r) or r >= 4][::-1]  # most recent first
            target = seq.item_ids[seq.test_target(u)]
            genre_counts = Counter(g for i in liked for g in rec.items[i].genres)
            genres = [g for g, _ in genre_counts.most_common(3)]
            convo = Conversation(rec, store, f"sim-{seq.user_ids[u]}", k=10)
            reply = convo.start()
            used: set[str] = set()
            last = max(CHECKPOINTS)
            for n in range(last + 1):
                if n in scores:
                    profile = convo.profile()
                    ranked = [r.item.item_id for r in rec.recommend(profile, k=10, explain=False).items]
                    if not ranked:  # nothing known yet: what the app shows after "skip" is the popular list
                        ranked = [i for i in popular if i not in profile.seen][:10]
                    scores[n].append(ndcg_at_10(ranked, target))
                message = answer(reply.text, liked, set(ids), rec.items, genres, used, opening)
                if n < last:
                    reply = convo.handle(message)
                else:  # the reply to the last answer is never scored, so it is made without retrieval (speed);
                    # it is still made: with random questions, a question asked there draws from the seeded
                    # generator the next users' questions come from (the draw does not look at the candidates)
                    build, rec.retriever = rec.retriever, lambda profile: (None, [])  # type: ignore[method-assign]
                    try:
                        convo.handle(message)
                    finally:
                        rec.retriever = build  # type: ignore[method-assign]
    finally:
        onboarding.next_item_question = original
    return scores


def summary(values: list[float]) -> dict[str, float]:
    hits = [x > 0 for x in values]
    return {"ndcg@10": round(float(np.mean(values)), 4), "recall@10": round(float(np.mean(hits)), 4),
            "ndcg se": round(float(np.std(values) / np.sqrt(len(values))), 4),
            "recall se": round(float(np.std(hits) / np.sqrt(len(hits))), 4)}  # fmt: skip


def paired(a: list[float], b: list[float]) -> dict[str, float]:
    """Mean of ``a - b`` over the same users, with its standard error (NDCG@10 and Recall@10)."""
    out = {}
    for name, x, y in (("ndcg@10", a, b), ("recall@10", [v > 0 for v in a], [v > 0 for v in b])):
        d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
        se = float(d.std() / np.sqrt(len(d)))
        out |= {f"{name} diff": round(float(d.mean()), 4), f"{name} diff se": round(se, 4)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data", type=Path)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--questions", choices=("split", "random", "both"), default="split")
    parser.add_argument("--composition", choices=("today", "new"), default="today")
    parser.add_argument("--opening", choices=("genre", "film"), default="genre",
                        help="the newcomer's answer to the welcome: its most-liked genre, or a liked film")
    parser.add_argument("--understanding", choices=("rules", "llm"), default="rules",
                        help="how the chat reads the simulated answers (llm: seconds a message on 2 cores)")
    args = parser.parse_args()
    started = time.monotonic()
    config = RecommenderConfig().updated(data={"dataset": "ml-latest-small", "data_dir": str(args.data_dir)},
                                         explainer={"kind": "template"}, ranker={"kind": "passthrough"},
                                         understanding={"kind": args.understanding})  # fmt: skip

    def fit_without_test_items(name: str, seq_data):  # the served model must not have seen the test items
        histories = tuple(s[:-1] for s in seq_data.sequences)
        return get_scorer(name).fit(TrainData(seq_data.n_users, seq_data.n_items, histories))

    rec = Recommender(config, scorer_factory=fit_without_test_items)
    seq = preprocess(rec.dataset)
    test_items = {seq.user_ids[u]: seq.item_ids[seq.test_target(u)] for u in range(seq.n_users)}
    rec.quality_prior = prior_without(rec, test_items)  # the pipeline's cold-start prior counts no test rating
    if args.composition == "new":
        build = composed(rec, args.data_dir, test_items)
        rec.retriever = lambda profile: (build(profile), [])  # type: ignore[method-assign]
    rec.index = VectorsInMemory(rec.index)  # the caches explained above VectorsInMemory
    embed_once(rec.embedder)
    remember_retrieval(rec)
    counts = Counter(rec.dataset.interactions.item_ids.tolist())
    popular = [i for i, _ in counts.most_common(200)]
    rng = np.random.default_rng(args.seed)
    users = rng.choice(seq.n_users, size=min(args.users, seq.n_users), replace=False)
    out: dict[str, Any] = {"users": len(users), "seed": args.seed, "composition": args.composition,
                           "opening": args.opening}  # fmt: skip
    modes = ("split", "random") if args.questions == "both" else (args.questions,)
    per_mode = {}
    for mode in modes:
        question = random_questions(args.seed) if mode == "random" else None
        per_mode[mode] = run(rec, seq, users, popular, question, args.opening)
        out[f"{mode} questions"] = {f"after {n} answers": summary(v) for n, v in per_mode[mode].items()}
    if len(per_mode) == 2:  # the same users under both: the paired difference is the fair comparison
        out["split minus random"] = {f"after {n} answers": paired(per_mode["split"][n], per_mode["random"][n])
                                     for n in CHECKPOINTS}  # fmt: skip
    baseline: dict[str, list[float]] = {"popularity": [], "full history": []}
    for u in users:
        seen = set(seq.item_ids[i] for i in seq.test_input(u))
        target = seq.item_ids[seq.test_target(u)]
        baseline["popularity"].append(ndcg_at_10([i for i in popular if i not in seen][:10], target))
        inputs = seq.test_input(u)
        history = tuple(HistoryEntry(seq.item_ids[i], None if np.isnan(r) else float(r))
                        for i, r in zip(inputs, seq.ratings[u][: len(inputs)]))  # fmt: skip
        full = rec.recommend(UserProfile(user_id=seq.user_ids[u], history=history), k=10, explain=False)
        baseline["full history"].append(ndcg_at_10([r.item.item_id for r in full.items], target))
    out |= {name: summary(v) for name, v in baseline.items()}
    out["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
