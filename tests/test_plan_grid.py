"""bench/plan_grid.py builds the grid table from complete cells only, so a stopped run resumes where it stopped."""

from __future__ import annotations

import shutil
import subprocess
import sys

from runs import ROOT, cpu_env

CELL = "codet5-large_v5e-16.jsonl"  # compiled for real on a CPU host (docs/benchmarks.md, issue 12)


def _table(out) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "bench/plan_grid.py", f"--out={out}", "--models=codet5-large",
                           "--slices=v5e-16,v4-8", "--table_only"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=cpu_env(), check=True)


def test_the_table_row_comes_from_the_cells_records(tmp_path):
    shutil.copy(ROOT / "docs" / "plan_grid" / CELL, tmp_path / CELL)
    (tmp_path / "codet5-large_v4-8.jsonl.partial").write_text((tmp_path / CELL).read_text().splitlines()[0] + "\n")
    rows = [line for line in _table(tmp_path).stdout.splitlines() if line.startswith("| codet5-large")]
    # The v4-8 cell never finished: no row from its partial records.
    assert rows == ["| codet5-large | v5e-16 | 2 / 9 | 2: 14.88 / 15.75 GiB | 0.68 x 6N | 50.7 ms | 524,926 "
                    "| 50.7 ms, 524,926 | 64 x 256: 4.10 / 15.75 GiB | 9, 4541 |"]
    assert rows[0] in (tmp_path / "grid.md").read_text()
