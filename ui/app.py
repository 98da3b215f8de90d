"""The Gradio chat app: layout and event wiring only. Every turn goes through ``llmrec.chat.Conversation``.

``build_app`` lays out a chat (replies revealed progressively, quick-reply chips), a grid of recommendation
cards with "Why?", like, dislike and "Seen it" buttons, an editable profile panel, "Forget me" (confirmed
first) and per-session settings (ranker, explainer, model, k, diversity). Each browser gets its own random
user id, kept in localStorage so a reload keeps the profile and the conversation. All text from users,
the catalogue and the models is shown as text: the chat renders no Markdown or HTML, and every field in
the card HTML is escaped. ``serve`` is what ``llmrec ui`` calls; it binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llmrec.chat.engine import BUTTONS, MAX_MESSAGE, Card, ProfileEdit, Reply
from llmrec.chat.state import ChatState
from llmrec.errors import LlmrecError
from llmrec.pipeline.parts import EXPLAINERS, RANKERS
from llmrec.safety import sanitize_output
from ui.service import Choice, Service, valid_user_id

log = logging.getLogger(__name__)

CSS_PATH = Path(__file__).with_name("theme.css")
ACTIONS = (("why", "Why?"), ("like", "👍 Like"), ("dislike", "👎 Dislike"), ("seen", "Seen it"))
LOADING = ("One moment: I'm loading the catalogue and the models. The very first start builds the search "
           "index, which can take a few minutes.")  # fmt: skip
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
    concurrency: int = 4  # events running at once (model calls are serialised by the recommender anyway)
    queue_size: int = 64  # waiting events beyond this are refused with "queue full"
    max_message: int = MAX_MESSAGE
    warm_up: bool = True  # load the catalogue and models in the background as soon as the app is built
    browser_secret: str | None = None  # encrypts the id kept in the browser; keep it stable across restarts


# -- the page ---------------------------------------------------------------------------------------
LISTED = re.compile(r"^(\d{1,2}\. .+?) — .*$", re.MULTILINE)


def _say(role: str, text: str) -> dict[str, str]:
    """A chat message; a numbered list of picks shows titles only (their reasons are on the cards)."""
    return {"role": role, "content": LISTED.sub(r"\1", text) if role == "assistant" else text}


def _card_dict(card: Card) -> dict[str, Any]:
    return {**asdict(card), "genres": list(card.genres)}


def card_html(card: dict[str, Any]) -> str:
    """One card's text as HTML; every field is escaped (titles and explanations are untrusted text)."""
    esc = html.escape
    title, year = str(card.get("title", "")), card.get("year")
    if year and title.endswith(f" ({year})"):
        title = title[: -len(f" ({year})")]
    tags = "".join(f'<span class="genre">{esc(str(g))}</span>' for g in list(card.get("genres") or [])[:4])
    source = "written by the language model" if card.get("explanation_source") == "llm" else "from the evidence"
    return (f'<div class="rec-head"><span class="rec-rank">#{int(card.get("position") or 0)}</span>'
            f'<span class="rec-year">{esc(str(year or ""))}</span></div>'
            f'<div class="rec-title">{esc(title)}</div><div class="rec-genres">{tags}</div>'
            f'<p class="rec-why">{esc(str(card.get("explanation", "")))}</p>'
            f'<div class="rec-source">reason {esc(source)}</div>')  # fmt: skip


def status_html(stage: str, state: str) -> str:
    return f'<div class="status-pill {state}"><span class="dot"></span>{html.escape(stage)}</div>'


def notes_html(notes: Sequence[str]) -> str:
    return "".join(f'<div class="note">ℹ️ {html.escape(n)}</div>' for n in notes)


class ChatApp:
    """Event handlers: each reads the session's inputs, calls the ``Conversation`` and lays out its reply."""

    def __init__(self, service: Service, settings: AppSettings) -> None:
        self.service = service
        self.settings = settings

    # -- helpers ----------------------------------------------------------------------------------
    def _uid(self, user_id: Any) -> str:
        return user_id if valid_user_id(user_id) else "web-" + secrets.token_hex(8)

    def _choice(self, ranker: Any, explainer: Any, model: Any, k: Any, diversity: Any) -> tuple[Choice, int]:
        try:
            k = min(max(int(k), 1), self.settings.max_k)
        except (TypeError, ValueError):
            k = self.settings.k
        return self.service.choice(ranker, explainer, model, diversity), k

    def _cards(self, reply: Reply, state: ChatState | None) -> list[dict[str, Any]]:
        if reply.cards:
            return [_card_dict(c) for c in reply.cards]
        if state is None:
            return []
        items = self.service.items
        cards = []
        for n, shown in enumerate(state.current(), 1):
            item = items.get(shown.item_id) if hasattr(items, "get") else None
            cards.append({"item_id": shown.item_id, "title": shown.title, "year": getattr(item, "year", None),
                          "genres": list(getattr(item, "genres", ())), "position": n,
                          "explanation": sanitize_output(shown.explanation),
                          "explanation_source": shown.explanation_source})  # fmt: skip
        return cards

    def _profile(self, state: ChatState | None) -> list[Any]:
        import gradio as gr

        if state is None:
            return [gr.skip()] * 8
        title = self.service.title
        genres = self.service.genres

        def picks(ids: list[str]) -> Any:
            return gr.CheckboxGroup(choices=[(title(i), i) for i in ids], value=list(ids))

        def genre_box(values: list[str]) -> Any:
            return gr.Dropdown(choices=sorted({*genres, *values}), value=list(values))

        return [picks(state.liked), picks(state.disliked), picks(state.seen), "\n".join(state.preferences),
                genre_box(state.wanted_genres), genre_box(state.avoided_genres), state.year_min,
                state.year_max]  # fmt: skip

    def _outputs(self, uid: str, history: list, reply: Reply, state: ChatState | None, keep_cards: bool) -> tuple:
        import gradio as gr

        cards = gr.skip() if keep_cards else self._cards(reply, state)
        return (uid, history, cards, list(reply.chips), notes_html(reply.notes), *self._profile(state))

    def _run(self, uid: str, settings: Sequence[Any], call: Callable[[Any], Reply],
             greeting: bool = False) -> tuple[Reply, ChatState | None, Any]:  # fmt: skip
        """Call the conversation; library errors become a polite reply, never a traceback in the page.

        The third value is the conversation when its cards' sentences are to be streamed in afterwards (the
        language model writes them; the cards came at once with template sentences)."""
        try:
            choice, k = self._choice(*settings)
            convo = self.service.greeter(uid) if greeting else self.service.conversation(uid, choice, k)
            reply = call(convo)
            return reply, convo.state(), convo if convo.streams and reply.cards else None
        except LlmrecError as exc:
            return Reply(f"Sorry, I couldn't do that: {sanitize_output(str(exc), 400)}"), None, None
        except Exception:
            log.exception("chat event failed for %s", uid)
            return Reply("Sorry, something went wrong on my side. Please try again."), None, None

    def _stream_explanations(self, uid: str, reply: Reply, convo: Any, lead: tuple) -> Iterator[tuple]:
        """Replace each card's template sentence by the LLM's, token by token (the chat lists titles only)."""
        import gradio as gr

        cards = [_card_dict(c) for c in reply.cards]
        rest = [gr.skip()] * 10  # chips, notes and the profile panel stay as they are
        for card in cards:
            try:
                for text, source in convo.stream_explanation(card["item_id"]):
                    card["explanation"] = sanitize_output(text) + (" ▍" if source == "streaming" else "")
                    card["explanation_source"] = source
                    yield (*lead, uid, gr.skip(), [dict(c) for c in cards], *rest)
            except Exception:  # the template sentence stays; the session goes on
                log.exception("streaming the explanation of %s failed", card["item_id"])

    def _turn(self, uid: str, history: list, settings: Sequence[Any], call: Callable[[Any], Reply],
              lead: tuple = (), keep_cards: bool = False, greeting: bool = False) -> Iterator[tuple]:  # fmt: skip
        """Show a placeholder, run the turn, then reveal the reply a few words at a time."""
        import gradio as gr

        skip_rest = [gr.skip()] * 11  # everything after the user id and the chat
        waiting = "…" if (self.service.catalogue if greeting else self.service.ready).is_set() else LOADING
        yield (*lead, uid, [*history, _say("assistant", waiting)], gr.skip(), [], "", *skip_rest[3:])
        reply, state, streaming = self._run(uid, settings, call, greeting)
        lead = tuple(gr.skip() for _ in lead)
        words = reply.text.split(" ")
        step = max(2, len(words) // 24)
        if self.settings.stream_delay > 0:
            for end in range(step, len(words), step):
                partial = [*history, _say("assistant", " ".join(words[:end]) + " ▍")]
                yield (*lead, uid, partial, *skip_rest)
                time.sleep(self.settings.stream_delay)
        shown = dataclasses.replace(reply, chips=()) if streaming is not None else reply  # quick replies come last
        yield (*lead, *self._outputs(uid, [*history, _say("assistant", reply.text)], shown, state, keep_cards))
        if streaming is not None:
            yield from self._stream_explanations(uid, reply, streaming, lead)
            final = dataclasses.replace(reply, cards=())  # the cards come from the recorded state now
            yield (*lead, *self._outputs(uid, [*history, _say("assistant", reply.text)], final,
                                         streaming.state(), keep_cards))  # fmt: skip

    # -- events -----------------------------------------------------------------------------------
    def on_load(self, user_id: Any, ranker: Any, explainer: Any, model: Any, k: Any,
                diversity: Any) -> Iterator[tuple]:  # fmt: skip
        """A page (re)load: the user's transcript and current picks come back, then a greeting."""
        uid, settings = self._uid(user_id), (ranker, explainer, model, k, diversity)
        history = [_say(t.role, t.text) for t in self.service.store.turns(uid, limit=100)]
        yield from self._turn(uid, history, settings, lambda convo: convo.start(), greeting=True)

    def on_send(self, message: Any, history: list, user_id: Any, ranker: Any, explainer: Any, model: Any, k: Any,
                diversity: Any) -> Iterator[tuple]:  # fmt: skip
        import gradio as gr

        uid, settings = self._uid(user_id), (ranker, explainer, model, k, diversity)
        text = str(message or "")[: self.settings.max_message * 2]  # the engine cleans, caps and says so
        if not text.strip():
            yield (gr.skip(), uid, *[gr.skip()] * 11)
            return
        shown = text if len(text) <= self.settings.max_message else text[: self.settings.max_message] + "…"
        history = [*(history or []), _say("user", shown)]
        yield from self._turn(uid, history, settings, lambda convo: convo.handle(text), lead=("",))

    def on_act(self, item_id: Any, kind: Any, history: list, user_id: Any, ranker: Any, explainer: Any, model: Any,
               k: Any, diversity: Any) -> Iterator[tuple]:  # fmt: skip
        """A card button: ``why``, ``like``, ``dislike`` or ``seen`` on ``item_id``."""
        uid, settings = self._uid(user_id), (ranker, explainer, model, k, diversity)
        item_id, kind = str(item_id or ""), str(kind or "")
        if kind not in BUTTONS:
            kind = "why"
        asked = BUTTONS[kind].format(title=self.service.title(item_id))
        history = [*(history or []), _say("user", asked)]
        yield from self._turn(uid, history, settings, lambda convo: convo.act(item_id, kind))

    def on_save(self, user_id: Any, liked: Any, disliked: Any, seen: Any, preferences: Any, wanted: Any,
                avoided: Any, year_from: Any, year_to: Any, history: list, ranker: Any, explainer: Any, model: Any,
                k: Any, diversity: Any) -> tuple:  # fmt: skip
        """The profile panel's "Save": apply the edits to the stored state (retried if another tab wrote)."""
        uid, settings = self._uid(user_id), (ranker, explainer, model, k, diversity)
        lines = tuple(str(preferences or "").splitlines())
        edit = ProfileEdit(tuple(liked or ()), tuple(disliked or ()), tuple(seen or ()), lines, tuple(wanted or ()),
                           tuple(avoided or ()), _year(year_from), _year(year_to))  # fmt: skip
        reply, state, _ = self._run(uid, settings, lambda convo: convo.edit_profile(edit))
        return self._outputs(uid, [*(history or []), _say("assistant", reply.text)], reply, state, keep_cards=True)

    def on_forget(self, user_id: Any, ranker: Any, explainer: Any, model: Any, k: Any, diversity: Any) -> tuple:
        import gradio as gr

        uid, settings = self._uid(user_id), (ranker, explainer, model, k, diversity)
        reply, state, _ = self._run(uid, settings, lambda convo: convo.forget())
        self.service.drop_user(uid)
        return (*self._outputs(uid, [_say("assistant", reply.text)], reply, state, False), gr.Row(visible=False))

    def chip_handler(self, text: str) -> Callable[..., Iterator[tuple]]:
        def handler(history: list, user_id: Any, *settings: Any) -> Iterator[tuple]:
            yield from self.on_send(text, history, user_id, *settings)

        return handler

    def card_handler(self, item_id: str, kind: str) -> Callable[..., Iterator[tuple]]:
        def handler(history: list, user_id: Any, *settings: Any) -> Iterator[tuple]:
            yield from self.on_act(item_id, kind, history, user_id, *settings)

        return handler

    def on_poll(self) -> tuple:
        import gradio as gr

        stage, state = self.service.status()
        return status_html(stage, state), gr.Timer(active=state == "loading")


def _year(value: Any) -> int | None:
    try:
        year = int(value)
    except (TypeError, ValueError):
        return None
    return year if 1800 <= year <= 2100 else None


def build_app(recommender_factory: Callable[[], Any], store_path: str | Path,
              settings: AppSettings | None = None) -> Any:  # fmt: skip
    """The app as a ``gr.Blocks`` (queued, not launched) over the recommender ``recommender_factory`` returns.

    The factory is called once, now; the recommender must be lazy (``llmrec.pipeline.Recommender`` is), as
    its catalogue and models load in a background thread when ``settings.warm_up`` (else on first use).
    Profiles and transcripts go to the SQLite file ``store_path``.
    """
    import gradio as gr

    settings = settings or AppSettings()
    service = Service(recommender_factory(), store_path, settings.dataset_label)
    if settings.warm_up:
        service.start()
    chat = ChatApp(service, settings)
    default = service.default_choice

    choose: list[Any] = []  # the settings every event reads (filled once the layout exists)
    out: list[Any] = []  # what every chat event updates
    quiet: dict[str, Any] = {"show_progress": "hidden"}  # the chat shows its own "…" while working
    with gr.Blocks(title="llmrec · movie picks you can talk to", analytics_enabled=False) as blocks:
        user = gr.BrowserState("", storage_key="llmrec-user-id", secret=settings.browser_secret)
        cards = gr.JSON([], visible=False)
        chips = gr.JSON([], visible=False)
        with gr.Row(elem_id="header", equal_height=True):
            gr.HTML(HEADER, elem_id="brand", scale=4)
            status = gr.HTML(status_html(*service.status()), elem_id="status", scale=2)
        with gr.Row(elem_id="main"):
            with gr.Column(scale=5, min_width=360, elem_id="chat-column"):
                chatbot = gr.Chatbot([], elem_id="chat", show_label=False, height=540, render_markdown=False,
                                     sanitize_html=True, allow_tags=False, feedback_options=None, buttons=[],
                                     placeholder="Loading…", layout="bubble")  # fmt: skip

                @gr.render(inputs=[chips])
                def _chips(values: list[str] | None) -> None:
                    with gr.Row(elem_classes="chip-row"):
                        for text in values or []:
                            button = gr.Button(text, size="sm", elem_classes="chip", scale=0, min_width=0)
                            button.click(chat.chip_handler(text), [chatbot, user, *choose], [message, *out],
                                         api_visibility="private", **quiet)  # fmt: skip

                message = gr.Textbox(placeholder="Tell me what you feel like watching…", show_label=False,
                                     max_length=settings.max_message, submit_btn=True, elem_id="message")  # fmt: skip
                notes = gr.HTML("", elem_id="notes")
            with gr.Column(scale=7, min_width=360, elem_id="side-column"), gr.Tabs(elem_id="tabs"):
                with gr.Tab("Your picks", id="picks"):

                    @gr.render(inputs=[cards])
                    def _cards(values: list[dict] | None) -> None:
                        if not values:
                            gr.HTML(EMPTY)
                            return
                        with gr.Row(elem_classes="card-grid"):
                            for card in values:
                                with gr.Column(elem_classes="rec-card", min_width=200):
                                    gr.HTML(card_html(card), elem_classes="rec-body")
                                    with gr.Row(elem_classes="card-actions"):
                                        for kind, label in ACTIONS:
                                            button = gr.Button(label, size="sm", elem_classes=f"act act-{kind}")
                                            button.click(chat.card_handler(card["item_id"], kind),
                                                         [chatbot, user, *choose], out, api_visibility="private",
                                                         **quiet)  # fmt: skip

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
                    user_box = gr.Textbox(label="Your user id (kept in this browser)", interactive=False)
                    gr.Markdown("Settings apply to your next recommendations.")
        act_item = gr.Textbox(visible=False)
        act_kind = gr.Textbox(visible=False)
        act = gr.Button(visible=False)
        timer = gr.Timer(1.0, active=service.status()[1] == "loading")

        choose += [ranker, explainer, model, k, diversity]
        out += [user, chatbot, cards, chips, notes, liked, disliked, seen, preferences, wanted, avoided, year_from,
                year_to]  # fmt: skip

        blocks.load(chat.on_load, [user, *choose], out, api_name="start", **quiet)
        message.submit(chat.on_send, [message, chatbot, user, *choose], [message, *out], api_name="send", **quiet)
        act.click(chat.on_act, [act_item, act_kind, chatbot, user, *choose], out, api_name="act", **quiet)
        save.click(chat.on_save, [user, liked, disliked, seen, preferences, wanted, avoided, year_from, year_to,
                                  chatbot, *choose], out, api_name="save_profile")  # fmt: skip
        forget.click(lambda: gr.Row(visible=True), None, confirm_row, api_visibility="private", queue=False)
        cancel.click(lambda: gr.Row(visible=False), None, confirm_row, api_visibility="private", queue=False)
        confirm.click(chat.on_forget, [user, *choose], [*out, confirm_row], api_name="forget")
        user.change(lambda u: u, user, user_box, api_visibility="private", queue=False)
        timer.tick(chat.on_poll, None, [status, timer], api_visibility="private", concurrency_limit=None, **quiet)

    blocks.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_size)
    blocks.llmrec_service = service  # for tests and tools: readiness and the store
    return blocks


def theme() -> Any:
    """A calm theme on system fonts (nothing is fetched from a font CDN: the app works offline)."""
    import gradio as gr

    sans = [gr.themes.Font("ui-sans-serif"), gr.themes.Font("system-ui"), gr.themes.Font("Segoe UI"), "sans-serif"]
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="rose", neutral_hue="slate", radius_size="lg",
                          font=sans, font_mono=[gr.themes.Font("ui-monospace"), "monospace"])  # fmt: skip


def launch(app: Any, host: str = "127.0.0.1", port: int = 7860, *, block: bool = True, quiet: bool = False) -> str:
    """Serve ``app`` on ``host:port`` (no share link, no file access, no uploads); returns the local URL.

    With ``block`` it serves until interrupted; otherwise it returns at once (tests call ``app.close()``).
    """
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: anyone who can reach this address can use the app (there is no login)", host)
    _, url, _ = app.launch(server_name=host, server_port=port, share=False, inbrowser=False,
                           prevent_thread_lock=not block, show_error=False, quiet=quiet, max_file_size="1mb",
                           theme=theme(), css=CSS_PATH.read_text(encoding="utf-8"), ssr_mode=False, pwa=False,
                           mcp_server=False, enable_monitoring=False, run_history=False,
                           footer_links=["api", "gradio", "settings"])  # fmt: skip
    return url


def browser_secret(folder: Path) -> str:
    """The key that encrypts user ids in browsers, made once per cache (so a restart keeps everyone's profile)."""
    path = folder / "browser-secret"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with (
            contextlib.suppress(FileExistsError),
            os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as handle,
        ):
            handle.write(secrets.token_hex(16))
    return path.read_text(encoding="utf-8").strip()


def serve(config: Any, host: str | None = None, port: int | None = None) -> None:
    """``llmrec ui``: build the recommender for ``config`` (a ``RecommenderConfig``) and serve the app until
    interrupted.

    ``host``/``port`` fall back to ``GRADIO_SERVER_NAME``/``GRADIO_SERVER_PORT``, then 127.0.0.1:7860.
    Profiles live in ``<cache>/chat/profiles.sqlite`` (the same store as ``llmrec chat``).
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
    store_path = resolve_cache_dir(config.cache_dir) / "chat" / "profiles.sqlite"
    settings = AppSettings(dataset_label=str(config.data.dataset), browser_secret=browser_secret(store_path.parent))
    app = build_app(lambda: Recommender(config), store_path, settings)
    log.info("llmrec app on http://%s:%d (profiles in %s)", host, port, store_path)
    launch(app, host, port)
