"""Shared fixtures: the real data folder beside the repository and a per-session cache."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (read-only real data sets); CI lays it beside the clone."""
    if not (SHARED_DATA / "ml-latest-small" / "ratings.csv").is_file():
        pytest.fail(f"real data not found at {SHARED_DATA}; run the tests from a checkout with ../shared beside it")
    return SHARED_DATA


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the whole test session (prepared models are reused across tests)."""
    return tmp_path_factory.mktemp("llmrec-cache")
