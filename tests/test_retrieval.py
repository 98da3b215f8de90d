"""Profiles, retrievers (one shared contract), fusion, MMR and the recommend service, on a toy catalogue."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from llmrec.config import RecommenderConfig
from llmrec.data.dataset import Dataset, Interactions
from llmrec.data.split import SequenceData, preprocess
from llmrec.embedding import HashingEmbedder
from llmrec.errors import ConfigError, DataError
from llmrec.index import MemoryIndex, open_chroma_index
from llmrec.indexing import build_index, store_spec
from llmrec.pipeline import Recommendations, Recommender
from llmrec.pipeline.stores import index_dataset
from llmrec.profile import (
    build_profile,
    history_profile,
    liked_weights,
    likes_profile,
    parse_preferences,
    resolve_title,
)
from llmrec.retrieval import Retriever, top_candidates
from llmrec.retrieval.collaborative import CollaborativeRetriever, CollaborativeScorer
from llmrec.retrieval.diversify import DiversifiedRetriever, MMRDiversifier, mmr
from llmrec.retrieval.fusion import HybridRetriever
from llmrec.retrieval.text import TextRetriever
from llmrec.types import Candidate, Evidence, HistoryEntry, Interaction, Item, UserProfile

MOVIES = [  # id, title, year, genres, keywords
    ("1", "Toy Story", 1995, ("Animation", "Children", "Comedy"), ("toys", "pixar", "animation", "friendship")),
    ("2", "Toy Story 2", 1999, ("Animation", "Children", "Comedy"), ("toys", "pixar", "animation", "sequel")),
    ("3", "Finding Nemo", 2003, ("Animation", "Children"), ("fish", "ocean", "pixar", "animation")),
    ("4", "Monsters, Inc.", 2001, ("Animation", "Children", "Comedy"), ("monsters", "pixar", "animation")),
    ("5", "Shrek", 2001, ("Animation", "Children", "Comedy"), ("ogre", "fairy tale", "animation")),
    ("6", "Alien", 1979, ("Horror", "Sci-Fi"), ("space", "monster", "gory")),
    ("7", "Aliens", 1986, ("Action", "Horror", "Sci-Fi"), ("space", "marines", "gory")),
    ("8", "Solaris", 1972, ("Drama", "Sci-Fi"), ("space", "slow", "philosophical")),
    ("9", "2001: A Space Odyssey", 1968, ("Sci-Fi",), ("space", "slow", "philosophical")),
    ("10", "Saw", 2004, ("Horror", "Thriller"), ("gory", "torture")),
    ("11", "Notting Hill", 1999, ("Comedy", "Romance"), ("love", "london")),
    ("12", "Love Actually", 2003, ("Comedy", "Romance"), ("love", "christmas", "london")),
    ("13", "Before Sunrise", 1995, ("Drama", "Romance"), ("love", "train", "talk")),
    ("14", "Blade Runner", 1982, ("Sci-Fi", "Thriller"), ("replicants", "slow", "future")),
    ("15", "Matrix, The", 1999, ("Action", "Sci-Fi"), ("simulation", "hackers", "future")),
    ("16", "Heat", 1995, ("Action", "Crime"), ("heist", "los angeles")),
    ("17", "Godfather, The", 1972, ("Crime", "Drama"), ("mafia", "family")),
    ("18", "Up", 2009, ("Animation", "Adventure"), ("balloon", "pixar", "animation")),
    ("19", "Event Horizon", 1997, ("Horror", "Sci-Fi"), ("space", "gory", "hell")),
    ("20", "Interstellar", 2014, ("Sci-Fi", "Drama"), ("space", "slow", "wormhole")),
    ("21", "Sabrina", 1954, ("Comedy", "Romance"), ("love",)),
    ("22", "Sabrina", 1995, ("Comedy", "Romance"), ("love", "remake")),
]
HISTORIES = {  # user -> [(item, rating)] in time order
    "u1": [("1", 5), ("3", 4), ("4", 5), ("11", 2)],
    "u2": [("6", 5), ("7", 4), ("14", 5), ("15", 4), ("12", 1)],
    "u3": [("11", 5), ("12", 4), ("13", 5), ("1", 3)],
    "u4": [("1", 4), ("2", 5), ("5", 4), ("18", 4)],
    "u5": [("8", 5), ("9", 5), ("20", 4), ("14", 4)],
    "u6": [("6", 4), ("10", 5), ("19", 4), ("7", 5)],
    "u7": [("16", 5), ("17", 5), ("15", 4), ("14", 3)],
    "u8": [("2", 4), ("3", 5), ("18", 5), ("4", 4), ("5", 3)],
}
ITEMS = {m[0]: Item(m[0], m[1], m[2], m[3], keywords=m[4]) for m in MOVIES}


def toy_dataset() -> Dataset:
    rows = [
        Interaction(u, i, float(r), 1000 + 10 * n) for u, hist in HISTORIES.items() for n, (i, r) in enumerate(hist)
    ]
    return Dataset("toy", ITEMS, Interactions.from_rows(rows))


class CooccurrenceScorer:
    """A toy collaborative scorer: how often each item co-occurs with the history, plus a little popularity."""

    def __init__(self, seq: SequenceData) -> None:
        x = np.zeros((seq.n_users, seq.n_items), dtype=np.float32)
        for u, items in enumerate(seq.sequences):
            x[u, items] = 1.0
        self.cooc = x.T @ x
        self.pop = x.sum(axis=0)
        self.calls: list[tuple[list[int], list[list[int]]]] = []

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        self.calls.append((list(users), [list(h) for h in histories]))
        return np.stack([self.cooc[np.asarray(h, dtype=int)].sum(axis=0) + 0.01 * self.pop for h in histories])


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return toy_dataset()


@pytest.fixture(scope="module")
def seq(ds) -> SequenceData:
    return preprocess(ds, min_count=1)


@pytest.fixture(scope="module")
def emb() -> HashingEmbedder:
    return HashingEmbedder(256)


@pytest.fixture(scope="module")
def memory_index(ds, emb) -> MemoryIndex:
    index = MemoryIndex(store_spec(emb))
    build_index(ds, emb, index)
    return index


@pytest.fixture(scope="module")
def chroma_index(ds, emb, tmp_path_factory):
    index = open_chroma_index(store_spec(emb), path=tmp_path_factory.mktemp("retrieval") / "store")
    build_index(ds, emb, index)
    return index


def make_retriever(name: str, ds, seq, emb, memory_index, chroma_index) -> Retriever:
    text = TextRetriever(memory_index, emb, items=ds.items)
    cf = CollaborativeRetriever(CooccurrenceScorer(seq), seq, label="co-occurrence", items=ds.items)
    return {
        "text-memory": lambda: text,
        "text-chroma": lambda: TextRetriever(chroma_index, emb, items=ds.items),
        "cf": lambda: cf,
        "hybrid-rrf": lambda: HybridRetriever([text, cf]),
        "hybrid-weighted": lambda: HybridRetriever([text, cf], method="weighted", weights=(0.7, 0.3)),
        "text+mmr": lambda: DiversifiedRetriever(text, MMRDiversifier(memory_index, lam=0.5)),
        "hybrid+mmr": lambda: DiversifiedRetriever(HybridRetriever([text, cf]), MMRDiversifier(chroma_index, 0.3)),
    }[name]()


def profiles(ds) -> dict[str, UserProfile]:
    u1 = history_profile(ds, "u1")
    return {
        "history": u1,
        "history+exclusions": UserProfile("u1", u1.history, disliked=("2",), excluded=("5", "18")),
        "likes": likes_profile(["Toy Story (1995)"], ds.items),
        "query": build_profile(ds, query="slow space films, nothing gory"),
        "likes+query": build_profile(ds, likes=["Alien"], query="philosophical"),
        "unknown-user": history_profile(ds, "nobody"),
        "nearly-everything-seen": UserProfile("u9", tuple(HistoryEntry(i) for i in ITEMS if i not in ("9", "13"))),
    }


RETRIEVERS = ["text-memory", "text-chroma", "cf", "hybrid-rrf", "hybrid-weighted", "text+mmr", "hybrid+mmr"]


def check_contract(candidates: list[Candidate], profile: UserProfile, k: int) -> None:
    ids = [c.item_id for c in candidates]
    assert len(candidates) <= k
    assert len(set(ids)) == len(ids), "duplicates"
    assert not set(ids) & profile.seen, "seen, disliked or excluded item returned"
    assert set(ids) <= set(ITEMS), "item outside the catalogue"
    scores = [c.score for c in candidates]
    assert all(np.isfinite(scores))
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(scores)), f"scores increase: {scores}"
    assert all(isinstance(c, Candidate) and c.sources and isinstance(c.evidence, Evidence) for c in candidates)


@pytest.mark.parametrize("k", [1, 3, 50])
@pytest.mark.parametrize("name", RETRIEVERS)
def test_retriever_contract(name, k, ds, seq, emb, memory_index, chroma_index):
    retriever = make_retriever(name, ds, seq, emb, memory_index, chroma_index)
    assert isinstance(retriever, Retriever)
    for label, profile in profiles(ds).items():
        candidates = retriever.retrieve(profile, k)
        check_contract(candidates, profile, k)
        if label == "unknown-user":
            assert candidates == []
        if label == "history" and name != "cf":
            assert len(candidates) == min(k, len(ITEMS) - len(profile.seen))
    assert retriever.retrieve(profiles(ds)["history"], 0) == []


# -- profiles ---------------------------------------------------------------------------------
def test_history_profile_and_newcomer_note(ds):
    u1 = history_profile(ds, "u1")
    assert [e.item_id for e in u1.history] == ["1", "3", "4", "11"] and not u1.is_newcomer
    stranger = history_profile(ds, "nobody")
    assert stranger.is_newcomer and stranger.history == () and "not in data set 'toy'" in stranger.notes[0]


def test_liked_weights_use_mean_or_four_and_favour_recent(ds):
    weights = liked_weights(history_profile(ds, "u1"))  # ratings 5, 4, 5, 2 -> mean 4: 11 (2) is not liked
    assert list(weights) == ["4", "3", "1"]
    assert weights["4"] > weights["1"]  # same rating, more recent
    unrated = UserProfile(history=(HistoryEntry("1"), HistoryEntry("2")), disliked=("2",))
    assert list(liked_weights(unrated)) == ["1"]


@pytest.mark.parametrize(
    "text, positive, negatives",
    [
        ("slow sci-fi, nothing gory", "slow sci-fi", ("gory",)),
        ("no horror or gore, something heartwarming", "something heartwarming", ("horror", "gore")),
        ("funny but not too long", "funny", ("long",)),
        ("I hate musicals", "", ("musicals",)),
        ("space opera", "space opera", ()),
    ],
)
def test_parse_preferences(text, positive, negatives):
    parsed = parse_preferences(text)
    assert (parsed.text, parsed.positive, parsed.negatives) == (text, positive, negatives)


@pytest.mark.parametrize(
    "query, expected",
    [("Toy Story (1995)", "1"), ("toy story", "1"), ("Toy Stroy (1995)", "1"), ("The Matrix", "15"),
     ("Sabrina (1954)", "21"), ("Sabrina (1995)", "22"), ("godfather", "17")],
)  # fmt: skip
def test_resolve_title(query, expected, ds):
    assert resolve_title(query, ds.items).item_id == expected


def test_ambiguous_title_says_which_was_chosen(ds):
    match = resolve_title("Sabrina", ds.items, popularity={"22": 10, "21": 1})
    assert match.item_id == "22" and "also matches Sabrina (1954)" in match.note


def test_unknown_title_suggests_the_closest_three(ds):
    with pytest.raises(DataError, match=r"no title like 'Toy Storm 4 \(2019\)'.*closest: 'Toy Story") as err:
        resolve_title("Toy Storm 4 (2019)", ds.items)
    assert str(err.value).count("'") >= 8  # the query and three quoted suggestions
    with pytest.raises(DataError, match="no title"):
        resolve_title("(1999)", ds.items)


def test_build_profile_mixes_user_likes_and_query(ds):
    profile = build_profile(ds, user="u2", likes=["Toy Story (1995)"], query="nothing gory")
    assert profile.user_id == "u2" and profile.history[-1] == HistoryEntry("1")
    assert profile.stated_preferences == ("nothing gory",)


# -- retriever behaviour ----------------------------------------------------------------------
def test_text_retriever_finds_similar_items_with_evidence(ds, emb, memory_index):
    retriever = TextRetriever(memory_index, emb, items=ds.items)
    candidates = retriever.retrieve(likes_profile(["Toy Story (1995)"], ds.items), 4)
    assert candidates[0].item_id == "2"  # Toy Story 2
    assert all("Animation" in ds.items[c.item_id].genres for c in candidates[:3])
    top = candidates[0]
    assert top.sources == ("text",) and top.evidence.similar_liked == ("1",)
    assert "Animation" in top.evidence.shared_genres and top.evidence.stage_scores[0][0] == "text"


def test_negatives_and_dislikes_push_items_down(ds, emb, memory_index):
    retriever = TextRetriever(memory_index, emb, items=ds.items)

    def scores(profile: UserProfile) -> dict[str, float]:
        return {c.item_id: c.score for c in retriever.retrieve(profile, len(ITEMS))}

    plain = scores(UserProfile(stated_preferences=("space monster films",)))
    no_gore_profile = UserProfile(stated_preferences=("space monster films, nothing gory",))
    no_gore = scores(no_gore_profile)
    assert no_gore["6"] < plain["6"] - 0.05  # Alien is gory
    assert no_gore["9"] == pytest.approx(plain["9"])  # 2001 is not
    disliking = scores(UserProfile(stated_preferences=("space monster films",), disliked=("7",)))
    assert disliking["19"] < plain["19"] - 0.05  # Event Horizon is like the disliked Aliens
    assert "7" not in disliking
    matched = retriever.retrieve(no_gore_profile, 3)
    assert matched[0].evidence.matched_preferences == ("space monster films, nothing gory",)


def test_collaborative_retriever_maps_ids_and_masks_history(ds, seq):
    scorer = CooccurrenceScorer(seq)
    assert isinstance(scorer, CollaborativeScorer)
    cf = CollaborativeRetriever(scorer, seq, label="co-occurrence", items=ds.items)
    known = cf.retrieve(history_profile(ds, "u1"), 5)
    users, histories = scorer.calls[-1]
    assert users == [seq.user_index["u1"]]
    assert [seq.item_ids[d] for d in histories[0]] == ["1", "3", "4", "11"]
    # Toy Story 2's fans are u4 and u8; u1's liked films Monsters, Inc. (fans u1, u8), Finding Nemo (u1, u8) and
    # Toy Story (u1, u4) each share one fan with it (cosine 0.5): the most recent liked one is named.
    assert known[0].item_id == "2" and known[0].evidence.similar_liked == ("4",)
    assert known[0].evidence.collaborative == "people who liked Monsters, Inc. also liked it"
    assert all("co-occurrence" not in (c.evidence.collaborative or "") for c in known)  # no model names
    assert known[0].evidence.stage_scores[0][0] == "cf"  # the score stays recorded
    newcomer = cf.retrieve(likes_profile(["Toy Story (1995)"], ds.items), 3)
    assert scorer.calls[-1][0] == [-1] and scorer.calls[-1][1] == [[seq.item_index["1"]]]
    assert newcomer and "1" not in {c.item_id for c in newcomer}
    assert cf.retrieve(UserProfile(stated_preferences=("space",)), 3) == []
    only_known = CollaborativeRetriever(scorer, seq, items={k: v for k, v in ITEMS.items() if k != "2"})
    assert "2" not in {c.item_id for c in only_known.retrieve(history_profile(ds, "u4"), 50)}


class Fixed:
    def __init__(self, name: str, ids: list[str]) -> None:
        self.name = name
        self.ids = ids

    def retrieve(self, profile: UserProfile, k: int) -> list[Candidate]:
        return [Candidate(i, 1.0 - n / 10, (self.name,), Evidence(stage_scores=((self.name, 1.0 - n / 10),)))
                for n, i in enumerate(self.ids[:k])]  # fmt: skip


def test_reciprocal_rank_fusion_by_hand():
    hybrid = HybridRetriever([Fixed("a", ["x", "y", "z"]), Fixed("b", ["y", "w"])], rrf_k=60)
    out = hybrid.retrieve(UserProfile(), 10)
    assert [c.item_id for c in out] == ["y", "x", "w", "z"]
    assert out[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert out[0].sources == ("a", "b") and dict(out[0].evidence.stage_scores).keys() == {"a", "b", "rrf"}
    weighted = HybridRetriever([Fixed("a", ["x", "y", "z"]), Fixed("b", ["y", "w"])], "weighted", (1.0, 3.0))
    assert [c.item_id for c in weighted.retrieve(UserProfile(), 2)] == ["y", "x"]  # y: 0.5 + 3, x: 1
    assert [c.item_id for c in hybrid.retrieve(UserProfile(excluded=("y",)), 10)] == ["x", "w", "z"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "borda"}, "unknown fusion"),
        ({"weights": (1.0,)}, "one non-negative"),
        ({"weights": (0, 0)}, "not all"),
    ],
)
def test_hybrid_config_is_validated(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        HybridRetriever([Fixed("a", []), Fixed("b", [])], **kwargs)
    with pytest.raises(ConfigError, match="at least one"):
        HybridRetriever([])


def test_mmr_trades_relevance_for_variety():
    vectors = {"a": np.array([1.0, 0.0]), "a2": np.array([0.99, 0.141]), "b": np.array([0.0, 1.0])}
    ranked = [Candidate("a", 0.9), Candidate("a2", 0.89), Candidate("b", 0.5)]
    assert [c.item_id for c in mmr(ranked, vectors, 3, 1.0)] == ["a", "a2", "b"]
    diverse = mmr(ranked, vectors, 3, 0.5)
    assert [c.item_id for c in diverse] == ["a", "b", "a2"]
    assert [c.score for c in diverse] == sorted((c.score for c in diverse), reverse=True)
    assert diverse[1].evidence.stage_scores[-1][0] == "mmr"
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        mmr(ranked, vectors, 3, 1.5)


def test_top_candidates_orders_and_filters():
    scores = {"b": 1.0, "a": 1.0, "c": 2.0, "d": float("nan")}
    assert top_candidates(scores, 5, banned={"c"}) == [("a", 1.0), ("b", 1.0)]


# -- the service ------------------------------------------------------------------------------
def toy_scorer_factory(name: str, seq: SequenceData) -> CollaborativeScorer:
    assert name == "ease"
    return CooccurrenceScorer(seq)


@pytest.fixture
def service(ds, tmp_path):
    """``Recommender.recommend`` as the CLI calls it, on the toy catalogue with a hashing embedder."""

    def call(user=None, likes=(), query=None, k=10, **sections) -> Recommendations:
        config = RecommenderConfig().updated(embedder={"name": "hashing-256"}, data={"min_count": 1},
                                             cache_dir=tmp_path, **sections)  # fmt: skip
        rec = Recommender(config, dataset=ds, scorer_factory=toy_scorer_factory)
        return rec.recommend(rec.profile(user=user, likes=likes, query=query), k=k, explain=False)

    return call


def test_recommend_builds_the_store_on_first_use(service, tmp_path):
    first = service(likes=["Toy Story (1995)"], k=3, retrieval={"retriever": "text"})
    assert any("built the vector store" in n for n in first.notes)
    assert (tmp_path / "stores" / "toy-hashing-256" / "chroma.sqlite3").is_file()
    assert first.items[0].item.display_title == "Toy Story 2 (1999)" and first.items[0].sources == ("text",)
    again = service(likes=["Toy Story (1995)"], k=3, retrieval={"retriever": "text"})
    assert not any("built" in n for n in again.notes)
    assert [r.item.item_id for r in again.items] == [r.item.item_id for r in first.items]


@pytest.mark.parametrize("retriever", ["text", "cf", "hybrid"])
def test_recommend_for_a_known_user(service, retriever):
    result = service(user="u1", k=5, retrieval={"retriever": retriever})
    assert 0 < len(result.items) <= 5 and result.retriever in (retriever, "text", "cf")
    assert not {r.item.item_id for r in result.items} & {"1", "3", "4", "11"}
    assert all(r.evidence.stage_scores and r.explanation for r in result.items)


def test_recommend_for_newcomers_and_strangers(service):
    query_only = service(query="slow space films, nothing gory", k=3)
    assert query_only.items and query_only.retriever == "text"
    assert any("collaborative retrieval skipped" in n for n in query_only.notes)
    stranger = service(user="nobody", k=3)
    assert stranger.items == [] and any("newcomer" in n for n in stranger.notes)
    diverse = service(likes=["Toy Story (1995)"], k=4, retrieval={"diversity": 0.5})
    assert diverse.retriever == "hybrid+mmr" and len(diverse.items) == 4


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"user": "u1", "k": 0}, ConfigError, "at least 1"),
        ({"user": "u1", "retrieval": {"retriever": "magic"}}, ConfigError, "unknown retriever"),
        ({"user": "u1", "retrieval": {"diversity": 2.0}}, ConfigError, "diversity"),
        ({"likes": ["No Such Film (2042)"]}, DataError, "closest"),
    ],
)
def test_recommend_rejects_bad_requests(service, kwargs, error, message):
    with pytest.raises(error, match=message):
        service(**kwargs)


def test_index_dataset_reports(ds, tmp_path: Path):
    report = index_dataset(ds, cache_dir=tmp_path, embedder="hashing-256")
    assert (report.embedded, report.total) == (len(ITEMS), len(ITEMS))
    assert index_dataset(ds, cache_dir=tmp_path, embedder="hashing-256").unchanged == len(ITEMS)
    assert index_dataset(ds, cache_dir=tmp_path, embedder="hashing-256", rebuild=True).embedded == len(ITEMS)


def test_hybrid_falls_back_to_text_when_the_data_is_too_small_for_cf(ds, tmp_path):
    config = RecommenderConfig().updated(embedder={"name": "hashing-256"}, cache_dir=tmp_path)
    rec = Recommender(config, dataset=ds, scorer_factory=toy_scorer_factory)
    result = rec.recommend(rec.profile(user="u1"), explain=False)
    assert result.retriever == "text" and any("5-core" in n for n in result.notes)
    with pytest.raises(DataError, match="too small"):
        rec.variant(retrieval={"retriever": "cf"}).recommend(rec.profile(user="u1"))


def test_fuse_available_uses_the_weighted_retrievers_that_exist():
    from llmrec.retrieval.fusion import fuse_available

    a, b, c = Fixed("a", ["1", "2", "3"]), Fixed("b", ["3", "2", "1"]), Fixed("c", ["9"])
    assert fuse_available({"a": a, "b": None}, {"a": 1.0, "b": 1.0}) is a
    assert fuse_available({"a": None}, {"a": 1.0}) is None and fuse_available({"c": c}, {"a": 1.0}) is None
    fused = fuse_available({"a": a, "b": b, "c": c}, {"a": 1.0, "b": 3.0, "c": 0.0}, rrf_k=1.0)
    assert isinstance(fused, HybridRetriever) and fused.weights == (1.0, 3.0)
    assert [x.item_id for x in fused.retrieve(UserProfile(), 3)] == ["3", "2", "1"]  # b's order weighs three times
