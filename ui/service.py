"""What all sessions of the app share: the recommender and its setting variants, the profile store, the door in
front of the models, and the background load that makes them ready. No Gradio here; ``ui.app`` lays out the page.

Everything that reads or changes a user goes through ``llmrec.chat.Conversation``; the only store read here is
the transcript (``transcript``), merged with the replies that are not recorded (greetings, "busy" answers).
While another process builds the vector store the load waits, says so in the status, and retries by itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmrec import errors
from llmrec.chat.engine import Conversation
from llmrec.chat.outside import outside_films
from llmrec.chat.store import open_profile_store
from llmrec.errors import LlmrecError
from llmrec.index.lock import StoreBusyError
from llmrec.pipeline import parts
from llmrec.pipeline.parts import EXPLAINERS, RANKERS
from ui.limits import Admission, Busy, Limits

log = logging.getLogger(__name__)

RETRY_S = 2.0  # seconds between tries while another process writes the vector store
MAX_TRANSIENT = 20  # unrecorded replies kept per user


@dataclass(frozen=True)
class Choice:
    """The recommender settings a session picked (the number of results is the conversation's own)."""

    ranker: str
    explainer: str
    model: str
    diversity: float


def store_is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` says another process is writing the vector store (wait and retry, not fail)."""
    return isinstance(exc, StoreBusyError) or (isinstance(exc, errors.IndexStoreError)
                                               and "being written by another process" in str(exc))  # fmt: skip


class Gated:
    """``target`` as one session sees it: each call of a method in ``methods`` (every method when None) passes
    the admission door first (re-entrant, so a call made inside another passes once)."""

    def __init__(self, target: Any, admission: Admission, key: str, methods: frozenset[str] | None = None) -> None:
        self._target, self._admission, self._key, self._methods = target, admission, key, methods

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._target, name)
        if name == "understander" and hasattr(found, "with_gate"):  # a model reads messages: its calls queue
            return found.with_gate(lambda: self._admission.enter(self._key))
        if not callable(found) or (self._methods is not None and name not in self._methods):
            return found

        def gated(*args: Any, **kwargs: Any) -> Any:
            with self._admission.enter(self._key):
                return found(*args, **kwargs)

        return gated


def gated_recommender(recommender: Any, admission: Admission, key: str) -> Gated:
    """The shared recommender as one session sees it: ``recommend``, ``why`` and the understander's calls (the
    model calls) pass the door; the catalogue, profiles and the rest are read at once."""
    return Gated(recommender, admission, key, frozenset({"recommend", "why"}))


class Service:
    """What all sessions share: the recommender and its setting variants, the store, and load progress."""

    MAX_CONVERSATIONS = 512

    def __init__(self, recommender: Any, store: Any, label: str, limits: Limits | None = None,
                 ready_wait_s: float = 30.0, llm_wait_s: float = 5.0) -> None:  # fmt: skip
        """``store``: a profile store, a SQLite path or a ``postgresql://`` URL (``open_profile_store``)."""
        cfg = recommender.config
        self.base = recommender
        self.store = open_profile_store(store) if isinstance(store, (str, Path)) else store
        self.label = label
        self.admission = Admission(limits)
        self.ready_wait_s = ready_wait_s
        self.default_choice = Choice(cfg.ranker.kind, cfg.explainer.kind, cfg.llm.model, float(cfg.retrieval.diversity))
        self.catalogue = threading.Event()  # the items are loaded: greetings and titles can be shown
        self.ready = threading.Event()  # everything a recommendation needs is loaded (or failed)
        # The language model loads after the rest (on a first start it is exported once: minutes on a small CPU);
        # until it is ready, turns use the classic pipeline (retrieval order, template reasons, exact rules), so the
        # model never blocks the app. ``llm_wait_s``: how long a turn waits for it before going on without it.
        self.llm_ready = threading.Event()
        self.llm_wait_s = llm_wait_s
        self._llm_error: str | None = None
        self.genres: list[str] = []
        self._stage, self._state = "Starting", "loading"
        self._lock = threading.RLock()
        self._started = False
        self._variants: dict[Choice, Any] = {self.default_choice: recommender}
        self._conversations: OrderedDict[tuple[str, int, int], Conversation] = OrderedDict()
        self._transient: OrderedDict[str, list[tuple[float, str, str]]] = OrderedDict()
        self._models: list[str] | None = None

    # -- loading ------------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                threading.Thread(target=self._warm, name="llmrec-warm-up", daemon=True).start()

    def _warm(self) -> None:
        """Load everything a first recommendation needs, saying which part is loading; while another process
        writes the vector store, wait and try again (the app recovers by itself)."""
        base, started = self.base, time.perf_counter()
        try:
            self._stage = "Loading the catalogue"
            items = base.items
            self.genres = sorted({g for item in items.values() for g in item.genres if not g.startswith("(")})
            self.catalogue.set()
            self._wait_for_writer()
            classic = self._classic(self.default_choice.diversity)
            while True:
                self._stage, self._state = ("Preparing the search index and models (the first run builds the index: "
                                            "minutes)", "loading")  # fmt: skip
                try:
                    users = base.dataset.interactions.user_ids
                    if len(users):  # a user with a history: the collaborative model
                        classic.recommend(classic.profile(user=str(users[0])), k=1)
                    classic.recommend(classic.profile(query="a well-loved film"), k=1)  # the embedder
                    break
                except LlmrecError as exc:
                    if not store_is_busy(exc):
                        raise
                    log.info("waiting for another process to finish the vector store: %s", exc)
                    self._waiting(getattr(exc, "busy", None))
                    time.sleep(RETRY_S)
            self._stage, self._state = f"Ready · {self.label} · {len(items):,} titles", "ready"
            log.info("recommender ready in %.1f s", time.perf_counter() - started)
            self.ready.set()
            self._warm_llm(started)
        except LlmrecError as exc:
            self._stage, self._state = f"Couldn't start: {exc}", "error"
        except Exception as exc:
            log.exception("the recommender failed to start")
            self._stage, self._state = f"Couldn't start ({type(exc).__name__}); see the server log", "error"
        finally:
            self.catalogue.set()
            self.ready.set()
            self.llm_ready.set()

    def _warm_llm(self, started: float) -> None:
        """Load the language model the app's settings use (none: nothing to do); a model that cannot load leaves
        the app on the classic pipeline and says so in the status."""
        if not parts.needs_llm(self.base.config):
            return
        ready = self._stage
        self._stage = f"{ready} · loading the language model (the first start exports it once: a few minutes)"
        try:
            self.base.llm  # noqa: B018 - loads (and on a first start exports) the model
            self._stage = ready
            log.info("language model ready in %.1f s", time.perf_counter() - started)
        except Exception as exc:  # any failure leaves the classic pipeline serving
            self._llm_error = str(exc) if isinstance(exc, LlmrecError) else type(exc).__name__
            self._stage = f"{ready} · without the language model ({self._llm_error})"
            log.warning("the language model could not load; the app goes on without it: %s", exc)

    def _classic(self, diversity: float) -> Any:
        """The pipeline without the language model (retrieval order, template reasons, messages read by rules), one
        per diversity: the warm-up's is the one the first turns use."""
        key = Choice("passthrough", "template", "", diversity)  # no model name: never a session's own choice
        with self._lock:
            if key not in self._variants:
                self._variants[key] = self.base.variant(
                    ranker={"kind": "passthrough"}, explainer={"kind": "template"}, understanding={"kind": "rules"},
                    retrieval={"diversity": diversity})  # fmt: skip
            return self._variants[key]

    def _waiting(self, busy: Any = None) -> None:
        done, total = getattr(busy, "done", None), getattr(busy, "total", None)
        progress = f" ({done or 0:,} of {total:,} items)" if total else ""
        self._stage = (f"Waiting for another process to finish building the search index{progress}; I'll be ready "
                       "by myself")  # fmt: skip
        self._state = "waiting"

    def _wait_for_writer(self) -> None:
        """Return once no other process writes the vector store, saying meanwhile that the app waits for it
        (``llmrec.pipeline.stores.wait_for_store``; the recommender would wait too, but silently)."""
        from llmrec.pipeline.stores import wait_for_store

        cfg = self.base.config
        try:
            wait_for_store(self.base.dataset.name, cfg.embedder.name, cfg.cache_dir, cfg.index.store,
                           cfg.index.chroma_url, on_wait=self._waiting)  # fmt: skip
        except LlmrecError as exc:  # the load below reports what is wrong with the store
            log.info("could not wait for the vector store's writer: %s", exc)

    def wait(self, catalogue_only: bool = False, timeout: float | None = None) -> None:
        """Wait (at most ``timeout`` seconds, default ``ready_wait_s``) for the catalogue or for everything;
        ``Busy`` when it is still loading then, the error when loading failed."""
        self.start()
        event = self.catalogue if catalogue_only else self.ready
        if not event.wait(self.ready_wait_s if timeout is None else timeout):
            raise Busy(f"I'm still getting ready ({self._stage.lower()}); please try again in a moment.")
        if self._state == "error":
            raise LlmrecError(self._stage)

    def status(self) -> tuple[str, str]:
        return self._stage, self._state

    @property
    def loading(self) -> bool:
        """Still loading something (the status pill is refreshed meanwhile): the pipeline, or the language model."""
        return self._state in ("loading", "waiting") or (self.ready.is_set() and not self.llm_ready.is_set())

    # -- the catalogue and the settings --------------------------------------------------------------
    @property
    def items(self) -> Any:
        return self.base.items if self.catalogue.is_set() and self._state != "error" else {}

    def title(self, item_id: str) -> str:
        """The film's title: the rated catalogue's, else (a film the user named) the wider list's, else the id."""
        items = self.items
        if item_id in items:
            return items[item_id].display_title
        outside = outside_films(self.base) if items else None
        return outside[item_id].display_title if outside is not None and item_id in outside else item_id

    def choice(self, ranker: Any, explainer: Any, model: Any, diversity: Any) -> Choice:
        """A session's settings, with anything unknown replaced by the default."""
        default = self.default_choice
        try:
            diversity = min(max(round(float(diversity), 2), 0.0), 1.0)
        except (TypeError, ValueError):
            diversity = default.diversity
        return Choice(ranker if ranker in RANKERS.kinds() else default.ranker,
                      explainer if explainer in EXPLAINERS.kinds() else default.explainer,
                      model if model in self.model_names() else default.model, diversity)  # fmt: skip

    def model_names(self) -> list[str]:
        """Language models that can load here (packaged ones that are installed), the configured one first."""
        if self._models is None:
            from llmrec.llm.registry import get_spec, known_models, missing_requirements

            names = [n for n in known_models() if get_spec(n).kind == "causal-lm" and get_spec(n).packaged
                     and not missing_requirements(get_spec(n))]  # fmt: skip
            self._models = list(dict.fromkeys([self.default_choice.model, *names]))
        return self._models

    def recommender(self, choice: Choice) -> Any:
        """The session's pipeline; the classic one while the language model is loading (or could not load)."""
        self.wait()
        if not self.llm_ready.wait(self.llm_wait_s) or self._llm_error is not None:
            return self._classic(choice.diversity)
        with self._lock:
            if choice not in self._variants:
                log.info("new recommender variant %s", choice)
                self._variants[choice] = self.base.variant(
                    ranker={"kind": choice.ranker}, explainer={"kind": choice.explainer}, llm={"model": choice.model},
                    retrieval={"diversity": choice.diversity})  # fmt: skip
            return self._variants[choice]

    # -- sessions -------------------------------------------------------------------------------------
    def greeter(self, user_id: str) -> Conversation:
        """A conversation that can greet (and show the profile) while the store and models still load."""
        self.wait(catalogue_only=True)
        return Conversation(self.base, self.store, user_id)

    def conversation(self, user_id: str, choice: Choice, k: int) -> Conversation:
        recommender = self.recommender(choice)
        key = (user_id, id(recommender), k)  # a session moves to the language model's pipeline once it has loaded
        with self._lock:
            convo = self._conversations.pop(key, None) or Conversation(
                gated_recommender(recommender, self.admission, user_id), self.store, user_id, k=k,
                stream_explanations=True)  # fmt: skip
            self._conversations[key] = convo
            while len(self._conversations) > self.MAX_CONVERSATIONS:
                self._conversations.popitem(last=False)
            return convo

    def drop_user(self, user_id: str) -> None:
        with self._lock:
            for key in [key for key in self._conversations if key[0] == user_id]:
                del self._conversations[key]
            self._transient.pop(user_id, None)

    # -- the transcript ------------------------------------------------------------------------------
    def remember(self, user_id: str, role: str, text: str) -> None:
        """A reply shown but not recorded by the conversation (a greeting, "busy"): kept in memory, in order."""
        with self._lock:
            said = self._transient.pop(user_id, [])
            said.append((time.time(), role, text))
            self._transient[user_id] = said[-MAX_TRANSIENT:]
            while len(self._transient) > self.MAX_CONVERSATIONS:
                self._transient.popitem(last=False)

    def forget_unrecorded(self, user_id: str) -> None:
        with self._lock:
            self._transient.pop(user_id, None)

    def said_since(self, user_id: str, since: float) -> set[str]:
        """The roles of the turns the conversation recorded for ``user_id`` since ``since`` (a time.time())."""
        return {t.role for t in self.store.turns(user_id, limit=4) if t.created >= since}

    def transcript(self, user_id: str, limit: int = 100) -> list[tuple[str, str]]:
        """The user's conversation as ``(role, text)``, oldest first: the recorded turns and the unrecorded replies
        in time order (the server's record, never what a client sends)."""
        turns = [(t.created, t.role, t.text) for t in self.store.turns(user_id, limit=limit)]
        with self._lock:
            extra = list(self._transient.get(user_id, []))
        merged = sorted([*turns, *extra], key=lambda row: row[0])
        return [(role, text) for _, role, text in merged[-limit:]]
