"""ReDial: the conversational-recommender protocol, run through the chat engine.

    python benchmarks/redial.py --data-dir ../shared/data [--dialogues 342] [--json]

Each ReDial dialogue is replayed: the seeker's (initiator's) messages go, one at a time, through
``Conversation.handle`` — the same engine and intent rules the app uses, with ``@123`` mentions written
out as "Title (Year)" the way a person types them. Before every recommender turn that mentions movies,
the engine's current profile is asked for 50 recommendations; the targets are the movies of that turn
that the seeker labelled as suggested and liked and that had not come up earlier in the dialogue.
Recall@1/10/50 is averaged over targets. ReDial movies are mapped to ml-latest-small by normalised title
and year; a target outside the catalogue counts as a miss in "all targets" and is left out of
"catalogue targets". A second variant ("every mention") counts every new movie of a recommender turn,
the protocol of most CRS papers (KBRD, UniCRS), which is what their published figures use.

The seeker's messages are all the engine sees (never the human recommender's), and the ML-latest-small
collaborative model knows nothing about ReDial users. Published figures use ReDial's own 6.9k-movie
catalogue and the full test split; ours is a fixed 342-dialogue sample of that split and the 9.7k-movie
MovieLens catalogue, so they compare in kind, not to the third decimal.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from llmrec.chat.engine import Conversation
from llmrec.chat.store import ProfileStore
from llmrec.config import RecommenderConfig
from llmrec.pipeline import Recommender
from llmrec.profile import normalise_title, split_title_year

KS = (1, 10, 50)
_MENTION = re.compile(r"@(\d+)")


class CatalogueMap:
    """ReDial movie names -> MovieLens item ids, by normalised title and year (a year off by one is accepted)."""

    def __init__(self, items: Any) -> None:
        self.by_key: dict[tuple[str, int | None], str] = {}
        for item in items:
            title, _ = split_title_year(item.display_title)
            self.by_key.setdefault((normalise_title(title), item.year), item.item_id)
            if "(" in title:  # "Seven (a.k.a. Se7en)": the main title too
                self.by_key.setdefault((normalise_title(title.split("(")[0]), item.year), item.item_id)

    def find(self, name: str) -> str | None:
        title, year = split_title_year(name)
        key = normalise_title(title)
        for y in (year, (year or 0) - 1, (year or 0) + 1) if year else (None,):
            if (key, y) in self.by_key:
                return self.by_key[(key, y)]
        return None


def turns(dialogue: dict) -> Iterator[tuple[bool, list[str]]]:
    """(is the seeker speaking, the turn's messages), consecutive messages of one sender grouped."""
    seeker = dialogue["initiatorWorkerId"]
    current: list[str] = []
    speaker = None
    for message in dialogue["messages"]:
        if speaker is not None and message["senderWorkerId"] != speaker and current:
            yield speaker == seeker, current
            current = []
        speaker = message["senderWorkerId"]
        current.append(message["text"])
    if current:
        yield speaker == seeker, current


def labels(dialogue: dict) -> dict[str, dict]:
    return dialogue.get("initiatorQuestions") or dialogue.get("respondentQuestions") or {}


def written_out(text: str, names: dict[str, str]) -> str:
    return _MENTION.sub(lambda m: names.get(m[1], "a movie").replace("  ", " "), text)


def replay(dialogue: dict, rec: Recommender, store: ProfileStore, mapping: CatalogueMap, n: int) -> list[dict]:
    """One dialogue: a record per (recommender turn, target) with the target's rank in the top 50."""
    names = dialogue["movieMentions"] or {}
    answers = labels(dialogue)
    convo = Conversation(rec, store, f"redial-{dialogue['conversationId']}", k=10)
    convo.start()
    mentioned: set[str] = set()
    records = []
    for by_seeker, messages in turns(dialogue):
        ids = [m for text in messages for m in _MENTION.findall(text)]
        if by_seeker:
            for text in messages:
                convo.handle(written_out(text, names))
        else:
            new = [m for m in dict.fromkeys(ids) if m not in mentioned and m in names]
            if new:
                state = convo.state()
                result = rec.recommend(convo.profile(state), k=max(KS), keep=convo._filter(state), explain=False)
                ranked = [r.item.item_id for r in result.items]
                if len(ranked) < max(KS):  # constraints too narrow: what the engine shows when it relaxes them
                    extra = rec.recommend(convo.profile(state), k=max(KS), explain=False).items
                    ranked += [r.item.item_id for r in extra if r.item.item_id not in ranked]
                for movie in new:
                    label = answers.get(movie, {})
                    item_id = mapping.find(names[movie])
                    rank = ranked.index(item_id) if item_id in ranked else None
                    liked = label.get("suggested") == 1 and label.get("liked") == 1
                    records.append({"dialogue": n, "movie": names[movie], "item": item_id, "rank": rank,
                                    "liked_suggestion": liked})  # fmt: skip
        mentioned.update(ids)
    convo.forget()
    return records


def recall(records: list[dict]) -> dict[str, float]:
    out = {"targets": len(records)}
    for k in KS:
        hits = [r["rank"] is not None and r["rank"] < k for r in records]
        out[f"recall@{k}"] = round(float(np.mean(hits)), 4) if hits else float("nan")
        out[f"recall@{k}_se"] = round(float(np.std(hits) / np.sqrt(len(hits))), 4) if hits else float("nan")
    return out


def summarise(records: list[dict], dialogues: int, seconds: float) -> dict[str, Any]:
    liked = [r for r in records if r["liked_suggestion"]]
    return {
        "dialogues": dialogues,
        "seconds": round(seconds, 1),
        "suggested and liked (all targets)": recall(liked),
        "suggested and liked (catalogue targets)": recall([r for r in liked if r["item"] is not None]),
        "every mention (all targets)": recall(records),
        "every mention (catalogue targets)": recall([r for r in records if r["item"] is not None]),
        "mapped to the catalogue": round(float(np.mean([r["item"] is not None for r in records])), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--dialogues", type=int, default=0, help="first N dialogues (0 = all)")
    parser.add_argument("--retriever", default="hybrid", choices=("text", "cf", "hybrid"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = RecommenderConfig().updated(
        data={"dataset": "ml-latest-small", "data_dir": args.data_dir},
        retrieval={"retriever": args.retriever, "candidates": max(KS)},
        ranker={"kind": "passthrough"}, explainer={"kind": "template"},
    )  # fmt: skip
    rec = Recommender(config)
    mapping = CatalogueMap(rec.items.values() if hasattr(rec.items, "values") else rec.items)
    path = Path(args.data_dir) / "redial" / "dialogues.jsonl"
    dialogues = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    dialogues = dialogues[: args.dialogues] if args.dialogues else dialogues
    store = ProfileStore(Path(tempfile.mkdtemp()) / "redial.sqlite")
    start = time.monotonic()
    records: list[dict] = []
    for n, dialogue in enumerate(tqdm(dialogues, desc="ReDial dialogues", unit="dialogue")):
        records += replay(dialogue, rec, store, mapping, n)
    print(json.dumps(summarise(records, len(dialogues), time.monotonic() - start), indent=2))


if __name__ == "__main__":
    main()
