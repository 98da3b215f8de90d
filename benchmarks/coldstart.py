"""Cold start: do lists built from little evidence lead with films people know and like?

    python benchmarks/coldstart.py --data-dir ../shared/data [--users 300 --seed 0] [--tune]

Part 1, fifty typical requests (below, written for this benchmark): a genre, a mood, a phrase, a decade,
or one liked title. Each is answered by today's composition (text retrieval for words; text 0.25 + EASE
1.0 by RRF for a title) and by the same composition under ``PriorRetriever`` (relevance blended with the
quality/familiarity prior). Where the request states genres or a decade, the list is limited to them
first, as the pipeline's constraints will (``genres``: every one listed; years inclusive). Reported: the
median number of ratings and the mean rating of the top 5, and how many top-5 items have at least 20
ratings.

Part 2, simulated newcomers (ml-latest-small users, a seeded sample): a newcomer either asks for their
most-liked genre of their training history ("Drama movies", limited to Drama) or names their most recent
liked training film. The list of 10 is scored against the held-out test item (hit-rate@10 = Recall@10,
NDCG@10); the collaborative model is fitted without the held-out items and the prior counts no held-out
rating. ``--tune`` scores prior settings on the validation item instead (the second-to-last), which is
how ``PriorConfig``'s defaults were chosen.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.retrieval.prior import PriorConfig, PriorRetriever, QualityPrior
from llmrec.types import HistoryEntry, Item, UserProfile

log = logging.getLogger("coldstart")


@dataclass(frozen=True)
class Request:
    text: str
    genres: tuple[str, ...] = ()
    years: tuple[int, int] | None = None
    title: str | None = None  # "something like <title>": one liked title, no words
    topic: tuple[str, ...] = ()  # words in words alone: an item is on topic when its title, keywords or tags hold one


def _decade(start: int) -> tuple[int, int]:
    return (start, start + 9)


REQUESTS = [
    Request("a comedy from the 2000s", ("Comedy",), _decade(2000)),
    Request("slow sci-fi", ("Sci-Fi",)),
    Request("something for the kids", ("Children",)),
    Request("a scary movie for tonight", ("Horror",)),
    Request("a romantic comedy", ("Comedy", "Romance")),
    Request("a classic film noir", ("Film-Noir",)),
    Request("an animated movie from the 90s", ("Animation",), _decade(1990)),
    Request("a war movie", ("War",)),
    Request("a western", ("Western",)),
    Request("a musical", ("Musical",)),
    Request("a documentary about music", ("Documentary",)),
    Request("a crime thriller", ("Crime", "Thriller")),
    Request("a feel-good movie", topic=("feel-good", "feel good", "heartwarming", "uplifting")),
    Request("something funny and light", ("Comedy",)),
    Request("a mind-bending thriller", ("Thriller",)),
    Request("a heist movie", topic=("heist", "robbery", "caper")),
    Request("a movie about space exploration", topic=("space", "astronaut")),
    Request("an action movie from the 80s", ("Action",), _decade(1980)),
    Request("a fantasy adventure", ("Fantasy", "Adventure")),
    Request("a sad drama that will make me cry", ("Drama",)),
    Request("a horror comedy", ("Horror", "Comedy")),
    Request("a superhero movie", topic=("superhero", "super hero", "comic book", "marvel")),
    Request("a mystery", ("Mystery",)),
    Request("a 90s thriller", ("Thriller",), _decade(1990)),
    Request("a 70s crime movie", ("Crime",), _decade(1970)),
    Request("a sci-fi movie from the 2010s", ("Sci-Fi",), _decade(2010)),
    Request("a Christmas movie", topic=("christmas",)),
    Request("a coming-of-age story", topic=("coming of age", "coming-of-age")),
    Request("a time travel movie", topic=("time travel",)),
    Request("a zombie movie", topic=("zombie",)),
    Request("a movie about dinosaurs", topic=("dinosaur",)),
    Request("a psychological thriller", ("Thriller",)),
    Request("an epic war drama", ("War", "Drama")),
    Request("a comedy from the 80s", ("Comedy",), _decade(1980)),
    Request("a dark comedy", ("Comedy",)),
    Request("a family animated film", ("Animation", "Children")),
    Request("a sports movie", topic=("sport", "boxing", "football", "baseball", "basketball")),
    Request("a spy movie", topic=("spy", "espionage", "secret agent")),
    Request("something with martial arts", topic=("martial arts", "kung fu")),
    Request("a courtroom drama", ("Drama",)),
    Request("a disaster movie", topic=("disaster",)),
    Request("a romantic drama from the 2000s", ("Romance", "Drama"), _decade(2000)),
    Request("something like The Matrix", title="The Matrix (1999)"),
    Request("something like Toy Story", title="Toy Story (1995)"),
    Request("something like Pulp Fiction", title="Pulp Fiction (1994)"),
    Request("something like Amelie", title="Amelie (2001)"),
    Request("something like The Notebook", title="The Notebook (2004)"),
    Request("something like Alien", title="Alien (1979)"),
    Request("something like Superbad", title="Superbad (2007)"),
    Request("something like Spirited Away", title="Spirited Away (2001)"),
]


def on_topic(request: Request, item: Item) -> bool:
    text = " ".join((item.title, *item.genres, *item.keywords, *item.tags)).lower()
    return any(t in text for t in request.topic)


def allows(request: Request, item: Item) -> bool:
    if request.genres and not set(request.genres) <= set(item.genres):
        return False
    return request.years is None or (item.year is not None and request.years[0] <= item.year <= request.years[1])


class Limited:
    """A retriever's list limited to a request's genres and years (from a deeper pool), as the pipeline will."""

    def __init__(self, inner: Any, items: Any, keep: Any, name: str = "limited") -> None:
        self.inner, self.items, self.keep, self.name = inner, items, keep, name

    def retrieve(self, profile: UserProfile, k: int) -> list:
        if self.keep is None:
            return self.inner.retrieve(profile, k)
        return [c for c in self.inner.retrieve(profile, k * 10) if self.keep(self.items[c.item_id])][:k]


@dataclass
class Setup:
    parts: Any
    items: Any
    seq: Any
    scorer: Any
    prior: QualityPrior

    def composition(self, profile: UserProfile, keep: Any = None) -> Any:
        """Today's composition for this profile: text alone for words, text 0.25 + cf 1.0 with a history."""
        from llmrec.retrieval.collaborative import CollaborativeRetriever
        from llmrec.retrieval.fusion import HybridRetriever
        from llmrec.retrieval.text import TextRetriever

        text = TextRetriever(self.parts.store("ml-latest-small", self.items), self.parts.embedder, items=self.items)
        inner: Any = text
        if profile.history:
            cf = CollaborativeRetriever(self.scorer, self.seq, label="ease", items=self.items)
            inner = HybridRetriever([text, cf], weights=(0.25, 1.0))
        return Limited(inner, self.items, keep)

    def with_prior(self, profile: UserProfile, keep: Any, config: PriorConfig) -> Any:
        return PriorRetriever(self.composition(profile, keep), self.prior, self.items, config)


def setup(parts: Any, held_out: dict[str, set[str]], cut: int, config: PriorConfig) -> Setup:
    """EASE fitted without each sampled user's last ``cut`` items; the prior without those ratings."""
    from llmrec.baselines import TrainData, get_scorer
    from llmrec.data import preprocess

    ds = parts.movielens
    seq = preprocess(ds)
    histories = tuple(s[:-cut] if seq.user_ids[u] in held_out else s for u, s in enumerate(seq.sequences))
    scorer = get_scorer("ease").fit(TrainData(seq.n_users, seq.n_items, histories))
    inter = ds.interactions
    mask = np.array([i not in held_out.get(u, ()) for u, i in zip(inter.user_ids, inter.item_ids)])
    kept = replace(inter, user_ids=inter.user_ids[mask], item_ids=inter.item_ids[mask],
                   ratings=inter.ratings[mask], timestamps=inter.timestamps[mask])  # fmt: skip
    return Setup(parts, ds.items, seq, scorer, QualityPrior.from_interactions(kept, config))


def request_profile(request: Request, items: Any) -> UserProfile:
    """The profile the pipeline builds: the words as a stated preference, the stated genres and years as
    constraints (the pipeline's typed ``Constraints``), or one liked title."""
    from llmrec.profile import likes_profile
    from llmrec.types import Constraints

    if request.title:
        return likes_profile([request.title], items)
    years = request.years or (None, None)
    return UserProfile(stated_preferences=(request.text,),
                       constraints=Constraints(wanted_genres=request.genres, year_min=years[0], year_max=years[1]))


def top5_stats(ids: list[str], prior: QualityPrior, request: Request, items: Any) -> dict[str, float]:
    counts = [prior.counts.get(i, 0) for i in ids]
    means = [prior.means[i] for i in ids if i in prior.means]
    return {"median ratings": float(np.median(counts)) if counts else 0.0,
            "mean rating": float(np.mean(means)) if means else float("nan"),
            "with >= 20 ratings": sum(c >= 20 for c in counts),
            "on topic": sum(on_topic(request, items[i]) for i in ids) if request.topic else None}  # fmt: skip


def requests_table(s: Setup, config: PriorConfig) -> dict[str, Any]:
    rows, before, after = [], [], []
    for request in REQUESTS:
        profile = request_profile(request, s.items)
        keep = (lambda item, r=request: allows(r, item)) if (request.genres or request.years) else None
        lists = {}
        for name, retriever in (("before", s.composition(profile, keep)),
                                ("after", s.with_prior(profile, keep, config))):  # fmt: skip
            lists[name] = [c.item_id for c in retriever.retrieve(profile, 5)]
        b, a = (top5_stats(lists[n], s.prior, request, s.items) for n in ("before", "after"))
        before.append(b)
        after.append(a)
        rows.append({"request": request.text, "before": b, "after": a,
                     "top 5 after": [s.items[i].display_title for i in lists["after"]],
                     "top 5 before": [s.items[i].display_title for i in lists["before"]]})  # fmt: skip

    def summary(stats: list[dict]) -> dict[str, float]:
        return {"median of top-5 median ratings": float(np.median([x["median ratings"] for x in stats])),
                "mean of top-5 mean ratings": round(float(np.nanmean([x["mean rating"] for x in stats])), 3),
                "top-5 items with >= 20 ratings": sum(x["with >= 20 ratings"] for x in stats),
                "top-5 items": 5 * len(stats),
                "top-5 items on topic (requests in words alone)": sum(x["on topic"] or 0 for x in stats),
                "requests in words alone": sum(x["on topic"] is not None for x in stats)}  # fmt: skip

    return {"before": summary(before), "after": summary(after), "requests": rows}


def newcomer_cases(s: Setup, users: list[int], target_of: Any) -> list[tuple[str, UserProfile, Any, str]]:
    """(case, profile, keep, target) for each user: a genre-request newcomer and a one-title newcomer."""
    cases = []
    for u in users:
        ids = [s.seq.item_ids[i] for i in s.seq.train(u)]
        ratings = s.seq.ratings[u][: len(ids)]
        liked = [i for i, r in zip(ids, ratings) if np.isnan(r) or r >= 4] or ids
        target = s.seq.item_ids[target_of(u)]
        genre = max(sorted({g for i in liked for g in s.items[i].genres}),
                    key=lambda g: sum(g in s.items[i].genres for i in liked))  # fmt: skip
        seen = tuple(ids)  # the rest of the hidden history is never recommended (it is not the target)
        from llmrec.types import Constraints

        cases.append(("genre request", UserProfile(stated_preferences=(f"{genre} movies",), excluded=seen,
                                                   constraints=Constraints(wanted_genres=(genre,))),
                      lambda item, g=genre: g in item.genres, target))  # fmt: skip
        others = tuple(i for i in seen if i != liked[-1])  # the named film is history, not an exclusion
        cases.append(("one title", UserProfile(history=(HistoryEntry(liked[-1]),), excluded=others), None, target))
    return cases


def score_lists(cases: list, ranked: list[list[str]]) -> dict[str, dict[str, float]]:
    out: dict[str, list[float]] = {}
    for (name, _, _, target), top in zip(cases, ranked):
        out.setdefault(name, []).append(1.0 / math.log2(top.index(target) + 2) if target in top[:10] else 0.0)
    return {n: {"hit-rate@10": round(float(np.mean([v > 0 for v in vals])), 4),
                "ndcg@10": round(float(np.mean(vals)), 4),
                "hit se": round(float(np.std([v > 0 for v in vals]) / np.sqrt(len(vals))), 4),
                "ndcg se": round(float(np.std(vals) / np.sqrt(len(vals))), 4)}
            for n, vals in out.items()}  # fmt: skip


def newcomers(s: Setup, cases: list, config: PriorConfig | None) -> dict[str, dict[str, float]]:
    """Hit-rate@10 and NDCG@10 of the newcomer cases (``config`` None: today's composition, no prior)."""
    ranked = []
    for _, profile, keep, _ in cases:
        retriever = s.composition(profile, keep) if config is None else s.with_prior(profile, keep, config)
        ranked.append([c.item_id for c in retriever.retrieve(profile, 10)])
    return score_lists(cases, ranked)


def tune(s: Setup, cases: list) -> dict[str, Any]:
    """GRID over ``PriorConfig()``'s other constants, on cached pools (``PriorRetriever``'s blend, offline).

    Rule: among settings whose one-title NDCG@10 on the validation item is within one standard error of no
    prior, whose genre-request NDCG@10 is no worse, and whose requests in words alone keep at least as many
    top-5 items on topic as without the prior, the one with the most top-5 items rated by 20 or more people
    (ties: the higher newcomer NDCG). A first, wider run chose strength, quality share, weight, half and
    min_pool the same way (docs/benchmarks/coldstart.md)."""
    from llmrec.retrieval.prior import blend, prior_weight, states_what_is_wanted

    requests = [(r, request_profile(r, s.items), (lambda item, r=r: allows(r, item)) if (r.genres or r.years) else None)
                for r in REQUESTS]  # fmt: skip
    pools: dict[tuple[int, int], list] = {}

    def pool(n: int, profile: UserProfile, keep: Any, config: PriorConfig) -> list:
        depth = config.min_pool if states_what_is_wanted(profile) else config.free_pool
        if (n, depth) not in pools:
            pools[n, depth] = s.composition(profile, keep).retrieve(profile, depth)
        return pools[n, depth]

    def top(found: list, prior: QualityPrior, weight: float, k: int) -> list[str]:
        scores = blend({c.item_id: c.score for c in found}, prior, weight)
        return sorted(scores, key=lambda i: (-scores[i], i))[:k]

    def row(name: str, config: PriorConfig | None) -> dict[str, Any]:
        prior = QualityPrior(s.prior.counts, s.prior.means, config or PriorConfig())
        shallow = PriorConfig(free_pool=200, min_pool=200)

        def listed(n: int, p: UserProfile, keep: Any, k: int) -> list[str]:
            found = pool(n, p, keep, config or shallow)
            return [c.item_id for c in found[:k]] if config is None else top(found, prior, prior_weight(p, config), k)

        ranked = [listed(n, p, keep, 10) for n, (_, p, keep, _) in enumerate(cases)]
        lists = [listed(n, p, keep, 5) for n, (_, p, keep) in enumerate(requests, len(cases))]
        free = [(r, ids) for (r, _, _), ids in zip(requests, lists) if r.topic]
        return {"config": name, **score_lists(cases, ranked),
                "top-5 items with >= 20 ratings": sum(s.prior.counts.get(i, 0) >= 20 for ids in lists for i in ids),
                "words alone: with >= 20 ratings": sum(s.prior.counts.get(i, 0) >= 20 for _, ids in free for i in ids),
                "words alone: on topic": sum(on_topic(r, s.items[i]) for r, ids in free for i in ids)}  # fmt: skip

    results = [row("no prior", None)]
    for values in itertools.product(*GRID.values()):
        config = replace(PriorConfig(), **dict(zip(GRID, values)))
        results.append(row(str(config), config))
    base, one = results[0], results[0]["one title"]
    eligible = [r for r in results[1:] if r["one title"]["ndcg@10"] >= one["ndcg@10"] - one["ndcg se"]
                and r["genre request"]["ndcg@10"] >= base["genre request"]["ndcg@10"]
                and r["words alone: on topic"] >= base["words alone: on topic"]]  # fmt: skip

    def rank(r: dict) -> tuple:
        return r["top-5 items with >= 20 ratings"], r["one title"]["ndcg@10"] + r["genre request"]["ndcg@10"]

    chosen = max(eligible, key=rank, default=None)
    return {"no prior": base, "chosen": chosen, "all": results[1:]}


GRID = {"free_weight": (0.25, 0.5, 0.75, 0.9), "free_pool": (100, 200, 1000)}


def main() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from redial import Parts

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data", type=Path)
    parser.add_argument("--cache-dir", default=None, type=Path)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tune", action="store_true", help="score prior settings on the validation item")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    parts = Parts(args.data_dir, args.cache_dir)
    from llmrec.data import preprocess

    seq = preprocess(parts.movielens)
    users = sorted(np.random.default_rng(args.seed).choice(seq.n_users, size=min(args.users, seq.n_users),
                                                           replace=False).tolist())  # fmt: skip
    cut = 2 if args.tune else 1
    held = {seq.user_ids[u]: {seq.item_ids[i] for i in seq.sequences[u][-cut:]} for u in users}
    s = setup(parts, held, cut, PriorConfig())
    if args.tune:
        result = tune(s, newcomer_cases(s, users, seq.valid_target))
        print(json.dumps({"users": len(users), "validation item": result}, indent=1))
        return
    out = {"users": len(users), "seed": args.seed, "prior": str(s.prior.config)}
    out["requests"] = requests_table(s, PriorConfig())
    cases = newcomer_cases(s, users, seq.test_target)
    out["newcomers (test item)"] = {"before": newcomers(s, cases, None), "after": newcomers(s, cases, PriorConfig())}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
