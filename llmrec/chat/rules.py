"""Reading a message with rules: the fallback when the model fails, and the baseline it is measured against.

``exact_reading`` is the part that stays rules on purpose: whole messages that are a button, a quick
reply chip or a fixed phrase ("quit", "forget me", "why the second one?", "Loved it", "Comedy") mean one
thing, and reading them takes no time, so they never reach the model.

``rule_reading`` reads anything else clause by clause: titles from the catalogue (``spot_titles``), after
a verb ("I loved Inception") or capitalised; card positions and "it"; genre words; and the clause's
stance from its words (hated, haven't seen, loved...), carried over "and"/commas, with "X > Y" and
"loved both" handled. It is honest about what rules cannot do: the benchmark shows where it misses.
"""

from __future__ import annotations

import re

from llmrec.chat.intents import MOODS, card_position, genre_of, mood_words, ordinals_in, years_in
from llmrec.chat.linking import Catalogue
from llmrec.chat.mentions import _EVERYDAY, spot_titles
from llmrec.chat.understanding import Reading, ReadingContext
from llmrec.profile import normalise_title

MAX_PHRASE = 80  # longer runs of words are not titles, genres or themes

# Requests --------------------------------------------------------------------------------------------------
_CHIP_WORDS = r"(?:please|pls|thanks|thank you|now|then|maybe|instead|ok|okay)"
EXACT: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(rf"^\s*(?:{pattern})\s*(?:,?\s*{_CHIP_WORDS})?\s*[.!?]*\s*$", re.IGNORECASE))
    for kind, pattern in (
        ("quit", r"quit|exit|bye|goodbye|bye bye|stop"),
        ("forget", r"forget me|forget about me|forget everything|delete my (?:data|profile|history)|"
                   r"delete everything|forget me please"),
        ("restart", r"start over|restart|reset|start again|fresh start"),
        ("help", r"help|\?|what can you do|how does this work"),
        ("skip", r"skip|pass|no idea|dunno|don'?t know|not sure|next question|whatever"),
        ("recommend", r"recommend|recommend something|recommend me something|just recommend|go|ready|"
                      r"show me|surprise me|give me something|let'?s see"),
        ("newer", r"something newer|newer|more recent|newer ones?"),
        ("older", r"something older|older|older ones?"),
        ("lighter", r"something lighter|lighter|something funnier"),
        ("darker", r"something darker|darker"),
        ("less_violent", r"less violent|something less violent"),
        ("different", r"something (?:else|different)|different ones?|others?"),
        ("chat", r"hi|hello|hey|hi there|hello there|thanks|thank you|thx|cool|nice|great|ok|okay"),
    )
)  # fmt: skip
_WHY_CARD = re.compile(r"^\s*(?:why|how come|explain)(?:\s+(?:(?:the|that)\s+)?(.{1,20}?))?\s*\??\s*$", re.I)
_MORE_LIKE_CARD = re.compile(r"^\s*more like (?:the |that )?(.{1,20}?)\s*(?:please)?\s*[.!?]*\s*$", re.I)
_STANCE_CHIPS = {"loved it": "liked", "liked it": "liked", "love it": "liked", "not for me": "disliked",
                 "didn't like it": "disliked", "haven't seen it": "not_seen", "not seen it": "not_seen",
                 "seen it": "seen", "already seen it": "seen"}  # fmt: skip


def exact_reading(text: str, context: ReadingContext) -> Reading | None:
    """The reading of a message that is a chip, a button or a fixed phrase; None for anything else."""
    lower = " ".join(text.lower().split()).strip()
    if lower.rstrip(".! ") in _STANCE_CHIPS and context.focus:
        return Reading(**{_STANCE_CHIPS[lower.rstrip(".! ")]: ["it"]})
    if len(lower) > 200:  # no button or fixed phrase is this long
        return None
    if context.pending and (choice := _pending_choice(lower, context)) is not None:
        return Reading(requests=["skip"]) if choice == "none" else Reading(mentioned=[choice])
    for kind, pattern in EXACT:
        if pattern.match(lower):
            return Reading(requests=[kind])
    for pattern, kind in ((_WHY_CARD, "why"), (_MORE_LIKE_CARD, "more_like")):
        if m := pattern.match(lower):
            target = (m.group(1) or "").strip()
            if not target or target in ("one", "this", "that", "it") or card_position(target) is not None:
                return Reading(asked=[target] if target else [], requests=[kind])
    words = mood_words(lower)
    leftover = lower
    for word in words:
        leftover = leftover.replace(word, " ", 1)
    if words and len(lower) <= 40 and re.fullmatch(r"[\s,&/]*(?:(?:and|or)[\s,&/]*)*", leftover):  # genre chips
        return Reading(liked=[text.strip()])
    return None


def _pending_choice(lower: str, context: ReadingContext) -> str | None:
    """The option of an open "which one did you mean?" question a message picks: its title, year or position;
    "none" to drop the question; None when the message is about something else."""
    if re.search(r"\bnone\b|\bneither\b|\bnot (?:these|those|any)\b", lower):
        return "none"
    for _, title in context.pending:
        year = re.search(r"\((\d{4})\)$", title)
        if title.lower() in lower or (year and re.search(rf"\b{year.group(1)}\b", lower)):
            return title
    position = card_position(lower.replace("one", "").strip()) or card_position(lower)
    if position is not None and (position == -1 or 0 < position <= len(context.pending)):
        return context.pending[position if position == -1 else position - 1][1]
    return None


_REQUESTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern, re.IGNORECASE))
    for kind, pattern in (
        ("forget", r"\bforget (?:me|about me|everything)\b|\b(?:delete|remove) (?:my|all my) (?:data|profile|history)"),
        ("restart", r"\b(?:start over|restart|start again|from scratch)\b|^reset\b"),
        ("why_not", r"\bwhy (?:not|isn'?t|didn'?t you (?:recommend|suggest|pick))\b|"
                    r"\bhow come (?:you )?(?:didn'?t|not)"),
        ("why", r"\bwhy\b(?! not)|\bexplain\b|\bhow come\b"),
        ("more_like", r"\bmore like\b|\bsimilar to\b|\bsomething like\b|\bmore of (?:that|those|this)\b"),
        ("newer", r"\bnewer\b|\bmore recent\b|\brecent ones?\b"),
        ("older", r"\bolder (?:ones|films|movies|stuff)\b|\banything older\b|^older\b"),
        ("lighter", r"\blighter\b|\bmore cheerful\b|\bless dark\b|\bfunnier\b|\bhappier\b"),
        ("darker", r"\bdarker\b"),
        ("less_violent", r"\bless violent\b|\btoo violent\b|\bless gory\b"),
        ("shorter", r"\bshorter\b"),
        ("different", r"\bsomething (?:else|different)\b|\bother options\b|\bdifferent ones\b|\bnone of these\b"),
        ("recommend", r"\b(?:recommend|suggest|what (?:should|can|could) i watch|give me|show me|ideas|in the mood "
                      r"for|feel like watching|i want (?:a|some|something|to watch)|i need a|worth watching)\b|"
                      r"\bany (?:good )?\w+(?: movies| films)?\?"),
        ("quit", r"\b(?:goodbye|bye)\b"),
        ("help", r"\bhow does this work\b|\bwhat can you do\b"),
    )
)  # fmt: skip


def rule_requests(lower: str) -> list[str]:
    found = [kind for kind, pattern in _REQUESTS if pattern.search(lower)]
    if "why_not" in found and "why" in found:
        found.remove("why")
    if "why" in found or "why_not" in found:
        found = [k for k in found if k != "recommend"]
    if any(k in found for k in ("more_like", "newer", "older", "lighter", "darker", "less_violent", "different")):
        found = [k for k in found if k != "recommend"]
    return found[:4]


# Stances ---------------------------------------------------------------------------------------------------
_STANCES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (stance, re.compile(pattern, re.IGNORECASE))
    for stance, pattern in (
        ("asked", r"^\s*(?:why|how come|explain|what about|tell me about|what'?s|more like|something like|"
                  r"similar to)\b|\bwhy (?:not|isn'?t)\b"),
        ("not_seen", r"\b(?:haven'?t|have not|never|not|didn'?t|did not)\s+(?:yet\s+)?(?:seen|watched|see|watch)\b"),
        ("disliked", r"\b(?:hated?|dislike[ds]?|(?:didn'?t|did not|don'?t|do not|does not|doesn'?t)\s+(?:really\s+)?"
                     r"(?:like|enjoy|love|care for)|(?:couldn'?t|can'?t|cannot) stand|not (?:a fan|for me|into|my)|"
                     r"isn'?t for me|boring|bored|awful|terrible|worst|overrated|overated|overhyped|letdown|let down|"
                     r"disappointing|dumb|stupid|cheesy|exhausting|too (?:long|slow|scary|violent|intense|crude)|"
                     r"put me to sleep|never again|nope|nah|not the|meh)\b"),
        ("interested", r"\b(?:want to (?:see|watch)|sounds (?:good|great|interesting)|check (?:it|that) out|"
                       r"on my (?:list|watchlist)|rather watch|would watch|i'?d watch)\b"),
        ("liked", r"\b(?:lov(?:e|ed|es|ing)|lik(?:e|ed|es)|enjoy(?:ed|s)?|adore[ds]?|favou?rite[s]?|great|amazing|"
                  r"awesome|brilliant|masterpiece[s]?|best|fantastic|excellent|fun|beautiful|genius|classic|sweet|"
                  r"lovely|clever|good|obsessed|forever|blast|peak|insane|charming|adorable|tradition|ritual|"
                  r"must|comfort|life|funniest|funny|tense|prefer|better)\b|[😍❤😭]|>"),
        ("seen", r"\b(?:seen|saw|watched|already|finished)\b|\bwas (?:ok|okay|alright|fine)\b"),
    )
)  # fmt: skip
_CLAUSE = re.compile(r"([.!?;]+\s*|\s*,?\s*\b(?:but|though|although|however|whereas|while|except)\b\s*|\s+>+\s+|"
                     r"\s+(?:over|than)\s+|\s*,\s*)", re.IGNORECASE)  # fmt: skip
_TITLE_AFTER = re.compile(r"\b(?:liked|like|love|loved|adore|enjoyed|enjoy|hated|hate|dislike|seen|watched|saw|"
                          r"about|why not|why|more like|similar to|than|over|finished|watching|watch)\s+(.+)$", re.I)
_ASIDE = re.compile(r"^(?:(?:did |do |would |could |can )?you\s+(?:recommend|suggest|pick|choose)(?:ed)?\s+(?:me\s+)?|"
                    r"the movie\s+|the film\s+|it\b\s*)", re.IGNORECASE)  # fmt: skip
_SPLIT = re.compile(r"\s*(?:,|;|\band\b|&|\bor\b)\s*", re.IGNORECASE)
_STOP = re.compile(r"\s+(?:is|was|were|are|last|yesterday|tonight|again|too|a lot|so much|with|at|for|in|on|"
                   r"both|because|it|and then)\b.*$", re.IGNORECASE)  # fmt: skip
_CAPITALISED = re.compile(r"\b([A-Z][\w'’:&.-]*(?:\s+(?:(?:of|the|a|an|in|and|to|on)\b|[A-Z0-9][\w'’:&.-]*))*)")
_NOT_TITLES = frozenset("them those these both every everything all each much bit lot minute way".split())
_POSITION = re.compile(r"\b(?:the\s+)?(?:first|second|third|fourth|fifth|last|1st|2nd|3rd|4th|5th)(?:\s+(?:one|pick|"
                       r"movie|film))?\b|#\d\b")  # fmt: skip
_CONTRAST = re.compile(r"\b(?:but|though|although|however|whereas|while|except|than|over)\b|>", re.IGNORECASE)
_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)


def clause_stance(lower: str) -> str | None:
    for stance, pattern in _STANCES:
        if pattern.search(lower):
            return stance
    return None


def _known(phrase: str, catalogue: Catalogue) -> bool:
    """Whether a phrase is exactly a catalogue title (normalised, or a main title such as "Kill Bill")."""
    from llmrec.chat.mentions import _index

    table = tuple((iid, it.title, it.year) for iid, it in catalogue.items.items())
    key = normalise_title(phrase)
    return bool(key) and (key in _index(table) or key in catalogue.main_titles)


def _film_phrases(clause: str, catalogue: Catalogue) -> list[str]:
    """Phrases of a clause that name films: catalogue titles, the words after a verb (the first always, the
    others when they are titles or capitalised), capitalised titles, card positions."""
    found: list[str] = [catalogue.items[m.item_id].display_title
                        for m in spot_titles(clause, catalogue.items, catalogue.popularity)]  # fmt: skip
    keys = {normalise_title(f.rsplit(" (", 1)[0]) for f in found}

    def add(phrase: str) -> None:
        phrase = _STOP.sub("", phrase).strip(" .,!?\"'")
        key = normalise_title(phrase)
        words = phrase.lower().split()
        if not key or key in keys or any(key in k for k in keys) or all(
                w in _EVERYDAY or w in MOODS or w in _NOT_TITLES for w in words):
            return
        if genre_of(phrase)[0] and not genre_of(phrase)[1]:  # "horror movies"
            return
        keys.add(key)
        found.append(phrase)

    if m := _TITLE_AFTER.search(clause):
        tail = _ASIDE.sub("", m.group(1).strip())
        for n, part in enumerate(_SPLIT.split(tail)):
            if not ordinals_in(part.lower()) and (n == 0 or part[:1].isupper() or _known(part, catalogue)):
                add(part)
    for m in _CAPITALISED.finditer(clause):
        phrase = m.group(1)
        bare = _ARTICLE.sub("", phrase)
        if not bare or bare.split()[0].lower() in _EVERYDAY or phrase in ("I", "I'm", "I've", "OK"):
            continue
        if " and " in phrase and not _known(phrase, catalogue):  # "Goodfellas and The Godfather"
            for part in phrase.split(" and "):
                add(part)
        else:
            add(phrase)
    found += [m.group(0) for m in _POSITION.finditer(clause.lower())]
    return found


def rule_reading(text: str, context: ReadingContext, catalogue: Catalogue) -> Reading:
    """The reading of ``text`` by rules (see the module docstring)."""
    lists: dict[str, list[str]] = {}
    lower_text = " ".join(text.lower().split())
    previous: list[tuple[str, str]] = []  # (stance, phrase) of the clause before
    carried: str | None = None  # the stance a clause without one takes ("I loved A, B and C")
    parts = _CLAUSE.split(text)
    for clause, separator in zip(parts[::2], [*parts[1::2], ""]):
        if not clause.strip():
            continue
        lower = " ".join(clause.lower().split())
        stance = clause_stance(lower)
        films = _film_phrases(clause, catalogue)
        masked = lower
        for film in films:
            masked = masked.replace(film.split(" (")[0].lower(), " ")
        if not films and stance in ("liked", "disliked", "seen") and any(s == "mentioned" for s, _ in previous):
            previous = [(stance if old == "mentioned" else old, phrase) for old, phrase in previous]  # "Loved both"
            stance = None
        lists = _merge(lists, previous)
        previous = [(stance or carried or "mentioned", f) for f in films]
        carried = None if _CONTRAST.search(separator) else (stance or carried)
        for word in mood_words(masked):
            negated = re.search(rf"\b(?:no|not|nothing|without|avoid|hate|don'?t like|not into|can'?t stand|"
                                rf"dislike|no more|don'?t (?:usually )?watch)\b(?:\s+\w+){{0,3}}\s+{re.escape(word)}",
                                masked)  # fmt: skip
            kind = "disliked" if negated or (stance == "disliked" and not films) else "liked"
            lists.setdefault(kind, []).append(word)
    lists = _merge(lists, previous)
    if ">" in text and lists.get("mentioned"):  # "X > Y": the first is preferred
        lists.setdefault("liked", []).insert(0, lists["mentioned"].pop(0))
    if context.focus and not any(lists.get(k) for k in ("liked", "disliked", "seen", "not_seen", "interested")):
        stance = clause_stance(lower_text)
        if stance in ("liked", "disliked", "seen", "not_seen", "interested"):
            lists.setdefault(stance, []).append("it")  # an answer about the film in focus ("yes! a favourite")
    requests = rule_requests(lower_text)
    if not requests and lists.get("liked") and all(genre_of(p)[0] or years_in(p.lower()) != (None, None)
                                                   for p in lists["liked"]):  # "90s action movies"
        requests = ["recommend"]
    kept = {k: [p for p in dict.fromkeys(v) if len(p) <= MAX_PHRASE][:8] for k, v in lists.items()}
    return Reading(**{k: v for k, v in kept.items() if v}, requests=requests)


def _merge(lists: dict[str, list[str]], pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    for stance, phrase in pairs:
        lists.setdefault(stance, []).append(phrase)
    return lists
