"""Understanding one chat message: what the user wants, and the titles, genres, decades and moods in it.

Rules, not the LLM: intents in a recommender chat are few and their phrasings regular, and rules are
fast, deterministic and testable. Titles are found by the catalogue matcher (``profile.resolve_title``)
on the spans the rules pick out, so fuzzy spellings and years work; the engine asks when unsure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmrec.chat.intents import MOODS, ORDINALS, decades_in, genres_in

_HASH_NUMBER = re.compile(r"(?:#|number\s+|no\.\s*)(\d{1,2})\b")
_ORDINAL_WORDS = "|".join(sorted(ORDINALS, key=len, reverse=True))
_ORDINAL = re.compile(rf"\b({_ORDINAL_WORDS})\b(?:\s+(?:one|movie|film|pick))?")
_QUOTED = re.compile(r"[\"“”']([^\"“”']{2,120})[\"“”']")
_NEGATED = re.compile(r"\b(?:no|not|nothing|without|avoid|hate|don't like|dont like|no more)\s+([\w\s-]{2,40})")


@dataclass(frozen=True)
class Intent:
    kind: str  # see classify()
    text: str
    titles: tuple[str, ...] = ()  # raw title spans, resolved by the engine
    ordinals: tuple[int, ...] = ()  # 1-based positions in the last list shown; -1 = last
    genres: tuple[str, ...] = ()
    avoid_genres: tuple[str, ...] = ()
    decades: tuple[int, ...] = ()
    refine: str = ""  # newer | older | shorter | less-violent | lighter | darker | more-like | different


_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern, re.IGNORECASE))
    for kind, pattern in (
        ("quit", r"^\s*(?:quit|exit|bye|goodbye)\s*[.!]?\s*$"),
        ("forget", r"\bforget (?:me|about me|everything)\b|\bdelete (?:my|all my) (?:data|profile|history)\b"),
        ("restart", r"^\s*(?:start over|restart|reset|start again|new start)\b"),
        ("skip", r"^\s*(?:skip|pass|no idea|don'?t know|dunno|not sure|next question|whatever|any)\s*[.!]?\s*$"),
        ("why_not", r"\bwhy (?:not|didn'?t you (?:recommend|suggest|pick)|no)\b"),
        ("why", r"\bwhy\b|\bexplain\b|\bhow come\b|\breason\b"),
        ("seen", r"\b(?:seen|watched|saw) (?:it|that|this|them|those|already)\b|\balready (?:seen|watched|saw)\b"),
        ("dislike", r"\b(?:dislike[ds]?|hated?|(?:didn'?t|did not|don'?t|do not|does not|doesn'?t) (?:like|enjoy|love)|"
                    r"not for me|not interested|not a fan|boring|awful|terrible)\b"),
        ("refine", r"\b(?:newer|older|more recent|shorter|less (?:violent|scary|dark|gory)|lighter|darker|"
                   r"funnier|more like|similar to|something (?:else|different)|different)\b"),
        ("like", r"\b(?:like|liked|love|loved|adore|enjoy(?:ed)?|favou?rites?|great|fantastic|amazing)\b"),
        ("recommend", r"\b(?:recommend|suggest|what (?:should|can|could) i watch|show me|give me|more|another|"
                      r"ideas?|options?|anything|go|ready|let'?s see)\b"),
        ("help", r"^\s*(?:help|\?|what can you do|how does this work)\s*\??\s*$"),
    )
)  # fmt: skip


def _refine_kind(lower: str) -> str:
    for key, words in (
        ("less-violent", ("less violent", "less gory", "less scary", "nothing violent", "not violent", "gentler")),
        ("newer", ("newer", "more recent", "recent")),
        ("older", ("older", "classic")),
        ("shorter", ("shorter", "short")),
        ("lighter", ("lighter", "funnier", "less dark", "happier")),
        ("darker", ("darker", "more serious")),
        ("more-like", ("more like", "similar to", "like the")),
        ("different", ("something else", "something different", "different")),
    ):
        if any(w in lower for w in words):
            return key
    return ""


def _ordinals(lower: str) -> tuple[int, ...]:
    found = [int(n) for n in _HASH_NUMBER.findall(lower)]
    found += [ORDINALS[m] for m in _ORDINAL.findall(lower)]
    return tuple(dict.fromkeys(found))


_TITLE_AFTER = re.compile(
    r"\b(?:liked|like|love|loved|adore|enjoyed|enjoy|hated|hate|dislike|seen|watched|saw|about|recommend|"
    r"suggest|why not|why|more like|similar to|than)\s+(.+)$",
    re.IGNORECASE,
)
_TRAILING = re.compile(r"\s*(?:[?.!]+|\b(?:too|a lot|very much|so much|please|instead|then)\b)\s*$", re.IGNORECASE)


def title_spans(text: str) -> tuple[str, ...]:
    """Phrases that may be titles: quoted text, or what follows a verb like 'loved' split on 'and'/commas."""
    quoted = tuple(q.strip() for q in _QUOTED.findall(text))
    if quoted:
        return quoted
    match = _TITLE_AFTER.search(text)
    if not match:
        return ()
    tail = match.group(1)
    tail = re.sub(r"^(?:you\s+(?:recommend|suggest)(?:ed)?\s+|did you (?:recommend|suggest)\s+|the movie\s+|it\b)",
                  "", tail.strip(), flags=re.IGNORECASE)  # fmt: skip
    while True:
        trimmed = _TRAILING.sub("", tail)
        if trimmed == tail:
            break
        tail = trimmed
    parts = re.split(r"\s*(?:,|;|\band\b|\bor\b|&)\s*", tail)
    return tuple(p for p in (_clean_span(part) for part in parts) if p)


_FILLER = frozenset("me us something anything it that this them those one ones movie movies film films some more "
                    "stuff things".split())  # fmt: skip


def _clean_span(span: str) -> str:
    """A span that could be a title, or '' for fillers, ordinals, genre and mood phrases."""
    span = re.sub(r"^(?:me|us|to watch|watching|to see|seeing)\s+", "", span.strip(" '\""), flags=re.IGNORECASE)
    lower = span.lower()
    words = re.findall(r"[\w'-]+", lower)
    if len(span) < 2 or not words or all(w in _FILLER for w in words):
        return ""
    if _HASH_NUMBER.search(lower) or re.fullmatch(rf"(?:the\s+)?{_ORDINAL.pattern}", lower):
        return ""
    if _NEGATED.match(lower) or all(w in _FILLER or w in MOODS or w in ("nothing", "no", "not") for w in words):
        return ""
    if any(f" {m} " in f" {lower} " for m in MOODS if " " in m or "-" in m) and all(
        w in _FILLER or any(w in m for m in MOODS) for w in words
    ):
        return ""
    return span


def classify(text: str) -> Intent:
    """The intent of one message (``other`` when nothing matches)."""
    lower = " ".join(text.lower().split())
    kind = "other"
    for name, pattern in _PATTERNS:
        if pattern.search(lower):
            kind = name
            break
    genres, avoid = genres_in(lower)
    titles = () if kind in ("quit", "forget", "restart", "skip", "help") else title_spans(text)
    if kind in ("like", "other") and not titles and (genres or avoid or decades_in(lower)):
        kind = "preference"
    refine = _refine_kind(lower) if kind in ("refine", "dislike", "other", "preference") else ""
    if refine and kind in ("other", "preference"):
        kind = "refine"
    return Intent(
        kind=kind,
        text=text,
        titles=titles,
        ordinals=_ordinals(lower),
        genres=genres,
        avoid_genres=avoid,
        decades=decades_in(lower),
        refine=refine,
    )
