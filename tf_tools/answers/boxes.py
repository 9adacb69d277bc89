"""Boxed answers: the argument of ``\\boxed{...}`` / ``\\fbox{...}``, and chains of boxes.

A box's argument is delimited by balanced braces (``\\boxed{\\frac{1}{2}}``), or is the next
token (``\\boxed 5``); boxes right before the last one that are only separated by commas or
"and" belong to one answer (``\\boxed{1}, \\boxed{2}``). Linear in the text. Used for
predictions and gold answers alike (``extract.py``); this module does not decide which
part of an output is the answer.
"""

from __future__ import annotations

import re

BOX_RE = re.compile(r"\\(?:boxed|fbox)\b")
# Adjacent boxes form one answer ("\\boxed{1}, \\boxed{2}") when the text between them is
# short, or a little longer with a separator: the rule of latex2sympy2_extended's
# extract_boxed_content (Apache-2.0), so both graders read multi-box answers alike.
_BOX_SEPARATOR_RE = re.compile(r"\b(?:and|or)\b|,|;")
_SENTENCE_END_RE = re.compile(r"[.!?](?:\s|$)")
_CONCLUSION_RE = re.compile(r"\b(?:thus|hence|therefore|so|but|instead|actually|wait)\b", re.IGNORECASE)


def _boxes_join(between: str, content: str, next_content: str) -> bool:
    if _SENTENCE_END_RE.search(between) or _CONCLUSION_RE.search(between):
        # "... $\\boxed{a}$.\n\nThus, \\boxed{b}", "\\boxed{1} and or thus but \\boxed{2}": the
        # later box restates or corrects, it does not continue a list (math-verify's own
        # test case, which its rule fails)
        return False
    if len(between) < 10:
        return True
    return content != next_content and len(between) < 70 and bool(_BOX_SEPARATOR_RE.search(between))


def find_boxed(text: str) -> list[str] | None:
    """Contents of the last box, plus the boxes chained right before it; None if none.

    Returns None also when the last box is unbalanced (``\\boxed{1+{2``): an answer we
    cannot delimit is no answer, not a guess.
    """
    starts = [m for m in BOX_RE.finditer(text)]
    if not starts:
        return None
    chain: list[str] = []
    end_of_next: int | None = None
    for m in reversed(starts):
        content, end = _box_content(text, m.end())
        if content is None:
            if chain:
                break
            return None
        if end_of_next is not None and not _boxes_join(text[end:end_of_next], content, chain[-1]):
            break
        chain.append(content)
        end_of_next = m.start()
    chain.reverse()
    return chain


def _box_content(text: str, pos: int) -> tuple[str | None, int]:
    """The argument of a box macro that ends at ``pos``, and where the argument ends."""
    n = len(text)
    i = pos
    while i < n and text[i] in " \t":
        i += 1
    if i < n and text[i] == "{":
        depth = 0
        for j in range(i, n):
            c = text[j]
            if c == "\\":
                continue
            if c == "{" and (j == 0 or text[j - 1] != "\\"):
                depth += 1
            elif c == "}" and text[j - 1] != "\\":
                depth -= 1
                if depth == 0:
                    return text[i + 1 : j].strip(), j + 1
        return None, n
    # \boxed 5 : the argument is the next token
    m = re.compile(r"[^\s$]+").match(text, i)
    if m and i > pos:
        return m.group(0).rstrip(".,;"), m.end()
    return None, i


def inside_box(text: str, box_start: int, pos: int) -> bool:
    """Whether ``pos`` falls inside the box that starts at ``box_start`` (or the box cannot
    be delimited)."""
    content, end = _box_content(text, box_start + (6 if text.startswith("\\boxed", box_start) else 5))
    return content is None or pos < end
