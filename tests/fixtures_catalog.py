"""A tiny movie catalogue shared by the ranking and explanation tests."""

from __future__ import annotations

import numpy as np

from llmrec.config import RecommenderConfig
from llmrec.data.dataset import Dataset, Interactions
from llmrec.embedding import HashingEmbedder
from llmrec.index.memory import MemoryIndex
from llmrec.indexing import build_index, store_spec
from llmrec.llm.base import FakeLLM
from llmrec.pipeline import Recommender
from llmrec.types import Candidate, HistoryEntry, Item, UserProfile

ITEMS = {
    "1": Item("1", "Toy Story", 1995, ("Animation", "Children", "Comedy"), ("pixar animation", "toys"), ("pixar",)),
    "2": Item("2", "Monsters, Inc.", 2001, ("Animation", "Children", "Comedy"), ("pixar animation",), ("pixar",)),
    "3": Item("3", "Finding Nemo", 2003, ("Animation", "Children"), ("ocean", "pixar animation"), ()),
    "4": Item("4", "Alien", 1979, ("Horror", "Sci-Fi"), ("space", "monster"), ("atmospheric",)),
    "5": Item("5", "Solaris", 1972, ("Drama", "Sci-Fi"), ("space", "slow"), ("philosophical",)),
    "6": Item("6", "Heat", 1995, ("Action", "Crime"), ("heist",), ("Al Pacino",)),
    "7": Item("7", "Shrek", 2001, ("Animation", "Comedy"), ("ogre",), ()),
    "8": Item("8", "The Matrix", 1999, ("Action", "Sci-Fi"), ("virtual reality",), ()),
}
for _i in range(9, 31):
    ITEMS[str(_i)] = Item(str(_i), f"Filler Movie {_i}", 2000 + _i % 20, ("Drama",))

PROFILE = UserProfile(
    user_id="u1",
    history=(HistoryEntry("1", 5.0, 1), HistoryEntry("4", 2.0, 2), HistoryEntry("2", 4.5, 3)),
    stated_preferences=("something with space, nothing gory",),
)


def candidates(ids: list[str]) -> list[Candidate]:
    return [Candidate(i, 1.0 - r / 100, ("text",)) for r, i in enumerate(ids)]


USERS = {f"u{n}": [str(i) for i in range(1 + n % 4, 9 + n % 4)] for n in range(8)}


def toy_dataset() -> Dataset:
    rows = [(u, i, 4.0 + (t % 2) / 2, t) for u, items in USERS.items() for t, i in enumerate(items)]
    users, items, ratings, stamps = zip(*rows)
    return Dataset("toy", ITEMS, Interactions.from_columns(users, items, ratings, stamps))


class PopularityScorer:
    """Toy collaborative scorer: item popularity, the same for every user."""

    def __init__(self, seq) -> None:
        counts = np.zeros(seq.n_items, dtype=np.float32)
        for s in seq.sequences:
            counts[s] += 1
        self.counts = counts

    def score(self, users, histories):
        return np.tile(self.counts, (len(users), 1))


def fake_recommender(llm: FakeLLM | None = None, llm_section: dict | None = None, **sections: dict) -> Recommender:
    """The whole pipeline on fakes: hashing embedder, memory index, popularity scorer, fake LLM (``llm_section``:
    the config's ``llm`` section, whose name the fake model takes)."""
    ds = toy_dataset()
    emb = HashingEmbedder(dim=64)
    index = MemoryIndex(store_spec(emb))
    build_index(ds, emb, index)
    defaults = {"data": {"min_count": 3}, "ranker": {"kind": "llm"}, "explainer": {"kind": "llm"},
                "understanding": {"kind": "llm"},
                "retrieval": {"candidates": 5}}  # fmt: skip
    config = RecommenderConfig().updated(**{**defaults, **sections, **({"llm": llm_section} if llm_section else {})})
    llm = llm or FakeLLM(replies=["You liked Toy Story and it is Animation."] * 200)
    return Recommender(config, dataset=ds, embedder=emb, index=index, llm=llm,
                       scorer_factory=lambda name, seq: PopularityScorer(seq))  # fmt: skip
