"""The README and docs say what the commands really do.

- docs/cli.md is exactly every command's ``--help`` (regenerate: python -m tf_tools.cli.reference);
- every ``--flag`` that a README/docs command line gives a tf-* command exists in its --help;
- the README's fenced shell blocks marked ``<!-- readme-test ... -->`` run as written, on the
  tiny test model standing in for models/teacher and models/student (slow: vLLM loads).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tf_tools.cli import reference

from .conftest import BIN, ROOT, read_jsonl

README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "examples" / "slurm" / "README.md"]


def _blocks(text: str) -> list[tuple[str, str]]:
    """(the line before the fence, body) of every fenced code block."""
    out = []
    for m in re.finditer(r"(?m)^(?P<before>[^\n]*)\n```[a-z]*\n(?P<body>.*?)^```", text, re.S):
        out.append((m.group("before"), m.group("body")))
    return out


def _command_lines(text: str) -> list[str]:
    """Shell lines of the fenced blocks, continuation lines joined."""
    lines = []
    for _, body in _blocks(text):
        for line in body.replace("\\\n", " ").splitlines():
            lines.append(line.split(" #")[0])
    return lines


def test_cli_reference_is_the_real_help() -> None:
    on_disk = (ROOT / "docs" / "cli.md").read_text()
    assert on_disk == reference.render(), "docs/cli.md is stale: python -m tf_tools.cli.reference > docs/cli.md"


def test_help_examples_keep_their_lines() -> None:
    """Click's \\b marker kept every command's example block as written (no rewrapping)."""
    for verb in reference.COMMANDS:
        text = reference.help_text(verb)
        examples = text.split("Examples:", 1)[1].split("Arguments:")[0]
        starts = [line.strip().split()[0] for line in examples.strip().splitlines()
                  if line.strip() and not line.startswith("      ")]
        assert starts and all(s in {f"tf-{verb}", "accelerate", "torchrun", "jq", "tf-grade",
                                    "tf-sample", "cat"} or s.startswith("tf-") for s in starts), (verb, starts)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_documented_flags_exist(doc: Path) -> None:
    helps = {f"tf-{v}": reference.help_text(v) for v in reference.COMMANDS}
    checked = 0
    for line in _command_lines(doc.read_text()):
        for segment in re.split(r"\||\$\(|&&|;", line):
            words = segment.split()
            if not words or words[0] not in helps:
                continue
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", segment):
                checked += 1
                assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", helps[words[0]]), (
                    f"{doc.name}: {words[0]} has no {flag} (line: {line.strip()})")
    if doc == README:
        assert checked >= 20


def test_readme_table_flags_exist() -> None:
    """The 'main flags' column of the README's command table."""
    for row in re.findall(r"(?m)^\| `(tf-\w+)` \|.*\| (.*) \|$", README.read_text()):
        verb, flags = row
        text = reference.help_text(verb.removeprefix("tf-"))
        for flag in re.findall(r"`(-{1,2}[a-z][a-z0-9-]*)`", flags):
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text), (verb, flag)


def _marked_blocks() -> list[str]:
    return [body for before, body in _blocks(README.read_text()) if before.startswith("<!-- readme-test")]


def test_readme_has_marked_blocks() -> None:
    assert _marked_blocks(), "no README block is marked <!-- readme-test -->"


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(_marked_blocks())))
def test_readme_block_runs_as_written(index: int, tiny_model: Path, tmp_path: Path) -> None:
    block = _marked_blocks()[index]
    (tmp_path / "models").mkdir()
    for name in ("teacher", "student"):
        (tmp_path / "models" / name).symlink_to(tiny_model)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # what the block promised is there: graded samples, fused training data, a trained model
    graded = read_jsonl((tmp_path / "runs/quick/graded.jsonl").read_text())
    assert len(graded) == 32 * 4 and all("verdict" in r for r in graded)
    train = read_jsonl((tmp_path / "runs/quick/train.jsonl").read_text())
    assert train and {r["kind"] for r in train} <= {"fused", "rft"} and any(r["kind"] == "fused" for r in train)
    rft = read_jsonl((tmp_path / "runs/quick/rft.jsonl").read_text())
    assert rft and all(r["kind"] == "rft" for r in rft)
    assert (tmp_path / "runs/quick/student/final/config.json").exists()
    assert list((tmp_path / "runs/quick/plots").rglob("*.png"))
    assert "pass@" in proc.stdout


def test_the_two_commands_of_the_readme_are_make_targets() -> None:
    """`make demo` runs the demo and `make test` the suite (a Makefile edit once dropped the
    demo target and `make demo` did nothing): a dry run of each names its command."""
    for target, command in (("demo", "examples/demo.sh"), ("test", "-m pytest"),
                            ("lint", "ruff check"), ("bench", "bench/grade.py")):
        out = subprocess.run(["make", "-n", "-C", str(ROOT), target, "STAMP=/dev/null"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and command in out.stdout, (target, out.stdout + out.stderr)
