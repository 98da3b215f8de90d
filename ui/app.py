"""The Gradio chat app: layout and event wiring only. Every turn goes through ``llmrec.chat.Conversation``.

``build_app`` lays out a chat (replies revealed progressively, quick-reply chips), a grid of recommendation
cards with "Why?", like, dislike and "Seen it" buttons, an editable profile panel, "Forget me" (confirmed
first) and per-session settings (ranker, explainer, model, k, diversity). The handlers are in ``ui.events``, the
only HTML from data is built in ``ui.render`` (escaped), the HTTP guard (Host allow-list, session cookie, no
uploads, security headers) in ``ui.guard`` and the fair share of the model in ``ui.limits``. ``serve`` is what
``llmrec ui`` calls; it binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmrec.chat.engine import MAX_MESSAGE
from llmrec.pipeline.parts import EXPLAINERS, RANKERS
from ui.guard import LOOPBACK, SessionSigner, allowed_hosts
from ui.limits import Limits
from ui.render import card_html, status_html
from ui.service import Service

log = logging.getLogger(__name__)

CSS_PATH = Path(__file__).with_name("theme.css")
ACTIONS = (("why", "Why?"), ("like", "👍 Like"), ("dislike", "👎 Dislike"), ("seen", "Seen it"))
HEADER = """<div class="brand"><div class="logo">🎬</div><div><h1>llmrec</h1>
<p>Movie picks you can talk to: say what you like, ask why, and steer.</p></div></div>"""
EMPTY = """<div class="empty"><div class="empty-title">Your picks will appear here</div><ol>
<li>Pick a genre on the left, name a film you love, or describe a mood.</li>
<li>Answer a couple of quick questions about well-known films.</li>
<li>Get picks with reasons: ask <b>Why?</b>, like or dislike them, or mark them seen.</li></ol></div>"""


@dataclass(frozen=True)
class AppSettings:
    """How the app looks and behaves; the recommender's own settings come from its config."""

    dataset_label: str = "ml-latest-small"
    k: int = 5
    max_k: int = 10
    stream_delay: float = 0.01  # seconds between revealed pieces of a reply (0: whole replies at once)
    concurrency: int = 16  # chat turns running at once; their model calls pass the admission door (``limits``)
    light_concurrency: int = 8  # page loads, profile saves and "forget me" at once (never behind a model call)
    queue_size: int = 64  # waiting events beyond this are refused by Gradio ("queue full")
    max_message: int = MAX_MESSAGE
    warm_up: bool = True  # load the catalogue and models in the background as soon as the app is built
    limits: Limits = field(default_factory=Limits)  # per-session limits and the bounded wait for the model
    ready_wait_s: float = 30.0  # a turn waits at most this long for the first load, then hears "still loading"
    llm_wait_s: float = 5.0  # then at most this long for the language model, else it runs the classic pipeline
    stream_wait_s: float = 2.0  # a card's LLM sentence waits at most this long for the model, else stays template
    session_secret: str | None = None  # signs the session cookies; keep it stable so a restart keeps sessions
    allowed_hosts: tuple[str, ...] = ()  # Host names the app answers to besides loopback and its address ("*": any)
    auth: Any = None  # Gradio login: a list of (user, password) pairs or a callable(user, password) -> bool
    auth_message: str | None = None


def build_app(recommender_factory: Callable[[], Any], store: str | Path | Any,
              settings: AppSettings | None = None) -> Any:  # fmt: skip
    """The app as a ``gr.Blocks`` (queued, not launched) over the recommender ``recommender_factory`` returns.

    The factory is called once, now; the recommender must be lazy (``llmrec.pipeline.Recommender`` is), as
    its catalogue and models load in a background thread when ``settings.warm_up`` (else on first use).
    Profiles and transcripts go to ``store``: a SQLite path, a ``postgresql://`` URL or a store object.
    """
    import gradio as gr

    from ui.events import AppBlocks, ChatApp

    settings = settings or AppSettings()
    service = Service(recommender_factory(), store, settings.dataset_label, settings.limits, settings.ready_wait_s,
                      settings.llm_wait_s)
    if settings.warm_up:
        service.start()
    signer = SessionSigner(settings.session_secret or secrets.token_hex(32))
    chat = ChatApp(service, settings, signer)
    default = service.default_choice

    choose: list[Any] = []  # the settings every event reads (filled once the layout exists)
    out: list[Any] = []  # what every chat event updates
    quiet: dict[str, Any] = {"show_progress": "hidden"}  # the chat shows its own "…" while working
    turns = {"concurrency_limit": settings.concurrency, "concurrency_id": "turns", **quiet}
    light = {"concurrency_limit": settings.light_concurrency, "concurrency_id": "light"}
    # One re-render at a time, every session: Gradio's re-renders edit the session's shared block and event maps
    # while a concurrent one loops over them (gradio-app/gradio#9991: "dictionary changed size during iteration";
    # seen when a reply re-renders the chips and the cards at once and the cards' render was dropped). Building a
    # dozen buttons takes milliseconds, so the queue costs nothing a person notices.
    renders = {"concurrency_limit": 1, "concurrency_id": "renders"}
    with AppBlocks(title="llmrec · movie picks you can talk to", analytics_enabled=False) as blocks:
        cards = gr.JSON([], visible=False)
        chips = gr.JSON([], visible=False)
        with gr.Row(elem_id="header", equal_height=True):
            gr.HTML(HEADER, elem_id="brand", scale=4)
            status = gr.HTML(status_html(*service.status()), elem_id="status", scale=2)
        with gr.Row(elem_id="main"):
            with gr.Column(scale=5, min_width=360, elem_id="chat-column"):
                # Messages arrive escaped (ui.render.chat_message): the chat draws text, never markup or math.
                chatbot = gr.Chatbot([], elem_id="chat", show_label=False, height=540, render_markdown=False,
                                     sanitize_html=True, allow_tags=False, latex_delimiters=[], feedback_options=None,
                                     buttons=[], placeholder="Loading…", layout="bubble")  # fmt: skip

                @gr.render(inputs=[chips], **renders)
                def _chips(values: list[str] | None) -> None:
                    with gr.Row(elem_classes="chip-row"):
                        for text in (values or [])[:12]:
                            button = gr.Button(str(text)[:80], size="sm", elem_classes="chip", scale=0, min_width=0)
                            button.click(chat.chip_handler(str(text)[:80]), choose, [message, *out],
                                         api_visibility="private", **turns)  # fmt: skip

                message = gr.Textbox(placeholder="Tell me what you feel like watching…", show_label=False,
                                     max_length=settings.max_message, submit_btn=True, elem_id="message")  # fmt: skip
                notes = gr.HTML("", elem_id="notes")
            with gr.Column(scale=7, min_width=360, elem_id="side-column"), gr.Tabs(elem_id="tabs"):
                with gr.Tab("Your picks", id="picks"):

                    @gr.render(inputs=[cards], **renders)
                    def _cards(values: list[dict] | None) -> None:
                        if not values:
                            gr.HTML(EMPTY)
                            return
                        with gr.Row(elem_classes="card-grid"):
                            for card in [c for c in values if isinstance(c, dict)][: settings.max_k]:
                                with gr.Column(elem_classes="rec-card", min_width=200):
                                    gr.HTML(card_html(card), elem_classes="rec-body")
                                    with gr.Row(elem_classes="card-actions"):
                                        for kind, label in ACTIONS:
                                            button = gr.Button(label, size="sm", elem_classes=f"act act-{kind}")
                                            button.click(chat.card_handler(str(card.get("item_id", "")), kind),
                                                         choose, out, api_visibility="private", **turns)  # fmt: skip

                with gr.Tab("Your profile", id="profile"):
                    gr.Markdown("What I believe about you. Untick anything that's wrong, edit the text, then "
                                "**Save**. The next recommendations follow your changes.")  # fmt: skip
                    with gr.Row():
                        liked = gr.CheckboxGroup([], label="👍 Liked", elem_id="liked")
                        disliked = gr.CheckboxGroup([], label="👎 Not for you", elem_id="disliked")
                        seen = gr.CheckboxGroup([], label="Seen", elem_id="seen")
                    preferences = gr.Textbox(label="What you asked for (one per line)", lines=3, max_lines=8,
                                             max_length=2000, elem_id="preferences")  # fmt: skip
                    with gr.Row():
                        wanted = gr.Dropdown([], multiselect=True, label="Genres you want", elem_id="wanted")
                        avoided = gr.Dropdown([], multiselect=True, label="Genres to avoid", elem_id="avoided")
                    with gr.Row():
                        year_from = gr.Number(None, label="From year", precision=0, minimum=1800, maximum=2100)
                        year_to = gr.Number(None, label="To year", precision=0, minimum=1800, maximum=2100)
                    with gr.Row():
                        save = gr.Button("Save profile", variant="primary", elem_id="save-profile")
                        forget = gr.Button("Forget me", variant="stop", elem_id="forget")
                    with gr.Row(visible=False, elem_id="confirm-forget") as confirm_row:
                        gr.Markdown("**Delete your profile and our conversation?** This can't be undone.")
                        confirm = gr.Button("Yes, forget me", variant="stop", elem_id="confirm-forget-yes")
                        cancel = gr.Button("Cancel", elem_id="confirm-forget-no")
                with gr.Tab("Settings", id="settings"):
                    gr.Textbox(settings.dataset_label, label="Catalogue", interactive=False,
                               info="Restart with `llmrec ui DATASET` to use another one.")  # fmt: skip
                    ranker = gr.Radio(RANKERS.choices(), value=default.ranker, label="Ranking")
                    explainer = gr.Radio(EXPLAINERS.choices(), value=default.explainer, label="Explanations")
                    model = gr.Dropdown(service.model_names(), value=default.model, label="Language model",
                                        info="Used when ranking or explanations use the language model; "
                                             "a new model loads on first use.")  # fmt: skip
                    k = gr.Slider(1, settings.max_k, value=settings.k, step=1, label="Recommendations per list")
                    diversity = gr.Slider(0, 1, value=default.diversity, step=0.1, label="Diversity",
                                          info="0 = most relevant first; higher mixes in different picks.")  # fmt: skip
                    who = gr.Textbox("", label="Who you are here", interactive=False, elem_id="who")
                    gr.Markdown("Settings apply to your next recommendations.")
        act_item = gr.Textbox(visible=False)
        act_kind = gr.Textbox(visible=False)
        act = gr.Button(visible=False)
        timer = gr.Timer(1.0, active=service.loading)

        choose += [ranker, explainer, model, k, diversity]
        out += [chatbot, cards, chips, notes, liked, disliked, seen, preferences, wanted, avoided, year_from, year_to]

        blocks.load(chat.on_load, choose, [*out, who], api_name="start", **light, **quiet)
        message.submit(chat.on_send, [message, *choose], [message, *out], api_name="send", **turns)
        act.click(chat.on_act, [act_item, act_kind, *choose], out, api_name="act", **turns)
        save.click(chat.on_save, [liked, disliked, seen, preferences, wanted, avoided, year_from, year_to, *choose],
                   out, api_name="save_profile", **light)  # fmt: skip
        forget.click(lambda: gr.Row(visible=True), None, confirm_row, api_visibility="private", queue=False)
        cancel.click(lambda: gr.Row(visible=False), None, confirm_row, api_visibility="private", queue=False)
        confirm.click(chat.on_forget, choose, [*out, confirm_row], api_name="forget", **light)
        timer.tick(chat.on_poll, None, [status, timer], api_visibility="private", concurrency_limit=None, **quiet)

    blocks.queue(default_concurrency_limit=settings.light_concurrency, max_size=settings.queue_size)
    blocks.llmrec_service = service  # for tests and tools: readiness and the store
    blocks.llmrec_settings = settings
    blocks.llmrec_signer = signer
    return blocks


def theme() -> Any:
    """A calm theme on system fonts (nothing is fetched from a font CDN: the app works offline)."""
    import gradio as gr

    sans = [gr.themes.Font("ui-sans-serif"), gr.themes.Font("system-ui"), gr.themes.Font("Segoe UI"), "sans-serif"]
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="rose", neutral_hue="slate", radius_size="lg",
                          font=sans, font_mono=[gr.themes.Font("ui-monospace"), "monospace"])  # fmt: skip


def launch(app: Any, host: str = "127.0.0.1", port: int = 7860, *, block: bool = True, quiet: bool = False) -> str:
    """Serve ``app`` on ``host:port`` behind ``ui.guard.Guard`` (no share link, no file access, no uploads);
    returns the local URL. With ``block`` it serves until interrupted; otherwise it returns at once (tests call
    ``app.close()``)."""
    from starlette.middleware import Middleware

    from ui.guard import Guard

    settings: AppSettings = app.llmrec_settings
    hosts = allowed_hosts(host, settings.allowed_hosts)
    if host not in LOOPBACK and settings.auth is None:
        log.warning("serving on %s without a login: anyone who can reach it can use the app (SECURITY.md says how "
                    "to add one)", host)  # fmt: skip
    if host in ("0.0.0.0", "::") and not settings.allowed_hosts:
        log.warning("bound to all interfaces: only requests for %s are answered; list the names people use with "
                    "allowed_hosts", ", ".join(sorted(hosts)))  # fmt: skip
    guard = Middleware(Guard, signer=app.llmrec_signer, hosts=hosts)
    _, url, _ = app.launch(server_name=host, server_port=port, share=False, inbrowser=False,
                           prevent_thread_lock=not block, show_error=False, quiet=quiet, max_file_size="1kb",
                           theme=theme(), css=CSS_PATH.read_text(encoding="utf-8"), ssr_mode=False, pwa=False,
                           mcp_server=False, enable_monitoring=False, run_history=False, auth=settings.auth,
                           auth_message=settings.auth_message, app_kwargs={"middleware": [guard]},
                           footer_links=["api", "gradio", "settings"])  # fmt: skip
    return url


def secret_file(folder: Path, name: str = "session-secret") -> str:
    """A random secret made once per cache folder (readable by its owner only), e.g. the key that signs session
    cookies, so a restart keeps everyone's session."""
    path = folder / name
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with (
            contextlib.suppress(FileExistsError),
            os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as handle,
        ):
            handle.write(secrets.token_hex(32))
    return path.read_text(encoding="utf-8").strip()


def serve(config: Any, host: str | None = None, port: int | None = None, *, profiles: str | None = None,
          users: str | Path | None = None, hosts: tuple[str, ...] = ()) -> None:  # fmt: skip
    """``llmrec ui``: build the recommender for ``config`` (a ``RecommenderConfig``) and serve the app until
    interrupted.

    ``host``/``port`` fall back to ``GRADIO_SERVER_NAME``/``GRADIO_SERVER_PORT``, then 127.0.0.1:7860.
    ``profiles``: where profiles and transcripts live, a SQLite path or a ``postgresql://`` URL (default
    ``<cache>/chat/profiles.sqlite``, the same store as ``llmrec chat``). ``users``: a login file
    (``ui.auth``); without it sessions are anonymous, kept by a signed cookie. ``hosts``: more Host names to
    answer to (behind a proxy or on a LAN name).
    """
    from llmrec.errors import ConfigError
    from llmrec.paths import resolve_cache_dir
    from llmrec.pipeline import Recommender

    host = host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    if port is None:
        raw = os.environ.get("GRADIO_SERVER_PORT") or "7860"
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise ConfigError(f"GRADIO_SERVER_PORT={raw!r} is not a port number; use 1-65535")
        port = int(raw)
    chat_dir = resolve_cache_dir(config.cache_dir) / "chat"
    store = profiles or chat_dir / "profiles.sqlite"
    auth = None
    if users is not None:
        from ui.auth import load_users

        auth = load_users(Path(users))
    settings = AppSettings(dataset_label=str(config.data.dataset), session_secret=secret_file(chat_dir),
                           allowed_hosts=tuple(hosts), auth=auth)  # fmt: skip
    app = build_app(lambda: Recommender(config), store, settings)
    where = app.llmrec_service.store
    log.info("llmrec app on http://%s:%d (profiles in %s)", host, port, getattr(where, "location", None) or store)
    launch(app, host, port)
