"""What ``llmrec data info`` reports: raw and preprocessed sizes of a data set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmrec.data.registry import load_dataset
from llmrec.data.split import preprocess


def dataset_summary(
    dataset: str,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    allow_download: bool = False,
    min_count: int = 5,
) -> dict[str, Any]:
    """Sizes after LlamaRec preprocessing (``users``, ``items``, ``interactions``) and before (``raw``)."""
    loaded = load_dataset(dataset, data_dir=data_dir, cache_dir=cache_dir, allow_download=allow_download)
    seq = preprocess(loaded, min_count=min_count)
    with_keywords = sum(1 for item in loaded.items.values() if item.keywords)
    return {
        "dataset": loaded.name,
        "source": loaded.source,
        **seq.stats(),
        "min_count": min_count,
        "split": "leave-one-out (last = test, second-to-last = validation)",
        "raw": {
            "users": len(set(loaded.interactions.user_ids.tolist())),
            "items": len(loaded.items),
            "interactions": len(loaded.interactions),
            "items_with_keywords": with_keywords,
        },
    }
