"""The neural recommenders (NCF, SASRec, LRURec, BERT4Rec, LightGCN, CFGAN) and their training loop, on tiny data."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from llmrec.baselines.base import TrainData, ValidationSet  # noqa: E402
from llmrec.errors import ConfigError  # noqa: E402

N_USERS, N_ITEMS = 40, 24
TINY = {
    "ncf": {"factors": 8, "layers": (16, 8), "epochs": 3, "batch_size": 256},
    "sasrec": {"hidden": 16, "blocks": 1, "heads": 2, "max_len": 12, "epochs": 3, "dropout": 0.1, "batch_size": 16},
    "lrurec": {"hidden": 16, "blocks": 1, "max_len": 12, "epochs": 3, "dropout": 0.1, "batch_size": 16},
    "bert4rec": {"hidden": 16, "blocks": 1, "max_len": 12, "epochs": 3, "dropout": 0.1, "batch_size": 16},
    "lightgcn": {"factors": 8, "layers": 2, "epochs": 3, "eval_every": 1, "batch_size": 128},
    "cfgan": {"hidden": 16, "epochs": 3, "eval_every": 1, "batch_size": 16},
}
COMMON = {"device": "cpu", "num_threads": 1}


def chain_histories(n_users: int = N_USERS, n_items: int = N_ITEMS, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Each user walks i -> i + 1 (mod n_items) from a random start: a trivially learnable sequence."""
    rng = np.random.default_rng(seed)
    return tuple((rng.integers(0, n_items) + np.arange(rng.integers(6, 12))) % n_items for _ in range(n_users))


def train_data(validation: bool = False, seed: int = 0) -> TrainData:
    histories = chain_histories()
    if not validation:
        return TrainData(N_USERS, N_ITEMS, histories, seed=seed)
    users = np.arange(N_USERS)
    valid = ValidationSet(users, histories, tuple(np.array([(h[-1] + 1) % N_ITEMS]) for h in histories))
    return TrainData(N_USERS, N_ITEMS, histories, seed=seed, validation=valid)


def build(name: str, **params):
    from llmrec.baselines.registry import get_scorer

    return get_scorer(name, **{**TINY[name], **COMMON, **params})


@pytest.fixture(scope="module")
def fitted() -> dict:
    return {name: build(name).fit(train_data(validation=True)) for name in TINY}


@pytest.mark.parametrize("name", list(TINY))
def test_fit_and_score_shape(fitted: dict, name: str) -> None:
    scorer = fitted[name]
    histories = chain_histories()[:5]
    scores = scorer.score(np.arange(5), histories)
    assert scores.shape == (5, N_ITEMS) and scores.dtype == np.float32
    assert np.isfinite(scores).all()
    result = scorer.train_result_
    assert 1 <= result.epochs_run <= TINY[name]["epochs"] and result.best_metric is not None


@pytest.mark.parametrize("name", list(TINY))
def test_deterministic_with_a_seed(fitted: dict, name: str) -> None:
    again = build(name).fit(train_data(validation=True))
    histories = chain_histories()[:6]
    np.testing.assert_array_equal(again.score(np.arange(6), histories), fitted[name].score(np.arange(6), histories))


@pytest.mark.parametrize("name", list(TINY))
def test_unknown_users_are_folded_in(fitted: dict, name: str) -> None:
    scorer = fitted[name]
    histories = [np.array([3, 4, 5]), np.array([10, 11]), np.zeros(0, dtype=np.int64)]
    scores = scorer.score(np.full(3, -1), histories)
    assert scores.shape == (3, N_ITEMS) and np.isfinite(scores).all()
    assert not np.allclose(scores[0], scores[1])  # the history matters
    if name in ("sasrec", "lrurec", "bert4rec", "cfgan"):  # score from the history alone: the user id is irrelevant
        known = chain_histories()[:2]
        as_unknown = scorer.score(np.array([-1, -1]), known)
        np.testing.assert_allclose(as_unknown, scorer.score(np.arange(2), known), atol=1e-5)


@pytest.mark.parametrize("name", list(TINY))
def test_checkpoint_round_trip(tmp_path, name: str) -> None:
    folder = tmp_path / name
    first = build(name, epochs=2, checkpoint_dir=str(folder)).fit(train_data())
    state = json.loads((folder / "state.json").read_text())
    assert state["epochs_run"] == 2 and (folder / "last.safetensors").is_file()
    assert "optimizer" in state  # documents that the optimizer is not stored
    done = build(name, epochs=2, checkpoint_dir=str(folder), resume=True).fit(train_data())
    assert done.train_result_.epochs_run == 2  # complete checkpoint: no training, same weights
    histories = chain_histories()[:4]
    np.testing.assert_allclose(done.score(np.arange(4), histories), first.score(np.arange(4), histories), atol=1e-6)
    longer = build(name, epochs=3, checkpoint_dir=str(folder), resume=True).fit(train_data())
    assert [r["epoch"] for r in longer.train_result_.history] == [1, 2, 3]
    assert json.loads((folder / "state.json").read_text())["epochs_run"] == 3


def test_resume_refuses_another_configuration(tmp_path) -> None:
    build("ncf", epochs=1, checkpoint_dir=str(tmp_path)).fit(train_data())
    with pytest.raises(ConfigError, match="checkpoint"):
        build("ncf", epochs=1, factors=4, checkpoint_dir=str(tmp_path), resume=True).fit(train_data())


# the cloze learns from a fifth of the positions per epoch and must learn where [MASK] sits: more epochs, more masks
@pytest.mark.parametrize(
    ("name", "more"), [("sasrec", {}), ("lrurec", {}), ("bert4rec", {"epochs": 200, "mask_prob": 0.5})]
)
def test_sequential_models_learn_the_next_item(name: str, more: dict) -> None:
    params = {"epochs": 40, "dropout": 0.0, "learning_rate": 1e-2, "hidden": 32, "patience": 0, "label_smoothing": 0.0}
    scorer = build(name, **{**params, **more})
    scorer = scorer.fit(train_data())
    starts = np.arange(N_ITEMS)
    histories = [(s + np.arange(5)) % N_ITEMS for s in starts]
    top = scorer.recommend(np.full(len(starts), -1), histories, 1)[:, 0]
    np.testing.assert_array_equal(top, (starts + 5) % N_ITEMS)


def test_lru_layer_is_the_linear_recurrence_it_claims() -> None:
    """The parallel kernel equals stepping h_t = lambda h_(t-1) + gamma B x_t one item at a time, and no position
    sees a later one (right padding is safe)."""
    from llmrec.baselines.lrurec import LRULayer

    torch.manual_seed(0)
    layer = LRULayer(8, 0.8, 0.99)
    x = torch.randn(3, 7, 8)
    with torch.no_grad():
        parallel = layer(x)
        lam = torch.exp(torch.complex(-torch.exp(layer.nu_log), torch.exp(layer.theta_log)))
        u = layer.in_proj(x) * torch.exp(layer.gamma_log).repeat(2)
        u = torch.complex(u[..., :8], u[..., 8:])
        state, steps = torch.zeros(3, 8, dtype=torch.complex64), []
        for t in range(7):
            state = lam * state + u[:, t]
            steps.append(layer.out_proj(torch.cat([state.real, state.imag], dim=-1)))
        torch.testing.assert_close(parallel, torch.stack(steps, dim=1), atol=1e-5, rtol=1e-4)
        changed = x.clone()
        changed[:, 4:] = torch.randn(3, 3, 8)
        torch.testing.assert_close(layer(changed)[:, :4], parallel[:, :4])
        assert torch.exp(-torch.exp(layer.nu_log)).max() < 1  # |lambda| < 1: the recurrence is stable


def test_bert4rec_attends_both_ways_but_never_to_padding() -> None:
    """A later item changes an earlier position's state (bidirectional, unlike SASRec), and padding after a window
    changes nothing (it is never read as a key)."""
    from llmrec.baselines.bert4rec import BERT4RecConfig, BERT4RecNet

    torch.manual_seed(0)
    net = BERT4RecNet(N_ITEMS, BERT4RecConfig(hidden=16, blocks=1, max_len=12, dropout=0.0)).eval()
    with torch.no_grad():
        seq = torch.tensor([[3, 4, 5, 0, 0]])
        states = net(seq)
        assert not torch.allclose(net(torch.tensor([[3, 4, 9, 0, 0]]))[:, 0], states[:, 0])
        torch.testing.assert_close(net(seq[:, :3]), states[:, :3])
        assert net.logits(states[0]).shape == (5, N_ITEMS)  # [MASK] is an input token, never an answer


def test_bert4rec_cloze_hides_real_items_only_and_at_least_one_per_window() -> None:
    from llmrec.baselines.bert4rec import cloze_mask

    torch.manual_seed(0)
    lengths = torch.randint(2, 12, (400,))
    padded = torch.zeros(400, 12, dtype=torch.long)
    for row, n in enumerate(lengths):
        padded[row, :n] = torch.randint(1, N_ITEMS + 1, (int(n),))
    hide = cloze_mask(padded, 0.2, 0.1)
    assert not (hide & (padded == 0)).any() and hide.any(1).all()
    share = hide.sum() / (padded > 0).sum()
    assert 0.15 < share < 0.3  # about mask_prob, plus the forced last items
    assert hide[:, 0].any()  # not only last items
    last = torch.zeros_like(hide)
    last[torch.arange(400), lengths - 1] = True
    assert torch.equal(cloze_mask(padded, 0.2, 1.0), last)  # last_only 1: the scoring task alone
    assert torch.equal(cloze_mask(padded, 1e-9, 0.0), last)  # a window that drew nothing hides its last item


def test_bert4rec_scores_with_a_mask_after_the_history() -> None:
    from llmrec.baselines.bert4rec import BERT4Rec

    scorer = build("bert4rec", epochs=1).fit(train_data())
    assert isinstance(scorer, BERT4Rec)
    seq = scorer._score_input(np.arange(30) % N_ITEMS)
    assert len(seq) == 12 and seq[-1] == N_ITEMS + 1 and (seq[:-1] == (np.arange(19, 30) % N_ITEMS) + 1).all()
    with pytest.raises(ConfigError, match="mask_prob"):
        build("bert4rec", mask_prob=0.0)


def test_lrurec_refuses_a_bad_ring() -> None:
    with pytest.raises(ConfigError, match="r_min"):
        build("lrurec", r_min=0.99, r_max=0.8)


def test_ncf_variants_fit() -> None:
    for variant in ("gmf", "mlp"):
        scorer = build("ncf", variant=variant, epochs=1).fit(train_data())
        scores = scorer.score(np.array([0, -1]), chain_histories()[:2])
        assert scores.shape == (2, N_ITEMS) and np.isfinite(scores).all()
    with pytest.raises(ConfigError, match="variant"):
        build("ncf", variant="deep")


# The training loop itself ----------------------------------------------------------------------
def run_loop(metrics: list[float], **config):
    from llmrec.baselines.training import Trainer, TrainingConfig

    cfg = TrainingConfig(device="cpu", num_threads=1, **config)
    model = torch.nn.Linear(1, 1, bias=False)
    trainer = Trainer(cfg, seed=0, identity={})
    model = trainer.prepare(model)

    def run_epoch(epoch: int, rng: np.random.Generator) -> float:
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        return 1.0 / epoch

    values = iter(metrics)
    return model, trainer.fit(model, run_epoch, (lambda: next(values)) if metrics else None)


def test_early_stopping_keeps_the_best_weights() -> None:
    model, result = run_loop([0.1, 0.3, 0.2, 0.25, 0.9], epochs=5, patience=2)
    assert (result.stopped, result.epochs_run, result.best_epoch, result.best_metric) == ("patience", 4, 2, 0.3)
    assert float(model.weight.detach()) == 2.0


def test_time_budget_and_no_validation() -> None:
    model, result = run_loop([], epochs=5, max_seconds=1e-9)
    assert (result.stopped, result.epochs_run, result.best_epoch) == ("time", 1, 1)
    model, result = run_loop([], epochs=3)
    assert (result.stopped, result.epochs_run, float(model.weight.detach())) == ("epochs", 3, 3.0)


def test_a_second_fit_into_the_same_checkpoint_waits_then_loads_it(tmp_path, caplog) -> None:
    """Two fits into one folder (two processes training an ensemble's members) must not interleave: the second
    waits for the first's lock, then finds its checkpoint complete and trains nothing."""
    import threading

    from llmrec.baselines.training import Trainer, TrainingConfig

    cfg = TrainingConfig(device="cpu", num_threads=1, epochs=2, checkpoint_dir=str(tmp_path / "ck"), resume=True)
    started, go, epochs_of = threading.Event(), threading.Event(), {"first": [], "second": []}
    results: dict[str, tuple[float, object]] = {}

    def fit(who: str) -> None:
        trainer = Trainer(cfg, seed=0, identity={})
        model = trainer.prepare(torch.nn.Linear(1, 1, bias=False))

        def run_epoch(epoch: int, rng: np.random.Generator) -> float:
            epochs_of[who].append(epoch)
            started.set()
            assert go.wait(30)
            with torch.no_grad():
                model.weight.fill_(10.0 * epoch)
            return 1.0

        result = trainer.fit(model, run_epoch)
        results[who] = (float(model.weight.detach()), result)

    first = threading.Thread(target=fit, args=("first",))
    first.start()
    assert started.wait(30)
    second = threading.Thread(target=fit, args=("second",))
    with caplog.at_level("WARNING", logger="llmrec.baselines.training"):
        second.start()
        second.join(1.0)
        assert second.is_alive(), "the second fit did not wait for the first"
        go.set()
        first.join(30)
        second.join(30)
    assert "another process is training into" in caplog.text
    assert epochs_of == {"first": [1, 2], "second": []}
    assert results["second"][0] == results["first"][0] == 20.0
    assert results["second"][1].epochs_run == 2
    # the lock file is hidden in the folder; the folder around it holds this one checkpoint only
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [".train.lock", "last.safetensors", "state.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]


def test_fit_data_holds_out_the_last_item() -> None:
    from llmrec.baselines.training import TrainingConfig, fit_data

    histories = (np.array([1, 2, 3, 4]), np.array([5, 6]), np.zeros(0, dtype=np.int64))
    data = fit_data(TrainData(3, 8, histories), TrainingConfig())
    assert [h.tolist() for h in data.histories] == [[1, 2, 3], [5, 6], []]
    assert data.validation.users.tolist() == [0] and data.validation.targets[0].tolist() == [4]
    assert fit_data(TrainData(3, 8, histories), TrainingConfig(holdout=False)).validation is None


def test_config_errors_name_the_value() -> None:
    with pytest.raises(ConfigError, match="hidden"):
        build("sasrec", hidden=15, heads=2)
    with pytest.raises(ConfigError, match="resume"):
        build("lightgcn", resume=True)


def test_importing_the_registry_stays_cheap() -> None:
    code = ("import sys, llmrec.baselines as b; names = b.scorer_names(); "
            "print('torch' in sys.modules, 'sasrec' in names)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False True"


def test_builtin_models_are_registered_by_an_explicit_call_not_an_import() -> None:
    code = ("import sys, llmrec.baselines.registry as r; import llmrec.baselines.builtin; "
            "print(len(r._REGISTRY), 'sasrec' in r.scorer_names(), len(r._REGISTRY) > 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0 True True"


def test_sasrec_width_and_label_smoothing_are_settings_of_the_model() -> None:
    wide = build("sasrec", ffn_mult=4, label_smoothing=0.1, epochs=1)
    assert wide.hyperparameters()["ffn_mult"] == 4 and wide.hyperparameters()["label_smoothing"] == 0.1
    wide.fit(train_data())
    assert wide.net_.blocks[0].ffn[0].out_features == 4 * TINY["sasrec"]["hidden"]
    assert np.isfinite(wide.score(np.arange(3), chain_histories()[:3])).all()
    for bad, match in (({"ffn_mult": 0}, "ffn_mult"), ({"label_smoothing": 1.0}, "label_smoothing")):
        with pytest.raises(ConfigError, match=match):
            build("sasrec", **bad)


def test_sasrec_trains_to_its_epochs_without_a_binding_wall_clock_cap() -> None:
    from llmrec.baselines.sasrec import SASRecConfig

    assert SASRecConfig().max_seconds >= 3600  # a safety net only: load must not decide how long it trains


def test_a_checkpoint_made_with_other_settings_is_kept_and_a_sibling_is_used(tmp_path) -> None:
    from llmrec.baselines.registry import get_checkpointed_scorer

    folder = tmp_path / "toy-sasrec"
    params = {**TINY["sasrec"], **COMMON, "epochs": 1}
    get_checkpointed_scorer("sasrec", folder, **params).fit(train_data())
    stamp = (folder / "state.json").stat().st_mtime
    other = get_checkpointed_scorer("sasrec", folder, **{**params, "dropout": 0.3}).fit(train_data())  # no refusal
    assert (folder / "state.json").stat().st_mtime == stamp  # the old checkpoint is untouched
    siblings = [p for p in tmp_path.iterdir() if p.name.startswith("toy-sasrec-")]
    assert len(siblings) == 1 and (siblings[0] / "state.json").is_file() and other.config.dropout == 0.3
    again = get_checkpointed_scorer("sasrec", folder, **{**params, "epochs": 2}).fit(train_data())  # budget: resumed
    assert again.train_result_.epochs_run == 2 and len(list(tmp_path.iterdir())) == 2
