"""bench/plan_grid.py builds the grid table from complete cells only, so a stopped run resumes where it stopped; each
column is the arithmetic the header names, checked here on records whose figures are chosen by hand."""

from __future__ import annotations

import json
import subprocess
import sys

from runs import ROOT, cpu_env

GIB = 2**30
HBM = 15.75 * GIB  # a v5e chip
PARAMS = 60_000_000
ROW_TOKENS = 512 + 320


def _train(per_device: int, remat: bool, fits: bool, total_gib: float = 1.0, step_ms: float = 1.0) -> dict:
    batch = 8 * per_device
    return {"program": "train", "settings": {"batch": batch, "per_device": per_device, "remat": remat}, "fits": fits,
            "total_bytes": total_gib * GIB, "hbm_bytes": HBM, "compile_seconds": 10.0, "params": PARAMS,
            "tokens_per_step": batch * ROW_TOKENS, "flops_per_token": 0.5 * 6 * PARAMS,
            "step_seconds_at_50_percent": step_ms / 1e3, "collective_bytes": 0.5 * GIB, "collective_seconds": 0.003}


def _cell() -> list[dict]:
    """The search as aot --find_batch records it: 2 rows a chip first, 6 the largest without remat, 20 with."""
    return [_train(2, False, True, total_gib=2.0, step_ms=4.0), _train(8, False, False), _train(6, False, True,
            step_ms=12.0), _train(7, False, False), _train(20, True, True), _train(21, True, False),
            {"program": "decode", "settings": {"batch": 64, "max_new_tokens": 256}, "fits": True,
             "total_bytes": 1.5 * GIB, "hbm_bytes": HBM, "compile_seconds": 10.0, "collective_bytes": 0.25 * GIB,
             "collective_seconds": 0.002},
            {"largest_per_device_batch": 6, "with_remat": 20}]


def test_the_table_row_is_the_cells_figures_and_a_partial_cell_gives_none(tmp_path):
    cell = "".join(json.dumps(record) + "\n" for record in _cell())
    (tmp_path / "codet5-small_v5e-8.jsonl").write_text(cell)
    (tmp_path / "codet5-small_v4-8.jsonl.partial").write_text(cell.splitlines()[0] + "\n")
    table = subprocess.run([sys.executable, "bench/plan_grid.py", f"--out={tmp_path}", "--models=codet5-small",
                            "--slices=v4-8,v5e-8", "--table_only"], cwd=ROOT, capture_output=True, text=True,
                           timeout=120, env=cpu_env(), check=True).stdout
    rows = [line for line in table.splitlines() if line.startswith("| codet5-small")]
    # 2 rows a chip on 8 chips: 16 x 832 tokens in 4 ms at 50% of peak = 3,328,000 tokens/s; 6 rows a chip in 12 ms,
    # the same rate. FLOPs per token 3N = 0.50 x 6N. 7 compiles of 10 s.
    assert rows == ["| codet5-small | v5e-8 | 6 / 20 | 2.00 / 15.75 GiB | 0.50 x 6N | 4.0 ms | 3,328,000 "
                    "| 0.50 GiB, 3.0 ms | 12.0 ms, 3,328,000 | 64 x 256: 1.50 / 15.75 GiB, 0.25 GiB, 2.0 ms | 7, 70 |"]
    assert rows[0] in (tmp_path / "grid.md").read_text()
