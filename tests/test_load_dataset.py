"""tf-fuse's samples in other tools: ``datasets.load_dataset("json", ...)`` loads them as
written (plain, .gz, .zst), Parquet made from them goes back into tf-stats and tf-train, and
TRL's SFTTrainer trains on them (README "Feeding other trainers")."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tf_tools.records import read_jsonl_file

from .conftest import ROOT, read_jsonl, tool, write_jsonl

datasets = pytest.importorskip("datasets")

BUNDLED = ROOT / "examples" / "data" / "qwen25math_math_25x8.jsonl"


def drop_nulls(value):
    """A record as Arrow gives it back, less the nulls its one schema adds for absent keys."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def load(path: Path, cache: Path):
    return datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(cache))


@pytest.fixture(scope="module")
def fused(tmp_path_factory) -> Path:
    """tf-grade | tf-cluster | tf-fuse on the bundled Qwen2.5-Math trajectories, their gold
    given as a number where it is one (as GSM8K-style data sets store it): the samples'
    ``answer`` would mix numbers and strings if tf-fuse copied it as it came."""
    tmp = tmp_path_factory.mktemp("fused")
    trajs = read_jsonl(BUNDLED.read_bytes())
    for t in trajs:
        if t["answer"].isdigit():
            t["answer"] = int(t["answer"])
    src = write_jsonl(tmp / "trajectories.jsonl", trajs)
    graded, problems = tmp / "g.jsonl", tmp / "p.jsonl"
    for cmd in ([tool("tf-grade"), "-q", "--workers", "1", str(src), "-o", str(graded)],
                [tool("tf-cluster"), "-q", "--workers", "1", str(graded), "-o", str(problems)],
                [tool("tf-fuse"), "-q", "--seed", "1", str(problems), "-o", str(tmp / "train.jsonl")],
                [tool("tf-fuse"), "-q", "--seed", "1", str(problems), "-o", str(tmp / "train.jsonl.gz")],
                [tool("tf-fuse"), "-q", "--seed", "1", str(problems), "-o", str(tmp / "train.jsonl.zst")]):
        subprocess.run(cmd, check=True, timeout=300)
    assert {type(r["answer"]) for r in read_jsonl(problems.read_bytes())} == {int, str}
    return tmp / "train.jsonl"


def test_samples_load_in_datasets_unchanged(fused, tmp_path):
    records = list(read_jsonl_file(str(fused)))
    assert any(r["kind"] == "fused" for r in records) and all(isinstance(r["answer"], str) for r in records)
    assert "420" in {r["answer"] for r in records}  # a gold given as the number 420
    ds = load(fused, tmp_path / "cache")
    f = ds.features
    assert f["answer"] == datasets.Value("string")  # not datasets' Json, which reads "12" back as 12
    assert f["messages"] == datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})
    assert f["segments"] == datasets.List({"kind": datasets.Value("string"), "start": datasets.Value("int64"),
                                           "end": datasets.Value("int64")})
    assert set(f["_tf"]) == {"cluster", "fuse"}
    assert ds.num_rows == len(records)
    assert [drop_nulls(row) for row in ds] == [drop_nulls(r) for r in records]
    assert ds["messages"] == [r["messages"] for r in records]  # the chat, exactly
    for suffix in (".gz", ".zst"):  # tf-fuse -o train.jsonl.gz / .zst: one member per write
        other = load(fused.with_name(fused.name + suffix), tmp_path / f"cache{suffix}")
        assert other.features == f and other["messages"] == ds["messages"] and other["_tf"] == ds["_tf"]


def test_parquet_of_the_samples_reads_back_in_tf_stats(fused, tmp_path):
    records = list(read_jsonl_file(str(fused)))
    via_datasets, via_pyarrow = tmp_path / "ds.parquet", tmp_path / "pa.parquet"
    load(fused, tmp_path / "cache").to_parquet(str(via_datasets))
    pq.write_table(pa.Table.from_pylist(records), via_pyarrow)  # one type per column: it converts
    assert [drop_nulls(r) for r in read_jsonl_file(str(via_pyarrow))] == [drop_nulls(r) for r in records]
    summaries = []
    for path in (fused, via_datasets, via_pyarrow):
        result = subprocess.run([tool("tf-stats"), "--json", str(path)], capture_output=True, timeout=120)
        assert result.returncode == 0, result.stderr.decode()
        summaries.append(orjson.loads(result.stdout))
    assert summaries[0]["samples"]["all"]["samples"] == len(records)
    assert summaries[1] == summaries[0] and summaries[2] == summaries[0]


@pytest.mark.slow
def test_tf_train_reads_the_parquet_as_the_jsonl(fused, tiny_model, tmp_path):
    records = list(read_jsonl_file(str(fused)))
    subset = [r for r in records if r["kind"] == "fused"][:4] + [r for r in records if r["kind"] == "rft"][:4]
    jsonl = write_jsonl(tmp_path / "train.jsonl", subset)
    parquet = tmp_path / "train.parquet"
    load(jsonl, tmp_path / "cache").to_parquet(str(parquet))
    manifests = []
    for name, path in (("jsonl", jsonl), ("parquet", parquet)):
        result = subprocess.run([tool("tf-train"), "-q", "-m", str(tiny_model), str(path), "-o", str(tmp_path / name),
                                 "--max-steps", "1", "--global-batch-size", "4", "--micro-batch-size", "4",
                                 "--mask-incorrect"], capture_output=True, timeout=600)
        assert result.returncode == 0, result.stderr.decode()[-2000:]
        manifests.append(orjson.loads(result.stdout.splitlines()[-1]))
    a, b = manifests
    assert a["samples"] + a["skipped"]["too_long"] == len(subset)
    # the same token ids and loss masks (segments included): the same data fingerprint
    assert b["data_fingerprint"] == a["data_fingerprint"]
    assert b["samples_by_kind"] == a["samples_by_kind"] and b["trained_tokens_seen"] == a["trained_tokens_seen"]


@pytest.mark.slow
def test_trl_sft_trainer_trains_on_the_samples_as_loaded(fused, tiny_model, tmp_path):
    trl = pytest.importorskip("trl")
    ds = load(fused, tmp_path / "cache").select(range(6))

    def config(**kw):
        return trl.SFTConfig(output_dir=str(tmp_path / "trl"), max_steps=1, per_device_train_batch_size=2,
                             max_length=512, report_to="none", use_cpu=True, save_strategy="no", **kw)
    trainer = trl.SFTTrainer(model=str(tiny_model), train_dataset=ds, args=config())
    out = trainer.train()
    assert out.global_step == 1 and out.training_loss > 0
    # assistant-only loss needs a chat template with {% generation %} markers; the tiny
    # model's has none and is no family TRL knows a training template for
    with pytest.raises(ValueError, match="generation"):
        trl.SFTTrainer(model=str(tiny_model), train_dataset=ds, args=config(assistant_only_loss=True))
