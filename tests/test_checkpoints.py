"""Checkpoint retention: the latest N and the best N by eval accuracy survive, the rest are deleted; eval and
export read the parameters alone, sharded over the local devices."""

from __future__ import annotations

import shutil
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
from runs import ROOT, cpu_env, fake_devices, last_json_line, train

from eotd_jax import checkpoints


def test_the_latest_and_the_most_accurate_steps_are_kept(tmp_path):
    manager = checkpoints.make_manager(str(tmp_path), keep=1, keep_best=2, asynchronous=False)
    state = {"params": {"w": jnp.zeros(3)}, "opt_state": {"m": jnp.zeros(3)}}
    for step, accuracy in [(1, 0.20), (2, 0.90), (3, 0.10), (4, 0.50), (5, 0.30)]:
        checkpoints.save(manager, step, state, {"epoch": 0, "index": step}, {}, {"accuracy": accuracy})
    manager.wait_until_finished()
    assert sorted(manager.all_steps()) == [2, 4, 5]  # best two (0.9, 0.5) and the latest
    assert manager.best_step() == 2
    manager.close()
    reopened = checkpoints.make_manager(str(tmp_path), keep=1, keep_best=2, asynchronous=False)
    assert reopened.metrics(2) == {"accuracy": 0.90} and reopened.best_step() == 2
    reopened.close()


_LOAD = """
import json, sys
import jax
from eotd_jax.student import load_student
params = jax.tree.leaves(load_student(sys.argv[1]).model)
largest = max(params, key=lambda x: x.size)
print(json.dumps({"devices": len(largest.sharding.device_set), "shape": list(largest.shape),
                  "shard": list(largest.addressable_shards[0].data.shape)}))
"""


def test_eval_and_export_restore_the_params_alone_sharded_over_every_local_device(tmp_path, training_data):
    four = fake_devices(4)
    trained = train(tmp_path, training_data, "--config.train.steps=1", env=four)
    assert trained.returncode == 0, trained.stderr[-3000:]
    shutil.rmtree(tmp_path / "checkpoints" / "1" / "opt_state")  # what a params-only restore must not read
    loaded = subprocess.run([sys.executable, "-c", _LOAD, str(tmp_path)], cwd=ROOT, env=cpu_env(four),
                            capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    largest = last_json_line(loaded.stdout)
    assert largest["devices"] == 4
    assert np.prod(largest["shard"]) * 4 == np.prod(largest["shape"])  # a quarter on each device, not a copy
