"""The Recommender pipeline end to end on fakes: hashing embedder, memory index, toy scorer, fake LLM."""

from __future__ import annotations

import pytest

from fixtures_catalog import PopularityScorer, fake_recommender, toy_dataset
from llmrec.config import RecommenderConfig
from llmrec.embedding import HashingEmbedder
from llmrec.errors import DataError
from llmrec.index.memory import MemoryIndex
from llmrec.indexing import build_index, store_spec
from llmrec.llm.base import FakeLLM
from llmrec.pipeline import Recommender


@pytest.fixture()
def recommender() -> Recommender:
    return fake_recommender()


def test_known_user_gets_ranked_explained_unseen_items(recommender: Recommender):
    profile = recommender.profile(user="u0")
    recs = recommender.recommend(profile, k=3)
    assert recs.ranker == "llm" and len(recs.items) == 3
    assert not {r.item.item_id for r in recs.items} & profile.seen
    for rec in recs.items:
        assert rec.explanation and rec.explanation_source in ("llm", "template-fallback")
        assert any(name == "llm" for name, _ in rec.evidence.stage_scores)


def test_newcomer_with_nothing_gets_a_note_not_an_error(recommender: Recommender):
    recs = recommender.recommend(recommender.profile(user="nobody"))
    assert recs.items == [] and any("newcomer" in n for n in recs.notes)


def test_likes_and_query_profiles(recommender: Recommender):
    profile = recommender.profile(likes=["Toy Story (1995)"], query="animated ogre comedy")
    assert set(profile.constraints.wanted_genres) == {"Animation", "Comedy"}  # the genres the words name
    recs = recommender.recommend(profile, k=4)
    assert "1" not in {r.item.item_id for r in recs.items}
    # Only three unseen items of the toy catalogue are animated or comedies: no filler makes up the number.
    assert {r.item.item_id for r in recs.items} == {"2", "3", "7"}


def test_a_query_states_constraints_that_every_result_meets(recommender: Recommender):
    from llmrec.profile import constraints_from_text

    stated = constraints_from_text("a comedy from the 2000s, nothing scary")
    assert (stated.wanted_genres, stated.avoided_genres, stated.year_min, stated.year_max) == (
        ("Comedy",), ("Horror",), 2000, 2009)
    recs = recommender.recommend(recommender.profile(query="a comedy from the 2000s"), k=5)
    assert recs.items and all("Comedy" in r.item.genres and 2000 <= r.item.year <= 2009 for r in recs.items)


def test_filters_apply_before_ranking(recommender: Recommender):
    profile = recommender.profile(user="u1")
    recs = recommender.recommend(profile, k=3, keep=lambda item: (item.year or 0) >= 2010)
    assert recs.items and all(r.item.year >= 2010 for r in recs.items)


def test_why_reports_evidence_and_position(recommender: Recommender):
    profile = recommender.profile(user="u0")
    rec, where = recommender.why(profile, "3")
    assert "already in the user's history" in where  # u0 has seen 3
    rec, where = recommender.why(profile, "25")
    assert rec.item.item_id == "25" and rec.explanation
    with pytest.raises(DataError, match="unknown item id"):
        recommender.why(profile, "999")


def test_failing_llm_falls_back_and_says_so():
    ds = toy_dataset()
    emb = HashingEmbedder(dim=64)
    index = MemoryIndex(store_spec(emb))
    build_index(ds, emb, index)
    config = RecommenderConfig().updated(data={"min_count": 3}, ranker={"kind": "llm"}, explainer={"kind": "llm"})
    rec = Recommender(config, dataset=ds, embedder=emb, index=index, llm=FakeLLM(fail=True),
                      scorer_factory=lambda name, seq: PopularityScorer(seq))  # fmt: skip
    out = rec.recommend(rec.profile(user="u2"), k=3)
    assert len(out.items) == 3
    assert any("retrieval order" in n for n in out.notes)
    assert all(r.explanation_source == "template-fallback" for r in out.items)


def test_neural_collaborative_models_train_once_per_data_set(tmp_path):
    from llmrec.data import preprocess
    from llmrec.pipeline.stores import fit_cf_scorer

    seq = preprocess(toy_dataset(), min_count=3)
    first = fit_cf_scorer("ncf", seq, cache_dir=tmp_path)
    folders = list((tmp_path / "cf").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("toy-ncf-")
    stamp = (folders[0] / "state.json").stat().st_mtime
    second = fit_cf_scorer("ncf", seq, cache_dir=tmp_path)
    assert (folders[0] / "state.json").stat().st_mtime == stamp  # loaded, not trained again
    histories = [seq.sequences[0][:-1]]
    assert (first.score([0], histories) == second.score([0], histories)).all()


@pytest.mark.parametrize("retriever", ["cf", "hybrid"])
def test_sasrec_serves_as_the_collaborative_retriever(tmp_path, retriever):
    ds, emb = toy_dataset(), HashingEmbedder(dim=64)
    index = MemoryIndex(store_spec(emb))
    build_index(ds, emb, index)
    config = RecommenderConfig().updated(
        data={"min_count": 3}, cache_dir=tmp_path, retrieval={"retriever": retriever, "cf_model": "sasrec"},
        ranker={"kind": "passthrough"}, explainer={"kind": "template"},
    )  # fmt: skip
    rec = Recommender(config, dataset=ds, embedder=emb, index=index)
    user = ds.interactions.user_ids[0]
    result = rec.recommend(rec.profile(user=user), k=3)
    assert result.items and all(r.item.item_id not in rec.profile(user=user).seen for r in result.items)
    assert any("cf" in r.sources and r.evidence.collaborative for r in result.items)
    assert not any("sasrec" in (r.evidence.collaborative or "") for r in result.items)  # plain words for people
    assert [p.name.split("-")[1] for p in (tmp_path / "cf").iterdir()] == ["sasrec"]  # trained once, kept
