"""The real packaged MiniLM embedder and a real Chroma store on ml-latest-small.

Embedding all 9,742 movies takes minutes on a shared 2-core CPU, so the store here holds a fixed
subset: user 1's movies, Toy Story and 400 movies drawn with a fixed seed. The full build is
measured by ``benchmarks/retrieval.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmrec.config import RecommenderConfig
from llmrec.data import load_dataset
from llmrec.data.dataset import Dataset, Interactions
from llmrec.embedding import get_embedder
from llmrec.pipeline import Recommender

pytestmark = [pytest.mark.real_model, pytest.mark.slow]


@pytest.fixture(scope="module")
def embedder(session_cache: Path):
    return get_embedder("all-minilm-l6-v2", cache_dir=session_cache)


@pytest.fixture(scope="module")
def subset(shared_data: Path) -> Dataset:
    full = load_dataset("ml-latest-small", data_dir=shared_data)
    inter = full.interactions
    rng = np.random.default_rng(0)
    keep = set(inter.item_ids[inter.user_ids == "1"].tolist()) | {"1"}
    keep |= set(rng.choice(sorted(full.items), size=400, replace=False).tolist())
    rows = np.isin(inter.item_ids, sorted(keep))
    sub = Interactions(inter.user_ids[rows], inter.item_ids[rows], inter.ratings[rows], inter.timestamps[rows])
    return Dataset("ml-latest-small-subset", {i: full.items[i] for i in keep}, sub)


def test_minilm_embeds_meaning(embedder):
    vectors = embedder.embed(["a funny animated film for children", "Toy Story: toys come alive, Pixar animation",
                              "a gory slasher horror movie", "", "😀 שלום \ud800"])  # fmt: skip
    assert embedder.dim == 384 and vectors.shape == (5, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.1


def recommend(subset: Dataset, cache: Path, k: int = 10, retriever: str = "hybrid", **who) -> list:
    rec = Recommender(RecommenderConfig().updated(retrieval={"retriever": retriever}, cache_dir=cache), dataset=subset)
    return rec.recommend(rec.profile(**who), k=k, explain=False).items


def test_like_toy_story_gives_animation_and_children_films(subset, session_cache):
    items = recommend(subset, session_cache, likes=["Toy Story (1995)"], retriever="text")
    assert len(items) == 10 and "1" not in {r.item.item_id for r in items}
    family = [r.item for r in items if {"Animation", "Children"} & set(r.item.genres)]
    assert len(family) >= 6, [(r.item.title, r.item.genres) for r in items]
    assert items[0].evidence.similar_liked == (subset.items["1"].display_title,)  # evidence speaks in titles


def test_user_1_gets_ten_unseen_items(subset, session_cache):
    seen = set(subset.interactions.item_ids[subset.interactions.user_ids == "1"].tolist())
    items = recommend(subset, session_cache, user="1")  # hybrid: text + EASE
    assert len(items) == 10
    assert not {r.item.item_id for r in items} & seen
    assert {"text", "cf"} & {s for r in items for s in r.sources}
