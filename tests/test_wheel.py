"""The built wheel works outside a checkout: installed (not editable) into an empty directory, the binaries find
their shipped configs, prompts and data, and the quickstart's steps run there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from runs import ROOT, cpu_env


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """`pip install --no-deps --target` of the wheel `pip wheel` builds from a copy of this checkout (setuptools
    builds in the source tree; dependencies: this interpreter's)."""
    root = tmp_path_factory.mktemp("wheel")
    source = shutil.copytree(ROOT, root / "source", ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "workdir", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(root / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (root / "dist").glob("eotd_jax-*.whl")
    target = root / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return target


def _run(site: Path, cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    # -I would drop PYTHONPATH too; -P keeps the working directory off sys.path, as for an installed tool.
    env = cpu_env({"PYTHONPATH": str(site), "PYTHONSAFEPATH": "1"})
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_installed_package_is_the_wheels_not_the_checkout(installed, tmp_path):
    where = _run(installed, tmp_path, "-c", "import eotd_jax, eotd_jax.configs; print(eotd_jax.__file__)")
    assert where.returncode == 0, where.stderr[-2000:]
    assert Path(where.stdout.strip()).is_relative_to(installed)
    helped = _run(installed, tmp_path, "-m", "eotd_jax.train", "--help")
    assert helped.returncode == 0 and "--config.NAME=VALUE" in helped.stdout and "quickstart" in helped.stdout


def test_the_quickstart_runs_from_an_empty_directory(installed, tmp_path):
    steps = [
        ["-m", "data_gen.build", "--teacher=gold", "--dataset=synthetic", "--synthetic_count=60",
         "--thoughts=cot,pot,eot", "--out=workdir/quickstart/data", "--progress=false", "--workers=1"],
        ["-m", "eotd_jax.train_tokenizer", "--data=workdir/quickstart/data", "--out=workdir/quickstart/tokenizer",
         "--vocab_size=400"],
        ["-m", "eotd_jax.train", "--config=quickstart", "--workdir=workdir/quickstart/train",
         "--config.data.dir=workdir/quickstart/data", "--config.train.steps=2", "--config.train.batch_size=4",
         "--config.eval.every_steps=0", "--config.checkpoint.keep_best=0", "--config.checkpoint.every_steps=2",
         "--config.progress=false", "--config.model_overrides.vocab_size=400"],
    ]
    for args in steps:
        result = _run(installed, tmp_path, *args)
        assert result.returncode == 0, (args, result.stderr[-3000:])
    assert (tmp_path / "workdir" / "quickstart" / "train" / "checkpoints" / "2").is_dir()
    assert sorted(os.listdir(tmp_path)) == ["workdir"]
