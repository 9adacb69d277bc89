"""Inside a SLURM array job, --shard never switches itself on (DESIGN §5).

Every command run in an array task without --shard processes all its input; --shard slurm
reads the array variables and equals --shard I/N spelled out; an array task that is not a
shard (a rerun with --array=3,7) is a usage error, exit 2, before any work is done.
"""

from __future__ import annotations

import orjson
import pytest
from typer.testing import CliRunner

from tf_tools.cli.cluster import app as cluster_app
from tf_tools.cli.fuse import app as fuse_app
from tf_tools.cli.grade import app as grade_app
from tf_tools.cli.sample import app as sample_app
from tf_tools.cli.stats import app as stats_app
from tf_tools.clustering import ClusterConfig, cluster_records
from tf_tools.grading.grader import GradeConfig, grade_records

from .conftest import read_jsonl

runner = CliRunner()

TASK_1_OF_4 = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "4",
               "SLURM_ARRAY_TASK_MIN": "0", "SLURM_JOB_ID": "77", "SLURM_ARRAY_JOB_ID": "76"}
# sbatch --array=3,7, task 7: ID - MIN = 4 is not below COUNT = 2
RERUN_3_7 = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "2",
             "SLURM_ARRAY_TASK_MIN": "3", "SLURM_ARRAY_TASK_MAX": "7"}
N_PROBLEMS = 24


def jsonl(records: list[dict]) -> str:
    return "".join(orjson.dumps(r).decode() + "\n" for r in records)


def trajectories() -> list[dict]:
    # 4 samples of each problem: 2 correct, 2 wrong (two different answers)
    return [{"id": f"q{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1), "sample_idx": j,
             "completion": f"so \\boxed{{{i + 1 if j < 2 else i + j}}}", "finish_reason": "stop"}
            for i in range(N_PROBLEMS) for j in range(4)]


def graded() -> list[dict]:
    return list(grade_records(trajectories(), GradeConfig(workers=1)))


def summaries() -> list[dict]:
    return list(cluster_records(graded(), ClusterConfig(math_verify=False)))


COMMANDS = {
    "tf-grade": (grade_app, trajectories, []),
    "tf-cluster": (cluster_app, graded, ["--no-math-verify"]),
    "tf-fuse": (fuse_app, summaries, []),
}


def ids(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [r["id"] for r in read_jsonl(result.stdout)]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_array_task_without_shard_processes_every_record(command):
    app, make, flags = COMMANDS[command]
    text = jsonl(make())
    everything = ids(runner.invoke(app, flags, input=text))
    assert len(set(everything)) == N_PROBLEMS
    assert ids(runner.invoke(app, flags, input=text, env=TASK_1_OF_4)) == everything


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_shard_slurm_is_the_array_tasks_shard(command):
    app, make, flags = COMMANDS[command]
    text = jsonl(make())
    slurm = ids(runner.invoke(app, [*flags, "--shard", "slurm"], input=text, env=TASK_1_OF_4))
    spelled = ids(runner.invoke(app, [*flags, "--shard", "1/4"], input=text))
    assert slurm == spelled
    assert 0 < len(set(slurm)) < N_PROBLEMS


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_shard_slurm_refuses_a_task_that_is_not_a_shard(command):
    app, make, flags = COMMANDS[command]
    result = runner.invoke(app, [*flags, "--shard", "slurm"], input=jsonl(make()), env=RERUN_3_7)
    assert result.exit_code == 2
    assert result.stdout == ""
    err = result.stderr.splitlines()
    assert err[0].startswith(f"{command}: error: --shard slurm: array task 7 is not a shard")
    assert err[1].startswith("hint: spell the shard out with --shard I/N")
    assert "Traceback" not in result.stderr
    result = runner.invoke(app, [*flags, "--shard", "slurm"], input=jsonl(make()), env={})
    assert result.exit_code == 2 and "not a SLURM array task" in result.stderr


def test_stats_in_an_array_task_counts_every_record():
    result = runner.invoke(stats_app, ["--json"], input=jsonl(graded()), env=TASK_1_OF_4)
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["records"] == 4 * N_PROBLEMS


def test_sample_in_an_array_task_samples_every_problem(tiny_model):
    problems = [{"id": f"q{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)}
                for i in range(8)]
    args = ["-m", str(tiny_model), "--engine", "hf", "-n", "1", "--max-tokens", "2"]
    everything = ids(runner.invoke(sample_app, args, input=jsonl(problems), env=TASK_1_OF_4))
    assert everything == [p["id"] for p in problems]
    slurm = ids(runner.invoke(sample_app, [*args, "--shard", "slurm"], input=jsonl(problems),
                              env=TASK_1_OF_4))
    assert slurm == ids(runner.invoke(sample_app, [*args, "--shard", "1/4"], input=jsonl(problems)))
    assert len(slurm) < len(problems)
    result = runner.invoke(sample_app, [*args, "--shard", "slurm"], input=jsonl(problems),
                           env=RERUN_3_7)
    assert result.exit_code == 2 and "array task 7 is not a shard" in result.stderr
