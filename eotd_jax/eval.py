"""Evaluate a student on the benchmarks: `python -m eotd_jax.eval --workdir=DIR`.

    python -m eotd_jax.eval --workdir=workdir/quickstart/train --step=best \
        --datasets=synthetic --strategies=cot,pot,eot,etd,vote
    python -m eotd_jax.eval --workdir=/models/etd-codet5p-770m-py --max_source_length=256  # an HF dir

`--workdir` is a training run directory (its latest checkpoint, or the one
`--step` names) or a Hugging Face model directory (an export). Writes to
`--eval_dir` (default `<workdir>/eval/step_<N>`, or `<workdir>/eval` for a
Hugging Face directory): predictions.jsonl (resumable: finished questions are
not redone), results.json, results.md (the printed table) and results.png.
The student's input template and selectors, and the decode settings, are the
run's own (an export's `student_input.json`; the paper's released student's
when neither has them); the flags override them.
On a TPU slice or a cluster every process runs this binary, as training does
(`--cluster`, `eotd_jax.distributed`): the questions are split over all
devices, the parameters sharded over them, and process 0 writes the results.
Every path may be local or gs://.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import sys

import jax
from absl import flags, logging
from tqdm import tqdm

from eotd_jax import cli, distributed, multihost, paths
from eotd_jax.benchmarks import DATASETS, Problem, load_problems
from eotd_jax.evaluation import DecodeSettings, accuracy, answer_questions
from eotd_jax.journal import Journal
from eotd_jax.model.sharding import make_mesh
from eotd_jax.strategies import STRATEGIES
from eotd_jax.student import load_student
from eotd_jax.thoughts import THOUGHTS
from eotd_jax.thoughts.sandbox import SandboxPool

flags.DEFINE_string("workdir", None, "a training run directory (the checkpoint --step names) or a Hugging Face "
                    "model directory")
flags.DEFINE_string("step", "latest", "which checkpoint of a workdir: latest, best (highest in-training eval "
                    "accuracy; latest when none was measured), or a step number")
flags.DEFINE_list("datasets", ["gsm8k", "asdiv", "svamp", "multiarith"],
                  f"from {', '.join(DATASETS)}, each optionally /split (default test), e.g. synthetic/test_unseen")
flags.DEFINE_list("strategies", list(STRATEGIES), "cot, pot, eot (one thought), etd (fallback), vote (majority)")
flags.DEFINE_string("data_dir", os.environ.get("EOTD_DATA_DIR", os.path.join("..", "shared", "datasets")),
                    "benchmark files in their original layout, local or gs:// (env EOTD_DATA_DIR); 'hub': the "
                    "hub copies through `datasets`; 'hub:<dir>': hub-format copies at <dir>/<name>")
flags.DEFINE_string("eval_dir", None, "output directory (default: <workdir>/eval/step_<N>, or "
                    "<workdir>/eval for a Hugging Face directory)")
flags.DEFINE_integer("limit", 0, "first N questions of each dataset (0: all)")
flags.DEFINE_integer("samples", 1, "rationales per thought: 1 = greedy, K > 1 = sampled (self-consistency vote)")
flags.DEFINE_integer("max_new_tokens", None, "rationale length limit (default: the run's eval.max_new_tokens; "
                     f"{DecodeSettings.max_new_tokens} for a Hugging Face directory)")
flags.DEFINE_integer("max_source_length", None, "input tokens kept per question, special tokens included "
                     f"(default: the run's data.source_length; {DecodeSettings.max_source_length} for a Hugging "
                     "Face directory; the paper's students: 256)")
flags.DEFINE_string("input_template", None, "the student's input text with {question} and {selector}, e.g. "
                    "$'Question: {question}\\n{selector}\\n' in bash (default: what the student was trained with)")
for _thought in THOUGHTS:
    flags.DEFINE_string(f"selector_{_thought}", None, f"the text asking the student for {_thought} (default: what the "
                        "student was trained with)")
flags.DEFINE_integer("batch_size", None, "questions decoded together on each process (default: the run's "
                     f"eval.batch_size; {DecodeSettings.batch_size} for a Hugging Face directory)")
flags.DEFINE_integer("chunk", 128, "questions decoded, executed and written per step")
flags.DEFINE_integer("workers", None, "sandbox processes (default: the CPUs this process may run on)")
flags.adopt_module_key_flags(distributed)  # --cluster, --coordinator_address, ... in --help
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


def decode_settings(run_config) -> DecodeSettings:
    """The run's own decode settings (the defaults for a Hugging Face directory), overridden by the flags."""
    settings = DecodeSettings.from_config(run_config) if run_config is not None else DecodeSettings()
    chosen = {name: FLAGS[name].value for name in ("max_source_length", "max_new_tokens", "batch_size")
              if FLAGS[name].value is not None}
    return dataclasses.replace(settings, samples=FLAGS.samples, **chosen)


def check_flags() -> str | None:
    """What is wrong with the flags, in one line; None when nothing is."""
    if not FLAGS.workdir:
        return "--workdir is required"
    unknown = [s for s in FLAGS.strategies if s not in STRATEGIES]
    if unknown:
        return f"--strategies: unknown {', '.join(unknown)}; known: {', '.join(STRATEGIES)}"
    unknown = [d for d in FLAGS.datasets if d.split("/", 1)[0] not in DATASETS]
    if unknown:
        return f"--datasets: unknown {', '.join(unknown)}"
    for name, least in (("max_source_length", 2), ("max_new_tokens", 1), ("batch_size", 1), ("samples", 1),
                        ("chunk", 1), ("limit", 0)):
        if FLAGS[name].value is not None and FLAGS[name].value < least:
            return f"--{name} must be at least {least}"
    return None


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    problem = check_flags()
    if problem:
        sys.exit(f"error: {problem}")
    logging.set_verbosity(logging.WARNING)  # Orbax and JAX log every save and compile at INFO
    try:
        distributed.initialize_from_flags()
    except distributed.ClusterError as error:
        sys.exit(f"error: {error}")
    lead = jax.process_index() == 0
    mesh = make_mesh((1, -1, 1))
    journal = None
    try:
        student = load_student(FLAGS.workdir, FLAGS.step, mesh)
        student_input = student.student_input.replace(
            FLAGS.input_template, **{t: FLAGS[f"selector_{t}"].value for t in THOUGHTS})
        settings = decode_settings(student.config)
        problems = {name: load_problems(name, FLAGS.data_dir, FLAGS.limit) for name in FLAGS.datasets}
        eval_dir = FLAGS.eval_dir or os.fspath(paths.path(
            FLAGS.workdir, "eval", *([] if student.step is None else [f"step_{student.step}"])))
        if lead:
            claim_eval_dir(eval_dir, {"workdir": paths.absolute(FLAGS.workdir), "step": student.step,
                                      "strategies": FLAGS.strategies, "max_new_tokens": settings.max_new_tokens,
                                      "samples": FLAGS.samples, "max_source_length": settings.max_source_length,
                                      "input": student_input.to_dict()})
            journal = Journal(os.fspath(paths.path(eval_dir) / "predictions.jsonl"), key=_record_key)
        failure = None
    except (OSError, ValueError) as error:
        failure = str(error)
    failures = [f for f in multihost.all_gather_json([failure]) if f]  # every process stops, or none
    if failures:
        sys.exit(f"error: {failures[0]}")
    done = set(multihost.broadcast_json(sorted(journal.entries) if lead else None))  # process 0 reads the journal
    thoughts = [t for t in THOUGHTS if any(s in (t, "etd", "vote") for s in FLAGS.strategies)]
    todo = {name: [p for p in ps if _problem_key(p) not in done] for name, ps in problems.items()}
    total = sum(map(len, problems.values()))
    try:
        with SandboxPool(num_workers=FLAGS.workers or None) as pool, \
                tqdm(total=total, initial=total - sum(map(len, todo.values())), desc="evaluating", unit="q",
                     disable=not lead or not sys.stderr.isatty()) as bar:
            for remaining in todo.values():
                for start in range(0, len(remaining), FLAGS.chunk):
                    chunk = remaining[start:start + FLAGS.chunk]
                    records = answer_questions(student.model, student.tokenizer, chunk, thoughts, FLAGS.strategies,
                                               pool, settings, student_input, mesh=mesh)
                    if journal is not None:
                        for record in records:
                            journal.append(record)
                    bar.update(len(chunk))
    finally:
        if journal is not None:
            journal.close()
    if not lead:
        return
    predictions = {name: [journal.get(_problem_key(p)) for p in ps] for name, ps in problems.items()}
    results, table = results_table(predictions, FLAGS.strategies)
    (paths.path(eval_dir) / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (paths.path(eval_dir) / "results.md").write_text(table + "\n", encoding="utf-8")
    plot(results, FLAGS.strategies, os.fspath(paths.path(eval_dir) / "results.png"))
    print(table)


if __name__ == "__main__":
    cli.run(main)
