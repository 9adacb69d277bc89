# Sourced by train.sbatch (tests/test_train_signal.py runs this same file): run the training
# step so that SLURM's warning before the time limit ends in a checkpoint and a requeue of
# this job, never in a run killed half-way.
#
#   source examples/slurm/requeue.sh
#   tf_run_or_requeue RUN_DIR srun ... accelerate launch ... -m tf_tools.cli.train ... -o RUN_DIR
#
# The way of the warning (`#SBATCH --signal=B:USR1@600`: "B:" signals the batch shell only,
# no step; without "B:" every step and not the batch shell; up to 60 s early: sbatch(1)):
#  1. The trap below notes it and sends USR1 to the step's srun, which forwards USR1 as it is
#     to every task. Never send srun SIGTERM: it turns SIGTERM, SIGHUP and SIGQUIT into
#     SIGKILL for the tasks (Slurm src/srun/signals.c, _forward_signal: "forcing job
#     termination"). A task is the launcher (accelerate launch / torchrun), not its workers:
#     slurmstepd signals the tasks only (proctrack/cgroup: "only signal slurm tasks unless
#     signal is SIGKILL") and kills whatever is left in the step once the tasks have exited.
#  2. The launcher forwards USR1 to its workers only if USR1 is among the signals it handles:
#     PET_SIGNALS_TO_HANDLE (torchrun --signals-to-handle; torch's default list is
#     SIGTERM,SIGINT,SIGHUP,SIGQUIT, and USR1's default action would kill the launcher at
#     once). It then waits TORCH_ELASTIC_SHUTDOWN_TIMEOUT seconds (torchrun
#     --shutdown-timeout; 30 by default) before it SIGKILLs them (torch 2.13,
#     torch/distributed/elastic/agent/server/api.py and multiprocessing/api.py). train.sbatch
#     sets both; `accelerate launch` reads them too (it runs torchrun's agent in-process).
#  3. tf-train finishes the step, saves a checkpoint and exits 130. The launcher, stopped by
#     a signal, exits 1 (torchrun: SignalException) or 128+10 (accelerate launch), whatever
#     the workers returned: so the decision below reads the run folder, not exit codes.
#  4. No manifest.json but a checkpoint newer than the one the job started from: `scontrol
#     requeue $SLURM_JOB_ID`. The job goes back to PENDING under the same id (never through a
#     failed state, so an afterok dependency keeps waiting) and runs the script again from
#     its start, which passes --resume. No new checkpoint: no requeue (the job would only
#     come back to the same place), the job fails.
#
# Bash runs a trap only between commands, so the step runs in the background and we `wait`
# for it: a trapped signal cuts `wait` short (status > 128), the trap runs, and we wait again
# until the step has ended.

# The newest complete checkpoint of RUN_DIR (step-NNNNNNNN; never a step-N.tmp), or nothing.
tf_newest_checkpoint() {
  local dir newest=""
  for dir in "$1"/checkpoints/step-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]; do
    [[ -d $dir ]] && newest=$dir
  done
  printf '%s' "$newest"
}

_tf_log() {
  echo "tf-train job ${SLURM_JOB_ID:-?}: $*" >&2
}

_tf_on_warning() {
  TF_STOP_REQUESTED=1
  _tf_log "time limit near (SIGUSR1): asking the training step to save a checkpoint and stop"
  if [[ -n ${TF_STEP_PID:-} ]]; then
    kill -USR1 "$TF_STEP_PID" 2>/dev/null || true
  fi
}

# Run COMMAND...; its exit status when it ran to its end. After the warning: 0 when the run
# finished anyway (manifest.json) or when a new checkpoint was saved and the job requeued,
# 1 when there is nothing new to resume from.
tf_run_or_requeue() {
  local run=$1 before after rc=0
  shift
  before=$(tf_newest_checkpoint "$run")
  TF_STOP_REQUESTED=
  TF_STEP_PID=
  trap _tf_on_warning USR1
  "$@" &
  TF_STEP_PID=$!
  if [[ -n $TF_STOP_REQUESTED ]]; then  # the warning came before the step had a pid
    kill -USR1 "$TF_STEP_PID" 2>/dev/null || true
  fi
  while :; do
    wait "$TF_STEP_PID" && rc=0 || rc=$?
    kill -0 "$TF_STEP_PID" 2>/dev/null || break  # still running: the trap cut the wait short
  done
  trap '' USR1  # a warning from now on changes nothing (and must not kill this shell)
  if [[ -z $TF_STOP_REQUESTED ]]; then
    return "$rc"
  fi
  _tf_log "the training step exited with status $rc"
  if [[ -f $run/manifest.json ]]; then
    _tf_log "the run finished before it could stop: $run/manifest.json"
    return 0
  fi
  after=$(tf_newest_checkpoint "$run")
  if [[ -z $after || $after == "$before" ]]; then
    _tf_log "error: no checkpoint saved since the job started (${before:-none}): not requeuing"
    _tf_log "hint: the job's --time must cover loading the model and a step; the launcher's" \
            "TORCH_ELASTIC_SHUTDOWN_TIMEOUT (${TORCH_ELASTIC_SHUTDOWN_TIMEOUT:-30} s) a step and a checkpoint"
    return 1
  fi
  _tf_log "stopped at $after; requeuing this job, which resumes from there"
  scontrol requeue "$SLURM_JOB_ID"
}
