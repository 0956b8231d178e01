"""bench/device_check.py's CPU smoke run (t5-tiny): the JSON the GPU run writes, with its figures consistent."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from runs import ROOT, cpu_env

from eotd_jax.configs import quickstart

QUICKSTART = quickstart.get_config()  # the rows the check times the quickstart's step on


def test_the_device_check_smoke_run_writes_every_figure(tmp_path):
    out = tmp_path / "check.json"
    result = subprocess.run([sys.executable, "bench/device_check.py", "--smoke", f"--out={out}",
                             "--peak_flops_per_device=1e9"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env=cpu_env())
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["smoke"] and report["backend"] == "cpu" and report["peak_flops_per_device"] == 1e9
    tiny = report["train"]["t5-tiny"]
    assert tiny["per_device_batch"] == 4  # every batch up to the smoke search's cap fits 2 GiB
    for timed in (tiny["xla"], report["quickstart"]):
        assert timed["step_seconds"] > 0 and timed["flops_per_step"] > 0
        assert timed["mfu"] == pytest.approx(timed["flops_per_step"] / timed["step_seconds"] / 1e9)
        slots = 64 + 32 if timed is tiny["xla"] else QUICKSTART.data.source_length + QUICKSTART.data.target_length
        assert timed["tokens_per_second"] == pytest.approx(timed["rows"] * slots / timed["step_seconds"])
    assert report["quickstart"]["rows"] == 4
    decode = report["decode"]
    assert decode["batch"] == 4 and decode["new_tokens"] == 8 and decode["tokens_per_second"] > 0
