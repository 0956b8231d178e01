"""A fake `srun` for the launch tests: starts the job's tasks (nodes x tasks per node, block distribution) with the
variables srun sets for each; every task sees the node's GPUs (CUDA_VISIBLE_DEVICES) under --gpu-bind=none, else
only its own, as --gpus-per-task binding does. Output comes in whole lines, as srun's does.

CPUs as Slurm >= 22.05 gives them: a task gets --cpus-per-task CPUs from srun's own option or SRUN_CPUS_PER_TASK,
never from the batch job's --cpus-per-task (SLURM_CPUS_PER_TASK); otherwise one. Its CPU affinity is that many of
this host's (all of them when it has fewer)."""

import os
import sys

from relay import run_all

args = sys.argv[1:]
command_index = next(i for i, a in enumerate(args) if not a.startswith("-"))
options, command = dict(a.partition("=")[::2] for a in args[:command_index]), args[command_index:]
nodes, per_node = int(os.environ["SLURM_JOB_NUM_NODES"]), int(os.environ["SLURM_NTASKS_PER_NODE"])
gpus = int(os.environ["SLURM_GPUS_PER_NODE"])
cpus = int(options.get("--cpus-per-task") or os.environ.get("SRUN_CPUS_PER_TASK") or 1)
usable = sorted(os.sched_getaffinity(0))[:cpus]
tasks = []
for task in range(nodes * per_node):
    local = task % per_node
    visible = range(gpus) if options.get("--gpu-bind") == "none" else [local]
    env = {**os.environ, "SLURM_STEP_NODELIST": os.environ["SLURM_JOB_NODELIST"], "SLURM_PROCID": str(task),
           "SLURM_LOCALID": str(local), "SLURM_NODEID": str(task // per_node), "SLURM_STEP_NUM_NODES": str(nodes),
           "SLURM_STEP_TASKS_PER_NODE": f"{per_node}(x{nodes})", "CUDA_VISIBLE_DEVICES": ",".join(map(str, visible))}
    if "--cpus-per-task" in options or "SRUN_CPUS_PER_TASK" in os.environ:
        env["SLURM_CPUS_PER_TASK"] = str(cpus)
    else:
        env.pop("SLURM_CPUS_PER_TASK", None)
    tasks.append({"args": command, "env": env, "preexec_fn": lambda: os.sched_setaffinity(0, usable)})
statuses = run_all(tasks)
for task, status in enumerate(statuses):  # as srun reports them; a task killed by a signal fails the step too
    if status:
        print(f"srun: error: task {task}: exited with exit code {status}", file=sys.stderr)
sys.exit(max(statuses) if options.get("--kill-on-bad-exit") == "1" else statuses[0])
