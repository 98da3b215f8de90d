"""Understanders: read one message (with its context) into an ``Understanding``.

Which messages skip the model, and why: an empty message (nothing to read); a message with no letter or
digit (emoji only, binary noise: the model would only guess); and ``rules.exact_reading`` — buttons,
chips and fixed phrases such as "quit", "forget me", "start over", "why the second one?", "Loved it"
or a genre name — whose meaning is exact and whose reading must be instant. Everything else goes to the
language model, which writes a ``Reading`` under constrained decoding (``LLM.generate_json`` with the
``Reading`` schema, task "understand", so the understanding LoRA adapter is used when it is loaded, with the
prompt its card names; the base model reads with the full prompt ``understand@1``).

The model's output is untrusted. A reply that does not parse, a model that fails or is missing, or a
reply that reads nothing where the rules find something, falls back to the rules, and the
``Understanding`` says so in ``source`` ("rules-fallback") and ``notes``. Phrases the message does not
contain are dropped (``linking.link(check_phrases=True)``), and item ids only ever come from the
catalogue matcher.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import re
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from pydantic import ValidationError

from llmrec.chat.linking import Catalogue, catalogue_for, link
from llmrec.chat.rules import exact_reading, rule_reading
from llmrec.chat.understanding import (
    ADAPTER_PROMPT_VERSION,
    PROMPT_VERSION,
    Reading,
    ReadingContext,
    Understanding,
    prompt_messages,
    prompt_version_of,
    reading_schema,
)
from llmrec.types import Item

log = logging.getLogger(__name__)
MAX_NEW_TOKENS = 96
_READABLE = re.compile(r"[^\W_]", re.UNICODE)  # a letter or digit in any script


class Understander(Protocol):
    name: str

    def read(self, text: str, context: ReadingContext) -> Understanding: ...


class RuleUnderstander:
    """Rules only: exact phrases, then ``rules.rule_reading``."""

    name = "rules"

    def __init__(self, items: Mapping[str, Item], popularity: Mapping[str, int] | Callable[[], Mapping[str, int]]):
        self.items = items
        self._popularity = popularity
        self.last_seconds = 0.0

    @property
    def catalogue(self) -> Catalogue:
        popularity = self._popularity() if callable(self._popularity) else self._popularity
        self._popularity = popularity
        return catalogue_for(self.items, popularity)

    def read(self, text: str, context: ReadingContext | None = None) -> Understanding:
        started = time.perf_counter()
        try:
            return self._read(text, context or ReadingContext())
        finally:
            self.last_seconds = time.perf_counter() - started

    def _read(self, text: str, context: ReadingContext) -> Understanding:
        return self.exact(text, context) or self.by_rules(text, context)

    def exact(self, text: str, context: ReadingContext) -> Understanding | None:
        if not text.strip() or not _READABLE.search(text):
            return Understanding(text=text, source="exact")
        reading = exact_reading(text, context)
        return link(reading, text, context, self.catalogue, "exact") if reading is not None else None

    def by_rules(self, text: str, context: ReadingContext, source: str = "rules",
                 notes: tuple[str, ...] = ()) -> Understanding:  # fmt: skip
        return link(rule_reading(text, context, self.catalogue), text, context, self.catalogue, source, notes)


class LLMUnderstander(RuleUnderstander):
    """The language model reads every message the rules cannot read exactly; rules when it fails."""

    name = "llm"

    def __init__(self, llm: Any, items: Mapping[str, Item],
                 popularity: Mapping[str, int] | Callable[[], Mapping[str, int]],
                 max_new_tokens: int = MAX_NEW_TOKENS, prompt_version: int | None = None) -> None:  # fmt: skip
        """``llm``: an ``LLM`` or a callable returning one (built on the first message that needs it).
        ``prompt_version``: the ``understand`` prompt; default the one the loaded adapter's card names (v1
        without an adapter)."""
        super().__init__(items, popularity)
        self._llm = llm
        self.max_new_tokens = max_new_tokens
        self._prompt_version = prompt_version
        self.gate: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext

    def with_gate(self, gate: Callable[[], AbstractContextManager[Any]]) -> LLMUnderstander:
        """A copy whose model calls, and only those, run inside ``gate()`` (the app's door in front of the shared
        model: a message the rules read needs no turn at the model)."""
        _ = self.catalogue  # built once here, not in every copy
        twin = copy.copy(self)
        twin.gate = gate
        return twin

    @property
    def llm(self) -> Any:
        if callable(self._llm) and not hasattr(self._llm, "generate_json"):
            self._llm = self._llm()
        return self._llm

    @property
    def prompt_version(self) -> int:
        if self._prompt_version is None:
            self._prompt_version = adapter_prompt_version(self.llm)
        return self._prompt_version

    def _read(self, text: str, context: ReadingContext) -> Understanding:
        return self.exact(text, context) or self.by_model(text, context)

    def by_model(self, text: str, context: ReadingContext) -> Understanding:
        """The model's reading, linked to the catalogue; the rules' when the model fails or finds nothing."""
        understood = self.model_reading(text, context)
        if isinstance(understood, str):
            return self.by_rules(text, context, "rules-fallback", (understood,))
        if understood.is_empty:
            ruled = self.by_rules(text, context, "rules-fallback",
                                  ("the language model found nothing to act on; I used simple rules",))  # fmt: skip
            if not ruled.is_empty:
                return ruled
        return understood

    def model_reading(self, text: str, context: ReadingContext) -> Understanding | str:
        """The model's reading linked to the catalogue, or the note saying why there is none."""
        try:
            messages = prompt_messages(text, context, self.prompt_version)
            with self.gate():
                raw = self.llm.generate_json(messages, reading_schema(), self.max_new_tokens, task="understand")
        except Exception as exc:  # a model that fails or cannot load: the chat goes on with rules
            log.warning("the language model could not read a message: %s", exc)
            return f"the language model could not read this message ({type(exc).__name__}); I used simple rules"
        try:
            reading = Reading.model_validate_json(raw)
        except (ValidationError, ValueError):
            log.info("unusable reading from the model: %r", raw[:200])
            return "the language model's reading was unusable; I used simple rules"
        return link(reading, text, context, self.catalogue, "llm", check_phrases=True)


class HybridUnderstander(LLMUnderstander):
    """The rules read every message; the model decides the stances where the rules found none.

    Measured on the development messages (BENCHMARKS.md, understanding): the rules find titles precisely (P 0.96)
    but miss the stance in typed, lower-case and roundabout sentences ("shawshank redemtion is great", "we
    watched Paddington with the grandkids, everyone loved it" read as merely seen), where the model with its
    adapter is right; everywhere else the rules read better (genres, requests, the film a "why" is about). So a
    message goes to the model only when the rules found no liked or disliked film in it and it is not a request
    about the list ("why Fargo?", "anything more recent?": the model would guess films from the cards), and only
    the model's liked and disliked films are taken; the rest of the reading stays the rules'.
    """

    name = "hybrid"
    MODEL_STANCES = frozenset({"liked", "disliked", "interested"})
    TASTE_REQUESTS = frozenset({"recommend", "chat"})  # requests that leave a message a statement of taste

    def _read(self, text: str, context: ReadingContext) -> Understanding:
        exact = self.exact(text, context)
        if exact is not None:
            return exact
        ruled = self.by_rules(text, context)
        if not self.needs_model(ruled):
            return ruled
        modelled = self.model_reading(text, context)  # a failed or empty reading leaves the rules' one
        return ruled if isinstance(modelled, str) else merge_stances(ruled, modelled, self.MODEL_STANCES)

    def needs_model(self, ruled: Understanding) -> bool:
        has_stance = any(m.stance in ("liked", "disliked") for m in ruled.films)
        return not has_stance and all(r.kind in self.TASTE_REQUESTS for r in ruled.requests)


def merge_stances(ruled: Understanding, modelled: Understanding, stances: frozenset[str]) -> Understanding:
    """``ruled`` with the films ``modelled`` gives one of ``stances``: such a film replaces the rules' mention of
    the same item (a "seen" that was a "loved") or is added; nothing else of the model's reading is taken."""
    taken = [m for m in modelled.films if m.stance in stances and (m.item_id or m.options)]
    if not taken:
        return ruled
    ids = {m.item_id for m in taken if m.item_id}
    films = tuple(m for m in ruled.films if m.item_id is None or m.item_id not in ids) + tuple(taken)
    notes = tuple(n for n in modelled.notes if n not in ruled.notes)
    return dataclasses.replace(ruled, films=films, source="hybrid", notes=ruled.notes + notes)


def adapter_prompt_version(llm: Any) -> int:
    """The ``understand`` prompt version for ``llm``: the one its understanding adapter's card names (the short
    prompt it was trained on), else the base model's."""
    from llmrec.adapters import read_card

    adapter = (getattr(llm, "adapters", None) or {}).get("understand")
    if adapter is None:
        return PROMPT_VERSION
    card = read_card(adapter)
    found = prompt_version_of(card.prompt) if card is not None else None
    return found or ADAPTER_PROMPT_VERSION


def popularity_of(dataset: Any) -> dict[str, int]:
    """Ratings per item in a data set (the matcher's tie-break and the onboarding's notion of well known)."""
    import numpy as np

    ids, counts = np.unique(dataset.interactions.item_ids, return_counts=True)
    return dict(zip(ids.tolist(), counts.tolist()))
