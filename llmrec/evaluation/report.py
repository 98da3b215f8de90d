"""Typed evaluation results and their outputs: JSON, a Markdown table and a bar chart."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ndcg@10", "NDCG@10"),
    ("recall@10", "Recall@10"),
    ("recall@20", "Recall@20"),
    ("recall@50", "Recall@50"),
    ("mrr@10", "MRR@10"),
    ("coverage@10", "Cov@10"),
    ("diversity@10", "ILD@10"),
    ("novelty@10", "Nov@10"),
    ("gini@10", "Gini@10"),
)


@dataclass(frozen=True)
class Trial:
    """One grid point of the hyper-parameter search, scored on the validation cases."""

    params: Mapping[str, Any]
    score: float  # the selection metric (NDCG@10 on validation); NaN when the fit failed
    seconds: float
    error: str | None = None


@dataclass(frozen=True)
class ModelResult:
    """Test metrics of one model (a scorer or a pipeline) and how it got them."""

    name: str
    label: str
    metrics: Mapping[str, float]
    hyperparameters: Mapping[str, Any]
    fit_seconds: float
    score_seconds: float
    search_seconds: float = 0.0
    trials: tuple[Trial, ...] = ()
    retriever: Mapping[str, float] | None = None  # pipelines: the candidate list's own metrics (the ceiling)
    n_users: int = 0  # test cases measured

    def chosen(self) -> dict[str, Any]:
        """The searched hyper-parameters' chosen values (all hyper-parameters when there was no search)."""
        searched = set().union(*(t.params for t in self.trials)) if self.trials else set(self.hyperparameters)
        return {k: v for k, v in self.hyperparameters.items() if k in searched}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: _round(v) for k, v in self.metrics.items()}
        out.update(
            label=self.label,
            users=self.n_users,
            fit_seconds=round(self.fit_seconds, 3),
            score_seconds=round(self.score_seconds, 3),
            search_seconds=round(self.search_seconds, 3),
            hyperparameters=dict(self.hyperparameters),
            chosen=self.chosen(),
            search=[
                {"params": dict(t.params), "valid_ndcg@10": _round(t.score), "seconds": round(t.seconds, 3)}
                | ({"error": t.error} if t.error else {})
                for t in self.trials
            ],
        )
        if self.retriever is not None:
            out["retriever"] = {k: _round(v) for k, v in self.retriever.items()}
        return out


def _round(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else round(value, 6)


@dataclass(frozen=True)
class EvaluationReport:
    dataset: str
    protocol: str
    protocol_description: str
    split: Mapping[str, int]  # users, items, interactions after preprocessing
    results: Mapping[str, ModelResult]
    errors: Mapping[str, str]
    seed: int = 0
    notes: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "protocol": self.protocol,
            "protocol_description": self.protocol_description,
            "split": dict(self.split),
            "seed": self.seed,
            "notes": dict(self.notes),
            "results": {name: result.to_dict() for name, result in self.results.items()},
            "errors": dict(self.errors),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def caption(self) -> str:
        stats = ", ".join(f"{v} {k}" for k, v in self.split.items())
        cases = sorted({r.n_users for r in self.results.values()})
        measured = f"; {'/'.join(map(str, cases))} test users" if cases else ""
        head = f"{self.dataset} ({stats}) — protocol `{self.protocol}`"
        return f"{head}: {self.protocol_description}; seed {self.seed}{measured}"

    def to_markdown(self) -> str:
        columns = [(k, title) for k, title in TABLE_COLUMNS if any(k in r.metrics for r in self.results.values())]
        header = ["Model", *(title for _, title in columns), "fit s", "score s", "chosen"]
        lines = [f"**{self.caption()}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for name, result in self.results.items():
            cells = [result.label if result.label == name else f"{result.label} (`{name}`)"]
            for key, _ in columns:
                value = result.metrics.get(key)
                se = result.metrics.get(f"{key}_se")
                cells.append("—" if value is None else (f"{value:.4f} ± {se:.4f}" if se else f"{value:.4f}"))
            chosen = ", ".join(f"{k}={v}" for k, v in result.chosen().items()) or "—"
            cells += [f"{result.fit_seconds:.2f}", f"{result.score_seconds:.2f}", chosen]
            lines.append("| " + " | ".join(cells) + " |")
            if result.retriever:
                ceiling = ", ".join(f"{k}={v:.4f}" for k, v in result.retriever.items())
                lines.append(f"| ↳ retriever of `{name}` | {ceiling} |" + " |" * (len(header) - 2))
        if self.errors:
            lines += ["", "Errors:", *(f"- `{name}` failed: {message}" for name, message in self.errors.items())]
        if self.notes:
            lines += ["", *(f"- {key}: {value}" for key, value in self.notes.items())]
        return "\n".join(lines) + "\n"

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write results.json, results.md and results.png into ``out_dir``; return their paths."""
        folder = Path(out_dir).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"json": folder / "results.json", "markdown": folder / "results.md", "plot": folder / "results.png"}
        paths["json"].write_text(self.to_json() + "\n", encoding="utf-8")
        paths["markdown"].write_text(self.to_markdown(), encoding="utf-8")
        self.plot(paths["plot"])
        log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
        return paths

    def plot(self, path: str | Path, metrics: tuple[str, ...] = ("ndcg@10", "recall@10", "recall@50")) -> Path:
        """Grouped bar chart of ``metrics`` per model (matplotlib's Agg canvas, imported here; no pyplot state)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        names = list(self.results)
        fig = Figure(figsize=(max(6.0, 1.3 * len(names) + 2), 4.0))
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        width = 0.8 / max(1, len(metrics))
        for m, metric in enumerate(metrics):
            values = [self.results[n].metrics.get(metric, 0.0) for n in names]
            ax.bar([i + m * width for i in range(len(names))], values, width, label=metric)
        ax.set_xticks([i + width * (len(metrics) - 1) / 2 for i in range(len(names))], names, rotation=20)
        ax.set_ylabel("score")
        ax.set_title(f"{self.dataset} — protocol {self.protocol}", fontsize=10)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        return Path(path)
