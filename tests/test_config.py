"""--config FILE: options from a TOML or YAML file for every command; the command line wins.

Real commands on real records: tf-grade on a trajectory whose answer only --last-number
finds, tf-fuse on the DESIGN §4 worked example (tests/test_cluster.py's golden summary).
"""

from __future__ import annotations

import importlib
import re
from functools import cache

import orjson
import pytest
import typer
from typer.testing import CliRunner

from tf_tools.cli.fuse import app as fuse_app
from tf_tools.cli.grade import app as grade_app

from .conftest import ROOT, read_jsonl
from .test_cluster import golden_summary

runner = CliRunner()
COMMANDS = ("sample", "grade", "cluster", "fuse", "train", "stats")
# the answer is in the text, unboxed: graded correct only with --last-number
TRAJECTORY = {"id": "a", "answer": "7", "sample_idx": 0,
              "completion": "There are 3 apples and 4 more apples.\nSo there are 7 apples in total."}


def lines(records: list[dict]) -> str:
    return "".join(orjson.dumps(r).decode() + "\n" for r in records)


def grade(args: list[str]):
    return runner.invoke(grade_app, ["-q", *args], input=lines([TRAJECTORY]))


@cache
def summary() -> str:  # once: its _tf.cluster.seconds differ from one clustering to the next
    return lines([golden_summary()])


def fuse(args: list[str]):
    return runner.invoke(fuse_app, ["-q", *args], input=summary())


def test_a_toml_file_sets_options(tmp_path):
    assert read_jsonl(grade([]).stdout)[0]["verdict"] == "no_answer"
    cfg = tmp_path / "grade.toml"
    cfg.write_text('last-number = true\ncompletion_key = "completion"\nworkers = 1\n')
    res = grade(["--config", str(cfg)])
    assert res.exit_code == 0, res.stderr
    (rec,) = read_jsonl(res.stdout)
    assert (rec["pred"], rec["verdict"]) == ("7", "correct")
    # the same as the flag itself
    assert res.stdout.split('"_tf"')[0] == grade(["--last-number"]).stdout.split('"_tf"')[0]


def test_a_flag_on_the_command_line_wins_over_the_file(tmp_path):
    cfg = tmp_path / "fuse.toml"
    cfg.write_text('policy = "rft"\nseed = 3\n')
    from_file = read_jsonl(fuse(["--config", str(cfg)]).stdout)
    assert [(s["kind"], s["k"]) for s in from_file] == [("rft", 0), ("rft", 0)]
    assert from_file[0]["_tf"]["fuse"]["seed"] == 3
    res = fuse(["--config", str(cfg), "--policy", "adaptive"])
    assert res.exit_code == 0, res.stderr
    overridden = read_jsonl(res.stdout)
    assert [s["kind"] for s in overridden] == ["fused", "fused"]
    assert all(s["k"] >= 1 for s in overridden)
    assert overridden[0]["_tf"]["fuse"]["seed"] == 3  # the file's other keys still apply
    assert overridden == read_jsonl(fuse(["--policy", "adaptive", "--seed", "3"]).stdout)


def test_a_yaml_file_with_underscored_keys(tmp_path):
    cfg = tmp_path / "fuse.yaml"
    cfg.write_text("# tf-fuse options\npolicy: fixed\nk_max: 1\nmax-correct: 1\n")
    res = fuse(["--config", str(cfg)])
    assert res.exit_code == 0, res.stderr
    samples = read_jsonl(res.stdout)
    assert [(s["kind"], s["k"]) for s in samples] == [("fused", 1)]
    assert samples == read_jsonl(fuse(["--policy", "fixed", "--k-max", "1", "--max-correct", "1"]).stdout)


def test_an_unknown_key_is_a_usage_error_naming_the_key_and_the_file(tmp_path):
    cfg = tmp_path / "grade.toml"
    cfg.write_text("last-number = true\nlast-numbr = true\n")
    res = grade(["--config", str(cfg)])
    assert res.exit_code == 2
    assert res.stdout == ""
    first, hint = res.stderr.splitlines()
    assert first.endswith(f"error: unknown key 'last-numbr' in --config {cfg}")
    assert hint.startswith("hint: keys are the long option names")


@pytest.mark.parametrize(("text", "message"), [
    ("workers = 'many'\n", "'workers' in --config {cfg}: "),
    ("[grade]\nworkers = 2\n", "unknown key 'grade' in --config {cfg}"),
    ("workers = \n", "--config {cfg} is not valid TOML"),
])
def test_a_bad_file_is_a_usage_error_naming_the_file(tmp_path, text, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    res = grade(["--config", str(cfg)])
    assert res.exit_code == 2 and res.stdout == ""
    assert message.format(cfg=cfg) in res.stderr.splitlines()[0]


def test_a_missing_file_is_a_usage_error(tmp_path):
    res = grade(["--config", str(tmp_path / "nope.toml")])
    assert res.exit_code == 2
    assert f"cannot read --config {tmp_path / 'nope.toml'}" in res.stderr


@pytest.mark.parametrize("verb", COMMANDS)
def test_every_command_reads_a_config_file(tmp_path, verb):
    """The file is read before anything else: an unknown key stops every command with exit 2,
    and each command documents --config in its --help."""
    app = importlib.import_module(f"tf_tools.cli.{verb}").app
    cfg = tmp_path / f"{verb}.yaml"
    cfg.write_text("quiet: true\nno-such-option: 1\n")
    res = runner.invoke(app, ["--config", str(cfg)], input="")
    assert res.exit_code == 2
    assert f"error: unknown key 'no-such-option' in --config {cfg}" in res.stderr
    assert f"tf-{verb} --config" in runner.invoke(app, ["--help"]).stdout


def test_the_readme_example_sets_tf_sample_options_and_flags_win(tmp_path):
    text = re.search(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert text is not None
    cfg = tmp_path / "sample.toml"
    cfg.write_text(text.group(1))
    cmd = typer.main.get_command(importlib.import_module("tf_tools.cli.sample").app)
    params = cmd.make_context("tf-sample", ["--config", str(cfg), "--max-tokens", "64"]).params
    assert (params["model"], params["n"], params["temperature"]) == ("models/teacher", 8, 0.7)
    assert params["max_tokens"] == 64  # the flag, not the file's 1024
    assert params["system"].endswith("within \\boxed{}.")


def test_the_negative_form_of_an_on_off_flag(tmp_path):
    """``no-packing: true`` is ``--no-packing``; ``--packing`` on the command line still wins."""
    cfg = tmp_path / "train.yaml"
    cfg.write_text("no-packing: true\ngroup_by_length: false\nepochs: 2\n")
    cmd = typer.main.get_command(importlib.import_module("tf_tools.cli.train").app)
    params = cmd.make_context("tf-train", ["--config", str(cfg)]).params
    assert (params["packing"], params["group_by_length"], params["epochs"]) == (False, False, 2)
    params = cmd.make_context("tf-train", ["--config", str(cfg), "--packing"]).params
    assert (params["packing"], params["epochs"]) == (True, 2)
