"""bench/train_step.py on t5-tiny: both frameworks' steps, the bound, and the step's matrix multiplies timed alone."""

from __future__ import annotations

import re
import subprocess
import sys

from runs import ROOT, cpu_env


def test_the_train_step_bench_times_both_sides_and_the_steps_own_matrix_multiplies():
    result = subprocess.run([sys.executable, "bench/train_step.py", "--model=t5-tiny", "--batch=2",
                             "--source_length=16", "--target_length=8", "--repeats=1"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600, env=cpu_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^ours \d+ ms/step, HF PyTorch \d+ ms/step, ratio [\d.]+x$", result.stdout, re.M), result.stdout
    dots = re.search(r"^the step's (\d+) matrix multiplies \((\d+) shapes\), each timed alone: jax (\d+) ms, "
                     r"torch (\d+) ms; the rest of the step: ours -?\d+ ms, HF -?\d+ ms$", result.stdout, re.M)
    assert dots, result.stdout
    count, shapes = int(dots[1]), int(dots[2])
    # every dot of the forward pass comes back twice in the backward one (both operands carry gradients)
    assert count % 3 == 0 and 0 < shapes <= count
