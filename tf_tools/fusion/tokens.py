"""Counting a training sample's tokens, for the length budget and the token-cost multiplier.

- ``HFTokenCounter``: the student's tokenizer (``--tokenizer PATH``: a local Hugging Face
  tokenizer folder, or a ``.gguf`` file). With a chat template it counts exactly what
  training sees (``apply_chat_template`` over the messages); without one, the sum of the
  messages' tokens without special tokens.
- ``ApproxTokenCounter`` (no ``--tokenizer``): words and punctuation marks (``\\w+`` runs and
  single other non-space characters). A rough stand-in, in the same ballpark as BPE
  counts on LaTeX-heavy math text; use a real tokenizer when the budget matters.

transformers is imported inside ``HFTokenCounter`` only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any, Protocol

from tf_tools.errors import MissingDependency, UsageError

Messages = Sequence[dict[str, str]]
_APPROX_RE = re.compile(r"\w+|[^\w\s]")


class TokenCounter(Protocol):
    name: str

    def count(self, messages: Messages) -> int: ...


class ApproxTokenCounter:
    name = "approx"

    def count(self, messages: Messages) -> int:
        return sum(len(_APPROX_RE.findall(m["content"])) for m in messages)


class HFTokenCounter:
    def __init__(self, path: str) -> None:
        try:
            from transformers import AutoTokenizer
        except ImportError:  # pragma: no cover - transformers is in the train extra
            raise MissingDependency("--tokenizer needs transformers", "train") from None
        self.name = path
        if not os.path.exists(path):
            raise UsageError(f"--tokenizer: no such file or folder: {path}",
                             hint="give a local tokenizer folder (save_pretrained) or a .gguf file")
        try:
            if os.path.isfile(path) and path.endswith(".gguf"):
                folder, name = os.path.split(os.path.abspath(path))
                self.tok: Any = AutoTokenizer.from_pretrained(folder, gguf_file=name)
            else:
                self.tok = AutoTokenizer.from_pretrained(path)
        except Exception as exc:  # noqa: BLE001 - any loader failure is a bad --tokenizer
            raise UsageError(f"--tokenizer: cannot load a tokenizer from {path}: {exc}") from None
        self.templated = bool(getattr(self.tok, "chat_template", None))

    def count(self, messages: Messages) -> int:
        if self.templated:
            ids = self.tok.apply_chat_template(list(messages), tokenize=True)
            if hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding
                ids = ids["input_ids"]
            return len(ids)
        return sum(len(self.tok.encode(m["content"], add_special_tokens=False))
                   for m in messages)


def load_counter(tokenizer: str | None) -> TokenCounter:
    return HFTokenCounter(tokenizer) if tokenizer else ApproxTokenCounter()
