"""Rankers: reorder a retriever's candidates. The LLM ranker is the LlamaRec verbalizer.

The prompt shows the user's recent history and stated preferences, then the candidates labelled
with single-token letters; one forward pass gives the logit of each letter at the answer position,
and that logit is the candidate's score. No free text is parsed, so every candidate gets a score.
Item descriptions never enter the ranking prompt (only title, year, genres), so text an item's
owner controls cannot steer the ranking; titles are fenced and capped.

A ranker only ever returns a reordering of (a prefix of) its input.
"""

from __future__ import annotations

import dataclasses
import logging
import string
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from llmrec.errors import ConfigError
from llmrec.llm.base import LLM
from llmrec.prompts import PromptTemplate, load_prompt
from llmrec.safety import fence
from llmrec.types import Candidate, Item, UserProfile

log = logging.getLogger(__name__)

LABELS = string.ascii_uppercase[:20]  # LlamaRec ranks 20 candidates labelled A..T


@dataclasses.dataclass(frozen=True)
class Layout:
    """What a ranking prompt version shows: genres per candidate line, and the step by which the history window
    moves (with a step of 5 the window's first item changes once every 5 new items, so a conversation keeps
    its prompt prefix — and its cached keys and values — while the user likes a few films)."""

    genres: int = 4
    history_step: int = 1


LAYOUTS = {1: Layout(genres=4, history_step=1), 2: Layout(genres=0, history_step=5)}


class Ranker(Protocol):
    def rank(self, profile: UserProfile, candidates: Sequence[Candidate], n: int) -> list[Candidate]: ...


def _with_stage(candidate: Candidate, stage: str, score: float) -> Candidate:
    evidence = dataclasses.replace(
        candidate.evidence, stage_scores=(*candidate.evidence.stage_scores, (stage, float(score)))
    )
    return dataclasses.replace(candidate, score=float(score), evidence=evidence)


class PassthroughRanker:
    """Keeps the retriever's order."""

    name = "passthrough"

    def rank(self, profile: UserProfile, candidates: Sequence[Candidate], n: int) -> list[Candidate]:
        return list(candidates[:n])


class LLMRanker:
    """Scores up to ``len(labels)`` candidates in one forward pass; the rest keep retrieval order after them.

    ``blend`` in [0, 1] mixes the LLM's log-probability with the retriever's rank (reciprocal-rank
    form) — 0 is the pure LLM order.
    """

    name = "llm"

    def __init__(
        self,
        llm: LLM,
        items: Mapping[str, Item],
        labels: str = LABELS,
        max_history: int = 20,
        blend: float = 0.0,
        kind: str = "movie",
        prompt: PromptTemplate | None = None,
        max_prompt_tokens: int | None = None,
    ) -> None:
        if not labels or len(set(labels)) != len(labels):
            raise ConfigError(f"ranker labels must be distinct characters, got {labels!r}")
        if not 0.0 <= blend <= 1.0:
            raise ConfigError(f"ranker blend must be within [0, 1], got {blend}")
        if max_history < 0:
            raise ConfigError(f"ranker max_history must be >= 0, got {max_history}")
        self.llm = llm
        self.items = items
        self.labels = labels
        self.max_history = max_history
        self.blend = blend
        self.kind = kind
        self.prompt = prompt or load_prompt("rank")
        self.layout = LAYOUTS.get(self.prompt.version, LAYOUTS[max(LAYOUTS)])
        self.max_prompt_tokens = max_prompt_tokens or max(256, llm.context_length - 16)
        self.last_note = ""

    # Prompt ---------------------------------------------------------------------------------
    def _history_window(self, profile: UserProfile) -> Sequence:
        """The last ``max_history`` entries (up to ``history_step - 1`` more, so the window moves in steps)."""
        if not self.max_history:
            return ()
        start = max(0, len(profile.history) - self.max_history)
        step = self.layout.history_step
        return profile.history[(start // step) * step :]

    def _history_lines(self, profile: UserProfile) -> list[str]:
        lines = []
        for entry in self._history_window(profile):
            item = self.items.get(entry.item_id)
            if item is None:
                continue
            rating = f" — rated {entry.rating:g}" if entry.rating is not None else ""
            lines.append(f"- {fence(item.display_title, 120)}{rating}")
        return lines

    def _candidate_line(self, label: str, item: Item) -> str:
        genres = fence(", ".join(item.genres[: self.layout.genres]), 80) if self.layout.genres else ""
        return f"{label}. {fence(item.display_title, 120)}" + (f" ({genres})" if genres else "")

    def messages(self, profile: UserProfile, window: Sequence[Candidate]) -> list[dict[str, str]]:
        """The ranking prompt; the oldest history is dropped until it fits the context."""
        history = self._history_lines(profile)
        preferences = "; ".join(fence(p, 300) for p in profile.stated_preferences) or "(nothing stated)"
        candidates = "\n".join(
            self._candidate_line(label, self.items[c.item_id]) for label, c in zip(self.labels, window)
        )
        while True:
            messages = self.prompt.messages(
                history="\n".join(history) or "(no history yet)",
                preferences=preferences,
                candidates=candidates,
                kind=self.kind,
            )
            if not history or self.llm.count_tokens(messages) <= self.max_prompt_tokens:
                return messages
            history = history[max(1, len(history) // 4) :]

    # Ranking --------------------------------------------------------------------------------
    def score(self, profile: UserProfile, window: Sequence[Candidate]) -> np.ndarray:
        """Log-softmax over the window's label logits (higher is better)."""
        logits = np.asarray(self.llm.score_options(self.messages(profile, window), self.labels[: len(window)]))
        if logits.shape != (len(window),) or not np.all(np.isfinite(logits)):
            raise ValueError(f"model returned {logits.shape} scores for {len(window)} candidates")
        shifted = logits - logits.max()
        return shifted - np.log(np.exp(shifted).sum())

    def rank(self, profile: UserProfile, candidates: Sequence[Candidate], n: int) -> list[Candidate]:
        known = [c for c in candidates if c.item_id in self.items]
        window, rest = known[: len(self.labels)], known[len(self.labels) :]
        self.last_note = ""
        if not window:
            return []
        try:
            logprobs = self.score(profile, window)
        except Exception as exc:  # the model is untrusted: any failure falls back to retrieval order
            log.warning("LLM ranking failed (%s); keeping the retrieval order", exc)
            self.last_note = f"the language model failed ({type(exc).__name__}); results are in retrieval order"
            return list(known[:n])
        if self.blend:
            retrieval = np.log(1.0 / (60.0 + np.arange(1, len(window) + 1)))
            combined = (1 - self.blend) * logprobs + self.blend * retrieval
        else:
            combined = logprobs
        order = np.argsort(-combined, kind="stable")
        ranked = [_with_stage(window[i], "llm", combined[i]) for i in order]
        floor = float(combined.min()) - 1.0
        ranked += [_with_stage(c, "unranked", floor - r) for r, c in enumerate(rest)]  # after the window
        return ranked[:n]
