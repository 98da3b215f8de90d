"""Ranking past LlamaRec (issue 16): retrievers, the LLM ranker's label scores, the fused order; prints figures.

Sections (each caches what it computes under ``--work``, so a later section or a re-run costs nothing):

``retrievers``  fit each retriever variant once (neural models: on the training items, stopped on the
                validation item, as the harness's test fit does), keep its validation and test score
                matrices, print NDCG@10 / Recall@10 / Recall@20 with standard errors on both.
``ensemble``    weighted sums of retrievers' normalised scores, weights chosen on validation Recall@20.
``positions``   where the target sits among a retriever's 20 candidates when it is there: the cross-entropy of the
                best model that reads the position only (shuffled lists: ln 20 = 3.00, whatever it learns).
``zeroshot``    the zero-shot LLM on 64 fine-tuning lists (the retriever's top 20 holding the answer), in the
                retriever's order and shuffled: its MRR against random order and its cross-entropy (issue 16's
                fourth check, on the real model).
``fusion``      the LLM's label scores for every validation and test window whose target was retrieved (through
                the on-disk score cache the fused ranker reads), the fusion features, model selection by 5-fold
                cross-validation over the validation users, a refit on all of them, test figures for every row
                (retriever, LLM alone, validated blend, fusion without the LLM, fused), and the model file with
                its card (``--out``).

Example (the figures in docs/benchmarks/ranking.md):

    nice -n 10 .venv/bin/python benchmarks/ranking.py retrievers --data-dir ../shared/data --work /tmp/rk \\
        --variants sasrec,sasrec-h128
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

log = logging.getLogger("ranking")

KS = (1, 5, 10, 20, 50)
COMMON = {"device": "cpu", "num_threads": 1, "max_seconds": None}
# SASRec's defaults before the sweep (LlamaRec's settings); the sweep's variants are changes to these
SASREC_2025 = {"dropout": 0.2, "max_len": 200, "label_smoothing": 0.0}
# LRURec's sweep: SASRec's settings with hidden 64 and dropout 0.5, changed one at a time
LRUREC_64 = {"hidden": 64, "dropout": 0.5}
# name -> (registry scorer, hyper-parameters); the sweep of issue 16 item 1
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "sasrec": ("sasrec", {}),  # the registry's defaults (since the sweep: sasrec-ls-len50-d5's settings)
    "sasrec-2025": ("sasrec", SASREC_2025),  # the defaults the sweep started from
    "sasrec-ffn4": ("sasrec", {**SASREC_2025, "ffn_mult": 4}),
    "sasrec-h128": ("sasrec", {**SASREC_2025, "hidden": 128, "dropout": 0.3}),
    "sasrec-h128-d5": ("sasrec", {**SASREC_2025, "hidden": 128, "dropout": 0.5}),
    "sasrec-h256-d5": ("sasrec", {**SASREC_2025, "hidden": 256, "dropout": 0.5, "heads": 4}),
    "sasrec-lr1e-3": ("sasrec", {**SASREC_2025, "learning_rate": 1e-3, "batch_size": 16}),
    "sasrec-ls": ("sasrec", {**SASREC_2025, "label_smoothing": 0.1}),
    "sasrec-d5": ("sasrec", {**SASREC_2025, "dropout": 0.5}),
    "sasrec-ffn4-d5": ("sasrec", {**SASREC_2025, "ffn_mult": 4, "dropout": 0.5}),
    "sasrec-b3-d5": ("sasrec", {**SASREC_2025, "blocks": 3, "dropout": 0.5}),
    "sasrec-len50": ("sasrec", {**SASREC_2025, "max_len": 50}),
    "sasrec-wd1": ("sasrec", {**SASREC_2025, "weight_decay": 0.1, "dropout": 0.5}),
    "sasrec-ls-len50": ("sasrec", {**SASREC_2025, "label_smoothing": 0.1, "max_len": 50}),
    "sasrec-ls-len50-d5": ("sasrec", {**SASREC_2025, "label_smoothing": 0.1, "max_len": 50, "dropout": 0.5}),
    "sasrec-ls-d5": ("sasrec", {**SASREC_2025, "label_smoothing": 0.1, "dropout": 0.5}),
    "sasrec-ls-len30": ("sasrec", {**SASREC_2025, "label_smoothing": 0.1, "max_len": 30}),
    "sasrec-ls2-len50": ("sasrec", {**SASREC_2025, "label_smoothing": 0.2, "max_len": 50}),
    "sasrec-ls-len100": ("sasrec", {**SASREC_2025, "label_smoothing": 0.1, "max_len": 100}),
    "sasrec-ls-len50-h128": ("sasrec", {**SASREC_2025, "label_smoothing": 0.1, "max_len": 50, "hidden": 128}),
    "lrurec": ("lrurec", {}),  # the registry's defaults (lrurec-d5's settings)
    "lrurec-d2": ("lrurec", {**LRUREC_64, "dropout": 0.2}),  # first defaults: SASRec's, dropout 0.2, FFN 4x
    "lrurec-d5": ("lrurec", LRUREC_64),
    "lrurec-lr1e-3": ("lrurec", {**LRUREC_64, "learning_rate": 1e-3}),
    "lrurec-len200": ("lrurec", {**LRUREC_64, "max_len": 200}),
    "lrurec-d6": ("lrurec", {**LRUREC_64, "dropout": 0.6}),
    "lrurec-d5-h128": ("lrurec", {"dropout": 0.5, "hidden": 128}),
    "lrurec-d5-ls2": ("lrurec", {**LRUREC_64, "label_smoothing": 0.2}),
    "ease": ("ease", {"l2": 50.0}),
    "ease-default": ("ease", {}),  # the registry's defaults (what the ensemble scorer's members use)
    "itemknn-default": ("itemknn", {}),
    "itemknn": ("itemknn", {"k": 5, "similarity": "cosine"}),
    "pop": ("pop", {}),
}


def load_split(dataset: str, data_dir: str | None) -> tuple[Any, Any, Any]:
    from llmrec.data import load_dataset, preprocess
    from llmrec.evaluation.protocols import make_split

    data = load_dataset(dataset, data_dir=data_dir)
    seq = preprocess(data)
    return data, seq, make_split("loo", seq, 0)


def masked_scores(scorer: Any, cases: Any) -> np.ndarray:
    from llmrec.evaluation.protocols import mask_scores

    scores = np.array(scorer.score(cases.users, cases.histories), dtype=np.float32)
    return mask_scores(scores, cases)


def metrics_of(scores: np.ndarray, cases: Any) -> dict[str, float]:
    from llmrec.evaluation.metrics import hit_matrix, ranking_metrics, top_k

    hits = hit_matrix(top_k(scores, max(KS)), cases.targets)
    out = ranking_metrics(hits, cases.n_relevant, KS, with_se=True)
    return {k: round(v, 5) for k, v in out.items() if k.split("@")[0] in ("ndcg", "recall", "mrr")}


def _is_neural(name: str) -> bool:
    from llmrec.baselines.builtin import NEURAL

    return name in NEURAL


def data_digest(seq: Any) -> str:
    """A short fingerprint of a data set's sequences (cache folders are named by it)."""
    return hashlib.sha256(np.concatenate(seq.sequences).astype(np.int64).tobytes()).hexdigest()[:10]


def variant_folder(variant: str, seq: Any, work: Path) -> Path:
    """The cache folder of one variant on one data set, named by the data and the model's full hyper-parameters
    (so a changed default is a new folder); a folder of the older naming is reused when its recorded
    hyper-parameters are the same."""
    from llmrec.baselines import get_scorer

    name, params = VARIANTS[variant]
    hyper = get_scorer(name, **{**(COMMON if _is_neural(name) else {}), **params}).hyperparameters()
    data = data_digest(seq)
    legacy = work / seq.name / "retrievers" / f"{variant}-{data}"
    if (legacy / "info.json").is_file() and json.loads((legacy / "info.json").read_text())["hyperparameters"] == hyper:
        return legacy
    model = hashlib.sha256(json.dumps(hyper, sort_keys=True).encode()).hexdigest()[:8]
    return work / seq.name / "retrievers" / f"{variant}-{data}-{model}"


def retriever_scores(variant: str, split: Any, seq: Any, work: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(validation scores, test scores, info) of one variant, masked as the protocol masks; cached in ``work``.

    Neural models train once on ``split.final_train`` (the harness's test fit: each user's last input item,
    the validation item, is held out for early stopping, so the model is trained on the training items and
    scores both the validation input and the test input). Others fit on ``tune_train`` for validation and on
    ``final_train`` for test, as the harness does.
    """
    from llmrec.baselines import get_checkpointed_scorer, get_scorer

    name, params = VARIANTS[variant]
    folder = variant_folder(variant, seq, work)
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "valid.npy", folder / "test.npy", folder / "info.json"
    if all(p.is_file() for p in paths):
        return np.load(paths[0]), np.load(paths[1]), json.loads(paths[2].read_text())
    began = time.monotonic()
    if _is_neural(name):
        scorer = get_checkpointed_scorer(name, folder / "checkpoint", **{**COMMON, **params}).fit(split.final_train)
        valid, test = masked_scores(scorer, split.valid), masked_scores(scorer, split.test)
        extra = {"epochs": scorer.train_result_.epochs_run, "best_epoch": scorer.train_result_.best_epoch,
                 "holdout_ndcg@10": scorer.train_result_.best_metric}  # fmt: skip
    else:
        valid = masked_scores(get_scorer(name, **params).fit(split.tune_train), split.valid)
        scorer = get_scorer(name, **params).fit(split.final_train)
        test = masked_scores(scorer, split.test)
        extra = {}
    info = {"variant": variant, "model": name, "params": params, "hyperparameters": scorer.hyperparameters(),
            "seconds": round(time.monotonic() - began, 1), **extra}  # fmt: skip
    np.save(paths[0], valid)
    np.save(paths[1], test)
    paths[2].write_text(json.dumps(info, indent=1))
    return valid, test, info


def normalise(scores: np.ndarray) -> np.ndarray:
    """Per-row z-scores over the finite entries (masked items stay -inf)."""
    finite = np.isfinite(scores)
    values = np.where(finite, scores, np.nan)
    mean, std = np.nanmean(values, axis=1, keepdims=True), np.nanstd(values, axis=1, keepdims=True)
    return np.where(finite, (scores - mean) / np.maximum(std, 1e-9), -np.inf).astype(np.float32)


GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def weighted(scores: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """The weighted sum of normalised scores; a zero weight leaves its member out (0 * -inf, a masked item, would be
    NaN)."""
    return sum(w * scores[m] for m, w in weights.items() if w)


def search_weights(valid: Mapping[str, np.ndarray], members: Sequence[str], cases: Any,
                   grid: Sequence[float] = GRID) -> dict[str, float]:  # fmt: skip
    """Weights (first member 1.0) chosen on validation Recall@20, then NDCG@10; the first best in grid order."""
    import itertools

    best: tuple[float, float] | None = None
    chosen: dict[str, float] = {}
    for rest in itertools.product(grid, repeat=len(members) - 1):
        weights = dict(zip(members, (1.0, *rest)))
        m = metrics_of(weighted(valid, weights), cases)
        key = (m["recall@20"], m["ndcg@10"])
        if best is None or key > best:
            best, chosen = key, weights
    return chosen


def ensemble_search(members: Sequence[str], split: Any, seq: Any, work: Path,
                    grid: Sequence[float] = GRID) -> dict[str, Any]:  # fmt: skip
    """Weights (first member 1.0) chosen on validation Recall@20, then NDCG@10; figures on both splits."""
    loaded = {m: retriever_scores(m, split, seq, work) for m in members}
    valid = {m: normalise(v[0]) for m, v in loaded.items()}
    test = {m: normalise(v[1]) for m, v in loaded.items()}
    weights = search_weights(valid, members, split.valid, grid)
    return {"members": list(members), "weights": list(weights.values()),
            "valid": metrics_of(weighted(valid, weights), split.valid),
            "test": metrics_of(weighted(test, weights), split.test)}  # fmt: skip


def position_prior(scores: np.ndarray, cases: Any, k: int = 20) -> dict[str, Any]:
    """The target's rank among the top ``k`` (when retrieved) and the entropy of that distribution, in nats: the
    loss a ranker reaches by learning the position alone, when the list keeps the retriever's order."""
    from llmrec.evaluation.metrics import top_k

    top = top_k(scores, k)
    targets = np.array([t[0] for t in cases.targets])
    ranks = [int(np.flatnonzero(row == t)[0]) for row, t in zip(top, targets) if t in row]
    counts = np.bincount(ranks, minlength=k)
    p = counts / max(1, counts.sum())
    entropy = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    return {"retrieved": len(ranks), "users": len(targets), "rank_counts": counts.tolist(),
            "position_only_loss": round(entropy, 3), "shuffled_loss": round(float(np.log(k)), 3)}  # fmt: skip


def training_positions(variant: str, split: Any, seq: Any, work: Path, n: int = 2000, folds: int = 0) -> dict[str, Any]:
    """``position_prior`` on ``n`` sampled positions inside the training items (the fine-tuning examples), scored
    by the same model: a retriever that was trained on those very items finds their next item far more often."""
    from finetune.data import sample_positions
    from llmrec.baselines import get_checkpointed_scorer, get_scorer
    from llmrec.evaluation.protocols import EvalSet

    name, params = VARIANTS[variant]
    folder = variant_folder(variant, seq, work)
    if _is_neural(name):
        scorer = get_checkpointed_scorer(name, folder / "checkpoint", **{**COMMON, **params}).fit(split.final_train)
    else:
        scorer = get_scorer(name, **params).fit(split.tune_train)
    pairs = sample_positions(seq, n, 1, np.random.default_rng(0))
    cases = EvalSet(np.array([u for u, _ in pairs]), tuple(seq.train(u)[:p] for u, p in pairs),
                    tuple(np.array([seq.train(u)[p]]) for u, p in pairs))  # fmt: skip
    out = {"in_sample": position_prior(masked_scores(scorer, cases), cases)}
    if folds:
        from finetune.data import fit_out_of_fold

        cache = folder.with_name(f"{folder.name}-folds") if _is_neural(name) else None
        oof = fit_out_of_fold(seq, name, {**COMMON, **params} if _is_neural(name) else params, 0, folds, cache)
        out[f"out_of_fold_{folds}"] = position_prior(masked_scores(oof, cases), cases)
    return out


def row(label: str, valid: Mapping[str, float], test: Mapping[str, float]) -> str:
    def cell(m: Mapping[str, float], key: str) -> str:
        return f"{m[key]:.4f} ± {m[key + '_se']:.4f}"

    return (f"| {label} | {valid['ndcg@10']:.4f} | {valid['recall@20']:.4f} | {cell(test, 'ndcg@10')} | "
            f"{cell(test, 'recall@10')} | {cell(test, 'recall@20')} |")  # fmt: skip


HEADER = ("| retriever | valid NDCG@10 | valid R@20 | test NDCG@10 | test R@10 | test R@20 |\n"
          "|---|---|---|---|---|---|")  # fmt: skip


# Fusion -----------------------------------------------------------------------------------------
FEATURE_SETS = {
    "all": None,  # every feature the run computed (llmrec.fusion.FEATURES; without llm_rev under --no-reversed)
    "no-llm": ("retrieval_rr", "retrieval_rrf60", "retrieval_logit", "popularity", "genre_sim", "year_gap", "text_sim",
               "text_last"),
    "llm+retrieval": ("llm", "llm_rr", "retrieval_rr", "retrieval_rrf60", "retrieval_logit"),
    "llm+retrieval+text": ("llm", "llm_rr", "retrieval_rr", "retrieval_rrf60", "retrieval_logit", "text_sim",
                           "text_last"),
    "llm-both+retrieval": ("llm", "llm_rr", "llm_rev", "retrieval_rr", "retrieval_rrf60", "retrieval_logit"),
    "blend": ("llm", "retrieval_rrf60"),  # the old blend's two terms, weighted by the fit
}
MODEL_GRID = (("logistic", 0.01), ("logistic", 0.1), ("logistic", 1.0), ("lambdarank", 50.0),
              ("lambdarank", 150.0), ("lambdarank", 300.0))  # fmt: skip
BLENDS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 1.0)


def zeroshot_main(args: argparse.Namespace) -> int:
    """The fourth pre-run check on the real model: is the zero-shot order better than random on training lists?"""
    from finetune.data import build_examples, example_messages
    from finetune.evaluate import order_vs_random
    from llmrec.baselines import get_checkpointed_scorer
    from llmrec.config import RecommenderConfig

    data, seq, split = load_split(args.dataset, args.data_dir)
    name, params = VARIANTS[args.retriever]
    folder = variant_folder(args.retriever, seq, Path(args.work)) / "checkpoint"
    # the sweep's model: trained on the training items, as the fine-tuning retriever is (in-sample lists)
    scorer = get_checkpointed_scorer(name, folder, **{**COMMON, **params}).fit(split.final_train)
    config = RecommenderConfig().updated(llm={"model": args.model, "use_default_adapter": False, "dtype": args.dtype,
                                              "precision": args.precision, "threads": 1},
                                         cache_dir=args.cache_dir)  # fmt: skip
    ranker = build_llm_ranker(config, data.items, args.prompt)
    for order in ("retrieval", "shuffled"):
        examples = build_examples(seq, scorer, args.examples, 20, seed=0, mode="retrieved", order=order)
        logits = np.array([ranker.llm.score_options(example_messages(ranker, seq, e), ranker.labels)
                           for e in examples])  # fmt: skip
        targets = [e.target for e in examples]
        shifted = logits - logits.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        ce = float(-np.mean(logp[np.arange(len(targets)), targets]))
        retrieval = order_vs_random(-np.tile(np.arange(20.0), (len(examples), 1)), [
            e.candidates.index(e.target_item) if order == "retrieval" else 0 for e in examples])  # fmt: skip
        print(f"{order} order, {len(examples)} lists: zero-shot {order_vs_random(logits, targets)}, "
              f"cross-entropy {ce:.3f} (ln 20 = 2.996); the retriever's own order: MRR {retrieval['mrr']}")
    return 0


def seed_checkpoint(variant: str, split: Any, seq: Any, work: Path, cache: Path) -> None:
    """Copy the retriever sweep's checkpoint (same model, same settings) to where the evaluation looks for it, so
    the CLI's ``evaluate --ranker`` and this script use one trained model and neither trains it again."""
    import shutil

    from llmrec.evaluation.rerank import retriever_folder

    if variant not in VARIANTS:
        return
    name, params = VARIANTS[variant]
    source = variant_folder(variant, seq, work) / "checkpoint"
    target = retriever_folder(name, split.final_train, params, cache)
    if (source / "state.json").is_file() and not (target / "state.json").is_file():
        shutil.copytree(source, target, dirs_exist_ok=True)
        log.info("retriever checkpoint copied from %s to %s", source, target)


def build_llm_ranker(config: Any, items: Any, prompt: str) -> Any:
    """The LLM ranker the fused ranker builds (same class, prompt, labels, history), reading the score cache."""
    from llmrec.fusion import SCORE_CACHE, CachedLLM, LabelScoreCache
    from llmrec.paths import resolve_cache_dir
    from llmrec.pipeline import parts
    from llmrec.prompts import load_prompt_ref
    from llmrec.ranking import LABELS, LLMRanker

    llm = CachedLLM(parts.build_llm(config), LabelScoreCache(resolve_cache_dir(config.cache_dir) / SCORE_CACHE))
    return LLMRanker(llm, items, labels=LABELS, max_history=config.ranker.max_history,
                     prompt=load_prompt_ref(prompt))  # fmt: skip


def collect_windows(pipeline: Any, scorer: Any, cases: Any, counts: np.ndarray, probe: Any, rows: np.ndarray,
                    desc: str) -> list[dict[str, Any]]:  # fmt: skip
    """Per chosen case whose target is among the candidates: the window's full feature matrix and the target's
    position. Candidates, profiles and features come from the same code the evaluation's fused ranker runs."""
    from llmrec.progress import progress

    probe.set_popularity({pipeline.item_ids[i]: int(c) for i, c in enumerate(counts) if c})
    users = cases.users[rows]
    histories = [cases.histories[r] for r in rows]
    top, top_scores = pipeline.candidates(users, histories, scorer=scorer, strict=True)
    out = []
    for i in progress(range(len(rows)), desc=desc, total=len(rows)):
        target = int(cases.targets[rows[i]][0])
        hits = np.flatnonzero(top[i] == target)
        if not len(hits):
            continue
        window = pipeline.window(top[i], top_scores[i])
        features = probe.features(pipeline.profile(int(users[i]), histories[i]), window)
        out.append({"user": int(users[i]), "target": int(hits[0]), "features": features,
                    "names": probe.model.features, "history": histories[i], "items": top[i]})
    return out


def window_metrics(windows: Sequence[Mapping[str, Any]], scores: Sequence[np.ndarray] | None,
                   n_users: int) -> dict[str, float]:  # fmt: skip
    """NDCG@10 / Recall@10 / Recall@20 / MRR@20 over ``n_users`` (users whose target was not retrieved score 0),
    each window reordered by its scores (None: retrieval order); ties keep the retrieval order."""
    ranks = []
    for w, s in zip(windows, scores if scores is not None else [None] * len(windows)):
        order = np.arange(len(w["features"])) if s is None else np.argsort(-np.asarray(s), kind="stable")
        ranks.append(int(np.flatnonzero(order == w["target"])[0]))
    ranks_arr = np.array(ranks, dtype=np.float64)
    per_user = {
        "ndcg@10": np.where(ranks_arr < 10, 1.0 / np.log2(ranks_arr + 2), 0.0),
        "recall@10": (ranks_arr < 10).astype(float),
        "recall@20": (ranks_arr < 20).astype(float),
        "mrr@20": 1.0 / (ranks_arr + 1),
    }
    out = {}
    for key, values in per_user.items():
        full = np.concatenate([values, np.zeros(n_users - len(values))])
        out[key] = round(float(full.mean()), 5)
        out[key + "_se"] = round(float(full.std(ddof=1) / np.sqrt(n_users)), 5)
    out["users"] = n_users
    return out


def columns(windows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[np.ndarray]:
    return [w["features"][:, [w["names"].index(n) for n in names]] for w in windows]


def labels_of(windows: Sequence[Mapping[str, Any]]) -> list[np.ndarray]:
    out = []
    for w in windows:
        y = np.zeros(len(w["features"]), dtype=np.int64)
        y[w["target"]] = 1
        out.append(y)
    return out


def cross_validate(windows: Sequence[Mapping[str, Any]], names: Sequence[str], kind: str, param: float,
                   n_users: int, folds: int = 5, seed: int = 0) -> dict[str, float]:  # fmt: skip
    """Out-of-fold figures over the validation users: each fold's windows scored by a model fitted on the rest."""
    from llmrec.fusion import fit_fusion

    order = np.random.default_rng(seed).permutation(len(windows))
    scores: list[np.ndarray | None] = [None] * len(windows)
    for fold in range(folds):
        held = set(order[fold::folds].tolist())
        train = [w for i, w in enumerate(windows) if i not in held]
        model = fit_fusion(columns(train, names), labels_of(train), names, kind, param, seed)
        for i in held:
            scores[i] = model.score(columns([windows[i]], names)[0])
    return window_metrics(windows, scores, n_users)


def report_feature_sets(valid: Sequence[Mapping[str, Any]], test: Sequence[Mapping[str, Any]],
                        sets: Mapping[str, Sequence[str]], alone: Sequence[str], n_users: int) -> None:
    """What benchmarks/llm_probe.py and ltr_ranker.py print for their extra scores: each feature set's best model
    of ``MODEL_GRID`` by cross-validation on validation, then that model fitted on all validation windows, beside
    the retriever's order and each ``alone`` feature's own order, on validation and test."""
    from llmrec.fusion import fit_fusion

    print("| feature set | best model | CV NDCG@10 | CV R@10 |\n|---|---|---|---|")
    best: dict[str, tuple[str, float]] = {}
    for label, names in sets.items():
        cvs = [(kind, param, cross_validate(valid, names, kind, param, n_users)) for kind, param in MODEL_GRID]
        kind, param, cv = max(cvs, key=lambda t: t[2]["ndcg@10"])
        best[label] = (kind, param)
        print(f"| {label} | {kind} {param:g} | {cv['ndcg@10']:.4f} | {cv['recall@10']:.4f} |")
    rows: dict[str, tuple[Any, Any]] = {"retriever (ensemble order)": (None, None)}
    for name in alone:
        rows[f"{name} alone"] = tuple([x[:, 0] for x in columns(s, (name,))] for s in (valid, test))
    for label, (kind, param) in best.items():
        model = fit_fusion(columns(valid, sets[label]), labels_of(valid), sets[label], kind, param)
        rows[f"fused: {label} ({kind} {param:g})"] = tuple(
            [model.score(x) for x in columns(s, model.features)] for s in (valid, test)
        )
    print("| row | valid NDCG@10 | test NDCG@10 | test R@10 | test R@20 |\n|---|---|---|---|---|")
    for label, (v, t) in rows.items():
        mv, mt = window_metrics(valid, v, n_users), window_metrics(test, t, n_users)
        print(f"| {label} | {mv['ndcg@10']:.4f} | {mt['ndcg@10']:.4f} ± {mt['ndcg@10_se']:.4f} | "
              f"{mt['recall@10']:.4f} ± {mt['recall@10_se']:.4f} | {mt['recall@20']:.4f} |")  # fmt: skip


def blend_scores(windows: Sequence[Mapping[str, Any]], blend: float) -> list[np.ndarray]:
    """``LLMRanker``'s blended score: (1-b) * the LLM's log-probability + b * log(1 / (60 + rank))."""
    llm, rrf = columns(windows, ("llm",)), columns(windows, ("retrieval_rrf60",))
    return [(1 - blend) * a[:, 0] + blend * b[:, 0] for a, b in zip(llm, rrf)]


def fusion_setup(args: argparse.Namespace) -> SimpleNamespace:
    """What the fusion section and benchmarks/llm_probe.py share: the split, the pipeline and the validation
    retriever, the LLM ranker reading the score cache, the feature builder (``probe``) and the chosen users."""
    from llmrec.baselines.builtin import NEURAL
    from llmrec.config import RecommenderConfig
    from llmrec.evaluation.rerank import RerankPipeline, fit_retriever
    from llmrec.fusion import FEATURES, FeatureContext, FusedRanker, FusionModel
    from llmrec.paths import resolve_cache_dir
    from llmrec.pipeline import Recommender

    data, seq, split = load_split(args.dataset, args.data_dir)
    llm = {"model": args.model, "use_default_adapter": args.adapter == "shipped", "dtype": args.dtype,
           "precision": args.precision, "threads": args.threads}  # fmt: skip
    if args.adapter not in ("none", "shipped"):
        llm["adapter"] = args.adapter
    config = RecommenderConfig().updated(data={"dataset": args.dataset, "data_dir": args.data_dir}, llm=llm,
                                         ranker={"kind": "llm"}, cache_dir=args.cache_dir)  # fmt: skip
    cache = resolve_cache_dir(config.cache_dir)
    seed_checkpoint(args.retriever, split, seq, Path(args.work), cache)
    pipeline = RerankPipeline(args.retriever, None, seq.item_ids, data.items, seq.ratings, n_candidates=20,
                              cache_dir=cache).fit(split.final_train)  # fmt: skip
    # Validation windows: the test-time model when it was trained on the training items alone (neural models,
    # held-out validation item), else the model fitted on the training items (the harness's tuning fit: its neural
    # members early-stop on the validation item too, so validation figures are optimistic for them); popularity
    # from training items.
    # --clean-valid: the retriever fitted on the training items with each user's last training item held out for
    # early stopping, so no member chose its epoch on the validation item (benchmarks/retriever_checks.py: SASRec's
    # validation NDCG@10 0.0897 stopped on it, 0.0676 clean).
    if args.clean_valid:
        import dataclasses

        # its own cache folder: retriever_folder keys on the fit items, which are the tuning fit's
        valid_scorer = fit_retriever(args.retriever, dataclasses.replace(split.tune_train, validation=None),
                                     cache_dir=cache / "clean-valid")  # fmt: skip
    else:
        valid_scorer = (pipeline.scorer if args.retriever in NEURAL
                        else fit_retriever(args.retriever, split.tune_train, cache_dir=cache))  # fmt: skip
    ranker = build_llm_ranker(config, data.items, args.prompt)
    owner = Recommender(config, dataset=data)  # the text features read the vector store the app reads
    vectors = owner.index.get_vectors(list(data.items))
    # --no-reversed: no second prompt per window (llm_rev), half the language model's time
    names_all = tuple(f for f in FEATURES if not (args.no_reversed and f == "llm_rev"))
    probe = FusedRanker(FusionModel("logistic", names_all, (0.0,) * len(names_all), (1.0,) * len(names_all),
                                    (0.0,) * len(names_all)), FeatureContext(data.items, {}, 20, vectors),
                        ranker)  # fmt: skip
    rng = np.random.default_rng(0)
    n = seq.n_users
    pick = np.arange(n) if not args.max_users or args.max_users >= n else np.sort(rng.choice(n, args.max_users,
                                                                                                replace=False))
    return SimpleNamespace(data=data, seq=seq, split=split, pipeline=pipeline, valid_scorer=valid_scorer,
                           ranker=ranker, owner=owner, probe=probe, names_all=names_all, pick=pick)  # fmt: skip


def fusion_main(args: argparse.Namespace) -> int:
    """Collect windows (LLM scored once, cached), select on validation, report test, write the model and card."""
    import datetime

    from llmrec.fusion import FusionModel, embedder_identity, fit_fusion, retriever_identity

    setup = fusion_setup(args)
    data, split, pipeline, valid_scorer = setup.data, setup.split, setup.pipeline, setup.valid_scorer
    ranker, owner, probe, names_all, pick = setup.ranker, setup.owner, setup.probe, setup.names_all, setup.pick
    if args.only != "test":
        valid = collect_windows(pipeline, valid_scorer, split.valid, split.tune_train.item_counts, probe, pick,
                                "valid")  # fmt: skip
    if args.only != "valid":
        test = collect_windows(pipeline, pipeline.scorer, split.test, split.final_train.item_counts, probe, pick,
                               "test")  # fmt: skip
    if args.only:
        print(f"{args.only}: label scores cached ({ranker.llm.hits} hits, {ranker.llm.misses} scored)")
        return 0
    log.info("LLM score cache: %d hits, %d misses", ranker.llm.hits, ranker.llm.misses)
    n_users = len(pick)

    selection = []
    for set_name, names in FEATURE_SETS.items():
        names = tuple(names or names_all)
        if not set(names) <= set(names_all):
            continue
        for kind, param in MODEL_GRID:
            if set_name == "blend" and kind != "logistic":
                continue
            cv = cross_validate(valid, names, kind, param, n_users)
            selection.append({"features": set_name, "kind": kind, "param": param, "cv": cv})
            log.info("%s %s %g: CV NDCG@10 %.4f", set_name, kind, param, cv["ndcg@10"])
    with_llm = [s for s in selection if s["features"] != "no-llm"]
    best = max(with_llm, key=lambda s: s["cv"]["ndcg@10"])
    best_no_llm = max((s for s in selection if s["features"] == "no-llm"), key=lambda s: s["cv"]["ndcg@10"])

    def fitted(choice: Mapping[str, Any]) -> FusionModel:
        names = tuple(FEATURE_SETS[choice["features"]] or names_all)
        return fit_fusion(columns(valid, names), labels_of(valid), names, choice["kind"], choice["param"])

    model, no_llm = fitted(best), fitted(best_no_llm)
    blend_valid = {f"{b:g}": window_metrics(valid, blend_scores(valid, b), n_users)["ndcg@10"] for b in BLENDS}
    blend = max(BLENDS, key=lambda b: (blend_valid[f"{b:g}"], -b))
    rows = {
        "retriever": (None, None),
        "llm alone (zero-shot)" if args.adapter == "none" else "llm alone": tuple(
            [x[:, 0] for x in columns(split_, ("llm",))] for split_ in (valid, test)),
        **({} if args.no_reversed else {
            "llm alone, window reversed": tuple([x[:, 0] for x in columns(split_, ("llm_rev",))]
                                                for split_ in (valid, test)),
            "llm alone, both orders (mean)": tuple([x.sum(axis=1) for x in columns(split_, ("llm", "llm_rev"))]
                                                   for split_ in (valid, test))}),
        f"blend {blend:g} (validated)": (blend_scores(valid, blend), blend_scores(test, blend)),
        f"fusion without the LLM ({best_no_llm['kind']})": (
            [no_llm.score(x) for x in columns(valid, no_llm.features)],
            [no_llm.score(x) for x in columns(test, no_llm.features)]),
        f"fused ({best['features']}, {best['kind']} {best['param']:g})": (
            [model.score(x) for x in columns(valid, model.features)],
            [model.score(x) for x in columns(test, model.features)]),
    }  # fmt: skip
    table = {label: {"valid": window_metrics(valid, v, n_users), "test": window_metrics(test, t, n_users)}
             for label, (v, t) in rows.items()}  # fmt: skip
    print(f"{args.dataset}: {n_users} users; windows with the target: valid {len(valid)}, test {len(test)}")
    print("| row | valid NDCG@10 | test NDCG@10 | test R@10 | test R@20 |\n|---|---|---|---|---|")
    for label, figures in table.items():
        t = figures["test"]
        print(f"| {label} | {figures['valid']['ndcg@10']:.4f} | {t['ndcg@10']:.4f} ± {t['ndcg@10_se']:.4f} | "
              f"{t['recall@10']:.4f} ± {t['recall@10_se']:.4f} | {t['recall@20']:.4f} |")  # fmt: skip
    print("CV NDCG@10 of the chosen model:", best["cv"]["ndcg@10"], "; without the LLM:", best_no_llm["cv"]["ndcg@10"])
    if not args.out:
        return 0
    fused_label = list(rows)[-1]
    out = Path(args.out)
    shipped = ship_retriever(args, split, out)
    versions = {name: _version(name) for name in ("scikit-learn", "lightgbm", "torch", "transformers")}
    card = {
        "name": out.name, "dataset": data.name, "min_count": 5, "protocol": split.protocol,
        "split": split.description, "retriever": retriever_identity(args.retriever), "n_candidates": 20,
        "embedder": embedder_identity(owner.embedder),
        "llm": ranker.llm.identity, "llm_model": args.model, "adapter": args.adapter, "dtype": args.dtype,
        # pinned (f32: the same label scores on every processor) only when asked; "auto" is bf16 or f32 by processor
        "precision": getattr(ranker.llm, "precision", None) if args.precision != "auto" else None,
        "prompt": ranker.prompt.ref,
        "labels": ranker.labels, "max_history": ranker.max_history, "kind": best["kind"], "param": best["param"],
        "feature_set": best["features"],
        "fitted_on": (f"validation split only: the {len(valid)} of {n_users} users whose validation item is among the "
                      "retriever's 20 candidates (retriever trained on the training items; popularity from them)"
                      + ("; its neural models early-stopped on each user's last training item, not the validation "
                         "item" if args.clean_valid else "")),
        "validation": {"cross_validated": best["cv"], "in_sample": table[fused_label]["valid"],
                       "selection": selection, "blend_sweep": blend_valid},
        "test": {**table[fused_label]["test"], "input": "training + validation items", "target": "the last item"},
        "rows": table, "retriever_checkpoint": shipped,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "libraries": versions, "reproduce": " ".join(["python", "benchmarks/ranking.py", *sys.argv[1:]]),
    }  # fmt: skip
    FusionModel(model.kind, model.features, model.mean, model.scale, model.coef, model.intercept, model.booster,
                card).save(out)  # fmt: skip
    print(f"wrote {out}")
    if args.verify:
        verify(args, card)
    return 0


def ship_retriever(args: argparse.Namespace, split: Any, out: Path) -> str | None:
    """The test-time retriever's checkpoint, shipped beside the fusion model (``finetune/retrievers/``, next to the
    ``finetune/adapters/`` folder ``out`` is in) so that the card's test figures are what a user's evaluation gets;
    None for a retriever without one (EASE, ItemKNN: fitted in seconds, the same anywhere)."""
    from llmrec.evaluation.rerank import retriever_folder
    from llmrec.evaluation.shipped_retrievers import ship
    from llmrec.paths import resolve_cache_dir

    trained = retriever_folder(args.retriever, split.final_train, None, resolve_cache_dir(args.cache_dir))
    if not any(trained.rglob("state.json")):
        return None
    dest = ship(trained, out.resolve().parent.parent.parent / "retrievers", dataset=args.dataset,
                retriever=args.retriever, fit="the evaluation's test-time fit: training + validation items, seed 0")
    log.info("retriever checkpoint shipped to %s", dest)
    return dest.name


def verify(args: argparse.Namespace, card: Mapping[str, Any]) -> None:
    """Run the CLI's road (``run_rerank_evaluation`` with ``--ranker llm``: its first re-ranked row is the
    shipped fused order) and compare its test figures with the card's."""
    from llmrec.config import RecommenderConfig
    from llmrec.evaluation.rerank import run_rerank_evaluation

    config = RecommenderConfig().updated(data={"dataset": args.dataset, "data_dir": args.data_dir},
                                         llm={"model": args.model}, ranker={"kind": "llm"},
                                         cache_dir=args.cache_dir)  # fmt: skip
    report = run_rerank_evaluation(config, args.retriever, variants={}, max_users=args.max_users or None)
    fused = report.results.get(f"{args.retriever}+llm:{config.llm.model}")
    if fused is None or "orders by" not in report.notes.get("fused order", ""):
        print("verify: no fused row; is the model at the shipped path?", report.errors)
        return
    got, want = fused.metrics, card["test"]
    for key in ("ndcg@10", "recall@10", "recall@20"):
        print(f"verify {key}: evaluate {got[key]:.5f}, card {want[key]:.5f}",
              "same" if abs(got[key] - want[key]) < 5e-6 else "DIFFERENT")  # fmt: skip


def _version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("section", choices=("retrievers", "ensemble", "positions", "zeroshot", "fusion"))
    p.add_argument("--dataset", default="ml-latest-small")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--work", default="/tmp/llmrec-ranking", help="cache folder for models, scores and results")
    p.add_argument("--variants", default="sasrec,ease", help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--folds", type=int, default=0, help="positions: also out-of-fold retrievers over K user folds")
    p.add_argument("--retriever", default="sasrec", help="fusion: registry scorer giving the 20 candidates")
    p.add_argument("--model", default="qwen2.5-coder-0.5b-instruct", help="fusion: the language model")
    p.add_argument("--adapter", default="none", help="fusion: none (zero-shot), shipped, or an adapter folder")
    p.add_argument("--dtype", default="bfloat16", help="fusion: the language model's dtype (bf16: 2.5x faster here)")
    p.add_argument("--threads", type=int, default=1, help="fusion: the language model's threads (f32 scores do "
                   "not depend on them; two processes on two cores: 1)")
    p.add_argument("--precision", default="auto", choices=["auto", "f32", "bf16"],
                   help="fusion: OpenVINO's inference precision; the card records it unless auto (f32: the same "
                        "label scores on every processor, bf16 is 2.5x faster where the CPU has it)")
    p.add_argument("--only", choices=("valid", "test"), help="fusion: only score this split's prompts (fills the "
                   "cache; run one process per split on two cores), then stop")
    p.add_argument("--clean-valid", action="store_true", help="fusion: validation windows from a retriever whose "
                   "neural models early-stop on the training items, not on the validation item")
    p.add_argument("--no-reversed", action="store_true", help="fusion: skip the llm_rev feature (its second prompt)")
    p.add_argument("--prompt", default="rank", help="fusion: prompt task[@version] of the LLM ranker")
    p.add_argument("--cache-dir", default=None, help="llmrec cache (retriever checkpoints, the label-score cache)")
    p.add_argument("--examples", type=int, default=64, help="zeroshot: training lists per order")
    p.add_argument("--max-users", type=int, default=0, help="fusion: a seeded subset of users (0 = all)")
    p.add_argument("--out", default=None, help="fusion: write the model and its card to this .json file")
    p.add_argument("--verify", action="store_true", help="fusion: then evaluate as the CLI does and compare")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if args.section == "fusion":
        return fusion_main(args)
    if args.section == "zeroshot":
        return zeroshot_main(args)
    work = Path(args.work)
    _, seq, split = load_split(args.dataset, args.data_dir)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        print(f"error: unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    if args.section == "retrievers":
        print(HEADER)
        for variant in variants:
            valid, test, info = retriever_scores(variant, split, seq, work)
            print(row(variant, metrics_of(valid, split.valid), metrics_of(test, split.test)), info, flush=True)
    elif args.section == "positions":
        for variant in variants:
            valid, test, _ = retriever_scores(variant, split, seq, work)
            print(variant, "valid", position_prior(valid, split.valid), "test", position_prior(test, split.test))
            print(variant, "training positions", training_positions(variant, split, seq, work, folds=args.folds))
    else:
        result = ensemble_search(variants, split, seq, work)
        print(HEADER)
        print(row("+".join(f"{w:g}*{m}" for w, m in zip(result["weights"], variants)), result["valid"],
                  result["test"]))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
