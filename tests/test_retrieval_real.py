"""The real packaged MiniLM embedder and a real Chroma store on ml-latest-small.

Embedding all 9,742 movies takes minutes on a shared 2-core CPU, so the store here holds a fixed
subset: user 1's movies, Toy Story and 400 movies drawn with a fixed seed. The full build is
measured by ``benchmarks/retrieval.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmrec.data import load_dataset
from llmrec.data.dataset import Dataset, Interactions
from llmrec.embedding import get_embedder
from llmrec.recommend import recommend

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


def test_like_toy_story_gives_animation_and_children_films(subset, session_cache):
    result = recommend(subset, cache_dir=session_cache, likes=["Toy Story (1995)"], retriever="text", k=10)
    assert len(result.items) == 10 and "1" not in {i.item_id for i in result.items}
    family = [i for i in result.items if {"Animation", "Children"} & set(i.genres)]
    assert len(family) >= 6, [(i.title, i.genres) for i in result.items]
    assert result.items[0].evidence.similar_liked == ("1",)


def test_user_1_gets_ten_unseen_items(subset, session_cache):
    seen = set(subset.interactions.item_ids[subset.interactions.user_ids == "1"].tolist())
    result = recommend(subset, cache_dir=session_cache, user="1", k=10)  # hybrid: text + EASE
    assert len(result.items) == 10
    assert not {i.item_id for i in result.items} & seen
    assert {"text", "cf"} & {s for i in result.items for s in i.sources}
