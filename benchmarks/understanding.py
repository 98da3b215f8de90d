"""How well chat messages are understood: rules only vs the zero-shot LLM vs the LLM with its LoRA adapter vs hybrid.

    python benchmarks/understanding.py --data-dir ../shared/data [--variants rules,zero-shot,adapter,hybrid]
        [--sets dev,test] [--redial 100] [--adapter DIR] [--runtime transformers|openvino] [--limit N]
        [--out FILE.json] [--records FILE.jsonl]

Labelled messages: ``benchmarks/data/understanding/{dev,test}.jsonl`` (written for this benchmark; the
training templates in ``finetune/understand_data.py`` are other phrasings; nothing is tuned on test).
Each message is read exactly as the chat reads it (exact phrases by rules, the rest by the reader under
test, with the cards on screen and the film in focus as context) and scored on:

- liked / disliked titles: micro precision, recall and F1 of (stance, item id) pairs ("liked" counts the
  liked and wants-to-watch stances); an ambiguous title counts as the first option the chat offers;
- wanted / avoided genres (MovieLens genres), micro P/R/F1;
- requests: the share of messages whose set of request kinds is exactly the labelled one ("recommend"
  is dropped beside a request that recommends anyway: more like, a refinement, skip);
- the film a why / why not / more-like request is about (share right, where labelled).

ReDial (``redial/dialogues.jsonl``, never trained on): every movie a seeker mentions in the first
``--redial`` dialogues, the stance read from the seeker's turns (with the recommender's turn before as
context) against the seeker's own label: positive (liked = 1), negative (liked = 0) or none (liked = 2).
A movie read in several turns takes its last stance that is not none.

Latency: seconds per message, p50 / p95, over all messages and over those that reached the model.
Prints one JSON object (and writes it to --out).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "understanding"
RECOMMENDING = {"more_like", "newer", "older", "lighter", "darker", "less_violent", "shorter", "different", "skip"}
ASK = "Have you seen {}? Did you like it?"


# Scoring -----------------------------------------------------------------------------------------------
class Counts:
    def __init__(self) -> None:
        self.tp = self.fp = self.fn = 0

    def add(self, gold: set, got: set) -> None:
        self.tp += len(gold & got)
        self.fp += len(got - gold)
        self.fn += len(gold - got)

    def figures(self) -> dict[str, float]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4), "support": self.tp + self.fn}


def normal_requests(kinds: Any) -> set[str]:
    kinds = set(kinds)
    return kinds - {"recommend"} if kinds & RECOMMENDING else kinds


def film_id(m: Any) -> str | None:
    return m.item_id or (m.options[0] if m.options else None)


def predicted(u: Any) -> dict[str, set]:
    films = {"liked": set(), "disliked": set(), "seen": set()}
    for m in u.films:
        stance = "liked" if m.stance == "interested" else m.stance
        if stance in films and film_id(m):
            films[stance].add(film_id(m))
    return {**films, "wanted": set(u.wanted_genres), "avoided": set(u.avoided_genres)}


def load_set(name: str, by_title: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            for key in ("liked", "disliked", "seen", "cards"):
                row[key] = [by_title[t] for t in row.get(key, [])]
            for key in ("focus", "about"):
                row[key] = by_title[row[key]] if key in row else None
            rows.append(row)
    return rows


def context_for(row: dict[str, Any], items: Any) -> Any:
    from llmrec.chat.understanding import ReadingContext

    cards = tuple((n, i, items[i].display_title) for n, i in enumerate(row["cards"], 1))
    focus = row["focus"]
    title = items[focus].display_title if focus else ""
    return ReadingContext(cards=cards, focus=focus, focus_title=title, last_reply=ASK.format(title) if focus else "")


def score_set(reader: Any, rows: list[dict[str, Any]], items: Any, records: list | None) -> dict[str, Any]:
    counts = {k: Counts() for k in ("liked", "disliked", "titles", "seen", "wanted", "avoided")}
    requests_right = about_right = about_total = 0
    seconds, model_seconds, sources = [], [], {}
    by_kind: dict[str, Counts] = {}
    for row in rows:
        started = time.perf_counter()
        u = reader.read(row["text"], context_for(row, items))
        took = time.perf_counter() - started
        seconds.append(took)
        if u.source not in ("exact",):
            model_seconds.append(took)
        sources[u.source] = sources.get(u.source, 0) + 1
        got = predicted(u)
        gold = {"liked": set(row["liked"]), "disliked": set(row["disliked"]), "seen": set(row["seen"]),
                "wanted": set(row.get("wanted_genres", [])), "avoided": set(row.get("avoided_genres", []))}
        for key in ("liked", "disliked", "seen", "wanted", "avoided"):
            counts[key].add(gold[key], got[key])
        pairs = ({("+", i) for i in gold["liked"]} | {("-", i) for i in gold["disliked"]},
                 {("+", i) for i in got["liked"]} | {("-", i) for i in got["disliked"]})
        counts["titles"].add(*pairs)
        by_kind.setdefault(row["kind"], Counts()).add(*pairs)
        right = normal_requests(u.kinds) == normal_requests(row.get("requests", []))
        requests_right += right
        if row["about"]:
            about_total += 1
            about_right += any(r.item_id == row["about"] for r in u.requests) or any(
                film_id(m) == row["about"] for m in u.films if m.stance == "asked")
        if records is not None:
            records.append({"id": row["id"], "text": row["text"], "source": u.source, "seconds": round(took, 3),
                            "requests_right": right, "understood": u.to_json(),
                            "gold": {k: sorted(v) for k, v in gold.items()} | {"requests": row.get("requests", [])}})
    return {
        "messages": len(rows), "sources": sources,
        "liked_disliked_titles": counts["titles"].figures(), "liked": counts["liked"].figures(),
        "disliked": counts["disliked"].figures(), "seen": counts["seen"].figures(),
        "wanted_genres": counts["wanted"].figures(), "avoided_genres": counts["avoided"].figures(),
        "request_accuracy": round(requests_right / max(1, len(rows)), 4),
        "target_accuracy": round(about_right / max(1, about_total), 4), "targets": about_total,
        "titles_f1_by_kind": {k: c.figures()["f1"] for k, c in sorted(by_kind.items())},
        "latency_s": latency(seconds), "latency_model_s": latency(model_seconds),
    }  # fmt: skip


def latency(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": round(float(np.percentile(values, 50)), 3),
            "p95": round(float(np.percentile(values, 95)), 3), "mean": round(statistics.fmean(values), 3)}


# ReDial --------------------------------------------------------------------------------------------------
def redial_stance(reader: Any, path: Path, dialogues: int) -> dict[str, Any]:
    from rapidfuzz import fuzz

    from finetune.understand_data import MENTION, read_redial, seeker_turns
    from llmrec.chat.understanding import ReadingContext
    from llmrec.profile import normalise_title, split_title_year

    def key(name: str) -> str:
        return normalise_title(split_title_year(name)[0])

    polarity = {"liked": "positive", "interested": "positive", "disliked": "negative"}
    gold_of = {1: "positive", 0: "negative", 2: "none"}
    right = total = 0
    confusion: dict[str, dict[str, int]] = {}
    seconds = []
    for dialogue in read_redial(path)[:dialogues]:
        names = {str(k): " ".join(str(v or "").split()) for k, v in (dialogue.get("movieMentions") or {}).items()}
        labels = {str(k): v for k, v in (dialogue.get("initiatorQuestions") or {}).items() if isinstance(v, dict)}
        turns = seeker_turns(dialogue)
        read: dict[str, str] = {}
        for n, (mine, raw) in enumerate(turns):
            movies = [m for m in dict.fromkeys(MENTION.findall(raw)) if m in names and m in labels] if mine else []
            if not movies:
                continue
            before = turns[n - 1][1] if n and not turns[n - 1][0] else ""
            context = ReadingContext(last_reply=written(before, names)[:200])
            text = " ".join(written(raw, names).split())
            started = time.perf_counter()
            u = reader.read(text, context)
            seconds.append(time.perf_counter() - started)
            spans = [(m.stance, m.span) for m in u.films] + list(u.unknown)
            for movie in movies:
                stance = next((s for s, span in spans if key(span) == key(names[movie])), None)
                if stance is None:
                    scored = [(fuzz.ratio(key(span), key(names[movie])), s) for s, span in spans]
                    stance = max(scored)[1] if scored and max(scored)[0] >= 85 else None
                found = polarity.get(stance or "", "none")
                if found != "none" or movie not in read:
                    read[movie] = found
        for movie, found in read.items():
            gold = gold_of.get(labels[movie].get("liked", 2), "none")
            total += 1
            right += found == gold
            confusion.setdefault(gold, {}).setdefault(found, 0)
            confusion[gold][found] += 1
    majority = max((sum(row.values()), g) for g, row in confusion.items())[1] if confusion else "none"
    share = sum(confusion.get(majority, {}).values()) / max(1, total)
    return {"dialogues": dialogues, "movies": total, "accuracy": round(right / max(1, total), 4),
            "majority_class": majority, "majority_accuracy": round(share, 4), "confusion_gold_to_read": confusion,
            "latency_s": latency(seconds)}  # fmt: skip


def written(text: str, names: dict[str, str]) -> str:
    """ReDial's ``@123`` replaced by the movie's name (with its year, as ReDial's interface wrote it)."""
    from finetune.understand_data import MENTION

    return MENTION.sub(lambda m: names.get(m[1], "a movie"), text)


# Readers -------------------------------------------------------------------------------------------------
def build_reader(variant: str, args: argparse.Namespace, items: Any, popularity: dict[str, int]) -> Any:
    from llmrec.chat.readers import HybridUnderstander, LLMUnderstander, RuleUnderstander

    if variant == "rules":
        return RuleUnderstander(items, popularity)
    from llmrec.adapters import shipped_adapter
    from llmrec.llm import prepare_model
    from llmrec.llm.runtime import load_llm

    folder = prepare_model(args.model)
    adapters = {}
    if variant in ("adapter", "hybrid"):
        path = args.adapter or shipped_adapter(args.model, "understand")
        if path is None:
            raise SystemExit(f"no understanding adapter for {args.model}; pass --adapter DIR")
        adapters = {"understand": path}
    llm = load_llm(folder, args.model, adapters, runtime=args.runtime, threads=args.threads)
    if variant == "hybrid":  # rules, the model with its adapter deciding the stances they miss
        return HybridUnderstander(llm, items, popularity)
    return LLMUnderstander(llm, items, popularity)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--variants", default="rules,zero-shot,adapter")
    parser.add_argument("--sets", default="dev,test")
    parser.add_argument("--redial", type=int, default=100, help="ReDial dialogues to read (0 = none)")
    parser.add_argument("--adapter", default=None, help="understanding adapter (default: the shipped one)")
    parser.add_argument("--limit", type=int, default=0, help="read only the first N messages of each set")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runtime", default="transformers", help="transformers, openvino or auto (llmrec.llm.runtime)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--records", default=None, help="write every reading to this JSONL file")
    args = parser.parse_args()

    from llmrec.chat.readers import popularity_of
    from llmrec.data import load_dataset

    dataset = load_dataset("ml-latest-small", data_dir=args.data_dir)
    items, popularity = dataset.items, popularity_of(dataset)
    by_title = {item.display_title: item_id for item_id, item in items.items()}
    sets = {name: load_set(name, by_title) for name in args.sets.split(",") if name}
    if args.limit:
        sets = {name: rows[: args.limit] for name, rows in sets.items()}
    records: list | None = [] if args.records else None
    report: dict[str, Any] = {"load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
                              "model": args.model, "runtime": args.runtime, "variants": {}}
    for variant in [v for v in args.variants.split(",") if v]:
        reader = build_reader(variant, args, items, popularity)
        result: dict[str, Any] = {"runtime": type(getattr(reader, "llm", None)).__name__ if variant != "rules" else ""}
        for name, rows in sets.items():
            result[name] = score_set(reader, rows, items, records)
            print(f"{variant} {name}: {json.dumps(result[name])}", file=sys.stderr, flush=True)
        if args.redial:
            result["redial"] = redial_stance(reader, Path(args.data_dir) / "redial" / "dialogues.jsonl", args.redial)
            print(f"{variant} redial: {json.dumps(result['redial'])}", file=sys.stderr, flush=True)
        report["variants"][variant] = result
        if records is not None:
            for r in records:
                r.setdefault("variant", variant)
    report["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    if args.records:
        Path(args.records).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records or []),
                                      encoding="utf-8")  # fmt: skip


if __name__ == "__main__":
    main()
