"""What one chat message says, as one typed value, and the JSON a reader writes before it is checked.

A reader (``llmrec.chat.readers``: the language model, or rules) first writes a ``Reading``: the phrases
of the message sorted by the user's stance (liked, disliked, seen, not seen, interested, asked about,
mentioned) and the requests in it. The ``Reading`` is a pydantic model because its JSON schema is what
constrains the model's decoding, and because parsing the model's reply into it is the first check of
untrusted output. ``llmrec.chat.linking`` then turns the phrases into catalogue facts — films (item ids,
or the question to ask when a title is unknown or ambiguous), genres, themes, people, years — and the
result is an ``Understanding``: frozen dataclasses the dialogue policy acts on.

The model copies phrases and never writes an item id: ids come only from the catalogue matcher, so a
reply cannot name an item outside the catalogue. ``prompt_messages`` renders ``prompts/understand``:
v1 (full instructions and an example) for the base model, v2 (short) for the adapter, which
``finetune/understand.py`` trains on it and whose card names it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from llmrec.prompts import load_prompt
from llmrec.safety import fence

PROMPT_TASK = "understand"
PROMPT_VERSION = 1  # the base model's prompt (full instructions and an example)
ADAPTER_PROMPT_VERSION = 2  # the short prompt the understanding adapter is trained on (its card names it)
MAX_MESSAGE_IN_PROMPT = 600  # characters of the message the model reads (rules read the whole message)
STANCES = ("liked", "disliked", "seen", "not_seen", "interested", "asked", "mentioned")
POSITIVE = ("liked", "interested")
REFINEMENTS = ("newer", "older", "lighter", "darker", "less_violent", "shorter", "different")
REQUESTS = ("recommend", "why", "why_not", "more_like", *REFINEMENTS, "restart", "forget", "quit", "help", "skip",
            "chat")  # fmt: skip
TARGETED = ("why", "why_not", "more_like")  # requests about one film (taken from the `asked` phrases)

Phrase = Annotated[str, StringConstraints(min_length=1, max_length=80)]
RequestKind = Literal[
    "recommend", "why", "why_not", "more_like", "newer", "older", "lighter", "darker", "less_violent", "shorter",
    "different", "restart", "forget", "quit", "help", "skip", "chat",
]  # fmt: skip


class Reading(BaseModel):
    """The JSON a reader writes: phrases of the message by stance, in this order, and the requests."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    liked: list[Phrase] = Field(default_factory=list, max_length=8)
    disliked: list[Phrase] = Field(default_factory=list, max_length=8)
    seen: list[Phrase] = Field(default_factory=list, max_length=8)
    not_seen: list[Phrase] = Field(default_factory=list, max_length=8)
    interested: list[Phrase] = Field(default_factory=list, max_length=8)
    asked: list[Phrase] = Field(default_factory=list, max_length=8)
    mentioned: list[Phrase] = Field(default_factory=list, max_length=8)
    requests: list[RequestKind] = Field(default_factory=list, max_length=4)

    def phrases(self) -> list[tuple[str, str]]:
        """``(stance, phrase)`` pairs in stance order, each phrase once (its first stance wins)."""
        seen: set[str] = set()
        out = []
        for stance in STANCES:
            for phrase in getattr(self, stance):
                key = " ".join(phrase.lower().split())
                if key and key not in seen:
                    seen.add(key)
                    out.append((stance, " ".join(phrase.split())))
        return out

    def compact(self) -> str:
        """The reading as the model is taught to write it: only the lists that are not empty."""
        return json.dumps(self.model_dump(exclude_defaults=True), ensure_ascii=False)


_UNBOUNDED = ("maxLength", "minLength", "maxItems", "title")


def reading_schema() -> dict[str, Any]:
    """The JSON schema that constrains decoding: ``Reading``'s, fields in the order the model writes them, without
    its length bounds. Bounds unroll into the regex outlines-core compiles: with them the index took 329 s and
    10 GB for Qwen's vocabulary, without them 4 s. ``max_new_tokens`` bounds the reply and parsing into
    ``Reading`` checks the limits."""

    def unbounded(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: unbounded(v) for k, v in node.items() if k not in _UNBOUNDED}
        return [unbounded(v) for v in node] if isinstance(node, list) else node

    return unbounded(Reading.model_json_schema())


# The typed result ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mention:
    """A film the message talks about. ``item_id`` is set when the catalogue matcher found it; otherwise
    ``options`` (several films share the title: ask which) or ``closest`` (no such title) say why not."""

    span: str
    stance: str
    item_id: str | None = None
    position: int | None = None  # the card's position on screen when the phrase pointed at one ("#2")
    options: tuple[str, ...] = ()
    closest: tuple[str, ...] = ()
    outside: bool = False  # item_id / options are films outside the rated catalogue (named, never recommended)

    @property
    def ambiguous(self) -> bool:
        return self.item_id is None and len(self.options) > 1


@dataclass(frozen=True)
class Request:
    """Something the user asks for; ``why``/``why_not``/``more_like`` name their film when the message does."""

    kind: str
    item_id: str | None = None
    span: str = ""


@dataclass(frozen=True)
class Understanding:
    """Everything one message says that the recommender can act on.

    ``source`` says who read it: ``exact`` (a button, chip or fixed phrase; no model), ``llm``, ``rules``, or
    ``rules-fallback`` (the model failed or wrote something unusable; ``notes`` say what)."""

    text: str
    films: tuple[Mention, ...] = ()
    wanted_genres: tuple[str, ...] = ()
    avoided_genres: tuple[str, ...] = ()
    wanted_topics: tuple[str, ...] = ()  # themes, moods and keywords the catalogue knows, not genres
    avoided_topics: tuple[str, ...] = ()
    people: tuple[str, ...] = ()
    avoided_people: tuple[str, ...] = ()
    year_min: int | None = None
    year_max: int | None = None
    requests: tuple[Request, ...] = ()
    unknown: tuple[tuple[str, str], ...] = ()  # (stance, phrase) read but matching no film, genre or theme
    source: str = "rules"
    notes: tuple[str, ...] = ()

    @property
    def kinds(self) -> tuple[str, ...]:
        """The request kinds, in order, each once."""
        return tuple(dict.fromkeys(r.kind for r in self.requests))

    def request(self, kind: str) -> Request | None:
        return next((r for r in self.requests if r.kind == kind), None)

    def films_with(self, *stances: str) -> list[Mention]:
        return [m for m in self.films if m.stance in stances]

    @property
    def states_taste(self) -> bool:
        """Whether the message says anything about the user's taste (films, genres, themes, people, years)."""
        stated = (self.wanted_genres, self.avoided_genres, self.wanted_topics, self.avoided_topics, self.people,
                  self.avoided_people)  # fmt: skip
        opinions = [m for m in self.films if m.stance not in ("asked", "mentioned")]
        return bool(opinions or any(stated) or self.year_min or self.year_max)

    @property
    def is_empty(self) -> bool:
        return not (self.films or self.states_taste or self.requests or self.unknown)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["unknown"] = [list(u) for u in self.unknown]
        return data


# What the reader is shown besides the message ----------------------------------------------------------
class FilmFinder(Protocol):
    """Films beyond the rated catalogue (``llmrec.chat.outside.OutsideFilms``): ``(item id, options)`` for a title."""

    def find(self, phrase: str) -> tuple[str | None, tuple[str, ...]]: ...


@dataclass(frozen=True)
class ReadingContext:
    """The conversation around a message: the cards on screen, the film in focus (the one an onboarding
    question asked about, or the last one discussed), the assistant's last words, and the options of an
    open "which one did you mean?" question. ``outside`` finds titles the rated catalogue lacks (None: off);
    it is never shown to a model."""

    cards: tuple[tuple[int, str, str], ...] = ()  # (position, item id, title)
    focus: str | None = None
    focus_title: str = ""
    last_reply: str = ""
    pending: tuple[tuple[str, str], ...] = ()  # (item id, title)
    outside: FilmFinder | None = field(default=None, compare=False, repr=False)

    def card(self, position: int) -> tuple[int, str, str] | None:
        """The card at a 1-based position (-1: the last one)."""
        if not self.cards:
            return None
        if position == -1:
            return self.cards[-1]
        return next((c for c in self.cards if c[0] == position), None)


def render_context(context: ReadingContext) -> str:
    """The ``<context>`` block of the prompt ('' when there is nothing to show); every title is fenced."""
    lines = []
    if context.cards:
        lines.append("On screen: " + "; ".join(f"{p}. {fence(t, 120)}" for p, _, t in context.cards[:6]))
    if context.last_reply:
        first = context.last_reply.strip().splitlines()[0] if context.last_reply.strip() else ""
        if first:
            lines.append(f"You said: {fence(first, 200)}")
    return "<context>\n" + "\n".join(lines) + "\n</context>" if lines else ""


def prompt_messages(text: str, context: ReadingContext | None = None,
                    version: int = PROMPT_VERSION) -> list[dict[str, str]]:  # fmt: skip
    """The chat messages the model reads for ``text`` (system turn constant, so its KV cache is reused)."""
    template = load_prompt(PROMPT_TASK, version)
    user = template.render(drop_empty_lines=True, context=render_context(context or ReadingContext()),
                           message=fence(text, MAX_MESSAGE_IN_PROMPT))  # fmt: skip
    return [{"role": "system", "content": template.system.format()}, {"role": "user", "content": user}]


def prompt_ref(version: int = PROMPT_VERSION) -> str:
    return f"{PROMPT_TASK}@{version}"


def prompt_version_of(ref: str) -> int | None:
    """The version in a prompt reference such as ``understand@2`` (None when it is not this task's)."""
    task, _, version = ref.partition("@")
    return int(version) if task == PROMPT_TASK and version.isdigit() else None
