"""The step log: MFU from the chip table by JAX's device kinds and the compiled step's FLOPs (the planner's), one
line a window, and a profile trace of the steps asked for."""

from __future__ import annotations

from datetime import datetime

import jax
import pytest
from runs import last_json_line, train

from eotd_jax import step_log
from eotd_jax.configs import default
from eotd_jax.planning import slices
from eotd_jax.planning.plan import plan_train
from eotd_jax.step_log import StepLog, parse_profile_steps

# device_kind as JAX reports it on each chip (jax.devices()[0].device_kind), and the chip's dense bf16 peak.
KINDS = [("TPU v4", 275e12), ("TPU v5 lite", 197e12), ("TPU v5", 459e12), ("TPU v6 lite", 918e12),
         ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H200", 989e12), ("NVIDIA A100-SXM4-40GB", 312e12),
         ("NVIDIA A100-SXM4-80GB", 312e12)]


@pytest.mark.parametrize("kind, peak", KINDS)
def test_every_chip_is_found_by_the_device_kind_jax_reports(kind, peak):
    assert step_log.peak_flops_per_device(0.0, kind) == peak
    assert step_log.peak_flops_per_device(123e12, kind) == 123e12  # train.peak_flops_per_device wins


class _Device:
    def __init__(self, kind: str):
        self.device_kind = kind


def test_an_unknown_device_kind_is_said_once_and_gives_no_mfu(monkeypatch):
    said = []
    monkeypatch.setattr(step_log.logging, "warning", lambda *args: said.append(args))
    log = StepLog.for_devices(4e12, 0.0, 100, [_Device("cpu"), _Device("cpu")])
    assert log.peak_flops is None and log.mfu(1.0) is None
    assert len(said) == 1 and "'cpu'" in said[0][0] % said[0][1:]
    line = log.line(7, {"loss": 1.5, "learning_rate": 3e-4, "step_seconds": 0.25, "tokens_per_second": 12345.6})
    assert line == "step 7/100: loss 1.5000, lr 3.00e-04, 0.250 s/step, 12,346 tokens/s" and "MFU" not in line
    known = StepLog.for_devices(4e12, 0.0, 100, [_Device("TPU v5 lite")] * 8)
    assert known.mfu(0.5) == pytest.approx(4e12 / 0.5 / (8 * 197e12))
    assert len(said) == 1


def test_profile_steps_are_two_step_numbers():
    assert parse_profile_steps("") is None and parse_profile_steps("3,5") == (3, 5)
    for bad in ("5", "5,3", "0,2", "a,b"):
        with pytest.raises(ValueError, match="profile_steps"):
            parse_profile_steps(bad)


def test_the_trainer_logs_a_line_a_window_with_the_planners_flops_and_writes_the_profile(tmp_path, training_data):
    """t5-tiny on the CPU with a peak given: the logged MFU x peak x step time is the planner's FLOPs for the same
    config; steps 2-3 traced under the workdir; no progress bar drawn into a log file."""
    overrides = ["--config.train.steps=4", "--config.log_every_steps=2", "--config.profile_steps=2,3",
                 "--config.train.peak_flops_per_device=1e9", "--config.progress=true"]
    result = train(tmp_path, training_data, *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line.split("] ", 1)[-1] for line in result.stderr.splitlines() if "/4: loss " in line]
    assert [line.split(":")[0] for line in lines] == ["step 2/4", "step 4/4"], result.stderr[-3000:]
    assert all(" s/step, " in line and " tokens/s, MFU " in line for line in lines), lines
    assert "\r" not in result.stderr and "training:" not in result.stderr  # tqdm draws only on a terminal
    traces = list((tmp_path / "profile").rglob("*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 0

    last = last_json_line(result.stdout)
    logged_flops = last["mfu"] * 1e9 * jax.device_count() * last["step_seconds"]
    config = default.get_config()
    config.update_from_flattened_dict({"model": "t5-tiny", "train.batch_size": 4, "data.source_length": 256,
                                       "data.target_length": 96})
    cpu = slices.Slice("cpu", "cpu", slices.CHIPS["v5e"], tuple(jax.devices()))
    planned = plan_train(config, cpu)
    assert logged_flops == pytest.approx(planned.flops * cpu.chips, rel=1e-9)


def test_the_logged_step_time_leaves_out_evals_and_checkpoints(tmp_path, training_data):
    """An eval and a checkpoint after every step: the second window's step time (steps 3 and 4) is the steps'
    alone, not the evals of steps 2 and 3 that ran inside it."""
    overrides = ["--config.train.steps=4", "--config.log_every_steps=2", "--config.eval.every_steps=1",
                 "--config.eval.limit=4", "--config.eval.max_new_tokens=8", "--config.checkpoint.every_steps=1"]
    result = train(tmp_path, training_data, *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    stamps = {int(line.split("] step ")[1].split(":")[0]): datetime.strptime(line.split()[1], "%H:%M:%S.%f")
              for line in result.stderr.splitlines() if "held-out ETD accuracy" in line}
    assert sorted(stamps) == [1, 2, 3, 4], result.stderr[-3000:]
    two_steps_and_two_evals = (stamps[4] - stamps[2]).total_seconds()
    assert 2 * last_json_line(result.stdout)["step_seconds"] < two_steps_and_two_evals / 2
