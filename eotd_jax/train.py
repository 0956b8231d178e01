"""Fine-tune a T5 student on verified rationales: `python -m eotd_jax.train --config=configs/x.py --workdir=DIR`.

    python -m eotd_jax.train --config=configs/quickstart.py --workdir=workdir/quickstart/train
    python -m eotd_jax.train --config=configs/paper.py:codet5-large,etd --workdir=gs://bucket/etd \\
        --config.train.learning_rate=3e-4

Restarting with the same `--workdir` resumes from the latest checkpoint.
Multi-host: `jax.distributed.initialize()` from the environment (TPU pods,
SLURM), or from `--coordinator_address / --num_processes / --process_id`.
"""

from __future__ import annotations

import json
import os
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from eotd_jax import paths
from eotd_jax.trainer import ConfigError, train

_CONFIG = config_flags.DEFINE_config_file("config", None, "ml_collections config file (configs/*.py)",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "checkpoints, TensorBoard events and the config go here")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process runs "
                                   "outside TPU pods / SLURM, where it is found automatically)")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "processes in a multi-process run")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "this process's index in a multi-process run")


def initialize_distributed() -> None:
    """Joins a multi-process run: explicit flags, else the environment of a TPU pod / SLURM job, else nothing."""
    if _COORDINATOR.value:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    elif os.environ.get("SLURM_NTASKS", "1") != "1" or os.environ.get("TPU_WORKER_HOSTNAMES", "").count(",") > 0:
        jax.distributed.initialize()


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    if _CONFIG.value is None or _WORKDIR.value is None:
        sys.exit("error: --config and --workdir are required")
    logging.set_verbosity(logging.WARNING)  # Orbax and JAX log every save and compile at INFO
    initialize_distributed()
    paths.path(_WORKDIR.value).mkdir(parents=True, exist_ok=True)
    try:
        metrics = train(_CONFIG.value, _WORKDIR.value)
    except (ConfigError, FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")
    if jax.process_index() == 0:
        print(json.dumps(metrics))


if __name__ == "__main__":
    app.run(main)
