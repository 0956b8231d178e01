"""The mini-grid's table and plot from its students' eval results: `python -m eotd_jax.grid_report`.

    python -m eotd_jax.grid_report --grid_dir=workdir/mini_grid

Reads `<grid_dir>/<method>/eval/results.json` (the eval binary's output) for
each method that has one and writes `<grid_dir>/results.md` (accuracy per
method, strategy and split; outcomes of each thought's rationale) and
`<grid_dir>/results.png`.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

METHODS = {"cotd": ["cot"], "potd": ["pot"], "eotd": ["eot"], "etd": ["etd", "vote", "cot", "pot", "eot"]}
LABELS = {"cotd": "CoTD", "potd": "PoTD", "eotd": "EoTD", "etd": "ETD"}
SPLITS = {"synthetic/test": "in-distribution", "synthetic/test_unseen": "unseen templates"}

flags.DEFINE_string("grid_dir", "workdir/mini_grid", "directory holding one workdir per method")
FLAGS = flags.FLAGS


def load_results(grid_dir: str) -> dict[str, dict]:
    """{method: the eval binary's results.json} for every method evaluated under `grid_dir`."""
    results = {}
    for method in METHODS:
        path = os.path.join(grid_dir, method, "eval", "results.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as file:
                results[method] = json.load(file)
    if not results:
        raise FileNotFoundError(f"no <method>/eval/results.json under {grid_dir}")
    return results


def table(results: dict[str, dict]) -> str:
    splits = [s for s in SPLITS if any(s in r for r in results.values())]
    lines = ["| student | strategy | " + " | ".join(f"{SPLITS[s]} (n)" for s in splits) + " |",
             "|---|---" + "|---" * len(splits) + "|"]
    for method, result in results.items():
        for strategy in METHODS[method]:
            cells = [f"{100 * result[s]['accuracy'][strategy]:.1f} ({result[s]['questions']})" if s in result
                     and strategy in result[s]["accuracy"] else "-" for s in splits]
            lines.append(f"| {LABELS[method]} | {strategy} | " + " | ".join(cells) + " |")
    lines += ["", "| student | thought | split | outcomes of the rationale |", "|---|---|---|---|"]
    for method, result in results.items():
        for split in splits:
            for thought, counts in result.get(split, {}).get("outcomes_per_thought", {}).items():
                if counts:
                    outcome = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                    lines.append(f"| {LABELS[method]} | {thought} | {SPLITS[split]} | {outcome} |")
    return "\n".join(lines)


def plot(results: dict[str, dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [(method, strategy) for method, result in results.items() for strategy in METHODS[method][:2]
            if any(strategy in r.get("accuracy", {}) for r in result.values())]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.2))
    width = 0.8 / len(SPLITS)
    for k, (split, label) in enumerate(SPLITS.items()):
        heights = [100 * results[m].get(split, {}).get("accuracy", {}).get(s, 0.0) for m, s in bars]
        left.bar([i + k * width for i in range(len(bars))], heights, width, label=label)
    left.set_xticks([i + 0.4 - width / 2 for i in range(len(bars))],
                    [f"{LABELS[m]}\n{s}" for m, s in bars])
    left.set_ylim(0, 100)
    left.set_ylabel("accuracy (%)")
    left.set_title("accuracy per student and split")
    left.legend(fontsize="small")
    rows = [(m, t) for m, r in results.items() for t, c in r.get("synthetic/test", {}).get(
        "outcomes_per_thought", {}).items() if c]
    outcomes = sorted({o for m, t in rows for o in results[m]["synthetic/test"]["outcomes_per_thought"][t]},
                      key=lambda outcome: (outcome != "correct", outcome))  # correct at the bottom
    bottom = [0.0] * len(rows)
    for outcome in outcomes:
        shares = []
        for m, t in rows:
            counts = results[m]["synthetic/test"]["outcomes_per_thought"][t]
            shares.append(100 * counts.get(outcome, 0) / sum(counts.values()))
        right.bar(range(len(rows)), shares, 0.7, bottom=bottom, label=outcome)
        bottom = [b + s for b, s in zip(bottom, shares, strict=True)]
    right.set_xticks(range(len(rows)), [f"{LABELS[m]}\n{t}" for m, t in rows])
    right.set_ylabel("% of in-distribution questions")
    right.set_title("outcome of each thought's rationale")
    right.legend(fontsize="small", loc="lower left", bbox_to_anchor=(1.0, 0.0))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    try:
        results = load_results(FLAGS.grid_dir)
    except (OSError, ValueError, KeyError) as error:
        sys.exit(f"error: {error}")
    text = table(results)
    with open(os.path.join(FLAGS.grid_dir, "results.md"), "w", encoding="utf-8") as file:
        file.write(text + "\n")
    plot(results, os.path.join(FLAGS.grid_dir, "results.png"))
    print(text)


if __name__ == "__main__":
    app.run(main)
