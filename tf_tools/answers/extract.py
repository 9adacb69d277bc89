"""Find the final answer in a model's output, and the gold answer in a dataset's field.

Extraction order for predictions (DESIGN §4 step 2), first hit wins:

1. the last ``\\boxed{...}`` / ``\\fbox{...}`` (balanced braces, ``\\boxed 5``), together with
   boxes right before it that are only separated by commas or "and" (``\\boxed{1}, \\boxed{2}``;
   ``boxes.py``);
2. "final answer is ..." / "the answer is ..." / a closing ``Answer: ...`` line;
3. GSM8K's ``#### N``;
4. an ``"answer"`` field of a JSON object in the text (ZeroEval-style outputs);
5. opt-in: the last math environment (``$...$``, ``\\(...\\)``, ``\\[...\\]``);
6. opt-in: the last number.

Everything here is linear in the text: no pattern can backtrack over a 200,000-character
completion. This module does not decide equivalence (see ``equivalence.py``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tf_tools.answers.boxes import BOX_RE, find_boxed, inside_box

# phrase anchors, searched in the tail only so they stay cheap on huge outputs
_TAIL = 4000
_PHRASE_RE = re.compile(
    r"(?:final\s+answer|the\s+(?:correct\s+)?answer)\s*(?:is|:|=|will\s+be|would\s+be)[ \t]*:?[ \t]*"
    r"(?:\n[ \t]*)?(?P<ans>(?!```|\{)[^\n]{1,300})",
    re.IGNORECASE,
)
_ANSWER_LINE_RE = re.compile(
    r"(?:^|\n)[ \t>*#_]*(?:final\s+)?answer[ \t*_]*[:：][ \t*_]*(?P<ans>[^\n]{1,300})",
    re.IGNORECASE,
)
_GSM8K_RE = re.compile(r"(?<!#)####(?!#)\s*(?P<ans>[^\n]{1,200})")
# the closing "A: 18" line of the solutions released with GSM8K (openai/grade-school-math)
_FINAL_A_RE = re.compile(r"(?:^|\n)A:[ \t]*(?P<ans>[^\n]{1,200}?)\s*$")
_JSON_ANSWER_RE = re.compile(
    r"[\"']answer[\"']\s*:\s*(?P<val>\"(?:[^\"\\\n]|\\.){0,2000}\"|-?[\d.][\d.,eE+-]{0,60}|null|true|false)"
)
# display math may span lines, inline math may not (as math-verify reads it); \\$ is a dollar
_MATH_ENV_RE = re.compile(
    r"\$\$(?P<a>[^$]{1,2000}?)\$\$|\\\[(?P<b>[\s\S]{1,2000}?)\\\]"
    r"|\\\((?P<c>[^\n]{1,2000}?)\\\)|(?<!\\)\$(?P<d>(?:[^$\\\n]|\\.){1,2000}?)\$"
)
# a number not glued to a word on its left ("AZYUK2A" holds none); thousands groups with
# commas or spaces, decimal points or decimal commas ("2,74 €")
_NUMBER_RE = re.compile(
    r"(?<![A-Za-z0-9.,])-?(?:\d{1,3}(?:(?:,\d{3})+|(?: \d{3})+)(?:\.\d+)?|\d+(?:[.,]\d+)?(?:/\d+)?|\.\d+)"
)
_WORD_RE = re.compile(r"(?<!\\)\b[A-Za-z]{3,}")


@dataclass(frozen=True)
class ExtractOptions:
    """Which fallbacks to use after the anchored patterns."""

    last_math: bool = False
    last_number: bool = False


def _last_match(pattern: re.Pattern[str], text: str, pos: int = 0) -> re.Match[str] | None:
    """The last match of ``pattern`` in ``text`` at or after ``pos`` (matches do not overlap)."""
    last = None
    for m in pattern.finditer(text, pos):
        last = m
    return last


def _strip_sentence_end(ans: str) -> str:
    ans = ans.strip()
    ans = re.sub(r"\s*(?:I hope it is correct|Hope this helps).*$", "", ans, flags=re.I)
    # "is $5$." / "is 3.5." / "is (-6, 10)." -> drop the final period, keep decimals
    ans = re.sub(r"[.。]+\s*$", "", ans).strip()
    return ans.strip("*_ ").strip()


def _unwrap_math(ans: str) -> str:
    ans = ans.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if ans.startswith(left) and ans.endswith(right) and len(ans) >= len(left) + len(right):
            return ans[len(left) : len(ans) - len(right)].strip()
    # "is $5$ dollars": keep the math part
    m = re.match(r"^\$([^$]+)\$", ans) or re.match(r"^\\\((.+?)\\\)", ans)
    if m:
        return m.group(1).strip()
    return ans


def _answer_of(found: tuple[Any, ...] | None) -> str | None:
    """The answer of a ``(position, answer, ...)`` that a ``_*_at`` finder returns."""
    return found[1] if found else None


def find_phrase(text: str) -> str | None:
    return _answer_of(_find_phrase_at(text))


def _find_phrase_at(text: str, start: int = 0) -> tuple[int, str | None, bool] | None:
    """(position, refined answer, clean) of the last answer phrase at or after ``start``.

    ``clean``: the phrase states only an answer ("the final answer is $10,455$"), not prose
    that happens to contain the word ("the answer is verified to be correct")."""
    offset = max(start, len(text) - _TAIL)
    if "answer" not in text[offset:].lower():
        return None  # a substring test is far cheaper than the case-insensitive patterns
    best = _last_match(_PHRASE_RE, text, offset) or _last_match(_ANSWER_LINE_RE, text, offset)
    if best is None:
        return None
    raw = _strip_sentence_end(best.group("ans"))
    raw = _NESTED_PHRASE_RE.sub("", raw)
    clean = bool(raw) and not _WORD_RE.search(_strip_latex_words(raw.strip('"`\\ ')))
    return best.start(), _refine(best.group("ans")), clean


_NESTED_PHRASE_RE = re.compile(r"^(?:the\s+)?final\s+answer\s+is:?\s*", re.IGNORECASE)


_MATH_LIST_RE = re.compile(r"^\$[^$]+\$(?:\s*(?:,|and|or|,\s*and)\s*\$[^$]+\$)+$")


def _refine(ans: str, depth: int = 0) -> str | None:
    """Cut a phrase's capture down to the answer: "The volume of $V$ is 120." -> "120"."""
    ans = _strip_sentence_end(ans)
    ans = re.sub(r'^\\?"(.*?)\\?"$', r"\1", ans.strip("`")).strip()  # a quoted answer
    if _MATH_LIST_RE.match(ans):  # "$12$ and $13$" -> "12, 13"
        return ", ".join(p.strip() for p in re.findall(r"\$([^$]+)\$", ans))
    boxed = find_boxed(ans)
    if boxed:
        return ", ".join(boxed)
    if depth < 2:
        inner = _PHRASE_RE.search(ans)
        if inner:
            return _refine(inner.group("ans"), depth + 1)
    unwrapped = _unwrap_math(ans)
    if unwrapped != ans or not _WORD_RE.search(_strip_latex_words(ans)):
        return unwrapped or None
    # words around the answer: the part after the last " is ", else its math, else a number
    tail = re.split(r"\s(?:is|are|was|equals|=)\s", ans)[-1].strip()
    if tail != ans and not _WORD_RE.search(_strip_latex_words(tail)):
        return _unwrap_math(tail) or None
    return find_last_math(ans) or find_last_number(ans) or ans


def _strip_latex_words(text: str) -> str:
    """Drop LaTeX commands and math environments so only prose words remain."""
    text = re.sub(r"\\[A-Za-z]+", " ", text)
    return re.sub(r"\$[^$]*\$", " ", text)


def find_gsm8k(text: str) -> str | None:
    return _answer_of(_gsm8k_at(text))


def _gsm8k_at(text: str, start: int = 0) -> tuple[int, str | None] | None:
    offset = max(start, len(text) - _TAIL)
    if "####" not in text[offset:] and "A:" not in text[offset:]:
        return None
    best = _last_match(_GSM8K_RE, text, offset) or _FINAL_A_RE.search(text, offset)
    return (best.start(), _strip_sentence_end(best.group("ans")) or None) if best else None


def _json_answer_at(text: str, start: int = 0) -> tuple[int, str | None] | None:
    if "answer" not in text:
        return None
    best = _last_match(_JSON_ANSWER_RE, text, start)
    if best is None:
        return None
    return best.start(), _json_value(best.group("val"))


def _json_value(raw: str) -> str | None:
    if raw in ("null", "true", "false"):
        return None
    if raw.startswith('"'):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw[1:-1]
        value = str(value).strip()
        return value or None
    return raw.rstrip(",")


def find_last_math(text: str) -> str | None:
    return _answer_of(_last_math_at(text))


def _last_math_at(text: str) -> tuple[int, str] | None:
    offset = max(0, len(text) - _TAIL)
    best = _last_match(_MATH_ENV_RE, text, offset)
    if best is None:
        return None
    body = next(g for g in best.groups() if g is not None).strip()
    return (best.end(), body) if body else None  # finditer's positions are absolute


def find_last_number(text: str) -> str | None:
    return _answer_of(_last_number_at(text))


def _last_number_at(text: str) -> tuple[int, str] | None:
    offset = max(0, len(text) - _TAIL)
    best = _last_match(_NUMBER_RE, text, offset)
    return (best.end(), plain_number(best.group(0))) if best else None


def plain_number(token: str) -> str:
    """"1,000.5" -> "1000.5", "1 000" -> "1000", and a decimal comma "2,74" -> "2.74"."""
    token = token.replace(" ", "")
    if "," not in token:
        return token
    if "." in token or re.fullmatch(r"-?[1-9]\d{0,2}(?:,\d{3})+", token):
        return token.replace(",", "")
    return token.replace(",", ".")


def find_whole_expression(text: str) -> str | None:
    """The whole output when it is nothing but a short expression ("42", "\\frac{10}{9}")."""
    stripped = text.strip()
    if not stripped or len(stripped) > 200 or "\n" in stripped:
        return None
    if BOX_RE.search(stripped) or stripped.count("{") != stripped.count("}"):
        return None  # a box we could not delimit is no answer
    if _WORD_RE.search(_strip_latex_words(stripped)):
        return None
    return _unwrap_math(_strip_sentence_end(stripped)) or None


# ----------------------------------------------------------------------------- letters

_CHOICE_AFTER_ANSWER_RE = re.compile(r"answer", re.IGNORECASE)


def _letter_re(choices: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z])\(?([{choices}])\)?(?![A-Za-z0-9])")


def extract_letter(text: str, choices: str = "ABCDE") -> str | None:
    """A multiple-choice letter: after the last "answer", a leading "(C)"/"C.", a boxed
    letter, else the last standalone capital letter among ``choices``."""
    letter = _letter_re(choices)
    tail = text[-_TAIL:]
    boxed = find_boxed(tail)
    if boxed and len(boxed) == 1:
        m = letter.match(boxed[0].strip())
        if m:
            return m.group(1)
    anchors = list(_CHOICE_AFTER_ANSWER_RE.finditer(tail))
    if anchors:
        m = letter.search(tail, anchors[-1].end(), anchors[-1].end() + 60)
        if m:
            return m.group(1)
    m = re.match(rf"\s*\(?([{choices}])\)?(?:[.):\s]|$)", tail)
    if m:
        return m.group(1)
    last = _last_match(letter, tail)
    return last.group(1) if last else None


def extract_answer(text: Any, options: ExtractOptions = ExtractOptions()) -> tuple[str | None, str]:
    """The final answer as written in ``text`` and the method that found it.

    Returns ``(None, "none")`` when nothing can be extracted.
    """
    if not isinstance(text, str):
        # a bare number is its own answer; a list, an object or null holds none we can name
        bare = isinstance(text, (int, float)) and not isinstance(text, bool)
        return (str(text), "value") if bare else (None, "none")
    text = _cut_special_tokens(text)
    last_box = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    boxed = find_boxed(text) if last_box >= 0 else None
    # anchored statements of the answer (only those after the last box can override it);
    # when several occur, the last clean one states the final answer ("The final answer
    # is:" followed by a JSON object with it), prose mentioning "the answer" does not
    start = last_box if boxed else 0
    phrase = _find_phrase_at(text, start)
    anchored = [(pos, value, method, clean) for method, (pos, value, clean) in (
        ("phrase", phrase if phrase else (0, None, False)),
        ("gsm8k", (*(_gsm8k_at(text, start) or (0, None)), True)),
        ("json", (*(_json_answer_at(text, start) or (0, None)), True))) if value]
    clean = [c for c in anchored if c[3]]
    closing = max(clean or ([] if boxed else anchored), key=lambda c: c[0], default=None)
    if boxed:
        # "... = \\boxed{255}. Final Answer: The final answer is $10,455$": a closing
        # statement after the last box wins; boxes before it were intermediate results
        if closing and closing[0] > last_box and not inside_box(text, last_box, closing[0]):
            return closing[1], closing[2]
        return ", ".join(boxed), "boxed"
    if closing:
        return closing[1], closing[2]
    whole = find_whole_expression(text)
    if whole:
        return whole, "whole"
    # the unanchored fallbacks: whichever answer-looking thing comes last in the text
    # (math-verify's order within one priority group)
    candidates = []
    if options.last_math:
        math = _last_math_at(text)
        if math:
            candidates.append((math[0], math[1], "last_math"))
    if options.last_number:
        number = _last_number_at(text)
        if number:
            candidates.append((number[0], number[1], "last_number"))
    if candidates:
        _, value, method = max(candidates, key=lambda c: c[0])
        return value, method
    return None, "none"


_SPECIAL_TOKEN_RE = re.compile(r"<\|(?:im_start|im_end|endoftext|eot_id|end_of_text|start_header_id)\|>|</s>")


def _cut_special_tokens(text: str) -> str:
    """A teacher that runs past its end-of-turn marker starts a new turn: cut it there."""
    if "<|" not in text and "</s>" not in text:
        return text
    m = _SPECIAL_TOKEN_RE.search(text)
    return text[: m.start()] if m else text


def gold_answers(value: Any) -> list[str]:
    """The acceptable gold answers in the forms real datasets use.

    A plain string or number; GSM8K's ``... #### 42``; a MATH ``solution`` with a boxed
    answer; a list of acceptable answers. Returns [] when there is nothing to grade against
    (null, an empty string, a JSON object).
    """
    if value is None:
        return []
    if isinstance(value, bool):
        return [str(value)]
    if isinstance(value, (int, float)):
        return [repr(value) if isinstance(value, float) else str(value)]
    if isinstance(value, (list, tuple)):
        out: list[str] = []
        for item in value:
            out.extend(gold_answers(item))
        return out
    if not isinstance(value, str):
        return []  # an object ({"value": 12}) is no answer we know how to read
    text = value.strip()
    if not text:
        return []
    if "\\boxed" in text or "\\fbox" in text:
        boxed = find_boxed(text)
        if boxed:
            return [", ".join(boxed)]
        return [text]  # an unbalanced box: let the equivalence step call it unparseable
    hashes = re.fullmatch(r"#{1,4}\s*(\S.{0,200})", text)
    if hashes:  # ZeroEval's GSM golds: "# 20"
        return [hashes.group(1).strip()]
    if "####" in text or "\nA:" in text:
        found = find_gsm8k(text)
        if found:
            return [found]
    if len(text) > 200 or "\n" in text:
        # a worked solution without a box: use its stated answer if it has one
        found = find_phrase(text)
        if found:
            return [found]
    return [_unwrap_math(text)]
