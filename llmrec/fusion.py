"""One fused final order: the LLM ranker's label scores combined with retrieval signals by a learned model.

For each candidate of the retriever's window the ranker computes a few features (``FEATURES``): the LLM's
label log-probability and rank (and, asked again with the window reversed, its log-probability), the retriever's
rank and score, popularity in the fit data, genre overlap with the user's recent history, the distance in years,
and the cosine similarity of the item's text embedding (the vector store's) to the recent history's mean and to
the last item. A ``FusionModel`` -- scikit-learn's logistic regression or LightGBM's LambdaRank, fitted on the
validation split only (``benchmarks/ranking.py``) -- turns them into one score per candidate. The old retrieval
blend, ``(1-b) * llm + b * log(1/(60+rank))``, is a linear model of two of these features, so the logistic model
contains it as a special case.

A fusion model is only valid for what it was fitted on: its card names the data set (and its k-core), the
split protocol, the retriever and its settings, the number of candidates and the language model's identity
(model, weights, adapter, prompt). ``FusionModel.check`` refuses any other with one line naming the
mismatch. Models are stored as JSON (coefficients, or LightGBM's own text format inside it): no pickles.

``LabelScoreCache`` keeps the LLM's label scores on disk, keyed by the model's identity and the exact prompt,
so fitting, sweeps and re-runs never score a prompt twice; ``CachedLLM`` puts it in front of any ``LLM``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmrec.errors import ConfigError, ModelError
from llmrec.fileutil import atomic_file, sha256_file
from llmrec.types import Candidate, Item, UserProfile

if TYPE_CHECKING:
    from llmrec.ranking import LLMRanker

FORWARD_LLM_FEATURES = ("llm", "llm_rr")  # from the label scores of the window in retrieval order
LLM_FEATURES = (*FORWARD_LLM_FEATURES, "llm_rev")  # llm_rev: the label scores with the window shown in reverse
RETRIEVAL_FEATURES = ("retrieval_rr", "retrieval_rrf60", "retrieval_logit")
CONTENT_FEATURES = ("popularity", "genre_sim", "year_gap")
TEXT_FEATURES = ("text_sim", "text_last")  # need the items' text vectors (FeatureContext.vectors)
FEATURES = (*LLM_FEATURES, *RETRIEVAL_FEATURES, *CONTENT_FEATURES, *TEXT_FEATURES)
KINDS = ("logistic", "lambdarank")
FORMAT = 1


# Features ---------------------------------------------------------------------------------------
def _log_softmax(values: np.ndarray) -> np.ndarray:
    values = np.where(np.isfinite(values), values, np.nan)
    if np.all(np.isnan(values)):
        return np.zeros(len(values))
    shifted = values - np.nanmax(values)
    out = shifted - np.log(np.nansum(np.exp(shifted)))
    return np.where(np.isnan(out), np.nanmin(out) - 1.0, out)


def _rank_rr(scores: np.ndarray) -> np.ndarray:
    """1 / (1 + rank) by descending score; ties keep the window's order."""
    ranks = np.empty(len(scores))
    ranks[np.argsort(-scores, kind="stable")] = np.arange(len(scores))
    return 1.0 / (1.0 + ranks)


@dataclass(frozen=True)
class FeatureContext:
    """What features need besides the window: the catalogue and popularity in the data the retriever saw."""

    items: Mapping[str, Item]
    popularity: Mapping[str, int]  # item id -> users who interacted with it in the fit data
    max_history: int = 20
    vectors: Mapping[str, np.ndarray] | None = None  # item id -> its text vector (the text features)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def text_features(window: Sequence[Candidate], recent: Sequence[str], vectors: Mapping[str, np.ndarray]
                  ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per candidate: cosine of its text vector to the mean of the ``recent`` items' vectors, and to the last of
    them that has one; 0 where a vector is missing."""
    known = [_unit(np.asarray(vectors[i], dtype=np.float64)) for i in recent if i in vectors]
    sim, last = np.zeros(len(window)), np.zeros(len(window))
    if not known:
        return sim, last
    profile = _unit(np.mean(known, axis=0))
    for row, candidate in enumerate(window):
        vector = vectors.get(candidate.item_id)
        if vector is not None:
            unit = _unit(np.asarray(vector, dtype=np.float64))
            sim[row], last[row] = float(unit @ profile), float(unit @ known[-1])
    return sim, last


def candidate_features(window: Sequence[Candidate], history: Sequence[str], llm_logprobs: np.ndarray | None,
                       context: FeatureContext, names: Sequence[str] = FEATURES,
                       llm_reversed: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """(len(window), len(names)) features; ``window`` in retrieval order, ``history`` oldest first.
    ``llm_reversed``: the label log-probabilities of the window shown last candidate first, in window order."""
    n = len(window)
    values: dict[str, np.ndarray] = {}
    if set(names) & set(FORWARD_LLM_FEATURES):
        if llm_logprobs is None or len(llm_logprobs) != n:
            raise ModelError(f"fusion: features llm and llm_rr need the language model's {n} label scores")
        values["llm"] = np.asarray(llm_logprobs, dtype=np.float64)
        values["llm_rr"] = _rank_rr(values["llm"])
    if "llm_rev" in names:
        if llm_reversed is None or len(llm_reversed) != n:
            raise ModelError(f"fusion: feature llm_rev needs the language model's {n} label scores of the reversed "
                             "window")  # fmt: skip
        values["llm_rev"] = np.asarray(llm_reversed, dtype=np.float64)
    position = np.arange(n, dtype=np.float64)
    values["retrieval_rr"] = 1.0 / (1.0 + position)
    values["retrieval_rrf60"] = np.log(1.0 / (61.0 + position))
    values["retrieval_logit"] = _log_softmax(np.array([c.score for c in window], dtype=np.float64))
    values["popularity"] = np.log1p([float(context.popularity.get(c.item_id, 0)) for c in window])
    recent = [context.items[i] for i in history[-context.max_history :] if i in context.items] if history else []
    genre_counts: dict[str, float] = {}
    for item in recent:
        for genre in item.genres:
            genre_counts[genre] = genre_counts.get(genre, 0.0) + 1.0
    profile_norm = float(np.sqrt(sum(v * v for v in genre_counts.values())))
    years = [item.year for item in recent if item.year]
    mean_year = float(np.mean(years)) if years else None
    genre_sim, year_gap = np.zeros(n), np.zeros(n)
    for row, candidate in enumerate(window):
        item = context.items.get(candidate.item_id)
        if item is None:
            continue
        if item.genres and profile_norm:
            overlap = sum(genre_counts.get(g, 0.0) for g in item.genres)
            genre_sim[row] = overlap / (profile_norm * np.sqrt(len(item.genres)))
        if item.year and mean_year is not None:
            year_gap[row] = abs(item.year - mean_year) / 10.0
    values["genre_sim"], values["year_gap"] = genre_sim, year_gap
    if set(names) & set(TEXT_FEATURES):
        if context.vectors is None:
            raise ModelError(f"fusion: features {list(TEXT_FEATURES)} need the items' text vectors (the vector store)")
        recent_ids = list(history[-context.max_history :]) if history else []
        values["text_sim"], values["text_last"] = text_features(window, recent_ids, context.vectors)
    return np.stack([values[name] for name in names], axis=1)


# The model --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FusionModel:
    """A fitted fusion: ``score(features) -> one score per candidate``; ``card`` says what it is valid for."""

    kind: str
    features: tuple[str, ...]
    mean: tuple[float, ...] = ()  # logistic: standardisation and coefficients
    scale: tuple[float, ...] = ()
    coef: tuple[float, ...] = ()
    intercept: float = 0.0
    booster: str = ""  # lambdarank: LightGBM's text model
    card: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ModelError(f"fusion model kind {self.kind!r} is unknown; use one of {', '.join(KINDS)}")
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown or not self.features:
            raise ModelError(f"fusion model has unknown features {unknown}; known: {', '.join(FEATURES)}")
        if self.kind == "logistic" and not (len(self.mean) == len(self.scale) == len(self.coef) == len(self.features)):
            raise ModelError("fusion model (logistic) has coefficients that do not match its features; refit it")
        if self.kind == "lambdarank" and not self.booster:
            raise ModelError("fusion model (lambdarank) has no booster; refit it")

    @property
    def uses_llm(self) -> bool:
        return any(f in LLM_FEATURES for f in self.features)

    def score(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != len(self.features):
            raise ModelError(f"fusion model expects {len(self.features)} features, got shape {features.shape}")
        if self.kind == "logistic":
            z = (features - np.asarray(self.mean)) / np.asarray(self.scale)
            return z @ np.asarray(self.coef) + self.intercept
        return _booster(self.booster).predict(features, num_threads=1)

    def check(self, **actual: Any) -> None:
        """Refuse use outside what the card says the model was fitted for: ``dataset=``, ``protocol=``,
        ``retriever=``, ``n_candidates=``, ``llm=`` (identity), ``precision=`` (OpenVINO's), ``min_count=``,
        ``embedder=``; ``None`` values are not checked."""
        for key, value in actual.items():
            expected = self.card.get(key)
            if value is None or expected is None or _same(expected, value):
                continue
            name = self.card.get("name", "fusion model")
            raise ModelError(f"{name} was fitted for {key} {_short(expected)}, not {_short(value)}; use a fusion model "
                             f"fitted for this {key} (benchmarks/ranking.py fusion) or --ranker llm")  # fmt: skip

    # Files ----------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "kind": self.kind, "features": list(self.features), "mean": list(self.mean),
                "scale": list(self.scale), "coef": list(self.coef), "intercept": self.intercept,
                "booster": self.booster, "card": dict(self.card)}  # fmt: skip

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
            tmp.chmod(0o644)
        return path

    @classmethod
    def load(cls, path: str | Path) -> FusionModel:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
            return cls(kind=data["kind"], features=tuple(data["features"]), mean=tuple(data["mean"]),
                       scale=tuple(data["scale"]), coef=tuple(data["coef"]), intercept=float(data["intercept"]),
                       booster=str(data.get("booster", "")), card=dict(data.get("card") or {}))  # fmt: skip
        except FileNotFoundError:
            raise ModelError(f"fusion model {path} does not exist; fit one with benchmarks/ranking.py fusion") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"fusion model {path} cannot be read ({exc}); fit it again") from None


def _same(expected: Any, actual: Any) -> bool:
    return json.loads(json.dumps(expected)) == json.loads(json.dumps(actual))


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


_BOOSTERS: dict[str, Any] = {}


def _booster(text: str) -> Any:
    """LightGBM's booster from its text model (parsed once per process)."""
    key = hashlib.sha256(text.encode()).hexdigest()
    if key not in _BOOSTERS:
        import lightgbm

        _BOOSTERS[key] = lightgbm.Booster(model_str=text)
    return _BOOSTERS[key]


def fit_fusion(features: Sequence[np.ndarray], labels: Sequence[np.ndarray], names: Sequence[str], kind: str,
               param: float, seed: int = 0) -> FusionModel:  # fmt: skip
    """Fit on windows (one (K, F) array and one 0/1 label array per user). ``param`` is the logistic model's C
    or LambdaRank's number of trees. Windows without a relevant item are dropped (nothing to learn from)."""
    keep = [i for i, y in enumerate(labels) if np.asarray(y).sum() > 0]
    if len(keep) < 5:
        raise ModelError(f"fusion: only {len(keep)} windows hold the target; need at least 5 to fit")
    X = np.concatenate([np.asarray(features[i], dtype=np.float64) for i in keep])
    y = np.concatenate([np.asarray(labels[i], dtype=np.int64) for i in keep])
    if kind == "logistic":
        from sklearn.linear_model import LogisticRegression

        mean, scale = X.mean(axis=0), X.std(axis=0)
        scale = np.where(scale > 1e-12, scale, 1.0)
        model = LogisticRegression(C=float(param), max_iter=2000).fit((X - mean) / scale, y)
        return FusionModel(kind, tuple(names), tuple(mean.tolist()), tuple(scale.tolist()),
                           tuple(model.coef_[0].tolist()), float(model.intercept_[0]))  # fmt: skip
    if kind == "lambdarank":
        import lightgbm

        ranker = lightgbm.LGBMRanker(objective="lambdarank", n_estimators=int(param), learning_rate=0.05,
                                     num_leaves=7, min_child_samples=20, subsample=1.0, colsample_bytree=1.0,
                                     random_state=seed, deterministic=True, force_row_wise=True, n_jobs=1,
                                     verbose=-1)  # fmt: skip
        ranker.fit(X, y, group=[len(labels[i]) for i in keep])
        return FusionModel(kind, tuple(names), booster=ranker.booster_.model_to_string())
    raise ConfigError(f"fusion kind must be one of {', '.join(KINDS)}, got {kind!r}")


# Label scores on disk ---------------------------------------------------------------------------
def llm_identity(llm: Any) -> str:
    """What determines an LLM's label scores: backend class, model name, dtype and the ranker adapter's weights."""
    adapter = (getattr(llm, "adapters", None) or {}).get("rank")
    weights = "none"
    if adapter is not None and (Path(adapter) / "adapter_model.safetensors").is_file():
        weights = sha256_file(Path(adapter) / "adapter_model.safetensors")[:16]
    dtype = str(getattr(getattr(llm, "model", None), "dtype", "")).removeprefix("torch.")
    return f"{type(llm).__name__}:{llm.name}:{dtype or '-'}:rank-adapter={weights}"


class LabelScoreCache:
    """SQLite table of label scores keyed by sha256(identity, messages, options); safe across processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, value BLOB NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60)

    @staticmethod
    def key(identity: str, messages: Sequence[Mapping[str, str]], options: Sequence[str]) -> str:
        payload = json.dumps([identity, [dict(m) for m in messages], list(options)], sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def get(self, key: str) -> np.ndarray | None:
        with self._lock, self._connect() as db:
            row = db.execute("SELECT value FROM scores WHERE key = ?", (key,)).fetchone()
        return None if row is None else np.frombuffer(row[0], dtype=np.float32).copy()

    def put(self, key: str, scores: np.ndarray) -> None:
        blob = np.asarray(scores, dtype=np.float32).tobytes()
        with self._lock, self._connect() as db:
            db.execute("INSERT OR REPLACE INTO scores (key, value) VALUES (?, ?)", (key, blob))

    def __len__(self) -> int:
        with self._lock, self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM scores").fetchone()[0])


class CachedLLM:
    """An ``LLM`` whose ``score_options`` answers from a ``LabelScoreCache`` when it can; all else is delegated."""

    def __init__(self, llm: Any, cache: LabelScoreCache, identity: str | None = None) -> None:
        self.inner = llm
        self.cache = cache
        self.identity = identity or llm_identity(llm)
        # The runtime's precision (OpenVINO: bf16 or f32) changes the scores but not what the card's identity names:
        # it keys the cache, so that scores of one precision are never read back as the other's.
        precision = getattr(llm, "precision", None)
        self._key = self.identity + (f"|precision={precision}" if isinstance(precision, str) else "")
        self.hits = self.misses = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def score_options(self, messages: Any, options: Sequence[str], *, task: str = "rank") -> np.ndarray:
        key = self.cache.key(f"{self._key}|{task}", messages, options)
        cached = self.cache.get(key)
        if cached is not None and len(cached) == len(options):
            self.hits += 1
            return cached
        self.misses += 1
        scores = np.asarray(self.inner.score_options(messages, options, task=task), dtype=np.float32)
        if scores.shape == (len(options),) and np.all(np.isfinite(scores)):
            self.cache.put(key, scores)
        return scores


# The ranker -------------------------------------------------------------------------------------
class FusedRanker:
    """Reorders the retriever's window by a ``FusionModel`` of the LLM's label scores and retrieval signals.

    Ties in the fused score keep the retrieval order. A window shorter than the model's ``n_candidates`` is
    ranked (ranks mean the same) and ``last_note`` says so; the LLM failing falls back to retrieval order.
    """

    name = "fused"

    def __init__(self, model: FusionModel, context: FeatureContext, llm_ranker: Any = None) -> None:
        if model.uses_llm and llm_ranker is None:
            raise ModelError("fusion model uses the language model's scores; give FusedRanker an LLM ranker")
        self.model = model
        self.context = context
        self.llm_ranker = llm_ranker
        self.n_candidates = int(model.card.get("n_candidates", 20))
        self.last_note = ""

    def set_popularity(self, popularity: Mapping[str, int]) -> None:
        """Popularity from the data the retriever was fitted on (the evaluation sets the fit split's)."""
        self.context = dataclasses.replace(self.context, popularity=dict(popularity))

    def features(self, profile: UserProfile, window: Sequence[Candidate]) -> np.ndarray:
        names = self.model.features
        logprobs = self.llm_ranker.score(profile, window) if set(names) & set(FORWARD_LLM_FEATURES) else None
        # The same question with the candidates in reverse order (a second prompt with the same prefix): a small
        # model's letter choice leans on position, and the two orders lean opposite ways.
        reversed_ = self.llm_ranker.score(profile, window[::-1])[::-1] if "llm_rev" in names else None
        history = [e.item_id for e in profile.history]
        return candidate_features(window, history, logprobs, self.context, names, reversed_)

    def rank(self, profile: UserProfile, candidates: Sequence[Candidate], n: int) -> list[Candidate]:
        known = [c for c in candidates if c.item_id in self.context.items]
        window, rest = known[: self.n_candidates], known[self.n_candidates :]
        self.last_note = ""
        if not window:
            return []
        try:
            scores = self.model.score(self.features(profile, window))
        except ModelError:
            raise
        except Exception as exc:  # the model is untrusted: any failure falls back to retrieval order
            self.last_note = f"the language model failed ({type(exc).__name__}); results are in retrieval order"
            return list(known[:n])
        if len(window) < self.n_candidates:
            self.last_note = (f"fused order over {len(window)} candidates; the fusion model was fitted on "
                              f"{self.n_candidates}")  # fmt: skip
        order = np.argsort(-scores, kind="stable")
        ranked = []
        for i in order:
            c, score = window[i], float(scores[i])
            evidence = dataclasses.replace(c.evidence, stage_scores=(*c.evidence.stage_scores, ("fused", score)))
            ranked.append(dataclasses.replace(c, score=score, evidence=evidence))
        return (ranked + list(rest))[:n]


# The pipeline's builder -------------------------------------------------------------------------
SCORE_CACHE = Path("scores") / "label-scores.sqlite"  # under the llmrec cache folder


def fusion_file(model: str, dataset: str, retriever: str) -> Path:
    """Where the fusion model shipped for (language model, data set, retriever) lives."""
    from llmrec.resources import adapters_dir

    return adapters_dir() / model / f"fusion-{dataset}-{retriever}.json"


def shipped_retrievers(model: str, dataset: str) -> list[str]:
    """The retrievers a fusion model ships for (``model``, ``dataset``), best cross-validated NDCG@10 first."""
    pattern = fusion_file(model, dataset, "*")
    prefix = f"fusion-{dataset}-"
    found = []
    for path in pattern.parent.glob(pattern.name):
        try:
            card = FusionModel.load(path).card
        except ModelError:  # unreadable: not a pipeline to offer
            continue
        cv = ((card.get("validation") or {}).get("cross_validated") or {}).get("ndcg@10", 0.0)
        found.append((-float(cv), path.stem[len(prefix):]))
    return [name for _, name in sorted(found)]


def default_fusion(config: Any, dataset: str) -> Path | None:
    """The fusion model the ``llm`` ranker orders by, or None: one ships for this language model, data set and
    collaborative model, the ranker runs over ``cf`` retrieval with a model in this process, and neither a blend nor an
    adapter was asked for (those ask for the blend of ranks). The card is checked when the ranker is built."""
    llm, ranker, retrieval = config.llm, config.ranker, config.retrieval
    if not ranker.fusion or ranker.blend is not None or llm.adapter is not None or retrieval.retriever != "cf":
        return None
    if llm.url or llm.backend == "openai":  # a server's label scores are not the local model's the card names
        return None
    path = fusion_file(llm.model, dataset, retrieval.cf_model)
    return path if path.is_file() else None


def fused_sections(path: str | Path) -> dict[str, dict[str, Any]]:
    """Config sections that turn an ``llm`` ranker ``default_fusion`` chose ``path`` for (its retrieval already the
    model's) into the fused ranker, the language model with the adapter the model was fitted with."""
    adapter = FusionModel.load(path).card.get("adapter")
    llm: dict[str, Any] = {"use_default_adapter": adapter == "shipped"}
    if adapter not in (None, "none", "shipped"):
        llm["adapter"] = adapter
    return {"ranker": {"kind": "fused"}, "llm": llm}


def retriever_identity(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The retriever as a fusion card records it: registry name and the hyper-parameters that define it."""
    from llmrec.baselines import get_scorer

    return {"name": name, "hyperparameters": get_scorer(name, **dict(params or {})).hyperparameters()}


def interaction_counts(dataset: Any) -> dict[str, int]:
    """Users per item over all of a data set's interactions (the live pipeline's popularity)."""
    pairs = {(str(u), str(i)) for u, i in zip(dataset.interactions.user_ids, dataset.interactions.item_ids)}
    counts: dict[str, int] = {}
    for _, item in pairs:
        counts[item] = counts.get(item, 0) + 1
    return counts


def embedder_identity(embedder: Any) -> dict[str, str]:
    """The text embedder as a fusion card records it (the text features are only valid for its vectors)."""
    return {"name": embedder.name, "fingerprint": embedder.fingerprint()}


def item_vectors(model: FusionModel, owner: Any) -> dict[str, np.ndarray] | None:
    """The catalogue's text vectors from the owner's vector store when ``model`` uses text features, else None;
    the store's embedder must be the card's."""
    if not set(model.features) & set(TEXT_FEATURES):
        return None
    model.check(embedder=embedder_identity(owner.embedder))
    vectors = owner.index.get_vectors(list(owner.items))
    if not vectors:
        raise ModelError(f"{model.card.get('name', 'fusion model')} uses text similarity but the vector store has "
                         "no vectors for this catalogue; run llmrec index first")  # fmt: skip
    return vectors


def build_fused_ranker(config: Any, owner: Any, path: str | Path | None = None) -> FusedRanker:
    """The ``fused`` ranker kind: the shipped fusion model for this language model, data set and collaborative
    retriever (``retrieval.retriever = "cf"``), its LLM ranker reading label scores through the on-disk cache."""
    from llmrec.paths import resolve_cache_dir

    dataset = owner.dataset.name
    retrieval = config.retrieval
    retriever = retrieval.cf_model if retrieval.retriever == "cf" else retrieval.retriever
    path = Path(path) if path is not None else fusion_file(config.llm.model, dataset, retriever)
    if not path.is_file():
        raise ModelError(f"no fusion model for {config.llm.model} on {dataset} with {retriever!r} candidates "
                         f"({path} is missing); use --retriever cf --cf-model sasrec, or --ranker llm")  # fmt: skip
    model = FusionModel.load(path)
    fitted_for = (model.card.get("retriever") or {}).get("name", "?")
    if retrieval.retriever != "cf":
        raise ModelError(f"{model.card.get('name', path.name)} was fitted for retriever cf:{fitted_for}, not "
                         f"{retrieval.retriever!r}; use --retriever cf --cf-model {fitted_for}")  # fmt: skip
    model.check(dataset=dataset, min_count=config.data.min_count, retriever=retriever_identity(retriever))
    context = FeatureContext(owner.items, interaction_counts(owner.dataset), config.ranker.max_history,
                             item_vectors(model, owner))  # fmt: skip
    if not model.uses_llm:
        return FusedRanker(model, context)
    # The label scores' dtype (transformers) and precision (OpenVINO) are part of what the model was fitted on: run
    # the language model in the card's (a variant of the owner shares its other parts; the model loads once per
    # setting). A card without a precision was fitted at "auto", which is bf16 or f32 by processor.
    wanted = {key: model.card.get(key) for key in ("dtype", "precision")}
    wanted = {key: value for key, value in wanted.items() if value and value != getattr(config.llm, key)}
    if wanted and hasattr(owner, "variant"):
        owner = owner.variant(llm=wanted)
    cache = LabelScoreCache(resolve_cache_dir(config.cache_dir) / SCORE_CACHE)
    llm = CachedLLM(owner.llm, cache)
    model.check(llm=llm.identity, precision=getattr(owner.llm, "precision", None))
    return FusedRanker(model, context, card_llm_ranker(model, llm, owner.items, config.ranker.max_history))


def card_llm_ranker(model: FusionModel, llm: Any, items: Mapping[str, Item], max_history: int) -> LLMRanker:
    """The LLM ranker a fusion model was fitted with (its card's prompt, labels and history length) over ``llm``."""
    from llmrec.prompts import load_prompt_ref
    from llmrec.ranking import LLMRanker

    return LLMRanker(llm, items, labels=str(model.card.get("labels", "ABCDEFGHIJKLMNOPQRST")),
                     max_history=int(model.card.get("max_history", max_history)),
                     prompt=load_prompt_ref(str(model.card.get("prompt", "rank@1"))))  # fmt: skip
