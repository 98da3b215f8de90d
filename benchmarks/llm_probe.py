"""Issue 16: a ranker that learns on the CPU -- a probe over the frozen language model's reading of each candidate.

The listwise ranker's zero-shot order is mostly its preference for the first letters (docs/benchmarks/ranking.md
8.3), and LoRA training of it on this CPU moved nothing measurable (5.2, 6.3). This benchmark asks the model about
one candidate at a time (``prompts/rank_pointwise``: the history once, then each candidate as a short continuation
that shares the history's key/value cache, so a window costs about one listwise prompt) and keeps two things per
candidate: the Yes-against-No logit (a zero-shot pointwise score that no list position can bias) and the hidden
states at the answer position (a middle and the last layer). A logistic probe (scikit-learn) learns from the hidden
states of training lists made by out-of-fold retrievers (``finetune.data``: the lists the ranker trains on) which
candidate the user chose next; its C is chosen on the validation windows. Both scores then join the fused order's
features, and the fusion section's cross-validation over the validation users decides whether they help. Test is
read once, in the final table.

    python benchmarks/llm_probe.py --data-dir ../shared/data --work /work/rk --shard 0/2   # beside it: --shard 1/2
    python benchmarks/llm_probe.py --data-dir ../shared/data --work /work/rk               # fit, select, report

The windows are the shipped fusion's (``--retriever ensemble --no-reversed --clean-valid``: their listwise label
scores come from the score cache); the features of each window are cached under ``<work>/<dataset>/probe/``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ranking  # benchmarks/ranking.py: the fusion section's windows, CV and metrics

log = logging.getLogger("llm_probe")
SENTINEL = "\u2063CANDIDATE\u2063"  # invisible separator: never in a title, split point of prefix and continuation
LAYERS = (12, -1)  # hidden states kept: the middle of Qwen2.5-0.5B's 24 layers and the last (after its norm)
PROBE_C = (0.00003, 0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03)


class PointwiseReader:
    """The language model (transformers, bf16, one thread) reading one window: history once, candidates batched."""

    def __init__(self, folder: Path, kind: str = "movie", dtype: str = "bfloat16") -> None:
        from llmrec.llm.transformers_backend import load_causal_lm
        from llmrec.prompts import load_prompt

        self.model, self.tok = load_causal_lm(folder, dtype=dtype, threads=1)
        self.tok.padding_side = "right"
        self.prompt = load_prompt("rank_pointwise", 1)
        self.kind = kind
        self.yes = self.tok.encode("Yes", add_special_tokens=False)[0]
        self.no = self.tok.encode("No", add_special_tokens=False)[0]
        # what the cached features depend on ("bf16" spelt as the first cached runs spelt it, so they stay valid)
        self.identity = f"{folder.name}:{self.prompt.ref}:{'bf16' if dtype == 'bfloat16' else dtype}:{LAYERS}"

    def read(self, history: Sequence[str], candidates: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(Yes-minus-No logit per candidate, (candidates, 2 * hidden) float16 hidden states)."""
        import torch

        messages = self.prompt.messages(history="\n".join(history), candidate=SENTINEL, kind=self.kind)
        text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        prefix, rest = text.split(SENTINEL)
        ids = self.tok(prefix, return_tensors="pt", add_special_tokens=False).input_ids
        enc = self.tok([c + rest for c in candidates], return_tensors="pt", padding=True, add_special_tokens=False)
        batch, length = enc.input_ids.shape
        with torch.inference_mode():
            cache = self.model(ids, use_cache=True).past_key_values
            cache.batch_repeat_interleave(batch)
            mask = torch.cat([torch.ones(batch, ids.shape[1], dtype=enc.attention_mask.dtype), enc.attention_mask], 1)
            positions = (ids.shape[1] + torch.arange(length)).expand(batch, length)
            out = self.model(enc.input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                             output_hidden_states=True)  # fmt: skip
        last = enc.attention_mask.sum(dim=1) - 1  # right padding: each continuation's final token
        rows = torch.arange(batch)
        logits = out.logits[rows, last].float()
        hidden = torch.cat([out.hidden_states[layer][rows, last].float() for layer in LAYERS], dim=1)
        return (logits[:, self.yes] - logits[:, self.no]).numpy(), hidden.numpy().astype(np.float16)


def candidate_text(item: Any) -> str:
    from llmrec.safety import fence

    genres = ", ".join(item.genres[:3])
    return fence(item.display_title, 120) + (f" ({fence(genres, 80)})" if genres else "")


def cached_read(reader: PointwiseReader, folder: Path, history: Sequence[str], candidates: Sequence[str]
                ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``reader.read`` once per (model, prompt, history, candidates); written whole (``atomic_file``), so shards
    reading the same window at once never leave half a file."""
    from llmrec.fileutil import atomic_file

    key = hashlib.sha256("\x1e".join([reader.identity, *history, "\x1f", *candidates]).encode()).hexdigest()[:24]
    path = folder / f"{key}.npz"
    if path.is_file():
        with np.load(path) as stored:
            return stored["yes_no"], stored["hidden"]
    yes_no, hidden = reader.read(history, candidates)
    with atomic_file(path) as tmp, tmp.open("wb") as handle:  # a file object: np.savez adds no suffix to it
        np.savez(handle, yes_no=yes_no, hidden=hidden)
    return yes_no, hidden


def training_lists(setup: Any, n: int, cache: Path) -> list[dict[str, Any]]:
    """Lists the ranker trains on (finetune's recipe): positions inside the training items, candidates from two
    out-of-fold SASRec retrievers in their order, kept when they hold the answer."""
    from finetune.data import build_examples, fit_out_of_fold, profile_for

    seq = setup.seq
    scorer = fit_out_of_fold(seq, "sasrec", None, 0, 2, cache_dir=cache)
    examples = build_examples(seq, scorer, n, 20, seed=0, mode="retrieved")
    return [{"profile": profile_for(seq, e.user, e.position, e.position), "items": np.array(e.candidates),
             "target": e.target} for e in examples]  # fmt: skip


def texts(setup: Any, window: dict[str, Any]) -> tuple[list[str], list[str]]:
    profile = window.get("profile") or setup.pipeline.profile(window["user"], window["history"])
    history = setup.ranker._history_lines(profile)  # the listwise ranker's own history lines
    items = setup.data.items
    return history, [candidate_text(items[setup.seq.item_ids[int(i)]]) for i in window["items"]]


def read_all(setup: Any, reader: PointwiseReader, folder: Path, windows: Sequence[dict[str, Any]], desc: str,
             shard: tuple[int, int] = (0, 1)) -> None:  # fmt: skip
    from llmrec.progress import progress

    k, n = shard
    for i in progress(range(len(windows)), desc=desc, total=len(windows)):
        if i % n != k:
            continue
        history, candidates = texts(setup, windows[i])
        windows[i]["yes_no"], windows[i]["hidden"] = cached_read(reader, folder, history, candidates)


def fit_probe(train: Sequence[dict[str, Any]], valid: Sequence[dict[str, Any]], n_users: int
              ) -> tuple[Any, Any, float, dict[str, float]]:  # fmt: skip
    """Logistic probe on the training lists' hidden states; C chosen by the validation windows' NDCG@10."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X = np.concatenate([w["hidden"] for w in train]).astype(np.float32)
    y = np.concatenate([np.eye(len(w["items"]), dtype=np.int64)[w["target"]] for w in train])
    scaler = StandardScaler().fit(X)
    Xs = scaler.transform(X)
    valid_X = [scaler.transform(w["hidden"].astype(np.float32)) for w in valid]
    sweep, models = {}, {}
    for c in PROBE_C:
        models[c] = LogisticRegression(C=c, max_iter=3000).fit(Xs, y)
        scores = [models[c].decision_function(x) for x in valid_X]
        sweep[f"{c:g}"] = ranking.window_metrics(valid, scores, n_users)["ndcg@10"]
        log.info("probe C %g: validation NDCG@10 %.4f", c, sweep[f"{c:g}"])
    best = max(PROBE_C, key=lambda c: sweep[f"{c:g}"])
    return scaler, models[best], best, sweep


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="ml-latest-small")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--work", default="/tmp/llmrec-ranking")
    p.add_argument("--retriever", default="ensemble")
    p.add_argument(
        "--train-lists",
        type=int,
        default=1200,
        help="training lists for the probe (0: only read the validation and test windows)",
    )
    p.add_argument("--shard", default="0/1", help="K/N: only read every N-th window from the K-th, then stop")
    p.add_argument("--cache-dir", default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # the shipped fusion's windows (their listwise scores are cached): see the module docstring
    fusion_args = argparse.Namespace(dataset=args.dataset, data_dir=args.data_dir, work=args.work,
                                     retriever=args.retriever, model="qwen2.5-coder-0.5b-instruct", adapter="none",
                                     dtype="bfloat16", cache_dir=args.cache_dir, clean_valid=True, no_reversed=True,
                                     prompt="rank@2", max_users=0)  # fmt: skip
    from llmrec.paths import resolve_cache_dir

    setup = ranking.fusion_setup(fusion_args)
    cache = resolve_cache_dir(args.cache_dir)
    valid = ranking.collect_windows(setup.pipeline, setup.valid_scorer, setup.split.valid,
                                    setup.split.tune_train.item_counts, setup.probe, setup.pick, "valid")  # fmt: skip
    test = ranking.collect_windows(setup.pipeline, setup.pipeline.scorer, setup.split.test,
                                   setup.split.final_train.item_counts, setup.probe, setup.pick, "test")  # fmt: skip
    reader = PointwiseReader(cache / "models" / "qwen2.5-coder-0.5b-instruct")
    folder = Path(args.work) / args.dataset / "probe"
    shard = tuple(int(x) for x in args.shard.split("/"))
    for windows, desc in ((valid, "valid"), (test, "test")):
        read_all(setup, reader, folder, windows, desc, shard)  # type: ignore[arg-type]
    if not args.train_lists:
        print(f"validation and test features cached in {folder}")
        return 0
    train = training_lists(setup, args.train_lists, cache)
    read_all(setup, reader, folder, train, "train", shard)  # type: ignore[arg-type]
    if shard[1] > 1:
        print(f"shard {args.shard}: features cached in {folder}")
        return 0
    report(setup, train, valid, test)
    return 0


def report(setup: Any, train: list[dict[str, Any]], valid: list[dict[str, Any]], test: list[dict[str, Any]]) -> None:
    import llmrec.fusion

    # The two scores are this benchmark's, not features the shipped fused ranker can compute: admitted here only,
    # so that the fusion section's fit and cross-validation run on them unchanged.
    llmrec.fusion.FEATURES = (*llmrec.fusion.FEATURES, "pointwise", "probe")
    n_users = len(setup.pick)
    scaler, probe, c, sweep = fit_probe(train, valid, n_users)
    for w in (*valid, *test):
        w["probe"] = probe.decision_function(scaler.transform(w["hidden"].astype(np.float32)))
        w["features"] = np.column_stack([w["features"], w["yes_no"], w["probe"]])
        w["names"] = (*w["names"], "pointwise", "probe")
    base = tuple(setup.names_all)
    sets = {"shipped set (all)": base, "all + pointwise": (*base, "pointwise"), "all + probe": (*base, "probe"),
            "all + both": (*base, "pointwise", "probe"),
            "llm+retrieval + probe": (*ranking.FEATURE_SETS["llm+retrieval"], "probe"),
            "retrieval + probe": ("retrieval_rr", "retrieval_rrf60", "retrieval_logit", "probe"),
            "retrieval + both": ("retrieval_rr", "retrieval_rrf60", "retrieval_logit", "pointwise", "probe"),
            }  # fmt: skip
    print(f"probe: {len(train)} training lists, C {c:g} (validation NDCG@10 by C: {sweep})")
    ranking.report_feature_sets(valid, test, sets, ("llm", "pointwise", "probe"), n_users)

if __name__ == "__main__":
    sys.exit(main())
