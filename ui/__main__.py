"""``python -m ui [DATASET] [OPTIONS]``: the same as ``llmrec ui`` (one command, one set of options)."""

from __future__ import annotations

import sys

from llmrec.cli import main

if __name__ == "__main__":
    sys.argv = ["llmrec", "ui", *sys.argv[1:]]
    main()
