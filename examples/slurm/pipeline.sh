#!/usr/bin/env bash
# Submit the whole pipeline as a chain of SLURM jobs, each starting only when the one before
# it succeeded (--dependency=afterok). Run it from the repository root on the login node:
#
#   examples/slurm/pipeline.sh problems.jsonl test.jsonl models/teacher models/student runs/exp1
#
# Environment: SHARDS (sampling array size, 16), N (samples per problem, 8), NODES (training
# nodes, 1), CONFIG (accelerate config, examples/accelerate/fsdp.yaml), MAX_LENGTH (the
# training length, 4096: tf-fuse --max-tokens, tf-train --max-length and the evaluation's
# budget of new tokens), TRAIN_FLAGS.
set -euo pipefail
PROBLEMS=${1:?problems.jsonl}
TEST=${2:?test problems}
TEACHER=${3:?teacher model folder}
STUDENT=${4:?student model folder}
RUN=${5:?run folder (on a file system every node sees)}
SHARDS=${SHARDS:-16}
export MAX_LENGTH=${MAX_LENGTH:-4096}
mkdir -p "$RUN"
S=examples/slurm

sample=$(N=${N:-8} sbatch --parsable --array=0-$((SHARDS - 1)) $S/sample.sbatch "$PROBLEMS" "$RUN" "$TEACHER")
grade=$(sbatch --parsable --dependency=afterok:"$sample" $S/grade.sbatch "$RUN")
fuse=$(sbatch --parsable --dependency=afterok:"$grade" $S/fuse.sbatch "$RUN" "$STUDENT")
evals=()
for policy in rft trajfusion; do
  # shellcheck disable=SC2086  # TRAIN_FLAGS is a list of flags
  train=$(sbatch --parsable --nodes "${NODES:-1}" --dependency=afterok:"$fuse" $S/train.sbatch \
          "$STUDENT" "$RUN/train.$policy.jsonl" "$RUN/model.$policy" --max-length "$MAX_LENGTH" ${TRAIN_FLAGS:-})
  evals+=("$(sbatch --parsable --dependency=afterok:"$train" $S/eval.sbatch \
            "$RUN/model.$policy/final" "$TEST" "$RUN/eval.$policy.jsonl")")
  echo "$policy: train job $train, then eval"
done
# RFT vs TrajFusion on the same test problems: paired difference, bootstrap interval, McNemar
compare=$(sbatch --parsable --dependency=afterok:"${evals[0]}":"${evals[1]}" --job-name tf-compare \
          --output "$RUN/compare.txt" --wrap "tf-stats --compare $RUN/eval.rft.jsonl $RUN/eval.trajfusion.jsonl")
echo "sample array $sample -> grade $grade -> fuse $fuse -> train + eval per policy -> compare $compare ($RUN/compare.txt); squeue -u $USER"
