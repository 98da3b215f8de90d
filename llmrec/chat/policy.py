"""The dialogue policy: what one understood message does to the user's state, and what the reply says.

``respond(world, state, understanding)`` runs, in order:

1. an open "which one did you mean?" question: the message picks an option (or drops the question);
2. "start over";
3. the taste the message states — films liked / disliked / seen (by title, card position or "it"),
   genres, themes, people, years — applied to the state; titles that are ambiguous become one question,
   unknown ones are said back (a liked phrase that is no title becomes a description to search by); a film
   outside the rated catalogue (``llmrec.chat.outside``) is kept apart and said back as one the chat can use
   but not recommend;
4. the requests, every one of them: why / why not (answered from the record), more like, refinements,
   recommend, skip, help, chit-chat;
5. the reply: what was understood in plain words ("Got it: ..."), the answers, then the next step —
   recommendations, the next onboarding question, or a helpful question when nothing could be read
   (and then nothing in the state changes).

Quitting and "forget me" never reach here: the conversation handles them before any state is loaded.
"""

from __future__ import annotations

from llmrec.chat import actions
from llmrec.chat import present as show
from llmrec.chat.actions import World
from llmrec.chat.intents import filler_only
from llmrec.chat.mentions import content_words
from llmrec.chat.present import AFTER_RECS, GENRE_CHIPS, HELP, UNREAD, WELCOME, Reply
from llmrec.chat.state import ChatState
from llmrec.chat.understanding import REFINEMENTS, Mention, Understanding
from llmrec.safety import sanitize_output

STANCE_LIST = {"liked": "liked", "interested": "liked", "disliked": "disliked", "seen": "seen"}
RECOMMENDING = ("recommend", "skip", "more_like", *REFINEMENTS)


def respond(world: World, state: ChatState, u: Understanding) -> Reply:
    kinds = u.kinds
    if state.pending:
        picked = _pending(world, state, u)
        if picked is not None:
            return _with(picked, u)
    if "restart" in kinds:
        actions.reset(state)
        if not u.states_taste and set(kinds) <= {"restart", "recommend"}:
            return _with(Reply("Fresh start! " + WELCOME, chips=(*GENRE_CHIPS[:8], "Skip")), u)
    texts: list[str] = []
    before = _limits(state)
    applied, asks, said_back = _apply_taste(world, state, u)
    summary = show.summary(u, actions.films(world), applied)
    if summary:
        texts.append(summary)
    texts += _outside_said(world, u, applied)
    texts += said_back
    if asks is not None:  # a title to disambiguate: ask, and act on the rest once answered
        return _with(Reply(" ".join([*texts, asks.text]), chips=asks.chips), u)
    answers, recommend_prefix = _requests(world, state, u)
    texts += [a.text for a in answers]
    last = answers[-1] if answers else None
    changed = bool(applied) or _limits(state) != before
    if recommend_prefix is not None:
        rec = actions.recommend(world, state, recommend_prefix)
        return _with(_compose(texts, rec), u)
    if answers:
        return _with(Reply("\n\n".join(texts), chips=last.chips if last else ()), u)
    if changed:
        onboarding_answer = state.onboarding == "items" and state.last_item is not None and \
            state.last_item in {m.item_id for m in u.films}  # fmt: skip
        if onboarding_answer:
            state.last_item = None
        if state.onboarding != "done":
            return _with(_compose(texts, actions.next_step(world, state, "")), u)
        return _with(_compose(texts, actions.recommend(world, state, "Updated picks:")), u)
    if texts:
        return _with(Reply(" ".join(texts), chips=("Recommend something",)), u)
    return _with(_nothing(world, state, u), u)


def _limits(state: ChatState) -> tuple:
    """What the taste part of a message can change, to tell whether it changed anything."""
    return (tuple(state.wanted_genres), tuple(state.avoided_genres), tuple(state.topics), tuple(state.people),
            tuple(state.avoided_keywords), state.year_min, state.year_max, tuple(state.preferences))  # fmt: skip


def _with(reply: Reply, u: Understanding) -> Reply:
    return Reply(reply.text, reply.cards, reply.chips, reply.ended, tuple(dict.fromkeys([*reply.notes, *u.notes])), u)


def _compose(texts: list[str], reply: Reply) -> Reply:
    text = "\n\n".join([t for t in (" ".join(texts), reply.text) if t])
    return Reply(text, reply.cards, reply.chips, reply.ended, reply.notes)


# 1. An open question --------------------------------------------------------------------------------------
def _pending(world: World, state: ChatState, u: Understanding) -> Reply | None:
    options, stance = list(state.pending.get("options", [])), state.pending.get("stance", "liked")
    state.pending = {}
    if u.source == "exact" and u.kinds == ("skip",):
        return Reply("No problem. Which title did you mean? Add the year to be precise.")
    chosen = [m.item_id for m in u.films if m.item_id in options]
    if not chosen:
        return None  # the message is about something else: the question lapses
    item_id = chosen[0]
    if item_id not in world.items:
        return _outside_chosen(world, state, item_id, stance)
    if stance in STANCE_LIST:
        actions.mark(state, item_id, STANCE_LIST[stance])
    title = world.items[item_id].display_title
    said = {"liked": "you loved", "interested": "you'd like to watch", "disliked": "you didn't like",
            "seen": "you've seen"}.get(stance, "you mean")  # fmt: skip
    if stance == "why":
        return actions.why(world, state, item_id)
    if stance == "why_not":
        return actions.why_not(world, state, item_id)
    if stance == "more_like":
        actions.mark(state, item_id, "liked")
        return actions.recommend(world, state, f"More like {title}:")
    if stance == "asked":
        state.last_item = item_id
        return Reply(show.about_text(world.items[item_id]), chips=("More like it", "Recommend something"))
    if state.onboarding != "done":
        return actions.next_step(world, state, f"Got it: {said} {title}.")
    return actions.recommend(world, state, f"Got it: {said} {title}. Updated picks:")


def _outside_chosen(world: World, state: ChatState, item_id: str, stance: str) -> Reply:
    """The answer to "which one?" picked a film outside the rated catalogue."""
    item = world.outside[item_id]
    title = item.display_title
    if stance in ("why", "why_not"):
        kept = state.keeps_outside(item_id)
        return Reply(show.outside_not_recommended(item, kept), chips=("Recommend something",))
    if stance == "asked":
        return Reply(show.outside_about(item), chips=("Recommend something",))
    kept = "liked" if stance == "more_like" else STANCE_LIST.get(stance, "")
    if not actions.mark_outside(state, item_id, kept):
        return Reply(f"Noted. {title} is {show.NOT_RATED.format('it')}, so I won't suggest it.",
                     chips=("Recommend something",))  # fmt: skip
    if stance == "more_like":
        return actions.recommend(world, state, f"More like {title}:")
    said = "you loved" if kept == "liked" else "you didn't like"
    prefix = f"Got it: {said} {title}. {show.outside_said([title], kept, alone=True)}"
    if state.onboarding != "done":
        return actions.next_step(world, state, prefix)
    return actions.recommend(world, state, f"{prefix} Updated picks:")


# 3. Taste -------------------------------------------------------------------------------------------------
def _apply_taste(world: World, state: ChatState, u: Understanding) -> tuple[set[str], Reply | None, list[str]]:
    """Apply what the message says about the user's taste; returns the films applied, a question to ask (an
    ambiguous title) and sentences to say back (unknown titles, descriptions searched for)."""
    applied: set[str] = set()
    said: list[str] = []
    ask: Reply | None = None
    for m in u.films:
        if m.outside and m.item_id is not None:  # named, kept apart, never recommended
            if m.stance in STANCE_LIST and actions.mark_outside(state, m.item_id, STANCE_LIST[m.stance]):
                applied.add(m.item_id)
            elif m.stance in ("seen", "not_seen"):
                title = world.outside[m.item_id].display_title
                said.append(f"{title} is {show.NOT_RATED.format('it')}, so I won't suggest it anyway.")
        elif m.item_id is not None and m.item_id in world.items:
            if m.stance in STANCE_LIST:
                actions.mark(state, m.item_id, STANCE_LIST[m.stance])
                applied.add(m.item_id)
            elif m.stance == "not_seen":
                applied.add(m.item_id)
            if m.stance != "mentioned":
                state.last_item = m.item_id if m.stance in ("asked", "not_seen") else state.last_item
        elif m.ambiguous and ask is None and m.stance != "mentioned":
            ask = _ask_which(world, state, m, u)
        elif m.position is not None and m.stance != "mentioned":
            count = len(state.current())
            said.append(f"There are only {count} picks in the list; which one do you mean?" if count else
                        "I haven't shown you a list yet — ask me to recommend first.")  # fmt: skip
        elif m.item_id is None and m.stance != "mentioned":
            said.append(_unknown_film(state, m))
    for stance, phrase in u.unknown:
        if stance in ("liked", "interested") and content_words(phrase) and not filler_only(phrase):
            _add_preference(state, sanitize_output(phrase, 80))
        elif stance == "disliked" and content_words(phrase):
            _add_preference(state, "no " + sanitize_output(phrase, 80))
    _apply_limits(state, u)
    return applied, ask, said


def _ask_which(world: World, state: ChatState, m: Mention, u: Understanding) -> Reply:
    request = next((r.kind for r in u.requests if r.span == m.span), "") if m.stance == "asked" else ""
    state.pending = {"stance": request or m.stance, "options": list(m.options)}
    films = actions.films(world)
    labels = [films[i].display_title for i in m.options if i in films]
    return Reply(f"Which one do you mean: {'; '.join(labels)}?", chips=(*labels, "None of these"))


def _unknown_film(state: ChatState, m: Mention) -> str:
    """A title the catalogue lacks: a liked phrase is searched as a description ("I love adam sandler")."""
    phrase = sanitize_output(m.span, 80)
    closest = ", ".join(repr(c) for c in m.closest[:3])
    if m.stance in ("liked", "interested") and content_words(m.span):
        _add_preference(state, phrase)
        hint = f" (closest titles: {closest})" if closest else ""
        return f"No film is called \"{phrase}\"{hint}, so I'll look for movies that fit that description."
    return f"I couldn't find \"{phrase}\" in the catalogue." + (f" Did you mean {closest}?" if closest else "")


def _outside_said(world: World, u: Understanding, applied: set[str]) -> list[str]:
    """After the summary: which applied films are outside the rated catalogue, and what that means."""
    out = []
    alone = len(applied) == 1 and not (u.wanted_genres or u.avoided_genres or u.wanted_topics or u.avoided_topics
                                       or u.people or u.avoided_people or u.year_min or u.year_max)  # fmt: skip
    for stance in ("liked", "disliked"):
        ids = [m.item_id for m in u.films if m.outside and m.item_id in applied and STANCE_LIST.get(m.stance) == stance]
        titles = [world.outside[i].display_title for i in dict.fromkeys(ids) if i is not None]
        if titles:
            out.append(show.outside_said(titles, stance, alone))
    return out


def _add_preference(state: ChatState, phrase: str) -> None:
    if phrase and phrase.lower() not in " ".join(state.preferences).lower():
        state.preferences.append(phrase)
        state.preferences = state.preferences[-20:]


def _apply_limits(state: ChatState, u: Understanding) -> None:
    """Genres, themes, people and years; what is avoided leaves the wanted lists and the other way round."""
    for genre in u.wanted_genres:
        if genre not in state.wanted_genres:
            state.wanted_genres.append(genre)
        if genre in state.avoided_genres:
            state.avoided_genres.remove(genre)
    for genre in u.avoided_genres:
        if genre not in state.avoided_genres:
            state.avoided_genres.append(genre)
        if genre in state.wanted_genres:
            state.wanted_genres.remove(genre)
    state.topics = list(dict.fromkeys([*state.topics, *u.wanted_topics]))[-20:]
    state.people = list(dict.fromkeys([*state.people, *u.people]))[-20:]
    avoided = [t.lower() for t in (*u.avoided_topics, *u.avoided_people)]
    state.avoided_keywords = list(dict.fromkeys([*state.avoided_keywords, *avoided]))
    state.topics = [t for t in state.topics if t.lower() not in avoided]
    if u.year_min is not None or u.year_max is not None:
        state.year_min, state.year_max = u.year_min, u.year_max


# 4. Requests ----------------------------------------------------------------------------------------------
def _requests(world: World, state: ChatState, u: Understanding) -> tuple[list[Reply], str | None]:
    """Answers to why / why not / help / chit-chat, and the prefix of the recommendations to show (None: none)."""
    answers: list[Reply] = []
    prefix: str | None = None
    adjusted: list[str] = []
    for request in u.requests:
        kind = request.kind
        if kind in ("why", "why_not", "more_like"):
            target = _target(state, request.item_id, kind)
            if isinstance(target, Reply):
                answers.append(target)
            elif kind == "why":
                answers.append(actions.why(world, state, target))
            elif kind == "why_not":
                answers.append(actions.why_not(world, state, target))
            elif target in world.items:
                if target not in state.liked:
                    state.liked.append(target)
                prefix = f"More like {world.items[target].display_title}:"
            elif target in world.outside:
                actions.mark_outside(state, target, "liked")
                prefix = f"More like {world.outside[target].display_title}:"
        elif kind in REFINEMENTS:
            adjusted.append(actions.refine(world, state, kind))
        elif kind == "skip" and state.onboarding == "items" and state.last_item:
            state.last_item = None  # skip this question, not the whole onboarding
            answers.append(actions.next_step(world, state, "OK."))
        elif kind in ("recommend", "skip"):
            prefix = prefix or ("Sure, here's a start:" if kind == "skip" else "Here you go:")
        elif kind == "help":
            answers.append(Reply(HELP, chips=AFTER_RECS[:3]))
        elif kind == "chat" and not (u.states_taste or len(u.requests) > 1):
            answers.append(_chat(state))
    if adjusted:
        prefix = f"Adjusted for {show.join([a for a in adjusted if a])}:" if prefix is None else prefix
    if any(r.cards for r in answers):  # the onboarding's next step already recommended
        prefix = None
    return answers, prefix


def _target(state: ChatState, item_id: str | None, kind: str) -> str | Reply:
    """The film a why / why not / more-like request is about: named, else the one in focus, else the first card."""
    if item_id is not None:
        return item_id
    if kind != "why_not":
        if state.last_item:
            return state.last_item
        current = state.current()
        if current:
            return current[0].item_id
    name = "Why not which movie? Name it, e.g. \"why not Alien?\"" if kind == "why_not" else \
        "Which movie do you mean? Name it or say \"the second one\"."  # fmt: skip
    return Reply(name)


def _chat(state: ChatState) -> Reply:
    if state.shown:
        return Reply("Happy to help! Ask \"why\" about a pick, tell me what you thought of one, or ask for more.",
                     chips=AFTER_RECS[:3])  # fmt: skip
    return Reply("Hi! Tell me a film you love or what you're in the mood for, and I'll find you something.",
                 chips=(*GENRE_CHIPS[:6], "Recommend something"))  # fmt: skip


def _nothing(world: World, state: ChatState, u: Understanding) -> Reply:
    """Nothing to act on: films asked about get what the catalogue knows; otherwise a helpful question."""
    asked = [m for m in u.films if m.item_id in world.items and m.stance in ("asked", "mentioned")]
    outside = [m.item_id for m in u.films if m.outside and m.item_id and m.stance in ("asked", "mentioned")]
    if outside and not asked:
        return Reply(show.outside_about(world.outside[outside[0]]), chips=("Recommend something",))
    if asked:
        state.last_item = asked[0].item_id
        return Reply(show.about_text(world.items[asked[0].item_id]), chips=("More like it", "Recommend something"))
    return Reply(UNREAD, chips=("Recommend something", *GENRE_CHIPS[:4]))


def remember(world: World, state: ChatState, u: Understanding) -> Reply:
    """Only keep what a message says about the user's taste (a goodbye that also says "loved it")."""
    _apply_taste(world, state, u)
    return Reply("")
