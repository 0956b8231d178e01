"""Evaluate a student on the benchmarks: `python -m eotd_jax.eval --checkpoint_dir=DIR`.

    python -m eotd_jax.eval --checkpoint_dir=workdir/quickstart/train --step=best \\
        --datasets=synthetic --strategies=cot,pot,eot,etd,vote
    python -m eotd_jax.eval --checkpoint_dir=/models/etd-codet5p-770m-py --max_source_length=256  # an HF dir

`--checkpoint_dir` is a training workdir (its latest Orbax checkpoint, or the
one `--step` names) or a Hugging Face model directory. Writes to `--eval_dir` (default
`<checkpoint_dir>/eval`): predictions.jsonl (resumable: finished questions
are not redone), results.json, results.md (the printed table) and results.png.
The student's input template and selectors are those it was trained with (the
checkpoint's config, or an exported directory's student_input.json; the
paper's released student's when neither has them); the flags override them.
Every path may be local or gs://.
"""

from __future__ import annotations

import collections
import json
import os
import sys

from absl import flags, logging
from ml_collections import config_flags
from tqdm import tqdm

from eotd_jax import cli, paths
from eotd_jax.benchmarks import DATASETS, Problem, load_problems
from eotd_jax.evaluation import DecodeSettings, accuracy, answer_questions
from eotd_jax.journal import Journal
from eotd_jax.strategies import STRATEGIES
from eotd_jax.student import load_student
from eotd_jax.thoughts import THOUGHTS
from eotd_jax.thoughts.sandbox import SandboxPool

_CONFIG = config_flags.DEFINE_config_file("config", None, "the student's training config (default: the one saved "
                                          "in the checkpoint)", lock_config=True)
flags.DEFINE_string("checkpoint_dir", None, "training workdir (the checkpoint --step names) or a Hugging Face "
                    "model directory")
flags.DEFINE_string("step", "latest", "which checkpoint of a workdir: latest, best (highest in-training eval "
                    "accuracy; latest when none was measured), or a step number")
flags.DEFINE_list("datasets", ["gsm8k", "asdiv", "svamp", "multiarith"],
                  f"from {', '.join(DATASETS)}, each optionally /split (default test), e.g. synthetic/test_unseen")
flags.DEFINE_list("strategies", list(STRATEGIES), "cot, pot, eot (one thought), etd (fallback), vote (majority)")
flags.DEFINE_string("data_dir", os.environ.get("EOTD_DATA_DIR", os.path.join("..", "shared", "datasets")),
                    "benchmark files in their original layout, local or gs:// (env EOTD_DATA_DIR); 'hub': the "
                    "hub copies through `datasets`; 'hub:<dir>': hub-format copies at <dir>/<name>")
flags.DEFINE_string("eval_dir", None, "output directory (default: <checkpoint_dir>/eval/step_<N>, or "
                    "<checkpoint_dir>/eval for a Hugging Face directory)")
flags.DEFINE_integer("limit", 0, "first N questions of each dataset (0: all)")
flags.DEFINE_integer("samples", 1, "rationales per thought: 1 = greedy, K > 1 = sampled (self-consistency vote)")
flags.DEFINE_integer("max_new_tokens", 256, "rationale length limit")
flags.DEFINE_integer("max_source_length", 512, "input tokens kept per question, special tokens included (the "
                     "paper's students: 256)")
flags.DEFINE_string("input_template", None, "the student's input text with {question} and {selector}, e.g. "
                    "$'Question: {question}\\n{selector}\\n' in bash (default: what the student was trained with)")
for _thought in THOUGHTS:
    flags.DEFINE_string(f"selector_{_thought}", None, f"the text asking the student for {_thought} (default: what the "
                        "student was trained with)")
flags.DEFINE_integer("batch_size", 32, "questions decoded together")
flags.DEFINE_integer("chunk", 128, "questions decoded, executed and written per step")
flags.DEFINE_integer("workers", None, "sandbox processes (default: the CPUs this process may run on)")
FLAGS = flags.FLAGS


def claim_eval_dir(eval_dir: str, settings: dict) -> None:
    """Records what the predictions in `eval_dir` come from; resuming with other settings is refused."""
    paths.path(eval_dir).mkdir(parents=True, exist_ok=True)
    path = paths.path(eval_dir) / "eval_settings.json"
    if path.exists():
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous != settings:
            changed = ", ".join(f"{k}: {previous.get(k)} -> {v}" for k, v in settings.items() if previous.get(k) != v)
            raise ValueError(f"{eval_dir} holds predictions made with other settings ({changed}); "
                             "pass another --eval_dir")
    path.write_text(json.dumps(settings, indent=2), encoding="utf-8")


def _record_key(record: dict) -> str:
    return f"{record['source']}/{record['id']}"


def _problem_key(problem: Problem) -> str:
    return f"{problem.source}/{problem.id}"


def results_table(predictions: dict[str, list[dict]], strategies: list[str]) -> tuple[dict, str]:
    results = {}
    lines = ["| dataset | questions | " + " | ".join(strategies) + " |", "|---" * (len(strategies) + 2) + "|"]
    for name, records in predictions.items():
        accuracies = {s: accuracy(records, s) for s in strategies}
        failures = {t: dict(collections.Counter(r["thoughts"][t][0]["failure"] or "correct" for r in records
                                                if r["thoughts"].get(t)))
                    for t in THOUGHTS}
        results[name] = {"questions": len(records), "accuracy": accuracies, "outcomes_per_thought": failures}
        lines.append(f"| {name} | {len(records)} | " + " | ".join(f"{100 * accuracies[s]:.1f}" for s in strategies)
                     + " |")
    lines += ["", "| dataset | thought | outcomes of the first rationale |", "|---|---|---|"]
    for name, result in results.items():
        for thought, counts in result["outcomes_per_thought"].items():
            lines.append(f"| {name} | {thought} | " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + " |")
    return results, "\n".join(lines)


def plot(results: dict, strategies: list[str], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(1.8 + 1.6 * len(results), 3.5))
    width = 0.8 / len(strategies)
    for k, strategy in enumerate(strategies):
        axes.bar([i + k * width for i in range(len(results))],
                 [100 * r["accuracy"][strategy] for r in results.values()], width, label=strategy)
    axes.set_xticks([i + 0.4 - width / 2 for i in range(len(results))], list(results))
    axes.set_ylabel("accuracy (%)")
    axes.legend(fontsize="small")
    figure.tight_layout()
    with paths.path(path).open("wb") as file:
        figure.savefig(file, format="png", dpi=120)
    plt.close(figure)


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    if not FLAGS.checkpoint_dir:
        sys.exit("error: --checkpoint_dir is required")
    unknown = [s for s in FLAGS.strategies if s not in STRATEGIES]
    if unknown:
        sys.exit(f"error: --strategies: unknown {', '.join(unknown)}; known: {', '.join(STRATEGIES)}")
    unknown = [d for d in FLAGS.datasets if d.split("/", 1)[0] not in DATASETS]
    if unknown:
        sys.exit(f"error: --datasets: unknown {', '.join(unknown)}")
    if FLAGS.max_source_length < 2:
        sys.exit("error: --max_source_length must be at least 2")
    logging.set_verbosity(logging.WARNING)  # Orbax and JAX log every save and compile at INFO
    try:
        student = load_student(FLAGS.checkpoint_dir, _CONFIG.value, FLAGS.step)
        student_input = student.student_input.replace(
            FLAGS.input_template, **{t: FLAGS[f"selector_{t}"].value for t in THOUGHTS})
        problems = {name: load_problems(name, FLAGS.data_dir, FLAGS.limit) for name in FLAGS.datasets}
        eval_dir = FLAGS.eval_dir or os.fspath(paths.path(
            FLAGS.checkpoint_dir, "eval", *([] if student.step is None else [f"step_{student.step}"])))
        claim_eval_dir(eval_dir, {"checkpoint_dir": paths.absolute(FLAGS.checkpoint_dir), "step": student.step,
                                  "strategies": FLAGS.strategies, "max_new_tokens": FLAGS.max_new_tokens,
                                  "samples": FLAGS.samples, "max_source_length": FLAGS.max_source_length,
                                  "input": student_input.to_dict()})
        journal = Journal(os.fspath(paths.path(eval_dir) / "predictions.jsonl"), key=_record_key)
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    thoughts = [t for t in THOUGHTS if any(s in (t, "etd", "vote") for s in FLAGS.strategies)]
    settings = DecodeSettings(max_source_length=FLAGS.max_source_length, max_new_tokens=FLAGS.max_new_tokens,
                              batch_size=FLAGS.batch_size, samples=FLAGS.samples)
    predictions = {name: [journal.get(_problem_key(p)) for p in ps if _problem_key(p) in journal]
                   for name, ps in problems.items()}
    todo = {name: [p for p in ps if _problem_key(p) not in journal] for name, ps in problems.items()}
    total = sum(map(len, problems.values()))
    try:
        with SandboxPool(num_workers=FLAGS.workers or None) as pool, \
                tqdm(total=total, initial=total - sum(map(len, todo.values())), desc="evaluating", unit="q") as bar:
            for name, remaining in todo.items():
                for start in range(0, len(remaining), FLAGS.chunk):
                    chunk = remaining[start:start + FLAGS.chunk]
                    records = answer_questions(student.model, student.tokenizer, chunk, thoughts, FLAGS.strategies,
                                               pool, settings, student_input)
                    for record in records:
                        journal.append(record)
                    predictions[name].extend(records)
                    bar.update(len(chunk))
    finally:
        journal.close()
    results, table = results_table(predictions, FLAGS.strategies)
    (paths.path(eval_dir) / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (paths.path(eval_dir) / "results.md").write_text(table + "\n", encoding="utf-8")
    plot(results, FLAGS.strategies, os.fspath(paths.path(eval_dir) / "results.png"))
    print(table)


if __name__ == "__main__":
    cli.run(main)
