"""Configs that ask for an accelerator-scale run refuse, with one line and before compiling, to waste it: the paper
config on a CPU-only JAX, or from random weights unless `init_from_hf=none` says so."""

from __future__ import annotations

from runs import python_module

PAPER = ["--config=paper:codet5-small,etd", "--config.progress=false"]


def _last_line(result) -> str:
    assert result.returncode != 0
    return result.stderr.strip().splitlines()[-1]


def test_the_paper_config_refuses_a_cpu_backend(tmp_path):
    line = _last_line(python_module("eotd_jax.train", *PAPER, f"--workdir={tmp_path}", "--config.init_from_hf=none"))
    assert line.startswith("error: config.require_accelerator: this config needs TPUs or GPUs") and "CPU" in line


def test_the_paper_config_refuses_random_weights_unless_told_none(tmp_path):
    flags = [*PAPER, f"--workdir={tmp_path}", "--config.require_accelerator=false",
             f"--config.data.dir={tmp_path / 'no_data'}"]
    line = _last_line(python_module("eotd_jax.train", *flags))
    assert line.startswith("error: config.init_from_hf: this config fine-tunes a pretrained student")
    past = _last_line(python_module("eotd_jax.train", *flags, "--config.init_from_hf=none"))
    assert "no_data does not exist" in past  # past the check, stopped by the next one, nothing compiled
