#!/usr/bin/env python3
"""Convert published model-solution files into tf-tools *trajectory records*.

    python3 examples/convert_trajectories.py FORMAT INPUT... > trajectories.jsonl

Stdlib only (Python >= 3.10). Writes one JSON object per line (docs/design.md section 3,
"Trajectory"), the samples of one problem contiguous and ordered by ``sample_idx``:

    id, problem, answer, sample_idx, completion, finish_reason ("stop"; none of these
    sources says an output was cut), label (the source's own verdict, or null),
    source_pred (the source's own extracted answer, when it has one), a few useful
    source fields (reference_solution, level, ...), and ``source`` = provenance
    {format, file, model, repo, license, id (the source's own id), ...}.

``problem`` and ``answer`` are copied verbatim from the file: a gold answer stays a
string (GSM8K "...\\nA: 18", ZeroEval "# 18", "2,125") or, where a file gives a list, a
list. Grading them is tf-grade's job, not this script's.

Formats and sources (licences as listed in ../shared/data/README.md):

  qwen25math    Qwen2.5-Math eval_rm_maj_example, MATH 100 x 8 (QwenLM/Qwen2.5-Math, MIT)
  gsm8k-openai  GPT-3 6B/175B solutions released with GSM8K (openai/grade-school-math, MIT)
  mathcoder     MathCoder-L/CL GSM8K outputs, one file per model (mathllm/MathCoder, Apache-2.0)
  tora          ToRA GSM8K outputs, one file per model (microsoft/ToRA, MIT)
  nemo          NeMo-Skills test fixture, one file per seed (NVIDIA/NeMo-Skills, Apache-2.0)
  zeroeval      ZeroEval greedy answers, one file per model (yuchenlin/ZeroEval, Apache-2.0)

Several files (or a directory, expanded to its sorted *.jsonl) are merged by problem id:
problems come in the order of the first file (problems only in later files follow), and
file k's samples get sample_idx = offset_k + j, where offset_k is the sum over earlier files
of their samples per problem; for one-sample-per-problem files that is simply the file
index. A problem missing from some file is reported on stderr and keeps its gaps in
sample_idx, so sample_idx always names the same model/seed. ZeroEval files are sorted by
file name, so sample_idx is the model's index in sorted file-name order.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

STOP = "stop"


def _src(fmt, path, model, **extra):
    return {"format": fmt, "file": os.path.basename(path), "model": model, **REPO[fmt], **extra}


REPO = {
    "qwen25math": {"repo": "QwenLM/Qwen2.5-Math", "license": "MIT"},
    "gsm8k-openai": {"repo": "openai/grade-school-math", "license": "MIT"},
    "mathcoder": {"repo": "mathllm/MathCoder", "license": "Apache-2.0"},
    "tora": {"repo": "microsoft/ToRA", "license": "MIT"},
    "nemo": {"repo": "NVIDIA/NeMo-Skills", "license": "Apache-2.0"},
    "zeroeval": {"repo": "yuchenlin/ZeroEval", "license": "Apache-2.0"},
}


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            if line.strip():
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as e:
                    sys.exit(f"{path}:{n + 1}: not JSON: {e}")


def record(pid, problem, answer, completion, label, src, **extra):
    """One trajectory record without sample_idx (added when problems are merged)."""
    rec = {"id": pid, "problem": problem, "answer": answer, "completion": completion,
           "finish_reason": STOP, "label": label}
    rec.update(extra)
    rec["source"] = src
    return rec


# Each reader yields (problem id, [records of that problem in sample order]).

def read_qwen25math(path):
    # `answer` is MATH's own gold (last \boxed{} of `solution`); `gt` is Qwen's normalised
    # copy that `score` was computed against ("4:30p.." for "\text{4:30 p.m.}"): kept too.
    for _, r in read_jsonl(path):
        pid = f"qwen25math/{r['idx']}"
        recs = []
        for j, text in enumerate(r["code"]):
            rm = r["pred_score"][j] if "pred_score" in r else None
            recs.append(record(
                pid, r["question"], r["answer"], text, r["score"][j],
                _src("qwen25math", path, None, id=r["idx"], model_family="Qwen2.5-Math",
                     system=r.get("system")),
                source_pred=r["pred"][j], source_gt=r["gt"], source_rm_score=(
                    rm[0] if isinstance(rm, list) and len(rm) == 1 else rm),
                level=r.get("level"), reference_solution=r.get("solution")))
        yield pid, recs


def read_gsm8k_openai(path):
    # No ids: the lines are the GSM8K test set in order. Gold ends "\nA: N" (not "#### N").
    # Samples are the dict-valued keys in file order: 6b/175b x finetuning/verification.
    for n, r in read_jsonl(path):
        pid = f"gsm8k-test/{n}"
        recs = []
        for key, s in r.items():
            if isinstance(s, dict) and "solution" in s:
                size, _, method = key.partition("_")
                recs.append(record(pid, r["question"], r["ground_truth"], s["solution"],
                                   s.get("is_correct"),
                                   _src("gsm8k-openai", path, f"GPT-3 {size.upper()}",
                                        id=n, method=method, sample_key=key)))
        yield pid, recs


def render_mathcoder(turns):
    """Text turns verbatim, code as ```python, execution results as ```output (ToRA style).

    The source appends its extracted answer as a final `text` turn (equal to its
    `completion` field, e.g. "80{minutes}"); that turn is not model output and is dropped.
    When the run ended on an `execution` turn (no final answer) everything is kept."""
    body = [t for t in turns if t["role"] not in ("system", "user")]
    if body and body[-1]["role"] == "text":
        body = body[:-1]
    fence = {"code": "```python\n{}\n```", "execution": "```output\n{}\n```"}
    return "\n\n".join(fence.get(t["role"], "{}").format(t["content"]) for t in body)


def read_mathcoder(path):
    # ids are 1-based GSM8K test positions ("1".."1319"); files are NOT in id order.
    for _, r in read_jsonl(path):
        sid = r["id"]
        pid = f"gsm8k-test/{int(sid) - 1}" if str(sid).isdigit() else f"mathcoder/{sid}"
        gt = r["ground_truth"]
        yield pid, [record(
            pid, r["question"], gt["answer"], render_mathcoder(r["trajectory"]), r.get("correct"),
            _src("mathcoder", path, r.get("model"), id=sid, run=r.get("run")),
            source_pred=r.get("completion"), reference_solution=gt.get("solution"))]


def read_tora(path):
    # `code` holds the tool-integrated output(s), `pred` ToRA's extracted answers; no
    # per-sample label (the .metrics file only has the mean score).
    model = os.path.basename(path).split("_")[0]
    for _, r in read_jsonl(path):
        pid = f"gsm8k-test/{r['idx']}"
        yield pid, [record(pid, r["question"], r["gt"], text, None,
                           _src("tora", path, model, id=r["idx"]),
                           source_pred=r["pred"][j] if j < len(r["pred"]) else None,
                           reference_solution=r.get("gt_cot"))
                    for j, text in enumerate(r["code"])]


def read_nemo(path):
    m = re.search(r"rs(\d+)", os.path.basename(path))
    for _, r in read_jsonl(path):
        pid = f"math/{r['id']}"
        yield pid, [record(
            pid, r["problem"], r["expected_answer"], r["generation"], r.get("symbolic_correct"),
            _src("nemo", path, None, id=r["id"], seed=int(m.group(1)) if m else None),
            source_pred=r.get("predicted_answer"), reference_solution=r.get("reference_solution"),
            level=r.get("level"), type=r.get("type"))]


def read_zeroeval(path):
    # `output` is kept verbatim (a JSON-ish object, often not strict JSON); the task name
    # (math-l5, gsm) is the parent directory.
    task = os.path.basename(os.path.dirname(os.path.abspath(path)))
    stem = os.path.basename(path).removesuffix(".jsonl")
    for _, r in read_jsonl(path):
        pid = f"{task}/{r['id']}"
        yield pid, [record(
            pid, r["problem"], r["answer"], r["output"], None,
            _src("zeroeval", path, r.get("model") or stem, id=r["id"], task=task,
                 generator=r.get("generator"), configs=r.get("configs")),
            source_pred=r.get("pred_answer_field"))]


READERS = {"qwen25math": read_qwen25math, "gsm8k-openai": read_gsm8k_openai,
           "mathcoder": read_mathcoder, "tora": read_tora, "nemo": read_nemo,
           "zeroeval": read_zeroeval}


def expand(inputs, fmt):
    paths = []
    for p in inputs:
        if os.path.isdir(p):
            paths += sorted(os.path.join(p, f) for f in os.listdir(p) if f.endswith(".jsonl"))
        elif os.path.isfile(p):
            paths.append(p)
        else:
            sys.exit(f"no such file or directory: {p}")
    if fmt == "zeroeval":  # one file per model: sample_idx = index in sorted file names
        paths.sort(key=os.path.basename)
    if not paths:
        sys.exit("no .jsonl input files")
    return paths


def warn(msg):
    print(f"convert_trajectories: {msg}", file=sys.stderr)


def merge(fmt, paths):
    """Read every file, group by id; return [(id, [records with sample_idx])]."""
    groups: dict[str, dict[int, list]] = {}  # id -> file index -> records (insertion order)
    offsets, offset = [], 0
    for fi, path in enumerate(paths):
        offsets.append(offset)
        width = 0
        for pid, recs in READERS[fmt](path):
            per_file = groups.setdefault(pid, {})
            if fi in per_file:
                warn(f"{path}: duplicate id {pid!r} (kept the first)")
                continue
            per_file[fi] = recs
            width = max(width, len(recs))
        offset += width
    out, missing = [], {fi: [] for fi in range(len(paths))}
    for pid, per_file in groups.items():
        recs = []
        for fi in range(len(paths)):
            if fi not in per_file:
                missing[fi].append(pid)
                continue
            for j, rec in enumerate(per_file[fi]):
                recs.append({**rec, "sample_idx": offsets[fi] + j})
        first = recs[0]
        if any(r["problem"] != first["problem"] or r["answer"] != first["answer"] for r in recs):
            warn(f"{pid}: files disagree on problem text or gold (each record keeps its own)")
        out.append((pid, recs))
    for fi, ids in missing.items():
        if ids and len(paths) > 1:
            warn(f"{paths[fi]} lacks {len(ids)} problem(s): {', '.join(ids)}")
    return out


KEY_ORDER = ("id", "problem", "answer", "sample_idx", "completion", "finish_reason", "label")


def main(argv=None):
    d = "../shared/data/trajectories"  # where the project's real data sits, beside the repo
    ap = argparse.ArgumentParser(
        prog="convert_trajectories.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Convert published model-solution files into tf-tools trajectory records "
                    "(JSONL on stdout, samples of a problem contiguous).",
        epilog=f"""examples (one per format):
  python3 examples/convert_trajectories.py qwen25math {d}/qwen25math_math_cot_100_x8.jsonl > q.jsonl
  python3 examples/convert_trajectories.py gsm8k-openai {d}/gsm8k_openai_example_model_solutions.jsonl > g.jsonl
  python3 examples/convert_trajectories.py mathcoder {d}/mathcoder_gsm8k/*.jsonl > mc.jsonl
  python3 examples/convert_trajectories.py tora {d}/tora_gsm8k/ > tora.jsonl
  python3 examples/convert_trajectories.py nemo {d}/nemo_skills_math_train_50x3/output-rs*.jsonl > nemo.jsonl
  python3 examples/convert_trajectories.py zeroeval --limit-problems 50 {d}/zeroeval/math-l5/ > ze.jsonl""")
    ap.add_argument("format", choices=sorted(READERS), metavar="FORMAT",
                    help="one of: " + ", ".join(sorted(READERS)))
    ap.add_argument("inputs", nargs="+", metavar="INPUT",
                    help=".jsonl file(s) or directories (expanded to their sorted *.jsonl)")
    ap.add_argument("--limit-problems", type=int, default=None, metavar="N",
                    help="emit only the first N problems")
    args = ap.parse_args(argv)
    if args.limit_problems is not None and args.limit_problems < 0:
        ap.error("--limit-problems must be >= 0")

    paths = expand(args.inputs, args.format)
    try:
        problems = merge(args.format, paths)
    except (KeyError, IndexError, TypeError, ValueError) as e:
        sys.exit(f"convert_trajectories: input does not look like format {args.format!r}: "
                 f"{type(e).__name__}: {e}")
    if args.limit_problems is not None:
        problems = problems[:args.limit_problems]
    sys.stdout.reconfigure(encoding="utf-8")
    n = 0
    try:
        for _, recs in problems:
            for rec in recs:
                ordered = {k: rec[k] for k in KEY_ORDER}
                ordered.update((k, v) for k, v in rec.items() if k not in ordered)
                sys.stdout.write(json.dumps(ordered, ensure_ascii=False) + "\n")
                n += 1
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. `| head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    warn(f"{n} records, {len(problems)} problems, {len(paths)} file(s)")


if __name__ == "__main__":
    main()
