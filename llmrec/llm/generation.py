"""Greedy decoding settings for explanations, and a repetition guard that leaves copying alone.

transformers' ``no_repeat_ngram_size`` and ``repetition_penalty`` look at the whole sequence, prompt
included, so they push the model away from exactly what a grounded explanation must do: copy a title
from the evidence ("Fear and Loathing in Las Vegas" came out as "Fear andLoathing inLas Vegas"). The
guard here bans only n-grams the reply itself already produced, which still stops a small model from
looping. Written here because transformers has no generated-tokens-only variant.
"""

from __future__ import annotations

from typing import Any

GREEDY: dict[str, Any] = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}


class ReplyNoRepeatNGram:
    """A logits processor: no n-gram of the reply (tokens after ``prompt_length``) is generated twice."""

    def __init__(self, n: int, prompt_length: int) -> None:
        self.n, self.prompt_length = n, prompt_length

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        for row in range(input_ids.shape[0]):
            reply = input_ids[row, self.prompt_length :].tolist()
            if len(reply) < self.n:
                continue
            prefix = tuple(reply[-(self.n - 1) :]) if self.n > 1 else ()
            banned = [reply[i + self.n - 1] for i in range(len(reply) - self.n + 1)
                      if tuple(reply[i : i + self.n - 1]) == prefix]  # fmt: skip
            if banned:
                scores[row, banned] = -float("inf")
        return scores


def greedy_kwargs(prompt_length: int, n: int = 8) -> dict[str, Any]:
    """``generate`` keyword arguments: greedy decoding with the reply-only repetition guard. ``n`` is long
    because tokenizers such as Qwen's spell numbers digit by digit: with n = 3 the second year of a reply
    ("(1996) and ... (199") was already banned and came out as "1893"."""
    from transformers import LogitsProcessorList

    return {**GREEDY, "logits_processor": LogitsProcessorList([ReplyNoRepeatNGram(n, prompt_length)])}
