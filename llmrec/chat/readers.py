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

import logging
import re
import time
from collections.abc import Callable, Mapping
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
        exact = self.exact(text, context)
        if exact is not None:
            return exact
        try:
            messages = prompt_messages(text, context, self.prompt_version)
            raw = self.llm.generate_json(messages, reading_schema(), self.max_new_tokens, task="understand")
        except Exception as exc:  # a model that fails or cannot load: the chat goes on with rules
            log.warning("the language model could not read a message: %s", exc)
            note = f"the language model could not read this message ({type(exc).__name__}); I used simple rules"
            return self.by_rules(text, context, "rules-fallback", (note,))
        try:
            reading = Reading.model_validate_json(raw)
        except (ValidationError, ValueError):
            log.info("unusable reading from the model: %r", raw[:200])
            note = "the language model's reading was unusable; I used simple rules"
            return self.by_rules(text, context, "rules-fallback", (note,))
        understood = link(reading, text, context, self.catalogue, "llm", check_phrases=True)
        if understood.is_empty:
            ruled = self.by_rules(text, context, "rules-fallback",
                                  ("the language model found nothing to act on; I used simple rules",))  # fmt: skip
            if not ruled.is_empty:
                return ruled
        return understood


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
