"""The student is trained under exactly the prompt it is evaluated with (issue 11 §1).

For one problem, the token ids of the prompt part of the training sample, as tf-train
tokenises it, must equal the prompt ids tf-sample sends for that problem with the same
flags. The trajectories are real tf-sample output (their `_tf.sample` is what tf-fuse reads);
only their completions are replaced by a right and a wrong answer so that tf-fuse has
something to fuse.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest

from .conftest import read_jsonl, tool, write_jsonl

PROBLEM = {"id": "p1", "problem": "Tom has 5 apples and buys 7 more. How many apples now?",
           "answer": "12"}
RIGHT = "He has 5 + 7 = 12 apples. The answer is \\boxed{12}."
WRONG = "He has 5 + 2 = 7 apples. The answer is \\boxed{7}."


def _run(args: list[str], data: bytes | None = None) -> bytes:
    done = subprocess.run(args, input=data, capture_output=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def _training_sample(model: Path, tmp_path: Path, sample_flags: list[str],
                     fuse_flags: list[str]) -> tuple[dict, list[dict]]:
    """tf-sample (hf engine) -> right/wrong completions -> tf-grade | tf-cluster | tf-fuse."""
    problems = write_jsonl(tmp_path / "problems.jsonl", [PROBLEM])
    trajs = read_jsonl(_run([tool("tf-sample"), "-m", str(model), "--engine", "hf", "-n", "4",
                             "--max-tokens", "4", "-q", *sample_flags, str(problems)]))
    assert len(trajs) == 4
    for t in trajs:
        t["completion"] = RIGHT if t["sample_idx"] == 0 else WRONG
        t["finish_reason"] = "stop"
    data = b"".join(orjson.dumps(t) + b"\n" for t in trajs)
    graded = _run([tool("tf-grade"), "-q"], data)
    clusters = _run([tool("tf-cluster"), "-q"], graded)
    samples = read_jsonl(_run([tool("tf-fuse"), "-q", "--tokenizer", str(model), *fuse_flags],
                              clusters))
    assert len(samples) == 1 and samples[0]["kind"] == "fused"
    return samples[0], trajs


def _prompt_ids_trained(model: Path, sample: dict) -> list[int]:
    """The ids before the first trained token, as tf-train tokenises the sample."""
    from tf_tools.training.data import DataConfig, tokenize_record
    from tf_tools.training.setup import load_tokenizer

    s = tokenize_record(sample, load_tokenizer(str(model)), DataConfig())
    first = int(s.trained.argmax())
    assert s.trained[first]
    return [int(i) for i in s.input_ids[:first]]


def _prompt_ids_sampled(model: Path, system: str | None) -> list[int]:
    """The ids tf-sample sends: its PromptBuilder over the engine's tokenizer."""
    from transformers import AutoTokenizer

    from tf_tools.sampling.prompts import PromptBuilder

    return PromptBuilder(AutoTokenizer.from_pretrained(model), system).token_ids(PROBLEM["problem"])


CASES = [  # tf-sample flags, the system prompt tf-sample uses, tf-fuse flags
    ([], "default", []),
    (["--system", "Solve it. Box the result."], "Solve it. Box the result.", []),
    (["--system", ""], None, []),
]


def _check(model: Path, tmp_path: Path, sample_flags: list[str], system: str | None,
           fuse_flags: list[str]) -> dict:
    from tf_tools.schema import DEFAULT_SYSTEM

    system = DEFAULT_SYSTEM if system == "default" else system
    sample, trajs = _training_sample(model, tmp_path, sample_flags, fuse_flags)
    sent = _prompt_ids_sampled(model, system)
    assert len(sent) == trajs[0]["_tf"]["sample"]["n_prompt_tokens"]
    assert _prompt_ids_trained(model, sample) == sent
    return sample


@pytest.mark.parametrize(("sample_flags", "system", "fuse_flags"), CASES)
def test_training_prompt_ids_equal_the_sampled_prompt_ids_tiny(tiny_model, tmp_path,
                                                               sample_flags, system, fuse_flags):
    sample = _check(tiny_model, tmp_path, sample_flags, system, fuse_flags)
    roles = [m["role"] for m in sample["messages"]]
    assert roles == (["user", "assistant"] if system is None else ["system", "user", "assistant"])


@pytest.mark.slow
@pytest.mark.parametrize(("sample_flags", "system", "fuse_flags"), CASES)
def test_training_prompt_ids_equal_the_sampled_prompt_ids_smollm2(smollm2, tmp_path,
                                                                  sample_flags, system, fuse_flags):
    """SmolLM2's template injects its own system prompt when the first message is not a
    system message: with --system '' at both ends, tf-sample and tf-train see that same
    injected prompt."""
    _check(smollm2, tmp_path, sample_flags, system, fuse_flags)


@pytest.mark.slow
def test_smollm2_sample_without_the_system_prompt_is_a_different_prompt(smollm2, tmp_path):
    """The defect this guards against: a sample without the teacher's system prompt is
    trained under SmolLM2's injected default ("You are a helpful AI assistant named
    SmolLM..."), not under the prompt tf-sample evaluates with."""
    from tf_tools.schema import DEFAULT_SYSTEM

    sample, _ = _training_sample(smollm2, tmp_path, [], ["--system", ""])
    trained = _prompt_ids_trained(smollm2, sample)
    assert trained != _prompt_ids_sampled(smollm2, DEFAULT_SYSTEM)
    from transformers import AutoTokenizer

    text = AutoTokenizer.from_pretrained(smollm2).decode(trained)
    assert "SmolLM" in text and DEFAULT_SYSTEM not in text


def test_fuse_override_and_trajectories_from_elsewhere():
    """--system TEXT overrides, '' means none; trajectories without _tf.sample (converted
    from elsewhere) get tf-sample's default."""
    from tf_tools.fusion import FuseConfig, fuse_records
    from tf_tools.schema import DEFAULT_SYSTEM

    def summary(tf: dict | None) -> dict:
        t = {"sample_idx": 0, "completion": RIGHT, "verdict": "correct", "finish_reason": "stop"}
        if tf is not None:
            t["_tf"] = tf
        return {**PROBLEM, "n": 1, "n_correct": 1, "error_rate": 0.0, "entropy": 0.0,
                "correct": [t], "clusters": []}

    def system_of(rec: dict, **cfg: object) -> str | None:
        (out,) = fuse_records([rec], FuseConfig(**cfg))  # type: ignore[arg-type]
        first = out["messages"][0]
        return first["content"] if first["role"] == "system" else None

    assert system_of(summary(None)) == DEFAULT_SYSTEM
    assert system_of(summary({"sample": {"system": "S."}})) == "S."
    assert system_of(summary({"sample": {"system": None}})) is None
    assert system_of(summary({"sample": {"system": "S."}}), system="T.") == "T."
    assert system_of(summary({"sample": {"system": "S."}}), system="") is None
