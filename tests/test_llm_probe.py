"""benchmarks/llm_probe.py reads a window's candidates as continuations of one shared history (its key/value cache
copied across a padded batch); the figures in docs/benchmarks/ranking.md section 10 rest on that being the same as
reading each candidate's whole prompt on its own. Checked on the real packaged SmolLM2-135M."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from llm_probe import LAYERS, PointwiseReader

pytestmark = pytest.mark.real_model


def test_shared_history_reading_equals_each_whole_prompt(session_cache: Path):
    import torch

    from llmrec.llm import prepare_model

    reader = PointwiseReader(prepare_model("smollm2-135m-instruct", cache_dir=session_cache), dtype="float32")
    history = ["- Toy Story (1995) — rated 4", "- Heat (1995) — rated 5", "- Fargo (1996)"]
    candidates = ["The Matrix (1999) (Action, Sci-Fi)", "Up (2009)", "Amélie (2001) (Comedy, Romance, Drama)"]
    yes_no, hidden = reader.read(history, candidates)  # lengths differ: the batch is padded
    assert yes_no.shape == (3,) and hidden.shape[0] == 3 and hidden.dtype == np.float16
    for row, candidate in enumerate(candidates):
        messages = reader.prompt.messages(history="\n".join(history), candidate=candidate, kind="movie")
        text = reader.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = reader.tok(text, return_tensors="pt", add_special_tokens=False).input_ids
        with torch.inference_mode():
            out = reader.model(ids, output_hidden_states=True)
        logits = out.logits[0, -1]
        assert yes_no[row] == pytest.approx(float(logits[reader.yes] - logits[reader.no]), abs=1e-3)
        whole = torch.cat([out.hidden_states[layer][0, -1] for layer in LAYERS]).numpy()
        np.testing.assert_allclose(hidden[row].astype(np.float32), whole, rtol=2e-3, atol=2e-2)
    assert len({round(float(v), 4) for v in yes_no}) == 3  # each candidate was read, not the first one thrice
