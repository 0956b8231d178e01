"""Shared fixtures: one sandbox pool per session, and the real datasets when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from eotd_jax.thoughts.sandbox import SandboxPool

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(scope="session")
def pool():
    with SandboxPool(num_workers=2) as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not (SHARED_DATASETS / "README.md").is_file():
        pytest.skip(f"real benchmark files not found at {SHARED_DATASETS} (only CI and dev machines have ../shared)")
    return SHARED_DATASETS
