"""Evidence: the recorded facts behind a recommendation. Explanations may only use these.

For each recommended item: the genres, keywords and tags it shares with the user's liked items, the
liked items most similar to it, the stated preferences it matches, the collaborative signal its
retriever recorded in plain words ("people who liked The Matrix also liked it"), and every stage's
score (kept for a details view, never put into a sentence).
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Mapping, Sequence

from llmrec.profile import split_title_year
from llmrec.types import Candidate, Evidence, Item, UserProfile

MAX_SHARED = 3
MAX_SIMILAR = 2
RECENT_LIKED = 50
_WORD = re.compile(r"[\w'-]+", re.UNICODE)
_STOP = frozenset("a an and or the of to in on for with without by i me my want like something some any".split())


def liked_items(profile: UserProfile, limit: int = RECENT_LIKED) -> list[str]:
    """Liked history items, most recent first: rated >= 4, or >= the user's mean, or all when unrated."""
    entries = list(profile.history)
    rated = [e.rating for e in entries if e.rating is not None]
    if rated:
        mean = sum(rated) / len(rated)
        threshold = min(4.0, mean)
        entries = [e for e in entries if e.rating is None or e.rating >= threshold]
    disliked = set(profile.disliked)
    ids = [e.item_id for e in reversed(entries) if e.item_id not in disliked]
    return ids[:limit]


def _attributes(item: Item) -> set[str]:
    return {a.lower() for a in (*item.genres, *item.keywords, *item.tags)}


def _key(value: str) -> str:
    """"Sci-Fi", "sci fi" and "scifi" are one attribute."""
    return re.sub(r"[^0-9a-z]+", "", value.lower())


def _shared(values: Sequence[str], liked: Sequence[Item], field: str) -> tuple[str, ...]:
    counts: Counter[str] = Counter()
    for other in liked:
        counts.update({_key(v) for v in getattr(other, field)})
    shared: dict[str, str] = {}
    for value in values:
        if counts[_key(value)] > 0:
            shared.setdefault(_key(value), value)
    ordered = sorted(shared.values(), key=lambda v: -counts[_key(v)])
    return tuple(ordered[:MAX_SHARED])


def _similar(item: Item, liked: Sequence[Item]) -> tuple[str, ...]:
    """Liked items with the highest Jaccard overlap of attributes (ties: most recent first)."""
    mine = _attributes(item)
    if not mine:
        return ()
    scored = []
    for rank, other in enumerate(liked):
        theirs = _attributes(other)
        overlap = len(mine & theirs) / len(mine | theirs) if theirs else 0.0
        if overlap > 0:
            scored.append((-overlap, rank, other.display_title))
    return tuple(title for _, _, title in sorted(scored)[:MAX_SIMILAR])


def preference_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2}


def _matched_preferences(item: Item, preferences: Sequence[str]) -> tuple[str, ...]:
    """Attributes of the item (or title words) that a stated preference names."""
    wanted = set().union(*(preference_words(p) for p in preferences)) if preferences else set()
    if not wanted:
        return ()
    matched = []
    for attribute in (*item.genres, *item.keywords, *item.tags):
        words = preference_words(attribute.replace("-", " ")) | {attribute.lower()}
        if words & wanted and attribute not in matched:
            matched.append(attribute)
    return tuple(matched[:MAX_SHARED])


def collect_evidence(
    profile: UserProfile,
    candidate: Candidate,
    items: Mapping[str, Item],
    stage_scores: Sequence[tuple[str, float]] = (),
) -> Evidence:
    """Evidence for one candidate, merged with what its retriever already recorded."""
    item = items[candidate.item_id]
    liked = [items[i] for i in liked_items(profile) if i in items]
    prior = candidate.evidence
    # Retrievers may record liked items by id; evidence speaks in titles.
    similar = tuple(items[s].display_title if s in items else s for s in prior.similar_liked)
    # A liked film the collaborative line names ("people who liked The Matrix also liked it") is kept first.
    line = f" {(prior.collaborative or '').lower()} "
    similar = tuple(sorted(similar, key=lambda t: f" {split_title_year(t)[0].lower()} " not in line))
    similar = similar or _similar(item, liked)
    return dataclasses.replace(
        prior,
        shared_genres=prior.shared_genres or _shared(item.genres, liked, "genres"),
        shared_keywords=prior.shared_keywords or _shared(item.keywords, liked, "keywords"),
        shared_tags=prior.shared_tags or _shared(item.tags, liked, "tags"),
        similar_liked=tuple(similar[:MAX_SIMILAR]),
        matched_preferences=prior.matched_preferences or _matched_preferences(item, profile.stated_preferences),
        stage_scores=tuple(prior.stage_scores) + tuple((name, float(s)) for name, s in stage_scores),
    )


def evidence_lines(item: Item, evidence: Evidence) -> list[str]:
    """The evidence as short lines in plain words (what the explainer prompt, the CLI and "why?" show);
    scores and model names are not among them (they stay in ``stage_scores``)."""
    lines = [f"genres: {', '.join(item.genres)}" if item.genres else ""]
    pairs = (
        ("similar to items the user liked", evidence.similar_liked),
        ("genres shared with liked items", evidence.shared_genres),
        ("keywords shared with liked items", evidence.shared_keywords),
        ("tags shared with liked items", evidence.shared_tags),
        ("matches what the user asked for", evidence.matched_preferences),
    )
    lines += [f"{label}: {', '.join(values)}" for label, values in pairs if values]
    if evidence.collaborative:
        lines += [line for line in evidence.collaborative.split("; ") if line]
    return [line for line in lines if line]
