"""Simulated newcomers: how fast onboarding by dialogue reaches useful recommendations.

    python benchmarks/onboarding.py --data-dir ../shared/data --users 100

Each test user's history is hidden; a simulator answers the onboarding questions from the user's
hidden *training* history only (a genre question with their most-liked genre; "Have you seen X?"
with "Loved it" when X is a liked training item, "Not for me" when it is another training item,
"Haven't seen it" otherwise; once onboarding is over, it names its most recent liked training
item). After 0, 1, 2, 3 and 5 answers the pipeline recommends 10 items and the held-out test item
is looked up. Baselines on the same users: most-popular, and the full-history pipeline.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from llmrec.baselines import TrainData, get_scorer
from llmrec.chat.engine import Conversation
from llmrec.chat.store import ProfileStore
from llmrec.config import RecommenderConfig
from llmrec.data import preprocess
from llmrec.pipeline import Recommender
from llmrec.types import HistoryEntry, UserProfile

CHECKPOINTS = (0, 1, 2, 3, 5)


def ndcg_at_10(ranked: list[str], target: str) -> float:
    return 1.0 / math.log2(ranked.index(target) + 2) if target in ranked[:10] else 0.0


def answer(reply_text: str, liked: list[str], train: set[str], items, genres: list[str], used: set[str]) -> str:
    if "What kind of movie" in reply_text:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = RecommenderConfig().updated(data={"dataset": "ml-latest-small", "data_dir": args.data_dir},
                                         explainer={"kind": "template"}, ranker={"kind": "passthrough"})  # fmt: skip
    def fit_without_test_items(name: str, seq_data):  # the served model must not have seen the test items
        histories = tuple(s[:-1] for s in seq_data.sequences)
        return get_scorer(name).fit(TrainData(seq_data.n_users, seq_data.n_items, histories))

    rec = Recommender(config, scorer_factory=fit_without_test_items)
    seq = preprocess(rec.dataset)
    counts = Counter(rec.dataset.interactions.item_ids.tolist())
    popular = [i for i, _ in counts.most_common(200)]
    rng = np.random.default_rng(args.seed)
    users = rng.choice(seq.n_users, size=min(args.users, seq.n_users), replace=False)
    scores = {n: [] for n in CHECKPOINTS}
    baseline = {"popularity": [], "full history": []}
    store = ProfileStore(Path(tempfile.mkdtemp()) / "sim.sqlite")
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
        for n in range(max(CHECKPOINTS) + 1):
            if n in scores:
                profile = convo.profile()
                ranked = [r.item.item_id for r in rec.recommend(profile, k=10, explain=False).items]
                if not ranked:  # nothing known yet: what the app shows after "skip" is the popular list
                    ranked = [i for i in popular if i not in profile.seen][:10]
                scores[n].append(ndcg_at_10(ranked, target))
            reply = convo.handle(answer(reply.text, liked, set(ids), rec.items, genres, used))
        seen = set(seq.item_ids[i] for i in seq.test_input(u))
        baseline["popularity"].append(ndcg_at_10([i for i in popular if i not in seen][:10], target))
        inputs = seq.test_input(u)
        history = tuple(HistoryEntry(seq.item_ids[i], None if np.isnan(r) else float(r))
                        for i, r in zip(inputs, seq.ratings[u][: len(inputs)]))  # fmt: skip
        full = rec.recommend(UserProfile(user_id=seq.user_ids[u], history=history), k=10, explain=False)
        baseline["full history"].append(ndcg_at_10([r.item.item_id for r in full.items], target))
    out = {f"after {n} answers": {"ndcg@10": float(np.mean(v)), "recall@10": float(np.mean([x > 0 for x in v]))}
           for n, v in scores.items()}  # fmt: skip
    out |= {k: {"ndcg@10": float(np.mean(v)), "recall@10": float(np.mean([x > 0 for x in v]))}
            for k, v in baseline.items()}  # fmt: skip
    print(json.dumps({"users": len(users), "results": out}, indent=2))


if __name__ == "__main__":
    main()
