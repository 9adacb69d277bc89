"""LoRA vs full fine-tuning of SmolLM2-135M-Instruct on the demo's TrajFusion samples, side by side.

    python bench/lora.py [--samples runs/demo/train.trajfusion.jsonl] [--rounds 2]
                         [--epochs 3] [--lora-r 16] [--full-lr 5e-5] [--lora-lr 5e-4]

The samples are what ``make demo`` writes (runs/demo/train.trajfusion.jsonl: SmolLM2's own
fused attempts at the bundled word problems); when the file is missing the script builds it
with the demo's own Makefile target (vLLM on the CPU, a few minutes). Each round runs
``tf-train`` as a subprocess twice, full and LoRA (``--lora-r``, adapters on every attention
and MLP projection, ``--merge``), in alternating order, with the demo's settings (packing,
batch 2, --max-length 512) otherwise; LoRA gets a 10x learning rate, as is usual for it.

Printed per run: trainable and total parameters (from the manifest), useful tokens/s
(median over rounds), first and final training loss, the peak resident memory of the
training process (on a GPU the manifest's peak_gpu_memory_gib says more), and the size of
what is saved (final/ for full, the adapter for LoRA). The ratio LoRA / full of tokens/s.
On a 2-core CPU LoRA saves the optimizer's work and memory, not the forward/backward
through the frozen weights, so expect a modest speed-up; the point of the table is the
trainable share and the loss each reaches in the same steps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def demo_samples(path: Path) -> Path:
    if path.exists():
        return path
    run = path.parent
    print(f"{path} is missing: building it with the demo's Makefile (vLLM on the CPU)", flush=True)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    subprocess.run(["make", "--no-print-directory", "-C", str(ROOT / "examples"), str(path),
                    f"RUN={run}"], check=True, env=env)
    return path


def student() -> Path:
    sys.path.insert(0, str(ROOT))
    from tf_tools.models import export_smollm2

    cache = Path(os.environ.get("TF_TOOLS_CACHE", Path.home() / ".cache" / "tf-tools"))
    return export_smollm2(cache / "smollm2-135m-instruct")


def train(model: Path, samples: Path, out: Path, args: argparse.Namespace, lora: bool) -> dict:
    cmd = [str(BIN / "tf-train"), "-m", str(model), str(samples), "-o", str(out), "--overwrite",
           "--epochs", str(args.epochs), "--global-batch-size", "2", "--micro-batch-size", "2",
           "--max-length", "512", "--packing", "--warmup-ratio", "0.1", "--seed", "0", "-q",
           "--save-steps", "1000",  # no checkpoints: not what is compared
           "--lr", str(args.lora_lr if lora else args.full_lr)]
    if lora:
        cmd += ["--lora-r", str(args.lora_r), "--merge"]
    with open(out.with_suffix(".out"), "w") as stdout, open(out.with_suffix(".err"), "w") as stderr:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr,
                                env={**os.environ, "HF_HUB_OFFLINE": "1"})
        _pid, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"tf-train failed ({proc.returncode}): {out.with_suffix('.err').read_text()[-2000:]}")
    peak = usage.ru_maxrss  # KiB
    stdout_text = out.with_suffix(".out").read_text()
    manifest = json.loads(stdout_text.splitlines()[-1])
    losses = [json.loads(line)["loss"] for line in (out / "loss.jsonl").read_text().splitlines()]
    saved = out / ("adapter" if lora else "final")
    return {"manifest": manifest, "losses": losses, "peak_rss_mib": peak / 1024,
            "saved_mib": sum(f.stat().st_size for f in saved.rglob("*") if f.is_file()) / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=Path, default=ROOT / "runs" / "demo" / "train.trajfusion.jsonl")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--full-lr", type=float, default=5e-5)
    ap.add_argument("--lora-lr", type=float, default=5e-4)
    args = ap.parse_args()
    samples, model = demo_samples(args.samples), student()
    n = sum(1 for line in samples.read_text().splitlines() if line.strip())
    print(f"{n} samples from {samples}; SmolLM2-135M-Instruct; {args.epochs} epochs; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    runs: dict[str, list[dict]] = {"full": [], "lora": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = ["full", "lora"] if r % 2 == 0 else ["lora", "full"]
            for name in order:
                got = train(model, samples, Path(tmp) / f"{name}{r}", args, name == "lora")
                runs[name].append(got)
                m = got["manifest"]
                print(f"round {r + 1}: {name:4}  {m['tokens_per_s']:8.1f} tok/s  loss "
                      f"{got['losses'][0]:.4f} -> {got['losses'][-1]:.4f}", flush=True)
    print()
    print(f"{'run':6} {'trainable':>12} {'of':>12} {'share':>7} {'tok/s':>8} {'first':>7} "
          f"{'final':>7} {'peak RSS':>9} {'saved':>9}")
    rate = {}
    for name, got in runs.items():
        m = got[0]["manifest"]
        rate[name] = statistics.median(g["manifest"]["tokens_per_s"] for g in got)
        final = statistics.median(g["losses"][-1] for g in got)
        peak = statistics.median(g["peak_rss_mib"] for g in got)
        print(f"{name:6} {m['trainable_parameters']:>12,} {m['parameters']:>12,} "
              f"{m['trainable_parameters'] / m['parameters']:>7.2%} {rate[name]:>8.1f} "
              f"{got[0]['losses'][0]:>7.4f} {final:>7.4f} {peak:>6.0f} MiB {got[0]['saved_mib']:>5.1f} MiB")
    print(f"\nLoRA / full useful tokens/s: {rate['lora'] / rate['full']:.2f}x (median of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
