"""Notations the general paths misread, each decided (or left alone) by an exact, cheap rule.

- choice letters: ``choice_letter`` reads a bare choice (``C``, ``(C)``, ``C.``, ``(C) Cecile``,
  ``C is correct``) and nothing else: ``3C``, ``C'``, ``\\hat{C}``, ``C + 1`` and ``E = mc^2``
  are no choices;
- decorated names: ``P'``, ``\\bar{x}``, ``\\hat{A}``, ``v_0``, ``x^2`` are not ``P``, ``x``, ``A``,
  ``v``: a name that equals another once the decorations are taken off, but not before, is a
  different name (``decorations``); math-verify (0.7) reads ``P'`` as ``p``;
- times of day: ``14:05`` = ``14:05:00`` = ``2:05 PM`` = ``02:05 \\text{p.m.}`` (``time_of_day``);
- digit groups other than thousands: ``12,34,567`` and ``1,\\!23,\\!45,\\!678`` (Indian lakh and
  crore grouping) as integers (``grouped_integer``); spaces between digits that are no
  grouping (``2 3/4``) are kept (``squeeze``), so they never run together into ``23/4``;
- one-row and one-column matrices as the list of their entries (``vector_entries``).

Every function here is linear in its input (the fast paths run without a clock).
"""

from __future__ import annotations

import re

# ----------------------------------------------------------------------------- spaces

# a run of digit groups separated by blanks, from the start of a digit run (no backtracking
# into a run: linear)
_GAP_RE = re.compile(r"(?<!\d)\d+(?:[ \t]+\d+)+")
_GROUPED_RE = re.compile(r"\d{1,3}(?: \d{3})+|\d{1,2}(?: \d{2})* \d{3}")


def squeeze(text: str) -> str:
    """Whitespace taken out, except between digits it separates that are no digit grouping:
    ``1 234 567`` -> ``1234567``, ``12 34 567`` -> ``1234567``, ``2 3/4`` stays ``2 3/4``."""
    if " " not in text and "\t" not in text:
        return text
    out: list[str] = []
    last = 0
    for m in _GAP_RE.finditer(text):
        out.append(text[last:m.start()].replace(" ", "").replace("\t", ""))
        token = " ".join(m.group(0).split())
        out.append(token.replace(" ", "") if _GROUPED_RE.fullmatch(token) else token)
        last = m.end()
    out.append(text[last:].replace(" ", "").replace("\t", ""))
    return "".join(out)


_INDIAN_RE = re.compile(r"([+-]?)(\d{1,2}(?:,\d{2})+,\d{3})")


def grouped_integer(text: str) -> int | None:
    """``12,34,567`` -> 1234567 (groups of two before the last three); None otherwise.

    Only ever compared against a single number: ``12,34,567`` against ``12, 34, 567`` stays
    a list."""
    m = _INDIAN_RE.fullmatch(text) if len(text) <= 4000 else None  # int() of 4300+ digits raises
    if not m:
        return None
    value = int(m.group(2).replace(",", ""))
    return -value if m.group(1) == "-" else value


# ----------------------------------------------------------------------------- choices

_CHOICE_PAREN_RE = re.compile(r"\(([A-Ea-e])\)(?:\s+\S.*|[.:]?)", re.DOTALL)
_CHOICE_MARK_RE = re.compile(r"([A-E])(?:[.:)](?:\s+\S.*)?)?", re.DOTALL)
_CHOICE_WORDS_RE = re.compile(r"([A-E])\s+([A-Za-z][A-Za-z ,']*)")
_STRAY_CHOICE_RE = re.compile(r"(?<![A-Za-z])[A-E](?![A-Za-z])")


def choice_letter(text: str) -> str | None:
    """The letter of a bare multiple-choice answer (normalised text), upper case; None when
    the text is anything else."""
    if len(text) > 300:
        return None
    m = _CHOICE_PAREN_RE.fullmatch(text) or _CHOICE_MARK_RE.fullmatch(text)
    if m:
        return m.group(1).upper()
    m = _CHOICE_WORDS_RE.fullmatch(text)
    if m and not _STRAY_CHOICE_RE.search(m.group(2)):  # "C is correct", not "A and B"
        return m.group(1)
    return None


# ----------------------------------------------------------------------------- decorations

_PRIME_RE = re.compile(r"\^\s*\{\s*((?:\\prime\s*)+)\}|\^\s*\\prime|\\prime")
_SCRIPT_BRACE_RE = re.compile(r"([_^])\{([A-Za-z0-9])\}")
_ACCENTS = ("bar|hat|tilde|vec|overline|widehat|widetilde|dot|ddot|check|breve|acute|grave|"
            "underline|overrightarrow|overleftrightarrow")
_ACCENT_RE = re.compile(rf"\\(?:{_ACCENTS})\s*(?:\{{([^{{}}]*)\}}|([A-Za-z]))")
_ACCENT_BARE_RE = re.compile(rf"\\({_ACCENTS})\s+([A-Za-z])")
# a sub/superscript of a letter (a name's index or power), not of a number or a bracket;
# ^1 is no decoration (x^1 is x)
_SCRIPT_RE = re.compile(r"(?<=[A-Za-z}'])(?:_(?:\{[^{}]*\}|[A-Za-z0-9])|\^(?!\{?1\}?(?![0-9]))(?:\{[^{}]*\}|[A-Za-z0-9]))")
_GREEK = ("alpha|beta|gamma|delta|epsilon|varepsilon|zeta|eta|theta|vartheta|iota|kappa|lambda|mu|"
          "nu|xi|pi|varpi|rho|varrho|sigma|varsigma|tau|upsilon|phi|varphi|chi|psi|omega|Gamma|"
          "Delta|Theta|Lambda|Xi|Pi|Sigma|Upsilon|Phi|Psi|Omega|ell")
# one name: a letter or a Greek letter (x_1 x_2 against x_2 x_1 is a product, not a name)
_NAME_RE = re.compile(rf"[A-Za-z]|\\(?:{_GREEK})")
# a point or segment name (AB, A'B'): its letters take primes and accents, no indices
_POINTS_RE = re.compile(r"[A-Z]{2,4}")


def _canonical(text: str) -> str:
    text = _PRIME_RE.sub(lambda m: "'" * max(1, (m.group(1) or "").count("\\prime")), text)
    text = _ACCENT_BARE_RE.sub(r"\\\1{\2}", text)  # \bar x -> \bar{x}
    return _SCRIPT_BRACE_RE.sub(r"\1\2", text).replace(" ", "")


def decorations(gold: str, pred: str) -> bool | None:
    """True when the two (normalised) answers are one name written alike (``x^{2}``,
    ``x^2``; ``P^\\prime``, ``P'``); False when they are one name under different decorations
    (``P`` / ``P'``, ``x`` / ``\\bar{x}``, ``v_0`` / ``v``, ``x^2`` / ``x_2``, ``AB`` /
    ``A'B'``); None when this rule does not apply (not a single name)."""
    if len(gold) > 200 or len(pred) > 200:
        # past the bound only a letter and its primes: math-verify drops primes, and called
        # P followed by 500,000 of them equal to P
        mg, mp = _PRIMED_RE.fullmatch(gold), _PRIMED_RE.fullmatch(pred)
        if mg and mp and mg.group(1) == mp.group(1):
            return len(mg.group(2)) == len(mp.group(2))
        return None
    if not any(c in gold + pred for c in "'_^\\"):
        return None
    cg, cp = _canonical(gold), _canonical(pred)
    bare_g, bare_p = _undecorated(cg), _undecorated(cp)
    if bare_g != bare_p:
        return None
    if _NAME_RE.fullmatch(bare_g):
        return cg == cp
    if _POINTS_RE.fullmatch(bare_g) and not any(c in cg + cp for c in "_^"):
        return cg == cp
    return None


_PRIMED_RE = re.compile(r"([A-Za-z])('*)")


def _undecorated(text: str) -> str:
    prev = None
    while prev != text:  # \hat{\bar{x}}: a few rounds at most (the length is bounded above)
        prev = text
        text = _ACCENT_RE.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), text)
    text = _SCRIPT_RE.sub("", text)
    return text.replace("'", "")


# ----------------------------------------------------------------------------- times of day

_TIME_RE = re.compile(
    r"(\d{1,2}):([0-5]\d)(?::([0-5]\d))?\s*(?:([AaPp])\.?\s*[Mm]\.?)?"
)


def time_of_day(text: str) -> int | None:
    """Seconds after midnight of ``14:05``, ``14:05:00``, ``2:05 PM``, ``02:05 p.m``; None
    for anything else (``3:4`` is a ratio, ``25:00`` no time)."""
    m = _TIME_RE.fullmatch(text) if len(text) <= 20 else None
    if not m:
        return None
    hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    meridiem = (m.group(4) or "").lower()
    if meridiem:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem == "p" else 0)
    elif hour > 23:
        return None
    return hour * 3600 + minute * 60 + second


# ----------------------------------------------------------------------------- vectors

_MATRIX_RE = re.compile(
    r"\\begin\{(pmatrix|bmatrix|Bmatrix|matrix|smallmatrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}",
    re.DOTALL,
)
_ROW_SEP_RE = re.compile(r"\\\\(?:\[[^\]]*\])?|\\cr\b")


def vector_entries(text: str) -> list[str] | None:
    """The entries of a one-row or one-column matrix, in order; None for anything else
    (a larger matrix, a determinant ``vmatrix``, no matrix)."""
    if len(text) > 4000:
        return None
    m = _MATRIX_RE.fullmatch(text.strip())
    if not m or "\\begin" in m.group(2):
        return None
    rows = [r.strip() for r in _ROW_SEP_RE.split(m.group(2))]
    while rows and not rows[-1]:
        rows.pop()
    cells = [[c.strip() for c in r.split("&")] for r in rows]
    if not cells or any(not c for row in cells for c in row):
        return None
    if len(cells) == 1:
        return cells[0]
    if all(len(row) == 1 for row in cells):
        return [row[0] for row in cells]
    return None


_BRACKETS = {"(": ")", "[": "]", "\\{": "\\}", "\\langle": "\\rangle"}


def list_entries(text: str, split: object) -> list[str] | None:
    """The items of ``(4, 5)``, ``[3, 0.25]``, ``\\langle 1, 2\\rangle`` or ``4, 5``; None
    for one item. ``split`` is the caller's top-level splitter (brackets respected)."""
    body = text.strip()
    for left, right in _BRACKETS.items():
        if body.startswith(left) and body.endswith(right):
            body = body[len(left):len(body) - len(right)]
            break
    items = split(body)  # type: ignore[operator]
    return items if len(items) > 1 and all(items) else None
