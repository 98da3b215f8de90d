"""The one progress helper: tqdm, quiet when stderr is not a terminal (CI, pipes, tests)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    """Bars are drawn only for a person watching a terminal."""
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr; a plain pass-through when not interactive."""
    from tqdm.auto import tqdm

    yield from tqdm(iterable, desc=desc, total=total, unit=unit, disable=not progress_enabled(), leave=False)


def progress_bar(desc: str, total: int | None = None, unit: str = "it", unit_scale: bool = False):
    """A manual tqdm bar (``update(n)``) for byte counts and other non-iterable work."""
    from tqdm.auto import tqdm

    return tqdm(desc=desc, total=total, unit=unit, unit_scale=unit_scale, disable=not progress_enabled(), leave=False)
