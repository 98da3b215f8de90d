"""What goes together in conversations: an item-to-item model learned from recommendation dialogues.

``DialogueModel.fit`` reads training dialogues (ReDial's, ids as the dialogues spell them) and keeps
three counts, the signals KBRD and UniCRS learn from the same data:

- co-occurrence: how many dialogues mention both movies (any speaker);
- succession: how often a recommender's turn names movie ``b`` after ``a`` came up earlier in the
  dialogue (what recommenders answer to what);
- suggestions: how often recommenders name each movie (popularity among suggestions).

``DialogueModel.score(context)`` scores every movie for a context of mentioned movies (oldest first):
each context movie spreads its (co-occurrence + ``succession_weight`` x succession) row, divided by
its number of neighbours to the power ``alpha`` (a popular anchor says less about each neighbour),
weighted by recency (``decay`` per older mention); a small share of suggestion popularity breaks ties
and covers movies never seen together. Written here rather than taken from a library: it is a few
sparse-matrix lines, and no recommender library fits counts from dialogues.

``DialogueRetriever`` serves the model through the ``Retriever`` contract for any catalogue: a
ReDial-catalogue profile directly, a MovieLens profile through an id mapping (ids the mapping lacks
are skipped). ``SuggestionPopularityRetriever`` is the popularity signal alone. ``IdMappedRetriever``
lets a retriever of one catalogue (e.g. the MovieLens collaborative model) serve another.
``load_dialogue_scorer`` fits the model on a dialogue file and maps it onto any catalogue by title and
year: what the pipeline builds for ``retrieval.retriever = "dialogue"`` or ``retrieval.dialogue_weight``.

Liked films outside the rated catalogue (``UserProfile.outside_liked``: ids of MovieLens-25M's ``movies_all.csv``,
``llmrec.chat.outside``) are context too: given those films, ``OutsideContext`` maps them to the model's ids by
the same title and year matching, on the first profile that names one (the ReDial movies the rated catalogue
already has are left to it). They come after the liked history, in the order given, and are never candidates.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy import sparse

from llmrec.data.redial import Dialogue, dialogue_turns
from llmrec.errors import DataError
from llmrec.profile import liked_weights, split_title_year
from llmrec.retrieval import Retriever, top_candidates
from llmrec.types import Candidate, Evidence, HistoryEntry, Item, UserProfile

CATALOGUE_NAME = "movies_with_mentions.csv"  # ReDial's movie list, beside its dialogue files

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DialogueConfig:
    """Scoring constants; the defaults were chosen by cross-validation on ReDial's training dialogues only."""

    succession_weight: float = 1.0
    alpha: float = 0.5
    decay: float = 0.8
    popularity_weight: float = 0.02

    def __post_init__(self) -> None:
        for name in ("succession_weight", "alpha", "popularity_weight"):
            if getattr(self, name) < 0:
                raise DataError(f"DialogueConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.decay <= 1:
            raise DataError(f"DialogueConfig.decay must be in (0, 1], got {self.decay}")


class DialogueModel:
    """Co-occurrence, succession and suggestion counts over a fixed id list; see the module docstring."""

    def __init__(self, ids: Sequence[str], cooccurrence: sparse.csr_matrix, succession: sparse.csr_matrix,
                 suggestions: np.ndarray, config: DialogueConfig | None = None,
                 dialogues: int = 0) -> None:  # fmt: skip
        self.ids = list(ids)
        self.index = {item_id: n for n, item_id in enumerate(self.ids)}
        self.cooccurrence = cooccurrence
        self.succession = succession
        self.suggestions = np.asarray(suggestions, dtype=np.float64)
        self.dialogues = dialogues
        self.config = config or DialogueConfig()
        self._prepare()

    def _prepare(self) -> None:
        cfg = self.config
        links = (self.cooccurrence + cfg.succession_weight * self.succession).tocsr()
        neighbours = np.diff(links.indptr).astype(np.float64)
        self.links = sparse.diags(1.0 / np.power(np.maximum(neighbours, 1.0), cfg.alpha)) @ links
        top = self.suggestions.max() if self.suggestions.size else 0.0
        self.popularity = self.suggestions / top if top > 0 else self.suggestions

    def with_config(self, config: DialogueConfig) -> DialogueModel:
        return DialogueModel(self.ids, self.cooccurrence, self.succession, self.suggestions, config, self.dialogues)

    @classmethod
    def fit(cls, dialogues: Iterable[Dialogue], ids: Iterable[str] = (), config: DialogueConfig | None = None
            ) -> DialogueModel:  # fmt: skip
        """Counts from ``dialogues``; the id list is ``ids`` plus every movie the dialogues mention."""
        known = dict.fromkeys(ids)
        pairs: list[tuple[str, str]] = []
        successions: list[tuple[str, str]] = []
        suggested: list[str] = []
        n = 0
        for dialogue in dialogues:
            n += 1
            earlier: dict[str, None] = {}
            for turn in dialogue_turns(dialogue):
                movies = list(dict.fromkeys(turn.movies))
                if not turn.by_seeker:
                    suggested += movies
                    successions += [(a, b) for b in movies for a in earlier if a != b]
                earlier.update(dict.fromkeys(movies))
            mentioned = list(earlier)
            pairs += [(a, b) for a in mentioned for b in mentioned if a != b]
            known.update(dict.fromkeys(mentioned))
        order = list(known)
        index = {item_id: k for k, item_id in enumerate(order)}
        size = len(order)

        def matrix(edges: list[tuple[str, str]]) -> sparse.csr_matrix:
            rows = np.array([index[a] for a, _ in edges], dtype=np.int64)
            cols = np.array([index[b] for _, b in edges], dtype=np.int64)
            data = np.ones(len(edges), dtype=np.float64)
            return sparse.csr_matrix((data, (rows, cols)), shape=(size, size))  # duplicates are summed

        counts = np.zeros(size)
        np.add.at(counts, np.array([index[m] for m in suggested], dtype=np.int64), 1.0)
        return cls(order, matrix(pairs), matrix(successions), counts, config, n)

    def context_weights(self, context: Sequence[str]) -> dict[int, float]:
        """Known context movies (oldest first) -> recency weight (the latest mention of each counts)."""
        weights: dict[int, float] = {}
        known = [self.index[c] for c in context if c in self.index]
        for age, row in enumerate(reversed(known)):
            weights.setdefault(row, self.config.decay**age)
        return weights

    def contributions(self, context: Sequence[str]) -> tuple[list[int], np.ndarray]:
        """(known context rows, their weighted link rows as a dense (len(rows), n) array)."""
        weights = self.context_weights(context)
        rows = list(weights)
        if not rows:
            return [], np.zeros((0, len(self.ids)))
        w = np.fromiter(weights.values(), dtype=np.float64)
        return rows, self.links[rows].toarray() * w[:, None]

    def score(self, context: Sequence[str]) -> np.ndarray:
        """A score for every id in ``self.ids`` given the movies mentioned so far (oldest first)."""
        _, parts = self.contributions(context)
        return self.config.popularity_weight * self.popularity + parts.sum(axis=0)


def _ordered_context(profile: UserProfile, to_model: Mapping[str, str] | None) -> list[str]:
    """The profile's liked history in time order, as model ids; disliked and excluded movies left out."""
    ids = list(liked_weights(profile))[::-1]  # liked_weights: most recent first
    if to_model is None:
        return ids
    return [to_model[i] for i in ids if i in to_model]


@dataclass(eq=False)
class OutsideContext:
    """Films outside the rated catalogue as dialogue context: their ids -> the model's (ReDial) ids, matched by
    title and year (``load_redial_catalogue``, as for the rated catalogue) on first use, since reading ``films``
    loads ``movies_all.csv``. ``taken``: ReDial ids already mapped to the rated catalogue (left to it). A file
    that cannot be read leaves the mapping empty (logged): the outside films add no context, as before."""

    films: Mapping[str, Item]
    catalogue_path: Path
    taken: frozenset[str] = frozenset()
    _to_model: dict[str, str] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def to_model(self) -> dict[str, str]:
        if self._to_model is None:
            with self._lock:
                if self._to_model is None:
                    self._to_model = self._match()
        return self._to_model

    def _match(self) -> dict[str, str]:
        from llmrec.data.redial import load_redial_catalogue

        try:
            films = dict(self.films)  # a plain dict: ``OutsideFilms.items`` is its loaded films, not the method
            if not films:
                return {}
            catalogue = load_redial_catalogue(self.catalogue_path.parent, films, path=self.catalogue_path)
        except (DataError, OSError, ValueError) as exc:
            log.warning("liked films outside the rated catalogue give the dialogue scorer no context: %s", exc)
            return {}
        found = {ml_id: redial_id for ml_id, redial_id in catalogue.from_movielens().items()
                 if redial_id not in self.taken}  # fmt: skip
        log.info("%d films outside the rated catalogue matched the training dialogues' movie list", len(found))
        return found

    def context(self, outside_ids: Sequence[str]) -> list[str]:
        """The model ids of ``outside_ids`` (in the order given) that the dialogues' movie list has."""
        if not outside_ids:
            return []
        to_model = self.to_model
        return [to_model[i] for i in outside_ids if i in to_model]

    @cached_property
    def _from_model(self) -> dict[str, str]:
        """The model's ids -> the first outside film mapped to each (built once, for the evidence lines)."""
        back: dict[str, str] = {}
        for item_id, model_id in self.to_model.items():
            back.setdefault(model_id, item_id)
        return back

    def title(self, model_id: str) -> str | None:
        """The title of the outside film mapped to ``model_id`` (None: none is)."""
        item_id = self._from_model.get(model_id)
        item = self.films.get(item_id) if item_id is not None else None
        return split_title_year(item.display_title)[0] if item is not None else None


def _title(items: Mapping[str, Item] | None, item_id: str) -> str:
    """The film's title as people say it, without the year ("The Matrix"); the id when unknown."""
    item = items.get(item_id) if items is not None else None
    return split_title_year(item.display_title)[0] if item is not None else item_id


class DialogueRetriever:
    """Top-k of a ``DialogueModel`` for a profile whose history holds the movies mentioned so far.

    ``to_model`` maps the catalogue's ids to the model's (None: the same ids); candidates are mapped
    back and limited to ``items`` when given. Profiles with no known movie get no candidates.
    ``outside``: the profile's liked films outside the catalogue (``outside_liked``) as context after its
    history; never candidates (only ``to_model``'s ids map back).
    """

    name = "dialogue"

    def __init__(self, model: DialogueModel, items: Mapping[str, Item] | None = None,
                 to_model: Mapping[str, str] | None = None, name: str = "dialogue",
                 outside: OutsideContext | None = None) -> None:  # fmt: skip
        self.model = model
        self.items = items
        self.to_model = to_model
        self.name = name
        self.outside = outside
        self.from_model: dict[str, str] = {}
        if to_model is not None:
            for catalogue_id, model_id in to_model.items():
                self.from_model.setdefault(model_id, catalogue_id)

    def _catalogue_id(self, model_id: str) -> str | None:
        item_id = self.from_model.get(model_id) if self.to_model is not None else model_id
        if item_id is None or (self.items is not None and item_id not in self.items):
            return None
        return item_id

    def retrieve(self, profile: UserProfile, k: int) -> list[Candidate]:
        context = _ordered_context(profile, self.to_model)
        if self.outside is not None and self.to_model is not None:
            context += self.outside.context(profile.outside_liked)
        rows, parts = self.model.contributions(context)
        if k <= 0 or not rows:
            return []
        scores = self.model.config.popularity_weight * self.model.popularity + parts.sum(axis=0)
        pool: dict[str, float] = {}
        columns: dict[str, int] = {}
        for col in np.argsort(-scores, kind="stable")[: 4 * k + len(profile.seen) + 50]:
            item_id = self._catalogue_id(self.model.ids[col])
            if item_id is not None and scores[col] > 0 and item_id not in pool:
                pool[item_id] = float(scores[col])
                columns[item_id] = int(col)
        out = []
        for item_id, score in top_candidates(pool, k, banned=profile.seen):
            evidence = Evidence(stage_scores=((self.name, score),))
            best = int(np.argmax(parts[:, columns[item_id]]))
            if parts[best, columns[item_id]] > 0:
                evidence = self._evidence(self.model.ids[rows[best]], evidence)
            out.append(Candidate(item_id, score, (self.name,), evidence))
        return out

    def _evidence(self, anchor_model_id: str, evidence: Evidence) -> Evidence:
        """The line naming the context movie that contributed most (an outside film: by title, not as an id)."""
        anchor = self._catalogue_id(anchor_model_id)
        if anchor is not None:
            title: str | None = _title(self.items, anchor)
        else:
            title = self.outside.title(anchor_model_id) if self.outside is not None else None
        if title is None:
            return evidence
        line = f"in conversations, people who talked about {title} were often recommended it"
        similar = (anchor,) if anchor is not None else ()  # similar_liked holds catalogue ids only
        return Evidence(similar_liked=similar, collaborative=line, stage_scores=evidence.stage_scores)


class SuggestionPopularityRetriever:
    """The movies recommenders suggest most often in the training dialogues (the same list for everyone)."""

    name = "popularity"

    def __init__(self, model: DialogueModel, items: Mapping[str, Item] | None = None,
                 to_model: Mapping[str, str] | None = None, name: str = "popularity") -> None:  # fmt: skip
        self.inner = DialogueRetriever(model, items, to_model, name)
        self.name = name

    def retrieve(self, profile: UserProfile, k: int) -> list[Candidate]:
        if k <= 0:
            return []
        model = self.inner.model
        pool: dict[str, float] = {}
        for row in np.argsort(-model.popularity, kind="stable")[: 2 * k + len(profile.seen) + 50]:
            item_id = self.inner._catalogue_id(model.ids[row])
            if item_id is not None and model.popularity[row] > 0:
                pool.setdefault(item_id, float(model.popularity[row]))
        evidence = "one of the films recommended most often in conversations"
        return [Candidate(i, s, (self.name,), Evidence(collaborative=evidence, stage_scores=((self.name, s),)))
                for i, s in top_candidates(pool, k, banned=profile.seen)]  # fmt: skip


class IdMappedRetriever:
    """A retriever of another catalogue serving this one: the profile's ids mapped in, candidates mapped back.

    ``to_inner`` maps this catalogue's ids to the inner retriever's; history entries, dislikes and
    exclusions without a mapping are dropped; candidates without a way back are skipped.
    """

    def __init__(self, inner: Retriever, to_inner: Mapping[str, str], name: str | None = None) -> None:
        self.inner = inner
        self.to_inner = dict(to_inner)
        self.name = name or inner.name
        self.from_inner: dict[str, str] = {}
        for outer_id, inner_id in self.to_inner.items():
            self.from_inner.setdefault(inner_id, outer_id)

    def _map(self, ids: Iterable[str]) -> tuple[str, ...]:
        return tuple(self.to_inner[i] for i in ids if i in self.to_inner)

    def retrieve(self, profile: UserProfile, k: int) -> list[Candidate]:
        if k <= 0:
            return []
        history = tuple(replace(e, item_id=self.to_inner[e.item_id]) for e in profile.history
                        if e.item_id in self.to_inner)  # fmt: skip
        inner_profile = replace(profile, history=history, disliked=self._map(profile.disliked),
                                excluded=self._map(profile.excluded))  # fmt: skip
        found = self.inner.retrieve(inner_profile, k + len(profile.seen))
        seen = profile.seen
        out = []
        for cand in found:
            outer = self.from_inner.get(cand.item_id)
            if outer is not None and outer not in seen:
                out.append(replace(cand, item_id=outer))
        return out[:k]


def context_profile(movies: Sequence[str], preferences: Sequence[str] = (), user_id: str | None = None
                    ) -> UserProfile:  # fmt: skip
    """A profile whose history is the movies mentioned so far (oldest first, no ratings, order as time)."""
    ordered = list(dict.fromkeys(reversed(movies)))[::-1]  # each movie once, at its latest mention
    history = tuple(HistoryEntry(m, None, t) for t, m in enumerate(ordered))
    return UserProfile(user_id=user_id, history=history, stated_preferences=tuple(p for p in preferences if p))


@dataclass(frozen=True)
class DialogueScorer:
    """A ``DialogueModel`` fitted for one catalogue: the model, the catalogue id -> model id mapping, and counts;
    ``outside``: liked films outside the catalogue as context (None: not read)."""

    model: DialogueModel
    to_model: Mapping[str, str]
    counts: Mapping[str, int]
    outside: OutsideContext | None = None

    def retriever(self, items: Mapping[str, Item], name: str = "dialogue") -> DialogueRetriever:
        return DialogueRetriever(self.model, items, to_model=self.to_model, name=name, outside=self.outside)

    def outside_context(self, outside_ids: Sequence[str]) -> list[str]:
        """The model ids of the given liked films outside the catalogue that the dialogues' movie list has (in
        that order; [] without outside films)."""
        return self.outside.context(outside_ids) if self.outside is not None else []


def load_dialogue_scorer(path: str | Path, items: Mapping[str, Item], popularity: Mapping[str, float] | None = None,
                         config: DialogueConfig | None = None, outside: Mapping[str, Item] | None = None
                         ) -> DialogueScorer:  # fmt: skip
    """The dialogue model fitted on the training dialogues at ``path`` (ReDial JSON lines, ``.gz`` allowed),
    served to the catalogue ``items`` (any ids) through titles and years.

    The movie list is ``movies_with_mentions.csv`` beside ``path``; its titles are matched to ``items``
    (``popularity``: item id -> count, settles titles naming several films). Dialogues that cannot be read
    are skipped and counted; a file without dialogues, or a catalogue sharing no film with them, is a
    ``DataError`` naming the file. ``outside``: films outside ``items`` (e.g. ``llmrec.chat.outside.OutsideFilms``,
    read only when a profile likes one) whose ReDial movies become context for such profiles.
    """
    from llmrec.data.redial import LoadReport, load_dialogues, load_redial_catalogue

    path = Path(path)
    report = LoadReport()
    dialogues = load_dialogues(path, report)
    if not dialogues:
        raise DataError(f"no usable dialogues in {path} ({report.describe()}); point retrieval.dialogue_file at "
                        "ReDial's training dialogues")  # fmt: skip
    catalogue = load_redial_catalogue(path.parent, items, popularity, path=path.parent / CATALOGUE_NAME)
    to_model = catalogue.from_movielens(items)
    if not to_model:
        raise DataError(f"none of the movies of {path.parent / CATALOGUE_NAME} is in this catalogue (matched by "
                        "title and year); the dialogue scorer needs a movie catalogue")  # fmt: skip
    model = DialogueModel.fit(dialogues, catalogue.items, config)
    counts = {"dialogues": len(dialogues), **dict(catalogue.counts), "catalogue items reachable": len(to_model)}
    counts.update({f"skipped: {why}": n for why, n in report.skipped.items()})
    context = None
    if outside is not None:
        context = OutsideContext(outside, path.parent / CATALOGUE_NAME, frozenset(catalogue.to_movielens))
    return DialogueScorer(model, to_model, counts, context)
