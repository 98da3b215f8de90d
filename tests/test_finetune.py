"""finetune/: training data from the training split only, configs, metrics, checkpoints, and an end-to-end
smoke run on the real SmolLM2-135M (marked ``real_model``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from finetune import data as fdata
from finetune.checkpoint import check_compatible, optimizer_tensors, restore_optimizer
from finetune.config import LoraTrainConfig, build_config, field_help, load_config
from finetune.evaluate import blend_scores, blend_sweep, list_metrics, reranked_lists, retrieval_ceiling
from finetune.train import FineTuner, lr_at
from llmrec.data.split import SequenceData
from llmrec.errors import ConfigError, ModelError
from llmrec.llm.base import FakeLLM
from llmrec.ranking import LABELS, LLMRanker
from llmrec.types import Item

CONFIGS = Path(__file__).resolve().parents[1] / "finetune" / "configs"
N_ITEMS = 40
ITEMS = {str(i): Item(str(i), f"Movie {i}", 1980 + i % 30, ("Drama",)) for i in range(N_ITEMS)}


def tiny_seq(n_users: int = 12, seed: int = 0) -> SequenceData:
    rng = np.random.default_rng(seed)
    seqs, ratings, stamps = [], [], []
    for u in range(n_users):
        length = int(rng.integers(8, 16))
        seqs.append(rng.choice(N_ITEMS, size=length, replace=False).astype(np.int64))
        ratings.append(rng.integers(1, 6, size=length).astype(np.float64))
        stamps.append(np.arange(length, dtype=np.int64) * 10 + u)
    return SequenceData("tiny", tuple(f"u{u}" for u in range(n_users)), tuple(ITEMS), tuple(seqs), tuple(ratings),
                        tuple(stamps))  # fmt: skip


class ByIdScorer:
    """A fake retriever: the higher the item id, the higher the score, for everyone."""

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        return np.tile(np.arange(N_ITEMS, dtype=np.float32), (len(users), 1))


@pytest.fixture(scope="module")
def seq() -> SequenceData:
    return tiny_seq()


@pytest.fixture(scope="module")
def ease(seq: SequenceData):
    return fdata.fit_retriever(seq, "ease")


def test_a_slow_retriever_trains_once_per_data_and_seed(seq, tmp_path):
    first = fdata.fit_retriever(seq, "ncf", {"epochs": 1}, seed=0, cache_dir=tmp_path)
    folders = list((tmp_path / "finetune").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith(f"{seq.name}-ncf-train-")
    stamp = (folders[0] / "state.json").stat().st_mtime
    again = fdata.fit_retriever(seq, "ncf", {"epochs": 1}, seed=0, cache_dir=tmp_path)
    assert (folders[0] / "state.json").stat().st_mtime == stamp  # loaded, not trained again
    histories = [seq.train(0)]
    assert (first.score([0], histories) == again.score([0], histories)).all()
    fdata.fit_retriever(seq, "ncf", {"epochs": 1}, seed=1, cache_dir=tmp_path)
    assert len(list((tmp_path / "finetune").iterdir())) == 2  # another seed is another model


def test_out_of_fold_retrievers_never_saw_the_users_they_score(seq):
    from llmrec.baselines import TrainData, get_scorer

    oof = fdata.fit_out_of_fold(seq, "ease", None, seed=0, folds=2)
    assert sorted(np.bincount(oof.fold_of_user).tolist()) == [6, 6]
    training = fdata.training_data(seq, 0).histories
    for fold, scorer in enumerate(oof.scorers):
        inside = np.flatnonzero(oof.fold_of_user == fold)
        others = tuple(h[:0] if u in inside else h for u, h in enumerate(training))  # the fold's users removed
        alone = get_scorer("ease").fit(TrainData(seq.n_users, seq.n_items, others))
        histories = [seq.train(int(u)) for u in inside]
        np.testing.assert_allclose(scorer.score(np.full(len(inside), -1), histories),
                                   alone.score(np.full(len(inside), -1), histories), rtol=1e-5)  # fmt: skip
    scores = oof.score(np.arange(seq.n_users), [seq.train(u) for u in range(seq.n_users)])
    assert scores.shape == (seq.n_users, N_ITEMS) and np.isfinite(scores).all()
    user = 0
    np.testing.assert_allclose(scores[user], oof.scorers[oof.fold_of_user[user]].score([-1], [seq.train(user)])[0])


# Training examples ------------------------------------------------------------------------------
def test_examples_come_from_the_training_items_only(seq, ease):
    examples = fdata.build_examples(seq, ease, 60, n_candidates=10, seed=0, mode="insert")
    assert len(examples) == 60
    for e in examples:
        train = seq.train(e.user)
        assert 1 <= e.position < len(train)  # never the validation or test position
        assert e.target_item == train[e.position]
        assert e.target_item not in (seq.valid_target(e.user), seq.test_target(e.user))
        assert len(e.candidates) == 10 and len(set(e.candidates)) == 10
        assert not set(e.candidates) & set(train[: e.position].tolist())  # the prefix is masked
    assert len({(e.user, e.position) for e in examples}) == len(examples)


def test_retrieved_mode_keeps_the_retrievers_list_and_insert_mode_adds_the_answer(seq):
    scorer = ByIdScorer()
    kept = fdata.build_examples(seq, scorer, 200, n_candidates=5, seed=1, mode="retrieved")
    assert kept
    for e in kept:
        top = fdata.retrieve(scorer, [e.user], [seq.train(e.user)[: e.position]], 5)[0]
        assert set(e.candidates) == set(top.tolist())
    inserted = fdata.build_examples(seq, scorer, 40, n_candidates=5, seed=1, mode="insert")
    assert len(inserted) == 40
    for e in inserted:
        top = set(fdata.retrieve(scorer, [e.user], [seq.train(e.user)[: e.position]], 5)[0].tolist())
        assert e.target_item in e.candidates and len(set(e.candidates) & top) >= 4
    with pytest.raises(ConfigError, match="candidate mode"):
        fdata.build_examples(seq, scorer, 1, mode="sometimes")


def test_examples_are_seeded_and_the_answer_label_is_spread(seq, ease):
    first = fdata.build_examples(seq, ease, 60, n_candidates=10, seed=3, mode="insert")
    again = fdata.build_examples(seq, ease, 60, n_candidates=10, seed=3, mode="insert")
    other = fdata.build_examples(seq, ease, 60, n_candidates=10, seed=4, mode="insert")
    assert first == again and first != other
    assert len({e.target for e in first}) >= 6  # shuffled: the answer is not always "A"


def test_evaluation_cases_follow_the_llamarec_protocol(seq, ease):
    users = fdata.select_users(seq.n_users, 5, seed=0)
    assert len(users) == 5 and list(users) == sorted(users)
    assert len(fdata.select_users(seq.n_users, -1, seed=0)) == seq.n_users
    for split, offset in (("valid", 2), ("test", 1)):
        for case in fdata.build_eval_cases(seq, ease, users, split, n_candidates=10):
            full = seq.sequences[case.user]
            assert case.history_length == len(full) - offset
            assert case.target_item == (seq.valid_target(case.user) if split == "valid" else seq.test_target(case.user))
            assert not set(case.candidates) & set(full[: case.history_length].tolist())
            expected = case.candidates.index(case.target_item) if case.target_item in case.candidates else -1
            assert case.target_index == expected
    with pytest.raises(ConfigError, match="split"):
        fdata.build_eval_cases(seq, ease, users, "train")


def test_training_prompts_are_the_rankers_prompts(seq, ease):
    example = next(e for e in fdata.build_examples(seq, ease, 40, 10, seed=0, mode="insert") if e.position >= 6)
    ranker = LLMRanker(FakeLLM(), ITEMS, labels=LABELS[:10], max_history=5)
    messages = fdata.example_messages(ranker, seq, example)
    profile = fdata.profile_for(seq, example.user, example.position, example.position)  # the whole history
    assert messages == ranker.messages(profile, fdata.window_for(seq, example.candidates))
    text = messages[-1]["content"]
    history = text.split("<history>")[1].split("</history>")[0]
    # the ranker's own window: the last 5 items, its start moved back to a multiple of the layout's step
    step = ranker.layout.history_step
    start = (max(0, example.position - 5) // step) * step
    shown = seq.train(example.user)[start : example.position]
    assert 5 <= len(shown) < 5 + step
    assert [line.split(" (")[0][2:] for line in history.strip().splitlines()] == [f"Movie {i}" for i in shown]
    assert f"Movie {example.target_item} (" not in history
    for label, item in zip(LABELS, example.candidates):
        assert f"\n{label}. Movie {item} (" in text
    assert "(nothing stated)" in text


# Metrics ----------------------------------------------------------------------------------------
def test_reranked_metrics_by_hand():
    cases = [
        fdata.EvalCase(0, "valid", 3, (5, 6, 7, 8), 7),  # retrieved third
        fdata.EvalCase(1, "valid", 3, (1, 2, 3, 4), 9),  # not retrieved: a miss for every ranker
    ]
    assert retrieval_ceiling(cases) == 0.5
    retrieval = list_metrics(cases, reranked_lists(cases, None, 4), ks=(1, 10))
    assert retrieval["ndcg@10"] == pytest.approx(0.5 * 1 / math.log2(4))
    assert retrieval["recall@1"] == 0.0 and retrieval["recall@10"] == 0.5
    scores = np.array([[0.0, 1.0, 5.0, 2.0], [9.0, 0.0, 0.0, 0.0]])
    llm = list_metrics(cases, reranked_lists(cases, scores, 4), ks=(1, 10))
    assert llm["ndcg@10"] == pytest.approx(0.5) and llm["recall@1"] == 0.5
    ties = reranked_lists(cases[:1], np.zeros((1, 4)), 4)
    assert ties.tolist() == [[5, 6, 7, 8]]  # ties keep the retrieval order


@pytest.mark.parametrize("blend", [0.0, 0.9])
def test_blended_scores_are_the_rankers_scores(seq, blend):
    logits = np.array([0.3, 2.0, -1.0, 0.5, 1.7], dtype=np.float32)
    case = fdata.EvalCase(0, "valid", 5, (7, 3, 9, 1, 4), 9)
    ranker = LLMRanker(FakeLLM(scorer=lambda _m, options: logits[: len(options)]), ITEMS, blend=blend)
    ranked = ranker.rank(fdata.profile_for(seq, 0, 5, 5), fdata.window_for(seq, case.candidates), 5)
    expected = {c.item_id: c.score for c in ranked}
    ours = blend_scores([case], logits[None, :], blend)[0]
    np.testing.assert_allclose(ours, [expected[seq.item_ids[i]] for i in case.candidates], rtol=1e-5)
    sweep = blend_sweep([case], logits[None, :], (0.0, 0.9))
    assert set(sweep) == {"0", "0.9"} and all(0.0 <= v <= 1.0 for v in sweep.values())


def test_learning_rate_warms_up_then_decays():
    cfg = LoraTrainConfig(learning_rate=1e-3, warmup_steps=4, max_steps=14)
    assert lr_at(2, cfg) == pytest.approx(5e-4)
    assert lr_at(4, cfg) == pytest.approx(1e-3)
    assert lr_at(14, cfg) == pytest.approx(1e-4)


# Config and checkpoints -------------------------------------------------------------------------
def test_an_update_with_a_non_finite_gradient_is_skipped_and_training_goes_on():
    import types

    import torch
    from accelerate import Accelerator

    from finetune.train import accumulated_update

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    params = list(model.parameters())
    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=2)
    model, optimizer = accelerator.prepare(model, torch.optim.AdamW(params, lr=0.1))
    cfg = LoraTrainConfig(grad_accum=2, grad_clip=1.0, learning_rate=0.1, warmup_steps=0, max_steps=4)
    tuner = types.SimpleNamespace(cfg=cfg, accelerator=accelerator, model=model, params=params, optimizer=optimizer)
    x = torch.ones(1, 3)
    bad = {2}  # the second micro batch of update 1 gives an infinite loss, hence a NaN gradient

    def loss_of(micro: int) -> torch.Tensor:
        out = model(x).sum()
        return out * float("inf") if micro + 1 in bad else out**2

    before = [p.detach().clone() for p in params]
    loss, applied = accumulated_update(tuner, 1, loss_of)
    assert not applied and not np.isfinite(loss)
    assert all(torch.equal(a, b) for a, b in zip(before, params))  # nothing moved, no NaN anywhere
    loss, applied = accumulated_update(tuner, 2, loss_of)
    assert applied and np.isfinite(loss)
    assert all(torch.isfinite(p).all() for p in params) and not all(torch.equal(a, b) for a, b in zip(before, params))


def test_shipped_configs_load_and_every_setting_has_help():
    smoke, default = load_config(CONFIGS / "smoke.toml"), load_config(CONFIGS / "default.toml")
    assert smoke.base_model == "smollm2-135m-instruct"
    assert default.base_model == "qwen2.5-coder-0.5b-instruct"
    assert default.target_modules == ("q_proj", "k_proj", "v_proj", "o_proj")
    assert all(text.strip() for text in field_help().values())
    assert LoraTrainConfig().replace(r=4).r == 4


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"lora_rank": 8}, "unknown setting"),
        ({"r": 0}, "r must be >= 1"),
        ({"n_candidates": 21}, "n_candidates must be <= 20"),
        ({"candidates": "all"}, "candidates must be one of"),
        ({"dropout": 1.5}, "dropout"),
        ({"test_users": -5}, "test_users"),
        ({"valid_users": 0}, "valid_users"),
        ({"target_modules": []}, "target_modules"),
        ({"candidate_order": "random"}, "candidate_order must be one of"),
        ({"candidates": "random"}, "needs candidate_order = 'shuffled'"),
        ({"examples": 0}, "examples must be -1"),
        ({"kl_weight": -0.1}, "kl_weight"),
        ({"retriever_folds": 1}, "retriever_folds"),
        ({"prompt": "rank@1@2"}, "prompt must be"),
    ],
)
def test_bad_settings_are_refused_by_name(values, match):
    with pytest.raises(ConfigError, match=match):
        build_config(values)


def test_missing_and_malformed_config_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("r = [", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_cli_reports_errors_on_one_line(tmp_path: Path, capsys):
    from finetune.__main__ import main

    assert main([str(tmp_path / "missing.toml"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: finetune config") and "\n" not in err


def test_resume_refuses_other_settings_but_allows_more_steps():
    base = LoraTrainConfig().to_dict()
    check_compatible(base, {**base, "max_steps": 999, "max_seconds": 10.0})
    with pytest.raises(ConfigError, match=r"cannot resume.*r=8"):
        check_compatible(base, {**base, "r": 16})


def test_optimizer_state_round_trips_without_pickles():
    import torch

    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.1)
    layer(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    tensors, groups = optimizer_tensors(optimizer)
    assert all(torch.is_tensor(t) for t in tensors.values())
    fresh = torch.optim.AdamW(layer.parameters(), lr=0.5)
    restore_optimizer(fresh, tensors, json.loads(json.dumps(groups)))
    assert fresh.param_groups[0]["lr"] == pytest.approx(0.1)
    torch.testing.assert_close(fresh.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])


# End to end on the real SmolLM2-135M --------------------------------------------------------------
SMOKE_MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, shared_data: Path, session_cache: Path) -> tuple[Path, dict, FineTuner]:
    """Two steps without the test evaluation, then ``resume`` to the config's max_steps with it."""
    from finetune import run_finetune

    cfg = load_config(CONFIGS / "smoke.toml").replace(data_dir=str(shared_data), cache_dir=str(session_cache))
    out = tmp_path_factory.mktemp("adapter")
    first_run = FineTuner(cfg.replace(max_steps=2, test_users=0), out)
    first_run.run()
    first = json.loads((out / "adapter_card.json").read_text())
    run_finetune(cfg, out, resume=True)
    return out, first, first_run


@pytest.mark.real_model
@pytest.mark.slow
def test_smoke_run_writes_a_safetensors_adapter_and_its_card(smoke_run):
    out, _, _ = smoke_run
    from llmrec.llm import get_spec

    assert {p.name for p in out.iterdir()} >= {"adapter_model.safetensors", "adapter_config.json", "adapter_card.json"}
    assert not list(out.glob("*.bin")) and not (out / "README.md").exists()
    card = json.loads((out / "adapter_card.json").read_text())
    assert card["base_model"] == SMOKE_MODEL and card["base_model_sha256"] == get_spec(SMOKE_MODEL).sha256
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == SMOKE_MODEL
    losses = [loss for _, loss in card["training"]["losses"]]
    assert losses and all(math.isfinite(x) for x in losses)
    for key in ("retriever", "zero_shot", "lora"):
        assert 0.0 <= card["validation"][key]["ndcg@10"] <= 1.0
        assert 0.0 <= card["test"][key]["ndcg@10"] <= 1.0
    assert card["test"]["users"] == 2 and "python -m finetune" in card["reproduce"]


@pytest.mark.real_model
@pytest.mark.slow
def test_resume_continues_from_the_checkpoint(smoke_run):
    out, first, _ = smoke_run
    card = json.loads((out / "adapter_card.json").read_text())
    assert first["training"]["steps"] == 2
    assert card["training"]["steps"] == 3 and card["training"]["resumed_from"] == [2]
    assert [step for step, _ in card["training"]["losses"]] == [1, 2, 3]
    assert card["training"]["losses"][:2] == first["training"]["losses"]


@pytest.mark.real_model
@pytest.mark.slow
def test_smoke_examples_never_use_validation_or_test_items(smoke_run):
    _, _, tuner = smoke_run
    assert len(tuner.examples) == tuner.cfg.examples
    for e in tuner.examples:
        assert e.position < len(tuner.seq.train(e.user))
        assert e.target_item == tuner.seq.train(e.user)[e.position]


@pytest.mark.real_model
@pytest.mark.slow
def test_adapter_loads_for_inference_and_scores_as_in_training(smoke_run, session_cache: Path):
    from finetune.evaluate import encode, label_token_ids, score_prompts
    from llmrec.llm import prepare_model
    from llmrec.llm.local import TransformersLLM, check_adapter

    out, _, _ = smoke_run
    llm = TransformersLLM(prepare_model(SMOKE_MODEL, cache_dir=session_cache), name=SMOKE_MODEL, adapter=out,
                          threads=2)  # fmt: skip
    assert llm.adapter == out
    messages = [{"role": "user", "content": "Candidates: A. Alien  B. Heat  C. Solaris. Answer with the letter."}]
    expected = llm.score_options(messages, ["A", "B", "C"])
    ours = score_prompts(llm.model, [encode(llm.tokenizer, messages)], label_token_ids(llm.tokenizer, "ABC"),
                         llm.tokenizer.pad_token_id)  # fmt: skip
    np.testing.assert_allclose(ours[0], expected, atol=1e-4)
    with pytest.raises(ModelError, match="trained for base model"):
        check_adapter(out, "qwen2.5-coder-0.5b-instruct")


# The explainer -----------------------------------------------------------------------------------
def test_explainer_pairs_use_training_items_and_pass_the_faithfulness_check(seq):
    from finetune.explain_data import build_explain_examples, held_out_positions, training_positions
    from llmrec.explanation import LLMExplainer

    explainer = LLMExplainer(FakeLLM(), ITEMS)
    held = [0, 1]
    positions = training_positions(seq, 30, seed=0, min_history=1, exclude=set(held))
    pairs = build_explain_examples(seq, ITEMS, explainer, positions, seed=0, max_history=5)
    assert len(pairs) == 30 and not {p.user for p in pairs} & set(held)
    for pair in pairs:
        assert pair.position < len(seq.train(pair.user))  # never the validation or test item
        assert pair.item_id == seq.item_ids[int(seq.train(pair.user)[pair.position])]
        assert pair.messages[-1]["content"].count("<evidence>") == 1 and pair.target.endswith(".")
        item = ITEMS[pair.item_id]
        evidence_text = pair.messages[-1]["content"]
        assert item.display_title in evidence_text
    valid = build_explain_examples(seq, ITEMS, explainer, held_out_positions(seq, held), seed=1, max_history=5)
    assert [p.user for p in valid] == held
    assert len({p.target for p in pairs}) > 3  # several phrasings, not one template


def test_explainer_targets_lead_with_a_liked_film_and_never_repeat_the_collaborative_line(seq):
    from finetune.explain_data import build_explain_examples, training_positions
    from llmrec.explanation import LLMExplainer

    explainer = LLMExplainer(FakeLLM(), ITEMS)
    positions = training_positions(seq, 40, seed=0, min_history=1, exclude=set())
    pairs = build_explain_examples(seq, ITEMS, explainer, positions, seed=0, max_history=5)
    assert pairs
    led = 0
    for pair in pairs:
        assert "histories overlap" not in pair.target and "chose it" not in pair.target
        marker = "similar to items the user liked: "
        content = pair.messages[-1]["content"]
        if marker in content:  # the evidence names a liked film: every target names the first one
            led += 1
            first = content.split(marker)[1].split(")")[0] + ")"
            assert first in pair.target, (first, pair.target)
    assert led


def test_every_phrasing_is_checked_and_an_invented_one_is_dropped(monkeypatch, seq):
    import finetune.explain_data as explain_data
    from llmrec.explanation import LLMExplainer

    real = explain_data.phrasings
    monkeypatch.setattr(explain_data, "phrasings",
                        lambda item, evidence, kind: ["It won three Oscars and stars Tom Hanks.",
                                                      *real(item, evidence, kind)])  # fmt: skip
    explainer = LLMExplainer(FakeLLM(), ITEMS)
    pairs = explain_data.build_explain_examples(seq, ITEMS, explainer, [(2, 3), (3, 4), (4, 5)], seed=0,
                                                max_history=5)  # fmt: skip
    assert pairs and all("Oscar" not in p.target and "Hanks" not in p.target for p in pairs)


def test_explain_task_is_validated():
    with pytest.raises(ConfigError, match="task must be one of"):
        LoraTrainConfig(task="summarise")
    assert load_config(CONFIGS / "explain.toml").task == "explain"


@pytest.fixture(scope="module")
def explain_smoke(tmp_path_factory, shared_data: Path, session_cache: Path) -> Path:
    from finetune import run_finetune

    cfg = load_config(CONFIGS / "explain-smoke.toml").replace(data_dir=str(shared_data), cache_dir=str(session_cache))
    out = tmp_path_factory.mktemp("explain-adapter")
    run_finetune(cfg.replace(max_steps=2), out)  # two updates, then resumed to the config's three
    return run_finetune(cfg, out, resume=True)


@pytest.mark.real_model
@pytest.mark.slow
def test_explainer_smoke_run_writes_an_adapter_card_with_faithfulness(explain_smoke):
    card = json.loads((explain_smoke / "adapter_card.json").read_text())
    assert card["task"] == "explain" and card["base_model"] == SMOKE_MODEL
    assert (explain_smoke / "adapter_model.safetensors").is_file() and not list(explain_smoke.glob("*.bin"))
    assert card["training"]["steps"] == 3 and all(math.isfinite(loss) for _, loss in card["training"]["losses"])
    assert card["training"]["resumed_from"] == [2] and [s for s, _ in card["training"]["losses"]] == [1, 2, 3]
    for key in ("zero_shot", "lora"):
        result = card["validation"][key]
        assert result["pairs"] == 2 and 0 <= result["faithful"] <= 2 and math.isfinite(result["loss"])
    assert card["explainer"]["prompt"].startswith("explain@") and "python -m finetune" in card["reproduce"]


def random_adapter(folder: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter with non-zero random weights (peft's ``init_lora_weights=False``), saved as shipped."""
    import torch
    from peft import LoraConfig, get_peft_model

    from finetune.card import save_adapter
    from llmrec.llm.transformers_backend import load_causal_lm

    torch.manual_seed(seed)
    base, _ = load_causal_lm(folder, dtype="float32", threads=2)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False, task_type="CAUSAL_LM"))  # fmt: skip
    return save_adapter(model, out, SMOKE_MODEL)


@pytest.mark.real_model
@pytest.mark.slow
def test_ranker_and_explainer_adapters_share_one_model_and_each_task_uses_its_own(tmp_path, session_cache: Path):
    from llmrec.llm import prepare_model
    from llmrec.llm.local import TransformersLLM

    folder = prepare_model(SMOKE_MODEL, cache_dir=session_cache)
    rank_dir = random_adapter(folder, tmp_path / "rank", seed=1)
    explain_dir = random_adapter(folder, tmp_path / "explain", seed=2)
    messages = [{"role": "user", "content": "Candidates: A. Alien  B. Heat  C. Solaris. Answer with the letter."}]
    prompt = [{"role": "user", "content": "Say why someone who liked Alien (1979) might like Solaris (1972)."}]
    labels = ["A", "B", "C"]

    def model(**adapters):
        return TransformersLLM(folder, name=SMOKE_MODEL, threads=2, **adapters)

    base, rank_only, explain_only = model(), model(adapter=rank_dir), model(explain_adapter=explain_dir)
    both = model(adapter=rank_dir, explain_adapter=explain_dir)
    assert both.adapters == {"rank": rank_dir, "explain": explain_dir}
    base_scores = base.score_options(messages, labels)
    assert not np.allclose(rank_only.score_options(messages, labels), base_scores, atol=1e-3)  # the adapter acts
    # Scoring runs under the ranker's adapter, never the explainer's ... (1e-4: two float32 model instances differ
    # by up to ~3e-5 run to run on CPU; an adapter that acts moves the scores by more than 1e-3, checked above)
    np.testing.assert_allclose(both.score_options(messages, labels), rank_only.score_options(messages, labels),
                               atol=1e-4)  # fmt: skip
    np.testing.assert_allclose(explain_only.score_options(messages, labels), base_scores, atol=1e-4)
    # ... and generation under the explainer's, never the ranker's.
    base_text = base.generate(prompt, 12)
    assert rank_only.generate(prompt, 12) == base_text
    assert both.generate(prompt, 12) == explain_only.generate(prompt, 12) != base_text


def test_explainer_pairs_without_liked_items_or_shared_genres_are_skipped(seq):
    from finetune.explain_data import build_explain_examples
    from llmrec.explanation import LLMExplainer

    explainer = LLMExplainer(FakeLLM(), ITEMS)
    pairs = build_explain_examples(seq, ITEMS, explainer, [(u, 0) for u in range(seq.n_users)], seed=0, max_history=5)
    assert pairs == []  # position 0: an empty history, so only the collaborative line: never a target
