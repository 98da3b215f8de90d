"""Evaluation: metrics, protocols, the harness and its reports.

``run_evaluation`` is the entry point; see protocols.py for what each protocol means.
"""

from llmrec.evaluation.harness import (
    EvalContext,
    Pipeline,
    PipelineOutput,
    evaluate_models,
    evaluate_pipeline,
    evaluate_scorer,
    grid,
    run_evaluation,
)
from llmrec.evaluation.metrics import KS, hit_matrix, ranking_metrics, top_k
from llmrec.evaluation.protocols import PROTOCOLS, EvalSet, Split, make_split, mask_scores
from llmrec.evaluation.report import EvaluationReport, ModelResult, Trial

__all__ = [
    "KS",
    "PROTOCOLS",
    "EvalContext",
    "EvalSet",
    "EvaluationReport",
    "ModelResult",
    "Pipeline",
    "PipelineOutput",
    "Split",
    "Trial",
    "evaluate_models",
    "evaluate_pipeline",
    "evaluate_scorer",
    "grid",
    "hit_matrix",
    "make_split",
    "mask_scores",
    "ranking_metrics",
    "run_evaluation",
    "top_k",
]
