"""Fine-tune a T5 student on verified rationales: `python -m eotd_jax.train --config=NAME --workdir=DIR`.

    python -m eotd_jax.train --config=quickstart --workdir=workdir/quickstart/train
    python -m eotd_jax.train --config=paper:codet5-large,etd --workdir=gs://bucket/etd \\
        --config.train.learning_rate=3e-4

Restarting with the same `--workdir` resumes from the latest checkpoint.
Multi-host: `eotd_jax.distributed` joins the run the environment describes (a Cloud TPU
VM slice, GKE, SLURM with one process per GPU) or `--coordinator_address / --num_processes /
--process_id`; `--cluster=none` keeps one process.
"""

from __future__ import annotations

import sys

import jax
from absl import flags, logging
from ml_collections import config_flags

from eotd_jax import cli, configs, distributed, paths, run_lock, validation
from eotd_jax.configs import default
from eotd_jax.trainer import ConfigError, train

_CONFIG = config_flags.DEFINE_config_file("config", None, "a shipped config by name (quickstart, "
                                          "paper:codet5-large,etd, default) or a config file's path[:arguments]",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "checkpoints, TensorBoard events and the config go here")
flags.adopt_module_key_flags(distributed)  # --cluster, --coordinator_address, ... in --help


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    if _CONFIG.value is None or _WORKDIR.value is None:
        sys.exit("error: --config and --workdir are required")
    logging.set_verbosity(logging.WARNING)  # Orbax and JAX log every save and compile at INFO
    try:
        distributed.initialize_from_flags()
    except distributed.ClusterError as error:
        sys.exit(f"error: {error}")
    validation.check_training(_CONFIG.value, _WORKDIR.value)
    paths.path(_WORKDIR.value).mkdir(parents=True, exist_ok=True)
    try:
        with run_lock.hold(_WORKDIR.value):
            metrics = train(_CONFIG.value, _WORKDIR.value)
    except (ConfigError, FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")
    if jax.process_index() == 0:
        print(cli.json_line(metrics))


def usage() -> str:
    """--help: what the binary does, its flags, and every config field with its default and meaning."""
    return (f"{__doc__}\nflags:\n{flags.FLAGS.main_module_help()}\n\nconfig fields "
            f"(--config.NAME=VALUE; eotd_jax/configs/default.py):\n{default.describe()}")


if __name__ == "__main__":
    sys.argv = configs.with_shipped_paths(sys.argv)
    if {"-h", "--help", "--helpshort", "-?"} & set(sys.argv[1:]):  # absl's own --help exits 1
        print(usage())
        sys.exit(0)
    cli.run(main)
