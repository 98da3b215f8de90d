"""Explanations that rest only on recorded evidence.

``TemplateExplainer`` writes a sentence from the evidence alone. ``LLMExplainer`` asks the language
model for one sentence conditioned only on that evidence, sanitises it, and checks it: a reply that
names a catalogue title, an attribute, a capitalised name or a number that is not in the evidence or
the item's own record is rejected and replaced by the template sentence.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from llmrec.evidence import collect_evidence, evidence_lines
from llmrec.llm.base import LLM
from llmrec.profile import split_title_year
from llmrec.prompts import PromptTemplate, load_prompt
from llmrec.safety import fence, sanitize_output
from llmrec.types import Candidate, Evidence, Item, Recommendation, UserProfile

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"[\w'&:-]+", re.UNICODE)
# Claims about people, reception or production that the evidence never holds.
_CLAIMS = ("award", "oscar", "acclaim", "critic", "anticipated", "blockbuster", "box office", "gross", "starring",
           "directed", "director", "actor", "actress", "cast", "true story", "novel", "bestsell", "sequel")
# Catalogue tags that are ordinary words of any explanation, not attributes.
_GENERIC = frozenset({"movie", "movies", "film", "films", "cinema", "story", "watch", "recommended"})
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# Capitalised words that are ordinary English at the start of clauses, never names.
_COMMON = frozenset(
    "I You Your It Its This That These Those The A An And But If Because Since As Like Fans People Recommended "
    "We Our Also Both Just Here There With For From Given Based Since Plus".split()
)


def _norm(text: str) -> str:
    return " ".join(_TOKEN.findall(text.lower()))


@dataclass(frozen=True)
class Vocabulary:
    """Every title and attribute the catalogue knows, to spot ones an explanation invents."""

    titles: frozenset[str]
    attributes: frozenset[str]
    longest: int

    @classmethod
    def from_items(cls, items: Mapping[str, Item]) -> Vocabulary:
        titles = set()
        attributes = set()
        for item in items.values():
            for title in (item.title, item.display_title):
                norm = _norm(title)
                if len(norm.split()) >= 2:  # one-word titles ("Up", "Her") are ordinary words
                    titles.add(norm)
            attributes.update(_norm(a) for a in (*item.genres, *item.keywords, *item.tags) if _norm(a))
        attributes -= _GENERIC
        longest = max((len(t.split()) for t in titles | attributes), default=1)
        return cls(frozenset(titles), frozenset(attributes), min(longest, 12))


def _ngrams(words: Sequence[str], longest: int) -> Iterator[str]:
    for size in range(1, longest + 1):
        for start in range(len(words) - size + 1):
            yield " ".join(words[start : start + size])


def capitalised_phrases(text: str) -> list[str]:
    """Runs of capitalised words that do not start a sentence: candidate names and titles."""
    phrases = []
    for sentence in _SENTENCE_END.split(text.strip()):
        run: list[str] = []
        for position, word in enumerate([*_TOKEN.findall(sentence), ""]):
            if position > 0 and word[:1].isupper() and word not in _COMMON:
                run.append(word)
                continue
            if run:
                phrases.append(" ".join(run))
            run = []
    return phrases


def allowed_text(item: Item, evidence: Evidence) -> str:
    parts = [item.title, item.display_title, *item.genres, *item.keywords, *item.tags, *evidence_lines(item, evidence)]
    return _norm(" ".join(parts))


_LIKED_VERBS = "liked|loved|enjoyed|adored|watched|rated|saw|have seen|already liked|really liked"
# "Like Heat (1995), you enjoyed it." says the user liked the recommended film; "which you enjoyed, it mixes"
# and "you enjoyed this kind of film" do not (read on the raw text: the comma matters).
_LIKED_IT = re.compile(rf"\byou (?:{_LIKED_VERBS}) (?:it\b|this\b(?! (?:kind|sort|type|genre|style|mix|way)\b))")


def unsupported_claims(text: str, item: Item, evidence: Evidence, vocab: Vocabulary) -> list[str]:
    """What ``text`` names that neither the evidence nor the item's own record holds."""
    allowed = f" {allowed_text(item, evidence)} "
    problems = []
    words = _norm(text).split()
    for gram in set(_ngrams(words, vocab.longest)):
        if (gram in vocab.titles or gram in vocab.attributes) and f" {gram} " not in allowed:
            problems.append(gram)
    for phrase in capitalised_phrases(text):
        if f" {_norm(phrase)} " not in allowed:
            problems.append(phrase)
    numbers = set(_NUMBER.findall(allowed))  # "Terminator 2: Judgment Day" allows the 2 whatever follows it
    problems += [n for n in _NUMBER.findall(text) if n not in numbers]
    lowered = f" {_norm(text)} "
    problems += [c for c in _CLAIMS if f" {c}" in lowered and f" {c}" not in allowed]
    own = _norm(split_title_year(item.display_title)[0])
    liked = {_norm(t) for t in evidence.similar_liked} | {_norm(split_title_year(t)[0]) for t in evidence.similar_liked}
    problems += partial_titles(text, item, evidence)
    by_name = own and own not in liked and re.search(rf"\byou (?:{_LIKED_VERBS}) (?:the )?{re.escape(own)}\b", lowered)
    if by_name or _LIKED_IT.search(text.lower()):
        problems.append(f"says you liked {item.display_title} itself")
    return sorted(set(problems))


_YEAR_IN_PARENS = re.compile(r"\((\d{4})\)")


def partial_titles(text: str, item: Item, evidence: Evidence) -> list[str]:
    """Years in ``text`` not preceded by a whole title the evidence names: "Like Vietnam (1987)" for
    "Good Morning, Vietnam (1987)" passes the word check but misnames the film."""
    titles = [_norm(t) for t in (item.display_title, *evidence.similar_liked)]
    return [f"a partial title before ({m[1]})" for m in _YEAR_IN_PARENS.finditer(text)
            if not any(_norm(text[: m.end()]).endswith(t) for t in titles if t)]  # fmt: skip


def names_evidence(text: str, item: Item, evidence: Evidence) -> bool:
    """Whether ``text`` uses the evidence beyond the collaborative line (a liked film, a shared genre, keyword
    or tag, a matched preference, or the item's genres) — or the evidence holds nothing more. A small model
    tuned on explanations can settle on restating the collaborative line for everyone; the template says
    more, so such a sentence is not kept."""
    specific = [*evidence.similar_liked, *evidence.shared_genres, *evidence.shared_keywords, *evidence.shared_tags,
                *evidence.matched_preferences]  # fmt: skip
    if not specific:
        return True
    lowered = f" {_norm(text)} "
    names = [split_title_year(t)[0] for t in evidence.similar_liked] + specific + list(item.genres)
    return any(f" {_norm(name)} " in lowered for name in names if _norm(name))


def template_explanation(item: Item, evidence: Evidence, kind: str = "movie") -> str:
    """One or two sentences built only from the evidence, in plain words: films, genres, themes and what the
    person asked for ("You liked Toy Story (1995); it shares Animation with movies you enjoyed. People who
    liked Toy Story also liked it."), never model names or scores."""
    parts = []
    if evidence.similar_liked:
        parts.append(f"You liked {' and '.join(evidence.similar_liked)}")
    shared: list[str] = []
    keys: set[str] = set()
    for attribute in (*evidence.shared_genres, *evidence.shared_keywords[:2], *evidence.shared_tags[:1]):
        key = re.sub(r"[^0-9a-z]+", "", attribute.lower())  # "Sci-Fi" and "scifi" are said once
        if key not in keys:
            keys.add(key)
            shared.append(attribute)
    if shared:
        parts.append(f"{'it' if parts else 'It'} shares {', '.join(shared)} with {kind}s you enjoyed")
    sentence = "; ".join(parts)
    if evidence.matched_preferences:
        match = f"It matches what you asked for: {', '.join(evidence.matched_preferences)}"
        sentence = f"{sentence}. {match}" if sentence else match
    if evidence.collaborative:
        signal = evidence.collaborative[:1].upper() + evidence.collaborative[1:]
        sentence = f"{sentence}. {signal}" if sentence else signal
    if not sentence:  # no film, attribute or request to point to: say so plainly, never a model name or score
        sentence = f"It is a close match for the {kind}s in your profile"
    return sentence.rstrip(".") + "."


class TemplateExplainer:
    name = "template"

    def __init__(self, items: Mapping[str, Item], kind: str = "movie") -> None:
        self.items = items
        self.kind = kind

    def explain(self, profile: UserProfile, ranked: Sequence[Candidate]) -> list[Recommendation]:
        recs = []
        for candidate in ranked:
            item = self.items[candidate.item_id]
            evidence = collect_evidence(profile, candidate, self.items)
            text = template_explanation(item, evidence, self.kind)
            recs.append(Recommendation(item, candidate.score, candidate.sources, text, evidence, "template"))
        return recs


class LLMExplainer:
    """One checked sentence per item from the language model; the template sentence when the check fails."""

    name = "llm"

    def __init__(
        self,
        llm: LLM,
        items: Mapping[str, Item],
        kind: str = "movie",
        max_new_tokens: int = 60,
        prompt: PromptTemplate | None = None,
        vocabulary: Vocabulary | None = None,
    ) -> None:
        self.llm = llm
        self.items = items
        self.kind = kind
        self.max_new_tokens = max_new_tokens
        self.prompt = prompt or load_prompt("explain")
        self.vocab = vocabulary or Vocabulary.from_items(items)

    def messages(self, item: Item, evidence: Evidence) -> list[dict[str, str]]:
        lines = "\n".join(f"- {fence(line, 300)}" for line in evidence_lines(item, evidence)) or "- (no evidence)"
        return self.prompt.messages(item=fence(item.display_title, 120), evidence=lines, kind=self.kind)

    def check(self, raw: str, item: Item, evidence: Evidence) -> tuple[str, list[str]]:
        """The sanitised first two sentences of ``raw`` and what in them is unsupported."""
        text = " ".join(_SENTENCE_END.split(sanitize_output(raw))[:2]).strip()
        if len(text) < 8:
            return text, ["empty or too short"]
        problems = unsupported_claims(text, item, evidence, self.vocab)
        if not problems and not names_evidence(text, item, evidence):
            problems = ["names no liked film or shared attribute although the evidence has them"]
        return text, problems

    def stream(self, item: Item, evidence: Evidence) -> Iterator[tuple[str, str]]:
        """Yield ``(text so far, source)``; the last pair is final (``llm`` or ``template-fallback``)."""
        raw = ""
        try:
            for piece in self.llm.stream(self.messages(item, evidence), self.max_new_tokens):
                raw += piece
                yield sanitize_output(raw), "streaming"
        except Exception as exc:  # the model is untrusted: failures fall back to the template
            log.warning("explanation generation failed: %s", exc)
            yield template_explanation(item, evidence, self.kind), "template-fallback"
            return
        text, problems = self.check(raw, item, evidence)
        if problems:
            log.info("explanation for %s rejected (%s)", item.item_id, ", ".join(problems[:5]))
            yield template_explanation(item, evidence, self.kind), "template-fallback"
        else:
            yield text, "llm"

    def explain_one(self, item: Item, evidence: Evidence) -> tuple[str, str]:
        *_, final = self.stream(item, evidence)
        return final

    def explain(self, profile: UserProfile, ranked: Sequence[Candidate]) -> list[Recommendation]:
        recs = []
        for candidate in ranked:
            item = self.items[candidate.item_id]
            evidence = collect_evidence(profile, candidate, self.items)
            text, source = self.explain_one(item, evidence)
            recs.append(Recommendation(item, candidate.score, candidate.sources, text, evidence, source))
        return recs
