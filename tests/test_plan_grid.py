"""bench/plan_grid.py builds the grid table from complete cells only, so a stopped run resumes where it stopped."""

from __future__ import annotations

import shutil
import subprocess
import sys

from runs import ROOT, cpu_env

CELL = "codet5-small_v4-8.jsonl"  # compiled for real on a CPU host (docs/benchmarks.md, issue 12, session 7)
RECORDS = ROOT / "docs" / "plan_grid" / "unconstrained" / CELL


def _table(out) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "bench/plan_grid.py", f"--out={out}", "--models=codet5-small",
                           "--slices=v4-8,v5e-8", "--table_only"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=cpu_env(), check=True)


def test_the_table_row_comes_from_the_cells_records(tmp_path):
    shutil.copy(RECORDS, tmp_path / CELL)
    (tmp_path / "codet5-small_v5e-8.jsonl.partial").write_text((tmp_path / CELL).read_text().splitlines()[0] + "\n")
    rows = [line for line in _table(tmp_path).stdout.splitlines() if line.startswith("| codet5-small")]
    # The v5e-8 cell never finished: no row from its partial records. Every remat batch tried fitted, up to
    # aot's --max_batch of 256: a lower bound. Its records predate the collectives' count: "—".
    assert rows == ["| codet5-small | v4-8 | 70 / ≥256 | 1.06 / 30.75 GiB | 0.53 x 6N | 2.3 ms | 2,842,973 "
                    "| — | 81.9 ms, 2,842,973 | 64 x 256: 0.60 / 30.75 GiB, — | 10, 934 |"]
    assert rows[0] in (tmp_path / "grid.md").read_text()
