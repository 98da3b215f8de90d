"""The app's event handlers: each reads who is asking (from the request, never from a parameter), calls the
``Conversation`` and lays out its reply. Imported by ``ui.app.build_app`` only (it imports Gradio at the top, so
that Gradio can see the ``gr.Request`` annotations and hand each handler its request).

Who is asking: the login name when the app has a login, else the session in the signed cookie that
``ui.guard.Guard`` issues; a client can neither choose nor guess another user's id. The chat shows the server's
transcript (``Service.transcript``), escaped in ``ui.render``; nothing a client sends is drawn back as HTML.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import Any

import gradio as gr

from llmrec.chat.engine import BUTTONS, Card, ProfileEdit, Reply
from llmrec.chat.state import ChatState
from llmrec.errors import LlmrecError
from llmrec.safety import sanitize_output
from ui.guard import SessionSigner, session_id
from ui.limits import Busy
from ui.render import chat_message, notes_html
from ui.service import Choice, Service

log = logging.getLogger("ui.app")

LOADING = ("One moment: I'm loading the catalogue and the models. The very first start builds the search "
           "index, which can take a few minutes.")  # fmt: skip
SAFE_LOGIN = re.compile(r"[A-Za-z0-9_.@+-]{1,64}")
N_OUT = 12  # chat, cards, chips, notes and the eight fields of the profile panel


def login_id(username: str) -> str:
    """A logged-in user's id: ``login-<name>`` (hashed when the name has other characters)."""
    if SAFE_LOGIN.fullmatch(username):
        return f"login-{username}"
    return "login-h" + hashlib.sha256(username.encode("utf-8", "replace")).hexdigest()[:32]


def card_dict(card: Card) -> dict[str, Any]:
    return {**asdict(card), "genres": list(card.genres)}


def _year(value: Any) -> int | None:
    try:
        year = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return year if 1800 <= year <= 2100 else None


def _strings(values: Any, limit: int = 500) -> tuple[str, ...]:
    """A list input as strings (anything else: empty), at most ``limit`` of them."""
    if not isinstance(values, (list, tuple)):
        return ()
    return tuple(str(v)[:100] for v in values[:limit] if isinstance(v, (str, int)))


class ChatApp:
    """Event handlers over the shared ``Service``."""

    def __init__(self, service: Service, settings: Any, signer: SessionSigner) -> None:
        self.service = service
        self.settings = settings
        self.signer = signer

    # -- who, and what they see ---------------------------------------------------------------------
    def user_id(self, request: gr.Request | None) -> str:
        """The login name when there is a login, else the signed cookie's session (a one-off session when the
        request carries neither, e.g. the app mounted without ``ui.guard.Guard``)."""
        username = getattr(request, "username", None) if request is not None else None
        if username:
            return login_id(str(username))
        sid = session_id(getattr(request, "cookies", None) if request is not None else None, self.signer)
        return f"web-{sid}" if sid else f"web-{secrets.token_hex(16)}"

    def chat(self, uid: str, *extra: tuple[str, str], said: list[tuple[str, str]] | None = None,
             drop_last: bool = False) -> list[dict[str, str]]:  # fmt: skip
        """The chat as the page draws it: the server's transcript (or ``said``) and ``extra`` messages, escaped."""
        said = self.service.transcript(uid) if said is None else said
        if drop_last and said:
            said = said[:-1]
        return [chat_message(role, text) for role, text in [*said, *extra]]

    def _choice(self, ranker: Any, explainer: Any, model: Any, k: Any, diversity: Any) -> tuple[Choice, int]:
        try:
            k = min(max(int(k), 1), self.settings.max_k)
        except (TypeError, ValueError, OverflowError):
            k = self.settings.k
        return self.service.choice(ranker, explainer, model, diversity), k

    def _cards(self, reply: Reply, state: ChatState | None) -> list[dict[str, Any]]:
        if reply.cards:
            return [card_dict(c) for c in reply.cards]
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
        if state is None:
            return [gr.skip()] * 8
        title, genres = self.service.title, self.service.genres

        def picks(ids: list[str]) -> Any:
            return gr.CheckboxGroup(choices=[(title(i), i) for i in ids], value=list(ids))

        def genre_box(values: list[str]) -> Any:
            return gr.Dropdown(choices=sorted({*genres, *values}), value=list(values))

        return [picks(state.liked + state.outside_liked), picks(state.disliked + state.outside_disliked),
                picks(state.seen), "\n".join(state.preferences),
                genre_box(state.wanted_genres), genre_box(state.avoided_genres), state.year_min,
                state.year_max]  # fmt: skip

    def _outputs(self, chat: list, reply: Reply, state: ChatState | None, keep_cards: bool) -> tuple:
        cards = gr.skip() if keep_cards else self._cards(reply, state)
        return (chat, cards, list(reply.chips), notes_html(reply.notes), *self._profile(state))

    # -- running a turn -----------------------------------------------------------------------------
    def _run(self, uid: str, settings: Sequence[Any], call: Callable[[Any], Reply], asked: str | None = None,
             greeting: bool = False, model: bool = False) -> tuple[Reply, ChatState | None, Any]:  # fmt: skip
        """Call the conversation; errors become a polite reply, never a traceback in the page. A reply the
        conversation did not record (a greeting, "busy", an error) is kept with the transcript by ``remember``.
        ``model``: the turn may call the models (reading the message, recommending), so it passes the admission
        door once, as a whole, instead of once per call.

        The third value is the conversation when its cards' sentences are to be written afterwards."""
        started = time.time()
        try:
            choice, k = self._choice(*settings)
            convo = self.service.greeter(uid) if greeting else self.service.conversation(uid, choice, k)
            with self.service.admission.enter(uid) if model else contextlib.nullcontext():
                reply = call(convo)
            self._keep(uid, started, asked, reply)
            return reply, convo.state(), convo if convo.streams and reply.cards else None
        except Busy as exc:
            reply = Reply(str(exc), chips=("Try again",) if asked else ())
        except LlmrecError as exc:
            reply = Reply(f"Sorry, I couldn't do that: {sanitize_output(str(exc), 400)}")
        except Exception:
            log.exception("chat event failed for %s", uid[:12])
            reply = Reply("Sorry, something went wrong on my side. Please try again.")
        self._keep(uid, started, asked, reply)
        return reply, None, None

    def _keep(self, uid: str, started: float, asked: str | None, reply: Reply) -> None:
        """Keep with the transcript what the conversation did not record itself (a greeting, the reply to "forget
        me", "busy", an error), so the chat shows it in order."""
        recorded = self.service.said_since(uid, started)
        if asked is not None and "user" not in recorded:
            self.service.remember(uid, "user", asked)
        if "assistant" not in recorded and reply.text:
            self.service.remember(uid, "assistant", reply.text)

    def _stream_explanations(self, uid: str, reply: Reply, convo: Any, lead: tuple) -> Iterator[tuple]:
        """Write each card's sentence with the conversation's language model. Only checked text is ever shown:
        while the model writes, the card keeps its evidence sentence and says so; the model's sentence replaces it
        only once the faithfulness check passed it (else the template stays). No yield happens while the model
        slot is held (a generator may resume on another thread)."""
        cards = [card_dict(c) for c in reply.cards]
        rest = [gr.skip()] * (N_OUT - 2)  # chips, notes and the profile panel stay as they are
        for card in cards:
            before = dict(card)
            card["explanation_source"] = "writing"
            yield (*lead, gr.skip(), [dict(c) for c in cards], *rest)
            final = None
            try:
                with self.service.admission.enter(uid, max_wait_s=self.settings.stream_wait_s):
                    for text, source in convo.stream_explanation(card["item_id"]):
                        if source != "streaming":  # unchecked partial text is never shown
                            final = (text, source)
            except Busy:
                card.update(before)  # others are waiting for the model: the evidence sentences stay
                yield (*lead, gr.skip(), [dict(c) for c in cards], *rest)
                return
            except Exception:  # the template sentence stays; the session goes on
                log.exception("writing the explanation of %s failed", card["item_id"])
            card.update(before)
            if final is not None:
                card["explanation"], card["explanation_source"] = sanitize_output(final[0]), final[1]
            yield (*lead, gr.skip(), [dict(c) for c in cards], *rest)

    def _turn(self, uid: str, settings: Sequence[Any], call: Callable[[Any], Reply], asked: str | None = None,
              lead: tuple = (), keep_cards: bool = False, greeting: bool = False,
              model: bool = False) -> Iterator[tuple]:  # fmt: skip
        """Show what was asked and a placeholder, run the turn, then reveal the reply a few words at a time."""
        skip_rest = [gr.skip()] * (N_OUT - 1)
        ready = (self.service.catalogue if greeting else self.service.ready).is_set()
        pending = [("user", asked)] if asked is not None else []
        yield (*lead, self.chat(uid, *pending, ("assistant", "…" if ready else LOADING)), gr.skip(), [], "",
               *skip_rest[3:])  # fmt: skip
        reply, state, streaming = self._run(uid, settings, call, asked, greeting, model)
        lead = tuple(gr.skip() for _ in lead)
        said = self.service.transcript(uid)
        words = reply.text.split(" ")
        step = max(2, len(words) // 24)
        if self.settings.stream_delay > 0 and len(words) > step and said and said[-1][0] == "assistant":
            for end in range(step, len(words), step):
                partial = self.chat(uid, ("assistant", " ".join(words[:end]) + " ▍"), said=said, drop_last=True)
                yield (*lead, partial, *skip_rest)
                time.sleep(self.settings.stream_delay)
        shown = dataclasses.replace(reply, chips=()) if streaming is not None else reply  # quick replies come last
        yield (*lead, *self._outputs(self.chat(uid, said=said), shown, state, keep_cards))
        if streaming is not None:
            yield from self._stream_explanations(uid, reply, streaming, lead)
            final = dataclasses.replace(reply, cards=())  # the cards come from the recorded state now
            yield (*lead, *self._outputs(self.chat(uid), final, streaming.state(), keep_cards))

    def _limited(self, uid: str, asked: str, lead: tuple = ()) -> tuple | None:
        """The outputs of a refused turn when ``uid`` starts turns too fast, else None."""
        try:
            self.service.admission.check_rate(uid)
        except Busy as exc:
            self.service.remember(uid, "user", asked)
            self.service.remember(uid, "assistant", str(exc))
            return (*lead, self.chat(uid), *[gr.skip()] * (N_OUT - 1))
        return None

    # -- events -------------------------------------------------------------------------------------
    def on_load(self, ranker: Any, explainer: Any, model: Any, k: Any, diversity: Any,
                request: gr.Request) -> Iterator[tuple]:  # fmt: skip
        """A page (re)load: the user's transcript and current picks come back, then a greeting."""
        uid = self.user_id(request)
        self.service.forget_unrecorded(uid)  # an earlier page's greeting is not shown again
        who = f"Signed in as {request.username}" if getattr(request, "username", None) else (
            "A private session kept by a cookie in this browser (no login)")  # fmt: skip
        for update in self._turn(uid, (ranker, explainer, model, k, diversity), lambda c: c.start(), greeting=True):
            yield (*update, who)

    def on_send(self, message: Any, ranker: Any, explainer: Any, model: Any, k: Any, diversity: Any,
                request: gr.Request) -> Iterator[tuple]:  # fmt: skip
        uid, settings = self.user_id(request), (ranker, explainer, model, k, diversity)
        text = str(message or "")[: self.settings.max_message * 2] if isinstance(message, (str, int, float)) else ""
        if not text.strip():
            yield (gr.skip(), *[gr.skip()] * N_OUT)
            return
        limit = self.settings.max_message
        shown = text if len(text) <= limit else text[:limit] + "…"
        if (refused := self._limited(uid, shown, lead=("",))) is not None:
            yield refused
            return
        yield from self._turn(uid, settings, lambda convo: convo.handle(text), asked=shown, lead=("",), model=True)

    def on_act(self, item_id: Any, kind: Any, ranker: Any, explainer: Any, model: Any, k: Any, diversity: Any,
               request: gr.Request) -> Iterator[tuple]:  # fmt: skip
        """A card button: ``why``, ``like``, ``dislike`` or ``seen`` on ``item_id``."""
        uid, settings = self.user_id(request), (ranker, explainer, model, k, diversity)
        item_id, kind = str(item_id or "")[:100], str(kind or "")
        if kind not in BUTTONS:
            kind = "why"
        asked = BUTTONS[kind].format(title=self.service.title(item_id))
        if kind != "why" and (refused := self._limited(uid, asked)) is not None:
            yield refused
            return
        yield from self._turn(uid, settings, lambda convo: convo.act(item_id, kind), asked=asked,
                              model=kind != "why")  # "Why?" reads what was recorded: never behind the models

    def on_save(self, liked: Any, disliked: Any, seen: Any, preferences: Any, wanted: Any, avoided: Any,
                year_from: Any, year_to: Any, ranker: Any, explainer: Any, model: Any, k: Any, diversity: Any,
                request: gr.Request) -> tuple:  # fmt: skip
        """The profile panel's "Save": the edits go to the conversation (which retries if another tab wrote)."""
        uid, settings = self.user_id(request), (ranker, explainer, model, k, diversity)
        lines = tuple(str(preferences or "")[:4000].splitlines())
        edit = ProfileEdit(_strings(liked), _strings(disliked), _strings(seen), lines, _strings(wanted, 50),
                           _strings(avoided, 50), _year(year_from), _year(year_to),
                           outside_liked=_strings(liked), outside_disliked=_strings(disliked))  # fmt: skip
        reply, state, _ = self._run(uid, settings, lambda convo: convo.edit_profile(edit))
        return self._outputs(self.chat(uid), reply, state, keep_cards=True)

    def on_forget(self, ranker: Any, explainer: Any, model: Any, k: Any, diversity: Any, request: gr.Request) -> tuple:
        uid, settings = self.user_id(request), (ranker, explainer, model, k, diversity)
        reply, state, _ = self._run(uid, settings, lambda convo: convo.forget())
        self.service.drop_user(uid)
        self.service.remember(uid, "assistant", reply.text)
        return (*self._outputs(self.chat(uid), reply, state, False), gr.Row(visible=False))

    def chip_handler(self, text: str) -> Callable[..., Iterator[tuple]]:
        def handler(ranker: Any, explainer: Any, model: Any, k: Any, diversity: Any,
                    request: gr.Request) -> Iterator[tuple]:  # fmt: skip
            yield from self.on_send(text, ranker, explainer, model, k, diversity, request)

        return handler

    def card_handler(self, item_id: str, kind: str) -> Callable[..., Iterator[tuple]]:
        def handler(ranker: Any, explainer: Any, model: Any, k: Any, diversity: Any,
                    request: gr.Request) -> Iterator[tuple]:  # fmt: skip
            yield from self.on_act(item_id, kind, ranker, explainer, model, k, diversity, request)

        return handler

    def on_poll(self) -> tuple:
        from ui.render import status_html

        stage, state = self.service.status()
        return status_html(stage, state), gr.Timer(active=self.service.loading)


class AppBlocks(gr.Blocks):
    """``gr.Blocks`` whose refused calls (malformed input to any event) are one log line, not a traceback.

    Gradio prints the traceback of every failing call; the handlers here turn their own errors into replies, so
    what reaches this point is a call the app refuses (a value no component accepts, a wrong number of inputs)."""

    async def process_api(self, block_fn: Any, inputs: list[Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return await super().process_api(block_fn, inputs, *args, **kwargs)
        except gr.Error as exc:
            if not exc.print_exception:
                raise
            reason = str(exc.message)
        except Exception as exc:
            log.debug("refused call", exc_info=True)
            reason = f"{type(exc).__name__}: {exc}"
        name = getattr(block_fn, "api_name", None) or getattr(block_fn, "name", None) or block_fn
        log.warning("refused a call to %s: %s", name, " ".join(reason.split())[:200])
        raise gr.Error("That request was not valid.", print_exception=False) from None
