"""The Gradio chat app: layout and event wiring over ``llmrec.chat.Conversation``.

``gradio`` is imported lazily (inside the functions below) so that importing ``ui`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AppSettings", "build_app", "launch", "serve"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ui import app

        return getattr(app, name)
    raise AttributeError(f"module 'ui' has no attribute {name!r}")
