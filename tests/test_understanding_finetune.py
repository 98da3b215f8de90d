"""Training pairs for the understanding adapter (ReDial seeker turns and synthetic messages), and a smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.config import build_config
from finetune.understand_data import (
    UnderstandExample,
    balance_stances,
    label_stance,
    redial_examples,
    split_examples,
    synthetic_examples,
)
from fixtures_catalog import ITEMS
from llmrec.chat.understanding import Reading, ReadingContext
from llmrec.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
DIALOGUE = {
    "conversationId": "7", "initiatorWorkerId": 1, "respondentWorkerId": 2,
    "movieMentions": {"111": "Shrek (2001)", "222": "Alien (1979)", "333": "Heat (1995)"},
    "initiatorQuestions": {"111": {"suggested": 0, "seen": 1, "liked": 1},
                           "222": {"suggested": 1, "seen": 0, "liked": 1},
                           "333": {"suggested": 1, "seen": 1, "liked": 0}},
    "messages": [
        {"senderWorkerId": 1, "text": "hi"}, {"senderWorkerId": 2, "text": "hello! what do you like?"},
        {"senderWorkerId": 1, "text": "I loved @111 , can you recommend a comedy?"},
        {"senderWorkerId": 2, "text": "Have you seen @222 ?"},
        {"senderWorkerId": 1, "text": "no I haven't seen it, sounds good"},
        {"senderWorkerId": 2, "text": "or @333"}, {"senderWorkerId": 1, "text": "yes, it was boring"},
    ],
}  # fmt: skip


def test_redial_turns_get_the_seekers_own_labels():
    examples = redial_examples([DIALOGUE], seed=0)
    by_text = {e.text: e for e in examples}
    first = next(e for t, e in by_text.items() if t.startswith("I loved"))
    assert first.target.liked[0].lower().startswith("shrek") and "comedy" in first.target.liked
    assert first.target.requests == ["recommend"]
    reaction = by_text["no I haven't seen it, sounds good"]  # reacts to the one movie just named
    assert reaction.target == Reading(interested=["Alien (1979)"])
    assert reaction.context.last_reply == "Have you seen Alien (1979) ?"
    assert by_text["yes, it was boring"].target == Reading(disliked=["Heat (1995)"])
    assert all(e.group == "redial:7" for e in examples)


@pytest.mark.parametrize(("label", "text", "stance"), [
    ({"seen": 1, "liked": 1}, "loved it", "liked"), ({"seen": 1, "liked": 0}, "meh", "disliked"),
    ({"seen": 0, "liked": 1}, "I haven't seen it", "not_seen"), ({"seen": 0, "liked": 1}, "sounds good", "interested"),
    ({"seen": 1, "liked": 2}, "seen it", "seen"), (None, "what about it", "mentioned"),
])  # fmt: skip
def test_label_stance(label, text, stance):
    assert label_stance(label, text) == stance


def test_synthetic_messages_copy_their_phrases_and_stay_out_of_the_evaluation_set():
    examples = synthetic_examples(ITEMS, {i: 30 - int(i) for i in ITEMS}, 240, seed=3)
    assert len(examples) > 200
    for e in examples:
        for _stance, phrase in e.target.phrases():
            in_context = phrase in {t for _, _, t in e.context.cards} | {e.context.focus_title}
            assert phrase.lower() in e.text.lower() or in_context, (e.text, phrase)
    evaluation = {json.loads(line)["text"].lower() for name in ("dev", "test")
                  for line in (REPO / "benchmarks/data/understanding" / f"{name}.jsonl").read_text().splitlines()}
    assert not {e.text.lower() for e in examples} & evaluation
    train, held = split_examples([*examples, *redial_examples([DIALOGUE], 0)], 0.5, seed=1)
    assert train and held and not {e.group for e in train if e.source == "redial"} & {
        e.group for e in held if e.source == "redial"}


def test_balance_stances_drops_only_a_share_of_the_turns_that_just_like_films():
    def example(n: int, target: Reading) -> UnderstandExample:
        return UnderstandExample("redial", f"redial:{n}", f"message {n}", ReadingContext(), target)

    liked = [example(n, Reading(liked=[f"film {n}"])) for n in range(400)]
    other = [example(400, Reading(liked=["a"], disliked=["b"])), example(401, Reading(liked=["a"], requests=["quit"])),
             example(402, Reading(not_seen=["c"])), example(403, Reading(requests=["recommend"]))]
    kept = balance_stances([*liked, *other], 0.25, seed=0)
    assert all(e in kept for e in other)  # a dislike, a request or another stance always stays
    assert 60 <= sum(e in kept for e in liked) <= 140  # about a quarter of the liked-only turns
    assert balance_stances([*liked, *other], 1.0, seed=0) == [*liked, *other]


@pytest.mark.parametrize("changes", [{"synthetic_share": 1.0}, {"synthetic_share": -0.1},
                                     {"redial_liked_only_keep": 0.0}, {"redial_liked_only_keep": 1.5}])
def test_understand_pair_mix_out_of_range_is_a_config_error(changes):
    base = {"task": "understand", "base_model": "qwen2.5-coder-0.5b-instruct", "dataset": "ml-latest-small"}
    with pytest.raises(ConfigError, match=next(iter(changes))):
        build_config({**base, **changes})


@pytest.mark.slow
@pytest.mark.real_model
def test_understanding_smoke_run(tmp_path: Path, shared_data: Path, session_cache: Path):
    from finetune import run_finetune
    from finetune.config import load_config
    from llmrec.adapters import read_card

    cfg = load_config(REPO / "finetune/configs/understand-smoke.toml").replace(
        data_dir=str(shared_data), cache_dir=str(session_cache), examples=4, valid_users=1, max_steps=2)
    out = run_finetune(cfg, tmp_path / "understand")
    card = read_card(out)
    assert card is not None and card.task == "understand" and card.settings["prompt"] == "understand@2"
    assert card.validation["zero_shot"]["messages"] == 1 and card.training["steps"] == 2
    assert (out / "adapter_model.safetensors").is_file()
