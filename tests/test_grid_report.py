"""The mini-grid's report: per family, the mean and range over seeds of every student's strategies, the outcomes
summed over seeds, and a plot; from results.json files laid out as launch/mini_grid.sh writes them."""

from __future__ import annotations

import json

from runs import python_module


def _result(accuracy: dict[str, float], outcomes: dict[str, dict[str, int]], questions: int = 4) -> dict:
    return {"questions": questions, "accuracy": accuracy, "outcomes_per_thought": outcomes}


def _write(grid, method: str, seed: int, results: dict) -> None:
    directory = grid / method / f"seed{seed}" / "eval"
    directory.mkdir(parents=True)
    (directory / "results.json").write_text(json.dumps(results))


def test_report_gives_mean_and_range_per_family_and_sums_outcomes(tmp_path):
    grid = tmp_path / "grid"
    for seed, (pot, compositional) in enumerate([(0.5, 0.0), (1.0, 0.25)]):
        _write(grid, "potd", seed, {
            "synthetic/two_unknowns/test": _result({"pot": pot}, {"pot": {"correct": int(4 * pot),
                                                                           "wrong_answer": 4 - int(4 * pot)}}),
            "synthetic/two_unknowns/test_compositional": _result({"pot": compositional}, {"pot": {"error": 4}}),
            "synthetic/test": _result({"pot": 0.75}, {"pot": {"correct": 3, "syntax": 1}}),
        })
    _write(grid, "etd", 0, {"synthetic/two_unknowns/test": _result(
        {s: 0.25 for s in ("cot", "pot", "eot", "etd", "vote")}, {"eot": {"correct": 1, "underdetermined": 3}})})
    result = python_module("eotd_jax.grid_report", f"--grid_dir={grid}", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = (grid / "results.md").read_text()
    lines = report.splitlines()
    assert report.index("**forward**") < report.index("**two_unknowns**")  # families in their order
    assert "| student | strategy | test (n=4) | new compositions (n=4) |" in lines
    assert "| PoTD | pot | 75.0 (75.0-75.0) |" in lines  # forward: the test split only
    assert "| PoTD | pot | 75.0 (50.0-100.0) | 12.5 (0.0-25.0) |" in lines
    assert "| ETD | etd | 25.0 [1 of 2 seeds] | - |" in lines and "| ETD | vote | 25.0 [1 of 2 seeds] | - |" in lines
    assert "| two_unknowns | PoTD | pot | correct 6, wrong_answer 2 | error 8 |" in lines
    assert "| two_unknowns | ETD | eot | correct 1, underdetermined 3 |  |" in lines
    assert (grid / "results.png").stat().st_size > 10_000


def test_report_without_results_is_a_one_line_error(tmp_path):
    result = python_module("eotd_jax.grid_report", f"--grid_dir={tmp_path}", timeout=300)
    assert result.returncode != 0 and result.stderr.startswith("error: no <method>/seed<k>/eval/results.json")
