"""Onboarding a newcomer: a few informative questions, then recommendations.

First the mood (genres), then well-known items to react to. Each item question picks, among popular
items the user has not been asked about, the one whose genres split the current candidate pool most
evenly (weighted by popularity, so people are likely to know it): either answer then tells the
recommender the most. It stops as soon as the profile is good enough (two liked items, or one liked
item plus stated genres) and never asks more than ``MAX_QUESTIONS`` before the first recommendations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from llmrec.chat.state import ChatState
from llmrec.types import Item

MAX_QUESTIONS = 5
GENRE_CHIPS = ("Comedy", "Drama", "Action", "Sci-Fi", "Animation", "Thriller", "Romance", "Horror", "Fantasy",
               "Crime")  # fmt: skip
ITEM_CHIPS = ("Loved it", "Not for me", "Haven't seen it", "Skip", "Just recommend")
POPULAR_POOL = 150


def profile_is_enough(state: ChatState) -> bool:
    liked = len(state.liked) + len(state.outside_liked)  # a liked film outside the rated catalogue counts too
    return liked >= 2 or (liked >= 1 and bool(state.wanted_genres or state.preferences))


def should_ask(state: ChatState) -> bool:
    """Whether onboarding asks another question before recommending."""
    if state.onboarding == "done" or state.questions_asked >= MAX_QUESTIONS:
        return False
    return not profile_is_enough(state)


def _split_score(item: Item, pool: Sequence[Item]) -> float:
    if not pool or not item.genres:
        return 0.0
    mine = set(item.genres)
    share = sum(1 for other in pool if mine & set(other.genres)) / len(pool)
    return min(share, 1.0 - share)


def next_item_question(state: ChatState, items: Mapping[str, Item], popularity: Mapping[str, int],
                       pool: Sequence[str]) -> str | None:  # fmt: skip
    """The popular item whose answer splits ``pool`` (current candidate ids) most evenly."""
    asked = set(state.asked_items) | set(state.liked) | set(state.disliked) | set(state.seen)
    popular = [i for i in sorted(popularity, key=lambda i: (-popularity[i], i)) if i in items and i not in asked]
    popular = popular[:POPULAR_POOL]
    if state.wanted_genres:
        wanted = set(state.wanted_genres)
        matching = [i for i in popular if wanted & set(items[i].genres)]
        popular = matching or popular
    avoided = set(state.avoided_genres)
    popular = [i for i in popular if not avoided & set(items[i].genres)] or popular
    if not popular:
        return None
    pool_items = [items[i] for i in pool if i in items] or [items[i] for i in popular]
    top = max(popularity.get(popular[0], 1), 1)

    def value(item_id: str) -> float:
        known = math.log1p(popularity.get(item_id, 0)) / math.log1p(top)
        return (0.5 + _split_score(items[item_id], pool_items)) * known

    return max(popular, key=lambda i: (value(i), -popular.index(i)))
