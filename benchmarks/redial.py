"""ReDial: conversational recommendation measured the way the field measures it, and the way the app works.

    python benchmarks/redial.py --data-dir ../shared/data                    # both tables, development set
    python benchmarks/redial.py --data-dir ../shared/data --tune             # choose constants (training set only)

**Field protocol** (what KBRD, KGSF, UniCRS report; followed from the public code): the dialogue's
consecutive messages of one speaker are merged into a turn (CRSLab ``ReDialDataset._merge_conv_data``;
UniCRS ``src/data/redial/process_mask.py``). Every recommender turn after the first turn of the dialogue
that mentions movies is a sample; its context is every earlier turn of *both* speakers (CRSLab
``_augment_and_add``: ``context_items``/``context_entities`` grow with every turn; UniCRS: ``context``
holds the seeker's and the recommender's turns, movie mentions written out as names). Every movie the
turn mentions is a separate target (CRSLab ``KBRDDataLoader.rec_process_fn``: ``for movie in
conv_dict['items']``; UniCRS ``CRSRecDataset.prepare_data``: ``for item in dialog['rec']``), including
movies mentioned earlier ("repeats kept", as the papers do). Each target is ranked against the whole
catalogue and Recall@k is the share of targets in the top k (UniCRS ``evaluate_rec.py``:
``int(label in rank[:k])`` averaged over targets; CRSLab ``rec_evaluate`` the same over
``topk(rec_predict[:, item_ids], 50)``). The catalogue is ReDial's own movie list (6,924 movies of
``movies_with_mentions.csv``; UniCRS ranks its 6,281 DBpedia-linked ones). The second column removes
targets already mentioned in the dialogue (the standardised variant). Our retrievers never propose a
movie already mentioned in the context (already-seen exclusion), so repeated targets are misses for us.

**Product protocol**: only the seeker's messages, replayed one at a time through the chat engine
(``Conversation.handle``, ``@id`` written out as "Title (Year)"); before each such recommender turn the
engine's profile and filters get 50 recommendations from the MovieLens catalogue (ml-latest-small).
Targets: the turn's new movies (every mention, and those the seeker labelled suggested-and-liked).

ReDial movies are mapped to MovieLens by normalised title and year (``llmrec.profile.normalise_title``,
``split_title_year``; one year off accepted, a bare title matched alone, titles naming several films
resolved by rating count and counted). Counts of the dialogue model and popularity come from the 901
training dialogues only; ``nbMentions`` is never read. ``--tune`` chooses every constant by 5-fold
cross-validation over the training dialogues; the development file is only measured.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.data.redial import (
    DEV_FILE,
    TRAIN_FILE,
    Dialogue,
    LoadReport,
    Sample,
    load_dialogues,
    load_redial_catalogue,
    protocol_hits,
    protocol_samples,
    written_out,
)
from llmrec.retrieval.dialogue import (
    CATALOGUE_NAME,
    DialogueConfig,
    DialogueModel,
    DialogueRetriever,
    IdMappedRetriever,
    OutsideContext,
    SuggestionPopularityRetriever,
    context_profile,
)
from llmrec.retrieval.fusion import HybridRetriever
from llmrec.types import Constraints, UserProfile

log = logging.getLogger("redial")
KS = (1, 10, 50)
DEPTH = 150  # what HybridRetriever asks each retriever for when k = 50
NAMES = ("cf", "text", "dialogue", "popularity")
# Chosen by --tune (5-fold cross-validation on the training dialogues); see docs/benchmarks/redial.md.
FIELD_WEIGHTS = {"cf": 0.25, "text": 0.5, "dialogue": 1.0, "popularity": 0.25}
PRODUCT_WEIGHTS = {"cf": 1.0, "text": 0.25, "dialogue": 1.0, "popularity": 0.25}
RRF_K = 60.0
TODAY_PLUS_DIALOGUE = {"cf": 1.0, "text": 0.25, "dialogue": 1.0}  # the app's hybrid with the dialogue scorer added
FIELD_TEXT = {"seeker_only": False, "last": 4}
PUBLISHED = [("KBRD (Chen et al. 2019), as reported by UniCRS", 0.169, None),
             ("UniCRS (Wang et al. 2022)", 0.224, None), ("GPT-4 zero-shot (He et al. 2023)", 0.19, None),
             ("HARPO (2025)", 0.298, None),
             ("ReFICR (as reported / standardised, Kostric & Balog 2026)", 0.305, 0.213)]  # fmt: skip


# -- parts -----------------------------------------------------------------------------------
class CachedEmbedder:
    """The embedder with a memo, same vectors: the chat re-embeds every stated preference at each turn."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.memo: dict[str, np.ndarray] = {}

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Any, show_progress: bool = False) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if todo:
            self.memo.update(zip(todo, self.inner.embed(todo, show_progress)))
        return np.stack([self.memo[t] for t in texts]) if len(texts) else np.zeros((0, self.dim), np.float32)


@dataclass
class Parts:
    data_dir: Path
    cache_dir: Path | None
    stores: dict = field(default_factory=dict)

    @cached_property
    def movielens(self) -> Any:
        from llmrec.data import load_dataset

        return load_dataset("ml-latest-small", data_dir=self.data_dir, cache_dir=self.cache_dir)

    @cached_property
    def catalogue(self) -> Any:
        counts = Counter(self.movielens.interactions.item_ids.tolist())
        return load_redial_catalogue(self.data_dir, popularity=counts)

    @cached_property
    def cf(self) -> tuple[Any, Any]:
        from llmrec.baselines import TrainData, get_scorer
        from llmrec.data import preprocess

        seq = preprocess(self.movielens)  # what the app fits: every user's whole history, 5-core
        train = TrainData(seq.n_users, seq.n_items, seq.sequences, ratings=seq.ratings, timestamps=seq.timestamps)
        return get_scorer("ease").fit(train), seq

    @cached_property
    def embedder(self) -> Any:
        from llmrec.embedding import get_embedder

        return CachedEmbedder(get_embedder(cache_dir=self.cache_dir))

    def store(self, name: str, items: Any) -> Any:
        """The vector store of ``items`` (built on first use, then reused from the cache folder)."""
        from llmrec.index.memory import MemoryIndex
        from llmrec.indexing import build_index, open_store

        if name not in self.stores:
            index = open_store(name, self.embedder, cache_dir=self.cache_dir)
            if index.count() != len(items):
                build_index(items, self.embedder, index)
            ids = index.ids()  # the same vectors in memory: exact search, and no store I/O per query
            vectors = index.get_vectors(ids)
            memory = MemoryIndex(index.spec)
            memory.upsert(ids, np.stack([vectors[i] for i in ids]), [""] * len(ids), [{}] * len(ids))
            self.stores[name] = memory
        return self.stores[name]

    def dialogues(self, path: Path, limit: int = 0) -> list[Dialogue]:
        report = LoadReport()
        found = load_dialogues(self.data_dir / path, report)
        log.warning("%s: %s", path, report.describe())
        return found[:limit] if limit else found

    @cached_property
    def prior(self) -> Any:
        """The quality prior from ml-latest-small's ratings (MovieLens ids)."""
        from llmrec.retrieval.prior import QualityPrior

        return QualityPrior.from_interactions(self.movielens.interactions)

    @cached_property
    def redial_prior(self) -> Any:
        """The same prior keyed by ReDial ids (unmapped movies and films without ratings get 0)."""
        from llmrec.retrieval.prior import QualityPrior

        pairs = [(r, m) for r, m in self.catalogue.to_movielens.items() if m in self.prior.counts]
        return QualityPrior({r: self.prior.counts[m] for r, m in pairs},
                            {r: self.prior.means[m] for r, m in pairs if m in self.prior.means})  # fmt: skip

    def ml_to_redial_mapped(self) -> dict[str, str]:
        """ReDial id -> ml-latest-small id, for mapped movies in the rated catalogue."""
        return {r: m for r, m in self.catalogue.to_movielens.items() if m in self.movielens.items}

    def field_retrievers(self, model: DialogueModel) -> dict[str, Any]:
        """Every retriever over ReDial's catalogue (ReDial ids)."""
        from llmrec.retrieval.collaborative import CollaborativeRetriever
        from llmrec.retrieval.text import TextRetriever

        items = self.catalogue.items
        scorer, seq = self.cf
        cf = CollaborativeRetriever(scorer, seq, label="ease", items=self.movielens.items)
        return {"cf": IdMappedRetriever(cf, self.ml_to_redial_mapped()),
                "text": TextRetriever(self.store("redial-movies", items), self.embedder, items=items),
                "dialogue": DialogueRetriever(model, items),
                "popularity": SuggestionPopularityRetriever(model, items)}  # fmt: skip

    def product_retrievers(self, model: DialogueModel) -> dict[str, Any]:
        """Every retriever over the MovieLens catalogue (MovieLens ids); the dialogue model through the mapping."""
        from llmrec.chat.outside import OutsideFilms
        from llmrec.retrieval.collaborative import CollaborativeRetriever
        from llmrec.retrieval.text import TextRetriever

        items = self.movielens.items
        scorer, seq = self.cf
        to_model = self.catalogue.from_movielens(items)
        # films the seeker liked that ml-latest-small lacks (the chat keeps them from movies_all.csv) are context too
        films = OutsideFilms(self.data_dir.resolve(), items)
        outside = OutsideContext(films, self.data_dir / "redial" / CATALOGUE_NAME, frozenset(to_model.values()))
        return {"cf": CollaborativeRetriever(scorer, seq, label="ease", items=items),
                "text": TextRetriever(self.store("ml-latest-small", items), self.embedder, items=items),
                "dialogue": DialogueRetriever(model, items, to_model=to_model, outside=outside),
                "popularity": SuggestionPopularityRetriever(model, items, to_model=to_model)}  # fmt: skip


def hybrid(retrievers: dict[str, Any], weights: dict[str, float], rrf_k: float = RRF_K) -> HybridRetriever:
    """The composition to wire: the retrievers with a positive weight, fused by weighted RRF."""
    names = [n for n in NAMES if weights.get(n, 0) > 0]
    return HybridRetriever([retrievers[n] for n in names], weights=[weights[n] for n in names], rrf_k=rrf_k)


# -- fusion on cached lists (same formula as HybridRetriever, for tuning) ----------------------
def fuse(lists: dict[str, list[str]], weights: dict[str, float], rrf_k: float, k: int = 50) -> list[str]:
    fused: dict[str, float] = {}
    for name, ranked in lists.items():
        w = weights.get(name, 0.0)
        if w > 0:
            for rank, item in enumerate(ranked, 1):
                fused[item] = fused.get(item, 0.0) + w / (rrf_k + rank)
    return [i for i, _ in sorted(fused.items(), key=lambda p: (-p[1], p[0]))[:k]]


def hits(ranked: list[str], target: str | None) -> list[bool]:
    return [target is not None and target in ranked[:k] for k in KS]


def recall(rows: list[list[bool]]) -> dict[str, Any]:
    out: dict[str, Any] = {"targets": len(rows)}
    if not rows:
        return out
    table = np.array(rows, dtype=float)
    for j, k in enumerate(KS):
        out[f"R@{k}"] = round(float(table[:, j].mean()), 4)
        out[f"R@{k} se"] = round(float(table[:, j].std() / np.sqrt(len(table))), 4)
    return out


# -- field protocol --------------------------------------------------------------------------
def field_profile(sample: Sample, text: dict[str, Any]) -> UserProfile:
    """Movies mentioned so far as the history; each context turn's words as a stated preference."""
    return context_profile(sample.context_movies, sample.context_texts(text["seeker_only"], text["last"]))


def field_lists(samples: list[Sample], retrievers: dict[str, Any], text: dict[str, Any]) -> list[dict[str, list]]:
    from llmrec.progress import progress

    if hasattr(retrievers.get("text"), "embedder"):  # embed every turn once, in batches
        texts = {t: None for s in samples for t in field_profile(s, text).stated_preferences}
        retrievers["text"].embedder.embed(list(texts))
    out = []
    for sample in progress(samples, "field protocol", unit="turn"):
        profile = field_profile(sample, text)
        out.append({n: [c.item_id for c in r.retrieve(profile, DEPTH)] for n, r in retrievers.items()})
    return out


def field_rows(samples: list[Sample], ranked: list[list[str]], catalogue: Any) -> dict[str, list[list[bool]]]:
    return {"repeats kept": protocol_hits(samples, ranked, KS, True, catalogue.items),
            "repeats removed": protocol_hits(samples, ranked, KS, False, catalogue.items)}  # fmt: skip


def samples_of(dialogues: list[Dialogue], counts: Counter) -> list[Sample]:
    return [s for d in dialogues for s in protocol_samples(d, counts)]


# -- product protocol ------------------------------------------------------------------------
def replay(dialogues: list[Dialogue], parts: Parts, composition: Any = None, understanding: str = "rules"
           ) -> list[dict]:  # fmt: skip
    """The chat engine's state before every scored turn (seeker messages only), as JSON records.

    ``composition`` (a retriever) replaces the app's configured retriever inside the engine: the
    onboarding questions it asks depend on the candidate pool, so the states depend on it too.
    ``understanding``: how the engine reads each message (``rules``, or ``llm``: the language model, seconds
    a message on two cores)."""
    from llmrec.chat.engine import Conversation
    from llmrec.chat.store import ProfileStore
    from llmrec.config import RecommenderConfig
    from llmrec.pipeline import Recommender
    from llmrec.progress import progress

    config = RecommenderConfig().updated(data={"dataset": "ml-latest-small", "data_dir": str(parts.data_dir)},
                                         ranker={"kind": "passthrough"}, explainer={"kind": "template"},
                                         understanding={"kind": understanding})  # fmt: skip

    class Composed(Recommender):
        def retriever(self, profile: UserProfile) -> tuple[Any, list[str]]:
            return (composition, []) if composition is not None else super().retriever(profile)

    rec = Composed(config, dataset=parts.movielens, embedder=parts.embedder,
                   index=parts.store("ml-latest-small", parts.movielens.items),
                   scorer_factory=lambda name, seq: parts.cf[0])  # fmt: skip
    store = ProfileStore(Path(tempfile.mkdtemp()) / "redial.sqlite")
    records = []
    for dialogue in progress(dialogues, "replaying dialogues", unit="dialogue"):
        convo = Conversation(rec, store, f"redial-{dialogue.conversation_id}", k=10)
        convo.start()
        by_turn = {s.turn: s for s in protocol_samples(dialogue)}
        from llmrec.data.redial import dialogue_turns

        for n, turn in enumerate(dialogue_turns(dialogue)):
            if turn.by_seeker:
                for text in turn.texts:
                    convo.handle(written_out(text, dialogue.mentions))
            elif n in by_turn:
                targets = [(t.movie, t.repeat, t.liked_suggestion) for t in by_turn[n].targets]
                records.append({"dialogue": dialogue.conversation_id, "turn": n, "state": convo.state().to_json(),
                                "targets": targets})  # fmt: skip
        convo.forget()
    return records


def product_profile(record: dict) -> tuple[UserProfile, Any]:
    """The engine's profile for a replayed state, and the filter its constraints make (None without any)."""
    from llmrec.chat.state import ChatState

    profile = ChatState.from_json(record["state"]).to_profile()
    return profile, (profile.constraints.allows if profile.constraints else None)


class ColdStartPrior:
    """The pipeline's rule (``parts.build_retriever``): the quality prior over cold-start profiles only."""

    def __init__(self, inner: Any, prior: Any, items: Any) -> None:
        from llmrec.retrieval.prior import PriorRetriever

        self.inner = inner
        self.with_prior = PriorRetriever(inner, prior, items)
        self.name = inner.name

    def retrieve(self, profile: UserProfile, k: int) -> list:
        from llmrec.retrieval.prior import is_cold_start

        cold = is_cold_start(profile, self.with_prior.config)
        return (self.with_prior if cold else self.inner).retrieve(profile, k)


def product_lists(records: list[dict], retrievers: dict[str, Any], items: Any) -> list[dict[str, list]]:
    """Each retriever's list, filtered the way the chat filters (a deeper pool when a filter applies)."""
    from llmrec.progress import progress

    out = []
    for record in progress(records, "product protocol", unit="turn"):
        profile, keep = product_profile(record)
        lists = {}
        for name, r in retrievers.items():
            found = [c.item_id for c in r.retrieve(profile, DEPTH * (4 if keep else 1))]
            lists[name] = [i for i in found if keep is None or keep(items[i])][:DEPTH]
        out.append(lists)
    return out


def product_ranked(records: list[dict], retriever: Any, items: Any, k: int = 50) -> list[list[str]]:
    """What ``Recommender.recommend`` would show for each record's state with ``retriever`` as its retriever:
    nothing for a profile with nothing in it, a ten-times deeper pool when the chat's filter applies, and
    the unfiltered list after the filtered one when the filter leaves fewer than ``k`` (the engine relaxes)."""
    from llmrec.progress import progress

    out = []
    for record in progress(records, "product protocol, fused", unit="turn"):
        profile, keep = product_profile(record)
        if profile.is_newcomer and not profile.stated_preferences:
            out.append([])
            continue
        found = retriever.retrieve(profile, k if keep is None else 10 * k)
        ranked = [c.item_id for c in found if keep is None or keep(items[c.item_id])][:k]
        if keep is not None and not ranked:  # the engine relaxes the constraints when nothing meets them
            relaxed = replace(profile, constraints=Constraints())
            ranked = [c.item_id for c in retriever.retrieve(relaxed, k)]
        out.append(ranked[:k])
    return out


def product_rows(records: list[dict], ranked: list[list[str]], to_ml: dict[str, str]) -> dict[str, list]:
    every, liked = [], []
    for record, top in zip(records, ranked):
        for movie, repeat, liked_suggestion in record["targets"]:
            if repeat:
                continue
            row = hits(top, to_ml.get(movie))
            every.append(row)
            if liked_suggestion:
                liked.append(row)
    return {"every new mention": every, "suggested and liked": liked}


# -- tuning (training dialogues only) --------------------------------------------------------
def folds(dialogues: list[Dialogue], n: int = 5) -> list[tuple[list[Dialogue], list[Dialogue]]]:
    return [([d for j, d in enumerate(dialogues) if j % n != f], [d for j, d in enumerate(dialogues) if j % n == f])
            for f in range(n)]  # fmt: skip


WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0)
COMBOS = [dict(zip(NAMES, c)) for c in itertools.product(WEIGHT_GRID, repeat=len(NAMES)) if any(c)]


def grid(lists: list[dict], targets: list[list[str | None]], k: int = 10) -> list[tuple[float, dict, float]]:
    """Recall@k of every weight combination and rrf_k, best first: HybridRetriever's RRF, vectorised
    over the combinations (ties may break differently from the id order the retriever uses)."""
    weights = np.array([[c[n] for n in NAMES] for c in COMBOS])
    found = {rrf_k: np.zeros(len(COMBOS)) for rrf_k in (10.0, 60.0)}
    total = sum(len(t) for t in targets)
    for ls, wanted in zip(lists, targets):
        if not wanted:
            continue
        union = list(dict.fromkeys(i for n in NAMES for i in ls.get(n, [])))
        column = {item: j for j, item in enumerate(union)}
        for rrf_k, counts in found.items():
            ranks = np.zeros((len(NAMES), len(union)))
            for r, n in enumerate(NAMES):
                for rank, item in enumerate(ls.get(n, []), 1):
                    ranks[r, column[item]] = 1.0 / (rrf_k + rank)
            fused = weights @ ranks
            top = np.argsort(-fused, axis=1, kind="stable")[:, :k] if union else np.zeros((len(COMBOS), 0), int)
            for target in wanted:
                if target in column:
                    counts += (top == column[target]).any(axis=1) & (fused[:, column[target]] > 0)
    results = [(round(float(c[j] / max(total, 1)), 4), COMBOS[j], rrf_k) for rrf_k, c in found.items()
               for j in range(len(COMBOS))]  # fmt: skip
    return sorted(results, key=lambda r: -r[0])


def field_targets(samples: list[Sample], removed: bool = True) -> list[list[str | None]]:
    return [[t.movie for t in s.targets if not (removed and t.repeat)] for s in samples]


def tune(parts: Parts, limit: int, replayed: int) -> dict[str, Any]:
    train = parts.dialogues(TRAIN_FILE, limit)
    report: dict[str, Any] = {}
    counts: Counter = Counter()
    # 1. dialogue-model constants, dialogue retriever alone, field protocol, repeats removed
    configs = [DialogueConfig(s, a, d, p) for s in (0.0, 1.0, 3.0) for a in (0.0, 0.5, 1.0) for d in (0.5, 0.8, 1.0)
               for p in (0.0, 0.02)]  # fmt: skip
    per_fold = [(DialogueModel.fit(fit, parts.catalogue.items), samples_of(held, counts)) for fit, held in folds(train)]
    scored = []
    for cfg in configs:
        rows = []
        for model, samples in per_fold:
            retriever = DialogueRetriever(model.with_config(cfg), parts.catalogue.items)
            ranked = [[c.item_id for c in retriever.retrieve(context_profile(s.context_movies), 50)] for s in samples]
            rows += field_rows(samples, ranked, parts.catalogue)["repeats removed"]
        scored.append((recall(rows)["R@10"], cfg))
    scored.sort(key=lambda p: -p[0])
    report["dialogue config (R@10 removed, top 5)"] = [(r, str(c)) for r, c in scored[:5]]
    best_cfg = scored[0][1]
    # 2. text context and fusion weights, field protocol
    fold_lists = {}
    for name, text in {"both speakers, last 4 turns": {"seeker_only": False, "last": 4},
                       "seeker, last 2 turns": {"seeker_only": True, "last": 2},
                       "seeker, every turn": {"seeker_only": True, "last": None}}.items():  # fmt: skip
        lists, samples = [], []
        for model, held in per_fold:
            lists += field_lists(held, parts.field_retrievers(model.with_config(best_cfg)), text)
            samples += held
        fold_lists[name] = lists

        results = grid(lists, field_targets(samples))
        alone = {n: next(r for r, w, rrf_k in results if w[n] and sum(w.values()) == w[n]) for n in NAMES}
        report[f"field, text from {name}: each alone (R@10 removed)"] = alone
        report[f"field, text from {name}: best fusion"] = results[:5]
        kept = grid(lists, field_targets(samples, removed=False))
        report[f"field, text from {name}: best fusion, repeats kept"] = kept[:3]
    # 3. product protocol on replayed training dialogues
    records = replay(train[:replayed] if replayed else train, parts)
    lists = []
    to_ml = parts.ml_to_redial_mapped()
    for fit, held in folds(train):
        ids = {d.conversation_id for d in held}
        model = DialogueModel.fit(fit, parts.catalogue.items, best_cfg)
        lists += product_lists([r for r in records if r["dialogue"] in ids], parts.product_retrievers(model),
                               parts.movielens.items)  # fmt: skip
    ordered = [r for f in folds(train) for r in records if r["dialogue"] in {d.conversation_id for d in f[1]}]

    targets = [[to_ml.get(m) for m, repeat, _ in r["targets"] if not repeat] for r in ordered]
    results = grid(lists, targets)
    report["product: best fusion (R@10, every new mention)"] = results[:8]
    report["product: each alone"] = {n: next(r for r, w, rrf_k in results if w[n] and sum(w.values()) == w[n])
                                     for n in NAMES}  # fmt: skip
    today = {"cf": 1.0, "text": 0.25, "dialogue": 0.0, "popularity": 0.0}
    report["product: today's default (text 0.25, cf 1, rrf_k 60)"] = next(
        r for r, w, rrf_k in results if w == today and rrf_k == 60.0)  # fmt: skip
    liked = [[to_ml.get(m) for m, repeat, ok in r["targets"] if ok and not repeat] for r in ordered]
    report["product: best fusion (R@10, suggested and liked)"] = grid(lists, liked)[:5]
    report["skipped while reading"] = dict(counts)
    return report


# -- measuring on the development dialogues --------------------------------------------------
def cached_replay(dialogues: list[Dialogue], parts: Parts, cache: Path | None, understanding: str = "rules"
                  ) -> list[dict]:  # fmt: skip
    """``replay``, read from ``cache`` when it holds the same dialogues (the states do not depend on weights)."""
    from llmrec.fileutil import atomic_file

    key = [d.conversation_id for d in dialogues] + [f"understanding={understanding}"]
    if cache is not None and cache.is_file():
        stored = json.loads(cache.read_text(encoding="utf-8"))
        if stored.get("dialogues") == key:
            return stored["records"]
    records = replay(dialogues, parts, understanding=understanding)
    if cache is not None:
        with atomic_file(cache) as tmp:
            tmp.write_text(json.dumps({"dialogues": key, "records": records}), encoding="utf-8")
    return records


def measure(parts: Parts, limit: int, protocols: tuple[str, ...], cache: Path | None = None,
            understanding: str = "rules", prior_row: bool = False) -> dict[str, Any]:  # fmt: skip
    train = parts.dialogues(TRAIN_FILE)
    dev = parts.dialogues(DEV_FILE, limit)
    model = DialogueModel.fit(train, parts.catalogue.items)
    out: dict[str, Any] = {"dialogues": len(dev), "catalogue": dict(parts.catalogue.counts),
                           "published R@10 (kept, removed)": PUBLISHED}  # fmt: skip
    if "field" in protocols:
        counts: Counter = Counter()
        samples = samples_of(dev, counts)
        retrievers = parts.field_retrievers(model)
        started = time.monotonic()
        lists = field_lists(samples, retrievers, FIELD_TEXT)
        table = {n: field_rows(samples, [ls[n][:50] for ls in lists], parts.catalogue) for n in NAMES}
        # HybridRetriever asks each retriever for DEPTH (= 3 x 50) candidates: the same RRF over the lists above
        for name, weights in (("fused", FIELD_WEIGHTS), ("text 0.25 + cf 1 (the app)", {"text": 0.25, "cf": 1.0}),
                              ("text 0.25 + cf 1 + dialogue 1", TODAY_PLUS_DIALOGUE)):
            table[name] = field_rows(samples, [fuse(ls, weights, RRF_K) for ls in lists], parts.catalogue)
        if prior_row:
            from llmrec.retrieval.prior import PriorRetriever

            retriever = PriorRetriever(hybrid(retrievers, FIELD_WEIGHTS), parts.redial_prior, parts.catalogue.items)
            ranked = [[c.item_id for c in retriever.retrieve(field_profile(s, FIELD_TEXT), 50)] for s in samples]
            table["fused + prior"] = field_rows(samples, ranked, parts.catalogue)
        out["field protocol"] = {n: {v: recall(rows) for v, rows in t.items()} for n, t in table.items()}
        out["field protocol"]["seconds"] = round(time.monotonic() - started, 1)
        out["field protocol"]["skipped while reading"] = dict(counts)
        out["field protocol"]["unknown target ids"] = sum(t.movie not in parts.catalogue.items
                                                          for s in samples for t in s.targets)  # fmt: skip
    if "product" in protocols or "replay" in protocols:
        started = time.monotonic()
        records = cached_replay(dev, parts, cache, understanding)
        if "product" not in protocols:
            return {"replayed dialogues": len(dev), "records": len(records), "seconds": time.monotonic() - started}
        retrievers = parts.product_retrievers(model)
        lists = product_lists(records, retrievers, parts.movielens.items)
        to_ml = parts.ml_to_redial_mapped()
        table = {n: product_rows(records, [ls[n][:50] for ls in lists], to_ml) for n in NAMES}
        proposed = hybrid(retrievers, PRODUCT_WEIGHTS)
        before = hybrid(retrievers, {"text": 0.25, "cf": 1.0})

        def cold(retriever: Any) -> ColdStartPrior:
            return ColdStartPrior(retriever, parts.prior, parts.movielens.items)

        for name, retriever in (("before issue 14: text 0.25 + cf 1", before),
                                ("default: text 0.25 + cf 1, prior on cold start", cold(before)),
                                ("default + dialogue 1", cold(hybrid(retrievers, TODAY_PLUS_DIALOGUE))),
                                ("fused (4 scorers)", proposed),
                                ("fused (4 scorers), prior on cold start", cold(proposed))):
            table[name] = product_rows(records, product_ranked(records, retriever, parts.movielens.items), to_ml)
        out["product protocol"] = {n: {v: recall(rows) for v, rows in t.items()} for n, t in table.items()}
        out["product protocol"]["seconds"] = round(time.monotonic() - started, 1)
        mapped = [to_ml.get(m) is not None for r in records for m, rep, _ in r["targets"] if not rep]
        out["product protocol"]["targets in ml-latest-small"] = round(float(np.mean(mapped)), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data", type=Path)
    parser.add_argument("--cache-dir", default=None, type=Path)
    parser.add_argument("--dialogues", type=int, default=0, help="first N dialogues (0 = all)")
    parser.add_argument("--protocol", choices=("field", "product", "both", "replay"), default="both",
                        help="replay: only replay the development dialogues (into --replay-cache)")
    parser.add_argument("--replay-cache", type=Path, default=None,
                        help="JSON file keeping the chat engine's replayed states between runs")
    parser.add_argument("--understanding", choices=("rules", "llm"), default="rules",
                        help="how the replayed chat reads each seeker message (llm: seconds a message on 2 cores)")
    parser.add_argument("--prior-row", action="store_true",
                        help="field protocol: also the fused list under the quality prior (a second retrieval pass)")
    parser.add_argument("--tune", action="store_true", help="cross-validate constants on the training dialogues")
    parser.add_argument("--replayed", type=int, default=300,
                        help="with --tune: training dialogues replayed through the chat engine (0 = all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    parts = Parts(args.data_dir, args.cache_dir)
    if args.tune:
        result = tune(parts, args.dialogues, args.replayed)
    else:
        protocols = ("field", "product") if args.protocol == "both" else (args.protocol,)
        result = measure(parts, args.dialogues, protocols, args.replay_cache, args.understanding, args.prior_row)
    print(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
