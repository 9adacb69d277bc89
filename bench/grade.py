"""Speed of tf-grade against math-verify on real trajectories, and agreement with labels.

Builds one workload from the real model outputs in ``../shared/data/trajectories``
(converted with ``examples/convert_trajectories.py``) and grades it both ways in one run:

- baseline: math-verify's ``parse`` + ``verify``, called serially in this process, one record
  at a time. Gold = ``parse(answer)`` with the default extraction (LaTeX + expression); a
  GSM8K gold written as ``... #### 42`` or ``...\\nA: 42`` is given only the part after the
  marker. Prediction = ``parse(completion)``. The import of math-verify is not timed.
- ours: ``tf-grade --workers 2 --last-number`` as a subprocess on the same JSONL file, as a
  user runs it; the time includes its start-up and writing its output. ``--last-number``
  mirrors math-verify's default expression extraction (the GSM8K-OpenAI and MathCoder
  solutions state their answer as a bare number).

Runs alternate (baseline, ours, baseline, ours, ...); the script prints the median
records/s of each and their ratio. It also prints each grader's agreement with the
source's own label on the labelled records (the same subset for both), per source, and the
share of records tf-grade decided without SymPy (``_tf.grade.path`` other than
``math-verify`` or ``timeout``).

Workload (13,502 records; ``--limit`` keeps the same share of each source):
GSM8K-OpenAI GPT-3 6B/175B (5,276, labelled), MathCoder 7B/13B/70B/CL-34B (5,276,
labelled), Qwen2.5-Math MATH 100x8 (800, labelled), NeMo-Skills MATH 50x3 (150, labelled),
ZeroEval MATH level 5, first 50 problems x 40 models (2,000, unlabelled).

``--workload math-l5`` grades the harder workload instead: all 28,840 ZeroEval MATH level-5
trajectories (721 problems x 40 models; no labels, so agreement is with math-verify, and
the records where the two disagree are counted both ways).

    python bench/grade.py [--workload mixed|math-l5] [--limit N] [--repeat R] [--data DIR]
"""

from __future__ import annotations

import argparse
import compileall
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CONVERT = os.path.join(ROOT, "examples", "convert_trajectories.py")

# (name, format, inputs relative to the data dir, extra converter args)
SOURCES = [
    ("gsm8k-openai", "gsm8k-openai", ["gsm8k_openai_example_model_solutions.jsonl"], []),
    ("mathcoder", "mathcoder", ["mathcoder_gsm8k"], []),
    ("qwen25math", "qwen25math", ["qwen25math_math_cot_100_x8.jsonl"], []),
    ("nemo", "nemo", ["nemo_skills_math_train_50x3"], []),
    ("zeroeval-math-l5", "zeroeval", ["zeroeval/math-l5"], ["--limit-problems", "50"]),
]
WORKLOADS = {"mixed": SOURCES,
             "math-l5": [("zeroeval-math-l5", "zeroeval", ["zeroeval/math-l5"], [])]}
GOLD_MARKER_RE = re.compile(r"(?:####|(?:^|\n)A:)\s*(?P<ans>[^\n]*)\s*$")


def convert(data: str, fmt: str, inputs: list[str], extra: list[str]) -> list[dict]:
    paths = [os.path.join(data, p) for p in inputs]
    out = subprocess.run([sys.executable, CONVERT, fmt, *extra, *paths],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def build_workload(data: str, limit: int | None, workload: str = "mixed") -> list[dict]:
    per_source = []
    for name, fmt, inputs, extra in WORKLOADS[workload]:
        recs = convert(data, fmt, inputs, extra)
        for r in recs:
            r["bench_source"] = name
        per_source.append(recs)
    total = sum(len(r) for r in per_source)
    if limit is not None and limit < total:
        per_source = [recs[: -(-len(recs) * limit // total)] for recs in per_source]
    return [r for recs in per_source for r in recs]


def gold_text(answer: object) -> str:
    """What math-verify is given as gold: the part after a GSM8K marker, else the answer."""
    text = answer if isinstance(answer, str) else str(answer)
    m = GOLD_MARKER_RE.search(text)
    return m.group("ans").strip() if m else text


def run_baseline(records: list[dict]) -> tuple[float, list[bool]]:
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    golds: dict[str, object] = {}
    verdicts = []
    t0 = time.perf_counter()
    for rec in records:
        try:
            key = gold_text(rec["answer"])
            gold = golds.get(key)
            if gold is None:  # parse each distinct gold once, as a fair baseline would
                gold = golds[key] = parse(key)
            verdicts.append(bool(verify(gold, parse(rec["completion"]))))
        except Exception:  # noqa: BLE001 - a failure to parse or compare counts as wrong
            verdicts.append(False)
    return time.perf_counter() - t0, verdicts


def tf_grade_command() -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "tf-grade")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "tf_tools.cli.grade"]


def run_ours(path: str, out: str, workers: int) -> tuple[float, list[dict]]:
    cmd = [*tf_grade_command(), "--workers", str(workers), "--last-number", "-q", path, "-o", out]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"tf-grade failed ({proc.returncode}): {proc.stderr[-2000:]}")
    with open(out, encoding="utf-8") as f:
        return seconds, [json.loads(line) for line in f if line.strip()]


def agreement(verdicts: list[bool], records: list[dict], idx: list[int]) -> str:
    if not idx:
        return "n/a"
    hits = sum(verdicts[i] == records[i]["label"] for i in idx)
    return f"{hits}/{len(idx)} = {hits / len(idx):.2%}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "trajectories"))
    ap.add_argument("--limit", type=int, default=None, help="grade about N records (same mix)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each grader (default 3)")
    ap.add_argument("--workers", type=int, default=2, help="tf-grade --workers (default 2)")
    ap.add_argument("--workload", choices=sorted(WORKLOADS), default="mixed",
                    help="mixed: 13,502 real trajectories, mostly GSM8K-style (default); "
                         "math-l5: the 28,840 ZeroEval MATH level-5 trajectories")
    args = ap.parse_args()

    # bytecode for tf_tools, as a regular (non-editable) pip install writes it: an editable
    # checkout under PYTHONDONTWRITEBYTECODE=1 would compile every module on every timed run,
    # while math-verify's and SymPy's site-packages bytecode is there since their install
    compileall.compile_dir(os.path.join(ROOT, "tf_tools"), quiet=1)
    t_build = time.perf_counter()
    records = build_workload(args.data, args.limit, args.workload)
    n = len(records)
    counts: dict[str, int] = {}
    for r in records:
        counts[r["bench_source"]] = counts.get(r["bench_source"], 0) + 1
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other work on the "
          f"machine slows tf-grade's 3 processes more than the serial baseline)")
    print(f"workload: {n} records ({', '.join(f'{k} {v}' for k, v in counts.items())}); "
          f"built in {time.perf_counter() - t_build:.1f} s")

    with tempfile.TemporaryDirectory(prefix="tf-bench-grade-") as tmp:
        path = os.path.join(tmp, "trajectories.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        base_times, our_times = [], []
        base_verdicts: list[bool] = []
        graded: list[dict] = []
        for i in range(args.repeat):
            seconds, base_verdicts = run_baseline(records)
            base_times.append(seconds)
            print(f"run {i + 1}: math-verify {seconds:7.2f} s  {n / seconds:7.0f} rec/s", flush=True)
            seconds, graded = run_ours(path, os.path.join(tmp, "graded.jsonl"), args.workers)
            our_times.append(seconds)
            print(f"run {i + 1}: tf-grade    {seconds:7.2f} s  {n / seconds:7.0f} rec/s", flush=True)

    if len(graded) != n:
        sys.exit(f"tf-grade wrote {len(graded)} records for {n} inputs")
    base_rate = n / statistics.median(base_times)
    our_rate = n / statistics.median(our_times)
    print(f"\nmedian over {args.repeat} run(s): math-verify {base_rate:.0f} rec/s (serial, in-process), "
          f"tf-grade {our_rate:.0f} rec/s (--workers {args.workers}, subprocess incl. start-up)")
    print(f"tf-grade/math-verify speed ratio: {our_rate / base_rate:.2f}x  "
          f"(best run of each: {min(base_times) / min(our_times):.2f}x; "
          f"load average after: {os.getloadavg()[0]:.2f})")

    ours = [bool(g["correct"]) for g in graded]
    no_sympy = [g["_tf"]["grade"]["path"] not in ("math-verify", "timeout") for g in graded]
    labelled = [i for i, r in enumerate(records) if r.get("label") is not None]
    print(f"\nagreement with the source labels ({len(labelled)} labelled records; "
          f"'no SymPy' is over all records of the source):")
    print(f"  {'source':18} {'n':>6}  {'tf-grade':>22}  {'math-verify':>22}  {'no SymPy':>8}")
    for name in [*counts, "all"]:
        every = [i for i in range(n) if name == "all" or records[i]["bench_source"] == name]
        idx = [i for i in every if records[i].get("label") is not None]
        fast_share = sum(no_sympy[i] for i in every) / len(every)
        print(f"  {name:18} {len(idx):6}  {agreement(ours, records, idx):>22}  "
              f"{agreement(base_verdicts, records, idx):>22}  {fast_share:8.1%}")
    same = sum(a == b for a, b in zip(ours, base_verdicts, strict=True))
    print(f"tf-grade and math-verify agree on {same}/{n} = {same / n:.2%} of all records "
          f"(tf-grade correct where math-verify is not: {sum(a and not b for a, b in zip(ours, base_verdicts, strict=True))}; "
          f"the other way: {sum(b and not a for a, b in zip(ours, base_verdicts, strict=True))})")

    paths: dict[str, int] = {}
    for g in graded:
        p = g["_tf"]["grade"]["path"]
        paths[p] = paths.get(p, 0) + 1
    fast = n - paths.get("math-verify", 0) - paths.get("timeout", 0)
    print(f"decided without SymPy: {fast}/{n} = {fast / n:.1%}  "
          f"(paths: {', '.join(f'{k} {v}' for k, v in sorted(paths.items(), key=lambda kv: -kv[1]))})")


if __name__ == "__main__":
    main()
