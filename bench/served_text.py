"""Does a served sample equal the offline engine's at temperature > 0?

The same problems, seeds and sampling options through these paths, SmolLM2-135M-Instruct on
the CPU, all in ``--dtype`` (default float32):

1. ``tf-sample --engine vllm`` offline (in-process engine, as tf-sample runs it on a CPU);
2. the same, with ``VLLM_ENABLE_V1_MULTIPROCESSING=1``: the vLLM server's process layout;
3. ``tf-sample --engine openai`` against a vLLM OpenAI server on 127.0.0.1 (tests/vllm_server.py),
   twice;
4. for contrast, offline with ``--dtype auto``: the model's bfloat16 on a CPU with
   AVX512-BF16 (tf-sample's default there), float32 without.

Prints how many completions are identical between the paths, and the common prefix (in
characters) of each pair where they are not.

    python bench/served_text.py [--problems 8] [-n 4] [--max-tokens 96] [--temperature 0.7] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sample import load_problems  # noqa: E402


def tf_sample(args: list[str], env: dict[str, str] | None = None) -> list[dict]:
    tool = str(Path(sys.executable).parent / "tf-sample")
    done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=1800,
                          env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise SystemExit(f"tf-sample failed ({done.returncode}): {done.stderr[-2000:]}")
    return [json.loads(line) for line in done.stdout.splitlines()]


def compare(label: str, a: list[dict], b: list[dict]) -> None:
    same = sum(x["completion"] == y["completion"] for x, y in zip(a, b, strict=True))
    parts = sorted(len(os.path.commonprefix([x["completion"], y["completion"]]))
                   for x, y in zip(a, b, strict=True) if x["completion"] != y["completion"])
    print(f"{label:44} {same:3} of {len(a)} identical; the others part after {parts} characters", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", type=int, default=8)
    ap.add_argument("-n", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--dtype", default="float32", help="of every path but the contrast (4)")
    args = ap.parse_args()

    from tests.vllm_server import vllm_server
    from tf_tools.models import export_smollm2

    cache = Path(os.environ.get("TF_TOOLS_CACHE", Path.home() / ".cache" / "tf-tools"))
    model = str(export_smollm2(cache / "smollm2-135m-instruct"))
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "problems.jsonl"
        src.write_text("".join(json.dumps(p) + "\n" for p in load_problems(args.problems)))
        flags = ["-n", str(args.n), "--max-tokens", str(args.max_tokens), "--temperature",
                 str(args.temperature), "--seed", "0", "-q", str(src)]
        print(f"{args.problems} problems x {args.n} samples, temperature {args.temperature}, "
              f"at most {args.max_tokens} tokens, seed 0, {args.dtype}", flush=True)
        offline = tf_sample(["--engine", "vllm", "-m", model, "--dtype", args.dtype, *flags])
        layout = tf_sample(["--engine", "vllm", "-m", model, "--dtype", args.dtype, *flags],
                           {"VLLM_ENABLE_V1_MULTIPROCESSING": "1"})
        auto = tf_sample(["--engine", "vllm", "-m", model, "--dtype", "auto", *flags])
        with vllm_server(model, Path(tmp) / "server.log", args=("--dtype", args.dtype)) as url:
            served = [tf_sample(["--engine", "openai", "--base-url", url, "-m", "teacher", *flags])
                      for _ in range(2)]
    seeds = [r["_tf"]["sample"]["seed"] for r in offline] == [r["_tf"]["sample"]["seed"] for r in served[0]]
    tokens = ([r["_tf"]["sample"]["n_prompt_tokens"] for r in offline]
              == [r["_tf"]["sample"]["n_prompt_tokens"] for r in served[0]])
    print(f"same seeds: {seeds}; same prompt token counts: {tokens}")
    compare("served run 1 vs served run 2", served[0], served[1])
    compare("offline vs offline in the server's layout", offline, layout)
    compare("served vs offline", served[0], offline)
    compare("served vs offline in the server's layout", served[0], layout)
    compare("served vs offline --dtype auto (contrast)", served[0], auto)


if __name__ == "__main__":
    main()
