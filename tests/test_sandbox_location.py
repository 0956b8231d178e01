"""The sandbox holds wherever the checkout lives: a fresh copy under /tmp, which each zygote covers with
its private /tmp, still shows the child the package, read-only (`confine.py` binds it back in)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from test_sandbox_attacks import junit_outcomes

ROOT = Path(__file__).resolve().parents[1]
# The attack tests that need to see the package: it can be imported lazily and read, never written.
SELECTED = ["test_writes_outside_scratch_fail[hook on]", "test_writes_outside_scratch_fail[hook off]",
            "test_the_child_reads_the_package_and_imports_from_it[hook on]",
            "test_the_child_reads_the_package_and_imports_from_it[hook off]",
            "test_the_attacks_hold_as_an_ordinary_user"]


@pytest.mark.timeout(1200)
def test_a_checkout_under_tmp_passes_the_attack_tests():
    copy = Path(tempfile.mkdtemp(prefix="eotd-checkout-", dir="/tmp"))
    try:
        copy.chmod(0o755)  # as a clone there would be: readable by the unprivileged run too
        for part in ("eotd_jax", "tests"):
            shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "pytest.ini", copy)
        report = copy / "report.xml"
        command = [sys.executable, "-m", "pytest", str(copy / "tests" / "test_sandbox_attacks.py"), "-q",
                   "-p", "no:cacheprovider", f"--junitxml={report}", "-k",
                   "writes_outside_scratch_fail or reads_the_package or ordinary_user"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(copy), "PYTHONPATH": str(copy)}
        result = subprocess.run(command, capture_output=True, text=True, cwd="/", env=env, timeout=900)
        outcomes = junit_outcomes(str(report))
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    as_root = os.geteuid() == 0  # else the run as another user is not this test's to start
    expected = {name: "passed" if as_root or "ordinary_user" not in name else "skipped" for name in SELECTED}
    assert outcomes == expected
