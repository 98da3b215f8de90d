"""Greedy decoding constrained to JSON that is valid against a JSON schema (the one import of ``outlines``).

The schema is compiled by outlines-core into a finite-state index over the tokenizer's vocabulary; a
logits processor then masks, at every step, the tokens that cannot continue a valid document, so the
reply parses and validates unless it is cut short by ``max_new_tokens``. Chosen over xgrammar (its
wheel pulls a 286 MB triton on Linux x86_64) and lm-format-enforcer (its transformers integration
does not import under transformers 5). The vocabulary is built once per tokenizer and each compiled
schema is kept, so only the first call with a schema pays for the compilation (~0.2 s on SmolLM2).

Whitespace between JSON tokens is limited to one optional space: a small model given free
whitespace can emit newlines until it runs out of tokens.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from llmrec.errors import ConfigError, ModelError

WHITESPACE = r"[ ]?"


def schema_key(schema: Mapping[str, Any]) -> str:
    """``schema`` as JSON text, its cache key; refuses what is not JSON. Keys keep their order: the order of
    ``properties`` is the order in which the model writes the fields."""
    if not isinstance(schema, Mapping):
        kind = type(schema).__name__
        raise ConfigError(f"a JSON schema must be a mapping (e.g. Model.model_json_schema()), got {kind}")
    try:
        return json.dumps(schema)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the JSON schema is not serialisable as JSON ({exc})") from None


class JsonConstraint:
    """Logits processors that keep greedy decoding inside one JSON schema, for one tokenizer.

    ``processor(schema)`` returns a fresh (stateful) processor for one ``generate`` call of batch 1;
    it works with any ``generate`` that calls transformers-style logits processors on torch tensors
    (transformers and optimum-intel alike).
    """

    def __init__(self, tokenizer: Any, cache_size: int = 16) -> None:
        try:
            from outlines.backends.outlines_core import OutlinesCoreBackend
            from outlines.models.transformers import TransformerTokenizer
        except ImportError as exc:
            raise ModelError(
                f"constrained JSON decoding needs outlines ({exc.name} is missing); fix: pip install 'outlines>=1.2'"
            ) from None
        wrapped = TransformerTokenizer(tokenizer)
        self.vocabulary = OutlinesCoreBackend.create_outlines_core_vocabulary(
            wrapped.get_vocab(), wrapped.eos_token_id, wrapped.eos_token, wrapped.convert_token_to_string
        )
        self.cache_size = cache_size
        self._indexes: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def index(self, schema: Mapping[str, Any]) -> Any:
        """The compiled index of ``schema`` (compiled once, then reused)."""
        from outlines_core import Index
        from outlines_core.json_schema import build_regex_from_schema

        key = schema_key(schema)
        with self._lock:
            if key in self._indexes:
                self._indexes.move_to_end(key)
                return self._indexes[key]
        try:
            index = Index(build_regex_from_schema(key, WHITESPACE), self.vocabulary)
        except (ValueError, TypeError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"the JSON schema cannot be used for constrained decoding: {first[:200]}") from None
        with self._lock:
            self._indexes[key] = index
            while len(self._indexes) > self.cache_size:
                self._indexes.popitem(last=False)
        return index

    def processor(self, schema: Mapping[str, Any]) -> Any:
        """A new logits processor for one generation constrained to ``schema``."""
        from outlines.backends.outlines_core import OutlinesCoreLogitsProcessor

        return OutlinesCoreLogitsProcessor(self.index(schema), "torch")
