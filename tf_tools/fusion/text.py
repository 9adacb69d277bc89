"""Fused text: reflection prompts, teacher end-of-turn markers, assembly with offsets.

A fused assistant message is ``wrong_1 + R + wrong_2 + R + ... + correct`` (DESIGN §4 step 6),
the pieces joined by a blank line. ``assemble`` returns the text and one segment per piece
with exact character offsets (Python ``str`` indices, i.e. Unicode code points), so
``text[start:end]`` is the piece itself; the separators belong to no segment.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from tf_tools.errors import UsageError

#: built-in reflection prompts (ours): short, varied, first person, none naming the answer
REFLECTIONS: tuple[str, ...] = (
    "Wait, that answer does not hold up. Let me re-check the reasoning from the start.",
    "Hmm, I am not confident in that result. Let me go through the problem again more carefully.",
    "Let me verify this against the conditions of the problem. It does not fit, so something went wrong; let me try again.",
    "That doesn't look right. I'll look for the mistake and solve the problem again.",
    "Before committing to this answer, let me double-check it. On a second look I think I made an error, so let me redo the solution.",
    "On second thought, this approach may contain a mistake. Let me reconsider the problem carefully.",
    "Let me pause and sanity-check that result. It seems off, so I will work through it once more.",
    "I should not trust that answer yet. Let me re-read the question and solve it step by step again.",
    "Something in that solution is inconsistent. Let me start over with a cleaner approach.",
    "Wait, let me re-examine my steps; I may have misread the problem or miscalculated somewhere.",
)

#: end-of-turn / end-of-text markers of common chat formats (ChatML/Qwen, Llama 3, Llama 2 /
#: Mistral, Phi-3, Gemma, DeepSeek, GPT-2 style): removed wherever they occur in a segment
END_MARKERS: tuple[str, ...] = (
    "<|im_end|>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "<|eom_id|>", "</s>",
    "<|end|>", "<end_of_turn>", "<｜end▁of▁sentence｜>", "<|end▁of▁sentence|>",
    "<|end_of_sentence|>", "<|return|>",
)

SEPARATOR = "\n\n"


def strip_markers(text: str, markers: Sequence[str] = END_MARKERS) -> str:
    """``text`` without any end-of-turn marker, and without surrounding whitespace."""
    for marker in markers:
        if marker in text:
            text = text.replace(marker, "")
    return text.strip()


def load_reflections(path: str) -> tuple[str, ...]:
    """One reflection prompt per line; blank lines and lines starting with ``#`` are skipped."""
    if not os.path.isfile(path):
        raise UsageError(f"--reflections: no such file: {path}")
    with open(path, encoding="utf-8") as f:
        lines = tuple(s for s in (line.strip() for line in f) if s and not s.startswith("#"))
    if not lines:
        raise UsageError(f"--reflections: {path} has no reflection lines",
                         hint="one prompt per line; lines starting with # are comments")
    return lines


def assemble(pieces: Sequence[tuple[str, str]], separator: str = SEPARATOR
             ) -> tuple[str, list[dict[str, int | str]]]:
    """Join ``(kind, text)`` pieces; returns the text and ``{kind, start, end}`` segments."""
    chunks: list[str] = []
    segments: list[dict[str, int | str]] = []
    pos = 0
    for i, (kind, text) in enumerate(pieces):
        if i:
            chunks.append(separator)
            pos += len(separator)
        segments.append({"kind": kind, "start": pos, "end": pos + len(text)})
        chunks.append(text)
        pos += len(text)
    return "".join(chunks), segments
