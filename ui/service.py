"""What all sessions of the app share: the recommender and its setting variants, the profile store,
and the background load that makes them ready. No Gradio here; ``ui.app`` lays out the page over it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmrec.chat.engine import Conversation
from llmrec.chat.store import ProfileStore
from llmrec.errors import LlmrecError
from llmrec.pipeline.parts import EXPLAINERS, RANKERS

log = logging.getLogger(__name__)

USER_ID = re.compile(r"web-[0-9a-f]{16}")


@dataclass(frozen=True)
class Choice:
    """The recommender settings a session picked (the number of results is the conversation's own)."""

    ranker: str
    explainer: str
    model: str
    diversity: float


def valid_user_id(value: Any) -> bool:
    """Ids are made here (``web-`` and 16 hex digits), so no data-set user or other person's id is accepted."""
    return isinstance(value, str) and USER_ID.fullmatch(value) is not None


class Service:
    """What all sessions share: the recommender and its setting variants, the store, and load progress."""

    MAX_CONVERSATIONS = 512

    def __init__(self, recommender: Any, store_path: str | Path, label: str) -> None:
        cfg = recommender.config
        self.base = recommender
        self.store = ProfileStore(store_path)
        self.label = label
        self.default_choice = Choice(cfg.ranker.kind, cfg.explainer.kind, cfg.llm.model, float(cfg.retrieval.diversity))
        self.catalogue = threading.Event()  # the items are loaded: greetings and titles can be shown
        self.ready = threading.Event()  # everything a recommendation needs is loaded (or failed)
        self.genres: list[str] = []
        self._stage, self._state = "Starting", "loading"
        self._lock = threading.RLock()
        self._started = False
        self._variants: dict[Choice, Any] = {self.default_choice: recommender}
        self._conversations: OrderedDict[tuple[str, Choice, int], Conversation] = OrderedDict()
        self._models: list[str] | None = None

    def start(self) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                threading.Thread(target=self._warm, name="llmrec-warm-up", daemon=True).start()

    def _warm(self) -> None:
        """Load everything a first recommendation needs, saying which part is loading."""
        base, started = self.base, time.perf_counter()
        try:
            self._stage = "Loading the catalogue"
            items = base.items
            self.genres = sorted({g for item in items.values() for g in item.genres if not g.startswith("(")})
            self.catalogue.set()
            self._stage = "Preparing the search index and models (the first run builds the index: minutes)"
            users = base.dataset.interactions.user_ids
            if len(users):  # a user with a history: the collaborative model (and the LLM, if configured)
                base.recommend(base.profile(user=str(users[0])), k=1)
            base.recommend(base.profile(query="a well-loved film"), k=1)  # a newcomer's words: the embedder
            self._stage, self._state = f"Ready · {self.label} · {len(items):,} titles", "ready"
            log.info("recommender ready in %.1f s", time.perf_counter() - started)
        except LlmrecError as exc:
            self._stage, self._state = f"Couldn't start: {exc}", "error"
        except Exception as exc:
            log.exception("the recommender failed to start")
            self._stage, self._state = f"Couldn't start ({type(exc).__name__}); see the server log", "error"
        finally:
            self.catalogue.set()
            self.ready.set()

    def wait(self, catalogue_only: bool = False) -> None:
        self.start()
        (self.catalogue if catalogue_only else self.ready).wait()
        if self._state == "error":
            raise LlmrecError(self._stage)

    def status(self) -> tuple[str, str]:
        return self._stage, self._state

    @property
    def items(self) -> Any:
        return self.base.items if self.catalogue.is_set() and self._state != "error" else {}

    def title(self, item_id: str) -> str:
        items = self.items
        return items[item_id].display_title if item_id in items else item_id

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
        self.wait()
        with self._lock:
            if choice not in self._variants:
                log.info("new recommender variant %s", choice)
                self._variants[choice] = self._derive(choice)
            return self._variants[choice]

    def _derive(self, choice: Choice) -> Any:
        """A variant of the base recommender for ``choice``: it shares the catalogue, store, collaborative model
        and every language model already loaded (``Recommender.variant``)."""
        return self.base.variant(ranker={"kind": choice.ranker}, explainer={"kind": choice.explainer},
                                 llm={"model": choice.model}, retrieval={"diversity": choice.diversity})  # fmt: skip

    def greeter(self, user_id: str) -> Conversation:
        """A conversation that can greet (and show the profile) while the store and models still load."""
        self.wait(catalogue_only=True)
        return Conversation(self.base, self.store, user_id)

    def conversation(self, user_id: str, choice: Choice, k: int) -> Conversation:
        recommender = self.recommender(choice)
        key = (user_id, choice, k)
        with self._lock:
            convo = self._conversations.pop(key, None) or Conversation(recommender, self.store, user_id, k=k,
                                                                      stream_explanations=True)
            self._conversations[key] = convo
            while len(self._conversations) > self.MAX_CONVERSATIONS:
                self._conversations.popitem(last=False)
            return convo

    def drop_user(self, user_id: str) -> None:
        with self._lock:
            for key in [key for key in self._conversations if key[0] == user_id]:
                del self._conversations[key]
