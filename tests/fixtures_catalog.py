"""A tiny movie catalogue shared by the ranking and explanation tests."""

from __future__ import annotations

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
