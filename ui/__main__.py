"""``python -m ui [DATASET] [--data-dir D] [--host H] [--port N] [--cache-dir C]``: serve the app (as ``llmrec ui``)."""

from __future__ import annotations

import argparse
import logging
import sys

from llmrec.errors import LlmrecError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ui", description="The llmrec chat app in your browser.")
    parser.add_argument("dataset", nargs="?", default="ml-latest-small", help="a named data set or a data folder")
    parser.add_argument("--data-dir", default=None, help="folder holding the data set folders (e.g. ../shared/data)")
    parser.add_argument("--host", default=None, help="address to bind (default GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--cache-dir", default=None, help="cache for models, stores and profiles")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from ui.app import serve

    try:
        serve(args.dataset, data_dir=args.data_dir, host=args.host, port=args.port, cache_dir=args.cache_dir)
    except LlmrecError as exc:
        logging.getLogger("ui").error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
