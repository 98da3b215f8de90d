"""ReDial dialogues and movie lists: the catalogue conversations live in, mapped to MovieLens.

- ``load_dialogues``: ReDial's JSON-lines files (plain or ``.gz``) as typed ``Dialogue`` values. Bad
  lines (not JSON, no messages) are skipped and counted in a ``LoadReport``, never a crash.
- ``dialogue_turns``: consecutive messages of one speaker merged into a ``Turn`` (the grouping of
  CRSLab's ``_merge_conv_data`` and UniCRS's ``process_mask.py``), each with the ReDial ids it
  mentions (``@123``; ids the dialogue does not name are dropped and counted).
- ``load_redial_catalogue``: ``movies_with_mentions.csv`` (6,924 movies, ReDial's own ids, titles with
  years) as ``Item`` values, each mapped to a MovieLens id by normalised title and year and given that
  film's genres and keywords. ``nbMentions`` is never read: it counts the test dialogues.
- ``load_movies_all``: every MovieLens-25M film (``ml-25m-keywords/movies_all.csv``, 62,423 films, no
  ratings) as ``Item`` values, so titles outside the rated catalogue can be recognised.
- ``TitleIndex``: normalised title (+ year, one year off accepted) -> item id, the lookup the chat
  can use to recognise a named film. Titles shared by several films are resolved by the year, then by
  popularity when one is given, and counted as ambiguous.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from llmrec.data.movielens import split_title
from llmrec.errors import DataError
from llmrec.profile import normalise_title, split_title_year
from llmrec.types import Item

log = logging.getLogger(__name__)

REDIAL_DIR = Path("redial")
TRAIN_FILE = REDIAL_DIR / "train.jsonl.gz"
DEV_FILE = REDIAL_DIR / "dialogues.jsonl"
CATALOGUE_FILE = REDIAL_DIR / "movies_with_mentions.csv"
MOVIES_ALL_FILE = Path("ml-25m-keywords") / "movies_all.csv"
MENTION = re.compile(r"@(\d+)")


# -- dialogues -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Message:
    sender: str
    text: str


@dataclass(frozen=True)
class Dialogue:
    """One ReDial conversation; ``mentions`` maps its ReDial movie ids to the names it gives them."""

    conversation_id: str
    seeker: str
    messages: tuple[Message, ...]
    mentions: Mapping[str, str]
    labels: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # seeker's answers: suggested/seen/liked


@dataclass(frozen=True)
class Turn:
    """Consecutive messages of one speaker; ``movies`` are the ReDial ids mentioned, in order (repeats kept)."""

    by_seeker: bool
    texts: tuple[str, ...]
    movies: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.texts)


@dataclass
class LoadReport:
    """What was skipped while loading, and why (counts)."""

    lines: int = 0
    dialogues: int = 0
    skipped: Counter = field(default_factory=Counter)

    def describe(self) -> str:
        parts = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
        return f"{self.dialogues} dialogues from {self.lines} lines" + (f" (skipped: {parts})" if parts else "")


def _open_text(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:  # type: ignore[operator]
            yield from handle
    except FileNotFoundError:
        raise DataError(f"missing ReDial file {path}; check --data-dir points at the folder holding redial/") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"unreadable ReDial file {path}: {exc}; re-copy the file") from None


def parse_dialogue(raw: Mapping) -> Dialogue:
    """One ReDial JSON object as a ``Dialogue``; DataError when it has no messages or no seeker."""
    messages = tuple(
        Message(str(m.get("senderWorkerId", "")), str(m.get("text") or "")) for m in raw.get("messages") or ()
    )
    if not messages:
        raise DataError("dialogue without messages")
    if raw.get("initiatorWorkerId") is None:
        raise DataError("dialogue without initiatorWorkerId")
    mentions = {str(k): " ".join(str(v or "").split()) for k, v in (raw.get("movieMentions") or {}).items()}
    labels = raw.get("initiatorQuestions") or raw.get("respondentQuestions") or {}
    return Dialogue(str(raw.get("conversationId", "")), str(raw["initiatorWorkerId"]), messages, mentions,
                    {str(k): dict(v) for k, v in labels.items() if isinstance(v, Mapping)})  # fmt: skip


def load_dialogues(path: str | Path, report: LoadReport | None = None) -> list[Dialogue]:
    """Every usable dialogue of a ReDial JSON-lines file; what was skipped is counted in ``report``."""
    report = report if report is not None else LoadReport()
    out = []
    for line in _open_text(Path(path)):
        if not line.strip():
            continue
        report.lines += 1
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            report.skipped["lines that are not JSON"] += 1
            continue
        if not isinstance(raw, Mapping):
            report.skipped["lines that are not JSON objects"] += 1
            continue
        try:
            out.append(parse_dialogue(raw))
        except DataError as exc:
            report.skipped[str(exc)] += 1
    report.dialogues = len(out)
    return out


def dialogue_turns(dialogue: Dialogue, unknown: Counter | None = None) -> list[Turn]:
    """The dialogue's turns: messages of one speaker in a row merged; empty messages dropped (counted)."""
    turns: list[Turn] = []
    texts: list[str] = []
    movies: list[str] = []
    speaker: str | None = None
    for message in dialogue.messages:
        if speaker is not None and message.sender != speaker and texts:
            turns.append(Turn(speaker == dialogue.seeker, tuple(texts), tuple(movies)))
            texts, movies = [], []
        speaker = message.sender
        if not message.text.strip():
            if unknown is not None:
                unknown["empty messages"] += 1
            continue
        texts.append(message.text)
        for movie in MENTION.findall(message.text):
            if movie in dialogue.mentions:
                movies.append(movie)
            elif unknown is not None:
                unknown["mentions of ids the dialogue does not name"] += 1
    if texts and speaker is not None:
        turns.append(Turn(speaker == dialogue.seeker, tuple(texts), tuple(movies)))
    return turns


def written_out(text: str, names: Mapping[str, str]) -> str:
    """``@123`` mentions replaced by the movie's name, as a person types it (unknown ids: "a movie")."""
    return " ".join(MENTION.sub(lambda m: names.get(m[1], "a movie"), text).split())


# -- titles ----------------------------------------------------------------------------------
def title_keys(title: str) -> set[str]:
    """The normalised forms a title is known by: "Seven (a.k.a. Se7en)" gives "seven" and "se7en"."""
    keys = {normalise_title(title)}
    main, _, rest = title.partition(" (")
    if rest:
        keys.add(normalise_title(main))
        keys.add(normalise_title(re.sub(r"^a\.k\.a\.\s*", "", rest.rstrip(")"))))
    return keys - {""}


@dataclass
class TitleIndex:
    """Normalised title -> [(year, item id)]; ``find("Heat (1995)")`` -> the item id or None."""

    by_title: dict[str, list[tuple[int | None, str]]]
    popularity: Mapping[str, float] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)

    def find(self, name: str) -> str | None:
        """The id of the film ``name`` means ("Title (Year)" or a bare title), or None; see the module docstring."""
        title, year = split_title_year(name)
        films = self.by_title.get(normalise_title(title), [])
        if not films:
            self.counts["not found"] += 1
            return None
        if year is not None:
            for wanted in (year, year - 1, year + 1):
                ids = list(dict.fromkeys(i for y, i in films if y == wanted))
                if ids:
                    return self._pick(ids)
            self.counts["not found (title known, other year)"] += 1
            return None
        return self._pick(list(dict.fromkeys(i for _, i in films)))

    def _pick(self, ids: list[str]) -> str:
        if len(ids) == 1:
            self.counts["found"] += 1
            return ids[0]
        self.counts["ambiguous (most popular chosen)"] += 1
        return max(ids, key=lambda i: (self.popularity.get(i, 0.0), -ids.index(i)))


def title_index(items: Mapping[str, Item], popularity: Mapping[str, float] | None = None) -> TitleIndex:
    """A ``TitleIndex`` over ``items`` (MovieLens "Matrix, The" and "The Matrix" are one key)."""
    by_title: dict[str, list[tuple[int | None, str]]] = defaultdict(list)
    for item_id, item in items.items():
        for key in title_keys(item.title):
            by_title[key].append((item.year, item_id))
    return TitleIndex(dict(by_title), dict(popularity or {}))


# -- catalogues ------------------------------------------------------------------------------
def _read_rows(path: Path, columns: tuple[str, ...]) -> Iterator[dict[str, str]]:
    import csv

    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in columns if c not in (reader.fieldnames or ())]
            if missing:
                raise DataError(f"{path} lacks column(s) {', '.join(missing)}; expected {','.join(columns)}")
            yield from reader
    except FileNotFoundError:
        raise DataError(f"missing file {path}; check --data-dir") from None


def _split(raw: str | None) -> tuple[str, ...]:
    parts = (p.strip() for p in (raw or "").split("|"))
    return tuple(p for p in parts if p and p != "(no genres listed)")


def load_movies_all(data_dir: str | Path) -> dict[str, Item]:
    """Every MovieLens-25M film of ``D/ml-25m-keywords/movies_all.csv`` (ids as MovieLens'; no ratings)."""
    path = Path(data_dir) / MOVIES_ALL_FILE
    items: dict[str, Item] = {}
    for row in _read_rows(path, ("movieId", "title", "genres")):
        title, year = split_title(row["title"])
        if row["movieId"] and title:
            items[row["movieId"]] = Item(row["movieId"], title, year, _split(row["genres"]),
                                         _split(row.get("keyword") or row.get("keywords")))  # fmt: skip
    if not items:
        raise DataError(f"{path} holds no films; re-copy ml-25m-keywords/movies_all.csv")
    return items


@dataclass(frozen=True)
class RedialCatalogue:
    """ReDial's movies as items (ReDial ids) and their MovieLens ids where the title and year match."""

    items: Mapping[str, Item]
    to_movielens: Mapping[str, str]
    counts: Mapping[str, int]

    def from_movielens(self, items: Container[str] | None = None) -> dict[str, str]:
        """MovieLens id -> ReDial id (the first ReDial entry when several map to one film), limited to ``items``
        when given: the ``to_model`` mapping a ``DialogueRetriever`` needs to serve a MovieLens catalogue."""
        out: dict[str, str] = {}
        for redial_id, ml_id in self.to_movielens.items():
            if items is None or ml_id in items:
                out.setdefault(ml_id, redial_id)
        return out


def load_redial_catalogue(data_dir: str | Path, movielens: Mapping[str, Item] | None = None,
                          popularity: Mapping[str, float] | None = None, path: str | Path | None = None
                          ) -> RedialCatalogue:  # fmt: skip
    """``D/redial/movies_with_mentions.csv`` (or ``path``) as items, mapped to ``movielens`` (default:
    ``load_movies_all``; any catalogue of titles with years works, e.g. a data set's items).

    A mapped movie takes the MovieLens film's genres and keywords; ``popularity`` (MovieLens id ->
    count) settles titles that name several films. ``nbMentions`` is not read.
    """
    path = Path(path) if path is not None else Path(data_dir) / CATALOGUE_FILE
    movielens = movielens if movielens is not None else load_movies_all(data_dir)
    index = title_index(movielens, popularity)
    items: dict[str, Item] = {}
    mapping: dict[str, str] = {}
    counts: Counter = Counter()
    for row in _read_rows(path, ("movieId", "movieName")):
        redial_id, name = (row["movieId"] or "").strip(), " ".join((row["movieName"] or "").split())
        if not redial_id or not name:
            counts["rows without id or name"] += 1
            continue
        title, year = split_title_year(name)
        ml_id = index.find(name)
        if ml_id is None:
            items[redial_id] = Item(redial_id, title, year)
            continue
        mapping[redial_id] = ml_id
        film = movielens[ml_id]
        items[redial_id] = replace(film, item_id=redial_id, title=title, year=year or film.year)
    counts.update(index.counts)
    counts["movies"] = len(items)
    counts["mapped to MovieLens"] = len(mapping)
    if not items:
        raise DataError(f"{path} holds no movies; re-copy redial/movies_with_mentions.csv")
    return RedialCatalogue(items, mapping, dict(counts))


def mention_names(dialogues: Iterable[Dialogue]) -> dict[str, str]:
    """ReDial id -> the name the dialogues give it (for ids missing from the catalogue file)."""
    names: dict[str, str] = {}
    for dialogue in dialogues:
        for movie, name in dialogue.mentions.items():
            names.setdefault(movie, name)
    return names


# -- the field's evaluation protocol ----------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """A movie a recommender turn mentions; ``repeat`` when it came up earlier (in the dialogue or the turn)."""

    movie: str
    repeat: bool
    liked_suggestion: bool  # the seeker's questionnaire: suggested and liked (labels, never a model input)


@dataclass(frozen=True)
class Sample:
    """One recommender turn that mentions movies: everything said before it, and its targets."""

    dialogue: Dialogue
    turn: int
    context: tuple[Turn, ...]
    targets: tuple[Target, ...]

    @property
    def context_movies(self) -> tuple[str, ...]:
        """Every movie mentioned before this turn, by either speaker, oldest first (repeats kept)."""
        return tuple(m for t in self.context for m in t.movies)

    def context_texts(self, seeker_only: bool = False, last: int | None = None) -> list[str]:
        """The context's turns as text, ``@123`` written out as titles; the ``last`` turns only when given."""
        turns = [t for t in self.context if t.by_seeker or not seeker_only]
        turns = turns[-last:] if last else turns
        return [written_out(t.text, self.dialogue.mentions) for t in turns]


def protocol_samples(dialogue: Dialogue, counts: Counter | None = None) -> list[Sample]:
    """The samples of the CRSLab / UniCRS ReDial protocol for one dialogue.

    Consecutive messages of a speaker form a turn; every recommender turn after the first turn of the
    dialogue that mentions movies is a sample whose context is all earlier turns (both speakers) and
    whose targets are every movie the turn mentions, each once per mention.
    """
    turns = dialogue_turns(dialogue, counts)
    samples = []
    earlier: set[str] = set()
    for n, turn in enumerate(turns):
        if n > 0 and not turn.by_seeker and turn.movies:
            seen = set(earlier)
            targets = []
            for movie in turn.movies:
                label = dialogue.labels.get(movie, {})
                liked = label.get("suggested") == 1 and label.get("liked") == 1
                targets.append(Target(movie, movie in seen, liked))
                seen.add(movie)
            samples.append(Sample(dialogue, n, tuple(turns[:n]), tuple(targets)))
        earlier.update(turn.movies)
    return samples


def protocol_hits(samples: Sequence[Sample], ranked: Sequence[Sequence[str]], ks: Sequence[int] = (1, 10, 50),
                  repeats: bool = True, catalogue: Container[str] | None = None) -> list[list[bool]]:  # fmt: skip
    """One row per target: whether it is in the sample's top k, for each k (UniCRS ``compute_recall``).

    ``repeats=False`` drops targets mentioned earlier (the standardised variant); a target outside
    ``catalogue`` is a miss. Recall@k is the mean of column k.
    """
    rows = []
    for sample, top in zip(samples, ranked):
        for target in sample.targets:
            if target.repeat and not repeats:
                continue
            known = catalogue is None or target.movie in catalogue
            rows.append([known and target.movie in top[:k] for k in ks])
    return rows
