"""A fake `srun` for the launch tests: starts the job's tasks (nodes x tasks per node, block distribution) with the
variables srun sets for each; every task sees the node's GPUs (CUDA_VISIBLE_DEVICES) under --gpu-bind=none, else
only its own, as --gpus-per-task binding does."""

import os
import subprocess
import sys

args = sys.argv[1:]
command_index = next(i for i, a in enumerate(args) if not a.startswith("-"))
options, command = dict(a.partition("=")[::2] for a in args[:command_index]), args[command_index:]
nodes, per_node = int(os.environ["SLURM_JOB_NUM_NODES"]), int(os.environ["SLURM_NTASKS_PER_NODE"])
gpus = int(os.environ["SLURM_GPUS_PER_NODE"])
processes = []
for task in range(nodes * per_node):
    local = task % per_node
    visible = range(gpus) if options.get("--gpu-bind") == "none" else [local]
    env = {**os.environ, "SLURM_STEP_NODELIST": os.environ["SLURM_JOB_NODELIST"], "SLURM_PROCID": str(task),
           "SLURM_LOCALID": str(local), "SLURM_NODEID": str(task // per_node), "SLURM_STEP_NUM_NODES": str(nodes),
           "SLURM_STEP_TASKS_PER_NODE": f"{per_node}(x{nodes})", "CUDA_VISIBLE_DEVICES": ",".join(map(str, visible))}
    processes.append(subprocess.Popen(command, env=env))
statuses = [p.wait() for p in processes]
sys.exit(max(statuses) if options.get("--kill-on-bad-exit") == "1" else statuses[0])
