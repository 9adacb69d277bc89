#!/usr/bin/env python3
"""Data preparation for the RFT-vs-TrajFusion measurement (examples/fidelity/Makefile).

    prepare.py split FRACTION SALT TRAIN_OUT HELDOUT_OUT < records.jsonl
    prepare.py take N SALT < records.jsonl            # N records chosen by the same hash
    prepare.py problems < svamp-or-asdiv.jsonl        # Qwen2.5-Math eval files -> problems

``split`` sends every record of a problem id to the held-out file when the stable hash of
(SALT, id) falls below FRACTION, else to the train file: records stay in input order, and a
problem never lands on both sides. ``take`` keeps the N problem ids with the smallest hash
(the same N whatever the file's order or length). ``problems`` maps the Qwen2.5-Math
evaluation suite's fields (or a trajectory file's, one record per id) onto tf-sample's problem records (``id``, ``problem``,
``answer``): SVAMP's Body + Question, ASDiv's body + question, and so on.

Stdlib only: it runs before (or without) the project's virtual environment.
"""
from __future__ import annotations

import hashlib
import json
import sys


def unit_hash(salt: str, pid: object) -> float:
    """A stable number in [0, 1) for (salt, id): blake2b, not Python's salted hash()."""
    digest = hashlib.blake2b(f"{salt}:{pid}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2 ** 64


def split(fraction: float, salt: str, train_path: str, heldout_path: str) -> None:
    with open(train_path, "w") as train, open(heldout_path, "w") as heldout:
        for line in sys.stdin:
            if line.strip():
                rec = json.loads(line)
                (heldout if unit_hash(salt, rec["id"]) < fraction else train).write(line)


def take(n: int, salt: str) -> None:
    lines = [line for line in sys.stdin if line.strip()]
    ids: dict[object, float] = {}
    for line in lines:
        pid = json.loads(line)["id"]
        ids.setdefault(pid, unit_hash(salt, pid))
    keep = set(sorted(ids, key=ids.__getitem__)[:n])
    sys.stdout.writelines(line for line in lines if json.loads(line)["id"] in keep)


def problems(prefix: str) -> None:
    seen: set[object] = set()
    for i, line in enumerate(sys.stdin):
        if not line.strip():
            continue
        rec = json.loads(line)
        body = rec.get("Body") or rec.get("body") or ""
        question = rec.get("Question") or rec.get("question") or rec.get("problem") or ""
        text = f"{body.strip()} {question.strip()}".strip() if body else question.strip()
        answer = rec.get("Answer", rec.get("answer"))
        if isinstance(answer, float) and answer.is_integer():
            answer = int(answer)
        pid = rec.get("ID") or rec.get("id") or rec.get("idx", i)
        if pid in seen:  # trajectories: one problem record per id
            continue
        seen.add(pid)
        print(json.dumps({"id": f"{prefix}{pid}", "problem": text, "answer": str(answer)},
                         ensure_ascii=False))


def main(argv: list[str]) -> None:
    if argv[:1] == ["split"] and len(argv) == 5:
        split(float(argv[1]), argv[2], argv[3], argv[4])
    elif argv[:1] == ["take"] and len(argv) == 3:
        take(int(argv[1]), argv[2])
    elif argv[:1] == ["problems"] and len(argv) in (1, 2):
        problems(argv[1] if len(argv) == 2 else "")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
