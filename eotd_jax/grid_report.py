"""The mini-grid's tables and plot from its students' eval results: `python -m eotd_jax.grid_report`.

    python -m eotd_jax.grid_report --grid_dir=workdir/mini_grid

Reads `<grid_dir>/<method>/seed<k>/eval/results.json` (the eval binary's
output) for every method and seed evaluated, and writes `<grid_dir>/results.md`:
per synthetic family, the accuracy of each student and strategy on the family's
test split and its held-out split (mean and range over seeds), then the outcomes
of each thought's rationale summed over seeds; and `<grid_dir>/results.png`, a
panel per family.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import re
import statistics
import sys

from absl import app, flags

from eotd_jax.benchmarks.synthetic_families import FAMILY_NAMES, parse_dataset
from eotd_jax.thoughts import THOUGHTS

METHODS = {"cotd": ["cot"], "potd": ["pot"], "eotd": ["eot"], "etd": ["etd", "vote", "cot", "pot", "eot"]}
LABELS = {"cotd": "CoTD", "potd": "PoTD", "eotd": "EoTD", "etd": "ETD"}
SPLITS = {"test": "test", "test_unseen": "unseen templates", "test_compositional": "new compositions"}

flags.DEFINE_string("grid_dir", "workdir/mini_grid", "directory holding <method>/seed<k> workdirs")
FLAGS = flags.FLAGS

# {method: {seed: the eval binary's results.json}}
Results = dict[str, dict[int, dict]]


def load_results(grid_dir: str) -> Results:
    """Every method's and seed's eval results under `grid_dir`."""
    results: Results = {}
    for method in METHODS:
        for path in sorted(glob.glob(os.path.join(grid_dir, method, "seed*", "eval", "results.json"))):
            seed = int(re.fullmatch(r"seed(\d+)", os.path.basename(os.path.dirname(os.path.dirname(path))))[1])
            with open(path, encoding="utf-8") as file:
                results.setdefault(method, {})[seed] = json.load(file)
    if not results:
        raise FileNotFoundError(f"no <method>/seed<k>/eval/results.json under {grid_dir}")
    return results


def by_family(results: Results) -> dict[str, dict[str, str]]:
    """{family: {split: dataset name}} for the synthetic datasets evaluated, in family order."""
    found: dict[str, dict[str, str]] = collections.defaultdict(dict)
    for seeds in results.values():
        for result in seeds.values():
            for dataset in result:
                name, _, rest = dataset.partition("/")
                if name == "synthetic":
                    family, split = parse_dataset(rest)
                    found[family][split] = dataset
    order = list(SPLITS)
    return {family: dict(sorted(found[family].items(), key=lambda item: order.index(item[0]) if item[0] in order
                                else len(order))) for family in FAMILY_NAMES if family in found}


def accuracies(results: Results, method: str, strategy: str, dataset: str) -> list[float]:
    """The strategy's accuracy (%) on `dataset`, one per seed that evaluated it."""
    return [100 * r[dataset]["accuracy"][strategy] for r in results[method].values()
            if dataset in r and strategy in r[dataset]["accuracy"]]


def cell(values: list[float], seeds: int) -> str:
    """Mean (lowest-highest) over the seeds; a note where fewer than the grid's `seeds` were evaluated."""
    if not values:
        return "-"
    text = f"{values[0]:.1f}" if len(values) == 1 else \
        f"{statistics.mean(values):.1f} ({min(values):.1f}-{max(values):.1f})"
    return text if len(values) == seeds else f"{text} [{len(values)} of {seeds} seeds]"


def table(results: Results) -> str:
    seeds = sorted({seed for method in results.values() for seed in method})
    lines = [f"Accuracy (%) per family: the mean over seeds {', '.join(map(str, seeds))} and, in parentheses, "
             "the lowest and highest seed."]
    for family, datasets in by_family(results).items():
        questions = {split: max(r[d]["questions"] for m in results.values() for r in m.values() if d in r)
                     for split, d in datasets.items()}
        lines += ["", f"**{family}**", "",
                  "| student | strategy | " + " | ".join(f"{SPLITS.get(s, s)} (n={questions[s]})" for s in datasets)
                  + " |", "|---|---" + "|---" * len(datasets) + "|"]
        for method in results:
            for strategy in METHODS[method]:
                cells = [cell(accuracies(results, method, strategy, d), len(seeds)) for d in datasets.values()]
                lines.append(f"| {LABELS[method]} | {strategy} | " + " | ".join(cells) + " |")
    lines += ["", "Outcomes of each thought's first rationale, summed over seeds:", "",
              "| family | student | thought | test | held out |", "|---|---|---|---|---|"]
    for family, datasets in by_family(results).items():
        for method, seeds in results.items():
            for thought in THOUGHTS:
                cells = []
                held_out = next((d for split, d in datasets.items() if split != "test"), None)
                for dataset in (datasets.get("test"), held_out):
                    counts: collections.Counter = collections.Counter()
                    for result in seeds.values():
                        counts.update(result.get(dataset, {}).get("outcomes_per_thought", {}).get(thought, {}))
                    cells.append(", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
                if any(cells):
                    lines.append(f"| {family} | {LABELS[method]} | {thought} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: Results, path: str) -> None:
    """A panel per family: a bar per student and strategy (ETD: its fallback and the vote) and split, with the
    range over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = by_family(results)
    bars = [(method, strategy) for method in results for strategy in METHODS[method][:2]]
    figure, axes = plt.subplots(len(families), 1, figsize=(10, 3.2 * len(families)), squeeze=False)
    for row, (family, datasets) in zip(axes[:, 0], families.items(), strict=True):
        width = 0.8 / len(datasets)
        for k, (split, dataset) in enumerate(datasets.items()):
            values = [accuracies(results, m, s, dataset) for m, s in bars]
            means = [statistics.mean(v) if v else 0.0 for v in values]
            spread = [[m - min(v) if v else 0 for m, v in zip(means, values, strict=True)],
                      [max(v) - m if v else 0 for m, v in zip(means, values, strict=True)]]
            row.bar([i + k * width for i in range(len(bars))], means, width, yerr=spread, capsize=3,
                    label=SPLITS.get(split, split))
        row.set_xticks([i + 0.4 - width / 2 for i in range(len(bars))], [f"{LABELS[m]} {s}" for m, s in bars])
        row.set_ylim(0, 100)
        row.set_ylabel("accuracy (%)")
        row.set_title(family)
        row.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
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
