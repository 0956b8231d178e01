"""The paper grid planned on TPU slices without a TPU: `python -m eotd_jax.aot --find_batch` per model and slice.

    python bench/plan_grid.py --out=workdir/plan_grid            # every cell, then the table
    python bench/plan_grid.py --out=workdir/plan_grid --models=codet5-small --slices=v4-8
    python bench/plan_grid.py --out=workdir/plan_grid --slices=v5p-8 --max_batch=64   # big chips: cap the search

Each cell is one `eotd_jax.aot` process (`paper:<model>,<method>`,
`--find_batch --json`, from 2 rows a chip): the largest per-chip batch with and
without remat, and the eval decode. A cell's records go to
`<out>/<model>_<slice>.jsonl` once the cell is complete, so a stopped run resumes at the first
missing cell (large models take minutes per compile on a small host). The table
(also `<out>/grid.md`) is built from whatever cells are complete.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import app, flags

from eotd_jax.planning.slices import GIB

flags.DEFINE_string("out", "workdir/plan_grid", "directory for each cell's JSON records and grid.md")
flags.DEFINE_list("models", ["codet5-large", "codet5-base", "codet5-small", "flan-t5-large"], "paper.MODELS")
flags.DEFINE_list("slices", ["v4-8", "v5e-8", "v5e-16", "v5p-8"], "slice names (eotd_jax.planning.slices)")
flags.DEFINE_string("method", "etd", "paper method")
flags.DEFINE_integer("max_batch", 256, "aot --max_batch: the largest rows a chip the searches try")
flags.DEFINE_bool("table_only", False, "compile nothing: build the table from the complete cells")
FLAGS = flags.FLAGS
REFERENCE_ROWS = 2  # every cell's search starts here, so its memory and speed columns compare across cells


def cell_path(model: str, slice_name: str) -> str:
    return os.path.join(FLAGS.out, f"{model}_{slice_name}.jsonl")


def run_cell(model: str, slice_name: str) -> None:
    """Compiles one cell in its own process; the records are kept only when the search finished."""
    command = [sys.executable, "-m", "eotd_jax.aot", f"--config=paper:{model},{FLAGS.method}",
               f"--topology={slice_name}", f"--config.train.per_device_batch_size={REFERENCE_ROWS}",
               "--find_batch", f"--max_batch={FLAGS.max_batch}", "--json"]
    print(f"{time.strftime('%H:%M:%S')} {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    partial = cell_path(model, slice_name) + ".partial"  # each compile's record as it comes
    with open(partial, "w", encoding="utf-8") as file:
        result = subprocess.run(command, stdout=file, stderr=subprocess.PIPE, text=True, check=False)
    with open(partial, encoding="utf-8") as file:
        if not any('"largest_per_device_batch"' in line for line in file):
            sys.exit(f"error: {model} on {slice_name} did not finish (exit {result.returncode}):\n"
                     f"{result.stderr[-2000:]}")
    os.replace(partial, cell_path(model, slice_name))
    print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)


def memory(row: dict | None) -> str:
    return "—" if row is None else (f"{row['total_bytes'] / GIB:.2f} / {row['hbm_bytes'] / GIB:.2f} GiB"
                                    + ("" if row["fits"] else ": does not fit"))


def speed(row: dict | None) -> tuple[str, str]:
    """(step time, tokens/s) at 50% of the chip's peak."""
    if row is None or not row.get("step_seconds_at_50_percent"):
        return "—", "—"
    return (f"{row['step_seconds_at_50_percent'] * 1e3:.1f} ms",
            f"{row['tokens_per_step'] / row['step_seconds_at_50_percent']:,.0f}")


def communication(row: dict | None) -> str:
    """Bytes into a chip through collectives a step, and their time at the chip's full interconnect bandwidth."""
    if row is None or "collective_bytes" not in row:
        return "—"
    return f"{row['collective_bytes'] / GIB:.2f} GiB, {row['collective_seconds'] * 1e3:.1f} ms"


def _largest(rows_a_chip: int, train: list[dict], remat: bool) -> str:
    """The search's answer; a lower bound ("≥") when every batch it tried fitted, up to `aot --max_batch`."""
    missed = any(not row["fits"] for row in train if row["settings"]["remat"] == remat)
    return str(rows_a_chip) if missed else f"≥{rows_a_chip}"


def table(records: dict[tuple[str, str], list[dict]]) -> str:
    """One row per cell: the searches' results, and REFERENCE_ROWS a chip in detail."""
    lines = [f"| model | slice | largest rows a chip: no remat / remat | {REFERENCE_ROWS} rows a chip: HBM "
             "| FLOPs per token vs 6N | step at 50% of peak | tokens/s at 50% | collectives: into a chip, at full ICI "
             "| largest no-remat batch: step at 50%, tokens/s | eval decode (questions x new tokens): HBM, collectives "
             "| compiles, s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (model, slice_name), rows in records.items():
        found = next(row for row in rows if "largest_per_device_batch" in row)
        train = [row for row in rows if row.get("program") == "train"]
        decode = next((row for row in rows if row.get("program") == "decode"), None)
        reference = train[0]  # the search measures REFERENCE_ROWS first (eotd_jax.planning.plan.find_batch)
        best = next((row for row in train if row["settings"]["per_device"] == found["largest_per_device_batch"]
                     and not row["settings"]["remat"] and row["fits"]), None)

        per_token = ("—" if not reference.get("flops_per_token") else
                     f"{reference['flops_per_token'] / (6 * reference['params']):.2f} x 6N")
        step, tokens = speed(reference)
        best_step, best_tokens = speed(best)
        seconds = sum(row["compile_seconds"] for row in rows if "compile_seconds" in row)
        largest = " / ".join(_largest(found[key], train, remat)
                             for key, remat in (("largest_per_device_batch", False), ("with_remat", True)))
        cells = [model, slice_name, largest,
                 memory(reference), per_token, step, tokens, communication(reference),
                 f"{best_step}, {best_tokens}",
                 "—" if decode is None else f"{decode['settings']['batch']} x {decode['settings']['max_new_tokens']}: "
                                            f"{memory(decode)}, {communication(decode)}",
                 f"{len(train) + (decode is not None)}, {seconds:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    os.makedirs(FLAGS.out, exist_ok=True)
    records = {}
    for model in FLAGS.models:
        for slice_name in FLAGS.slices:
            if not os.path.exists(cell_path(model, slice_name)) and not FLAGS.table_only:
                run_cell(model, slice_name)
            if os.path.exists(cell_path(model, slice_name)):
                with open(cell_path(model, slice_name), encoding="utf-8") as file:
                    records[model, slice_name] = [json.loads(line) for line in file if line.strip()]
    markdown = table(records)
    with open(os.path.join(FLAGS.out, "grid.md"), "w", encoding="utf-8") as file:
        file.write(markdown)
    print(markdown)


if __name__ == "__main__":
    app.run(main)
