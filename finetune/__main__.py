"""``python -m finetune CONFIG.toml [--out DIR] [--resume] [--max-steps N] [--data-dir D] [--test-users N]``.

A thin shell over ``finetune.run_finetune``: a library error becomes one line on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m finetune", description="LoRA fine-tuning of the LLM ranker.")
    p.add_argument("config", help="TOML file of LoraTrainConfig settings (e.g. finetune/configs/default.toml)")
    p.add_argument("--out", help="adapter folder (default: <cache>/adapters/<base model>)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint")
    p.add_argument("--max-steps", type=int, help="override max_steps")
    p.add_argument("--data-dir", help="folder holding the named data sets")
    p.add_argument("--test-users", type=int, help="override test_users (-1 = all, 0 = none)")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    from finetune import run_finetune
    from llmrec.errors import LlmrecError

    try:
        out = run_finetune(args.config, args.out, resume=args.resume, max_steps=args.max_steps,
                           data_dir=args.data_dir, test_users=args.test_users)  # fmt: skip
    except LlmrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; continue with --resume", file=sys.stderr)
        return 130
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
