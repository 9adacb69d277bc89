"""Rebuild examples/data/word_problems_{train,eval}.jsonl, the demo's problems.

Easy word problems a 135M-parameter model sometimes solves: every number in the text at
most 10, an integer answer from 1 to 20, from MAWPS (singleop, addsub, multiarith,
singleeq) and SVAMP as shipped with the Qwen2.5-Math evaluation suite (MIT). Shuffled with
a fixed seed; the first 32 train, the next 32 evaluate.

    python examples/make_word_problems.py [../shared/data/problems/qwen25math_eval]
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _number(x: object) -> str:
    v = float(x)  # type: ignore[arg-type]
    return str(int(v)) if v == int(v) else str(v)


def _easy(text: str, answer: object) -> bool:
    nums = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", text)]
    a = float(answer)  # type: ignore[arg-type]
    return bool(nums) and max(nums) <= 10 and a == int(a) and 0 < a <= 20


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent.parent / "shared/data/problems/qwen25math_eval"
    rows: list[dict] = []
    seen: set[str] = set()
    for part in ("singleop", "addsub", "multiarith", "singleeq"):
        for i, line in enumerate((root / "mawps" / f"{part}.jsonl").read_text().splitlines()):
            r = json.loads(line)
            if _easy(r["input"], r["target"]) and r["input"] not in seen:
                seen.add(r["input"])
                rows.append({"id": f"mawps-{part}/{i}", "problem": r["input"], "answer": _number(r["target"]),
                             "source": f"mawps-{part}"})
    for line in (root / "svamp" / "test.jsonl").read_text().splitlines():
        r = json.loads(line)
        text = r["Body"].rstrip(". ") + ". " + r["Question"]
        if _easy(text, r["Answer"]):
            rows.append({"id": f"svamp/{r['ID']}", "problem": text, "answer": _number(r["Answer"]), "source": "svamp"})
    random.Random(2026).shuffle(rows)
    for name, part in (("train", rows[:32]), ("eval", rows[32:64])):
        out = HERE / "data" / f"word_problems_{name}.jsonl"
        out.write_text("".join(json.dumps(r) + "\n" for r in part))
        print(f"{out}: {len(part)} problems")


if __name__ == "__main__":
    main()
