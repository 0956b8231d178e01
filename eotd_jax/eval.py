"""Evaluate a student on the benchmarks: `python -m eotd_jax.eval --config=configs/x.py --checkpoint_dir=DIR`.

    python -m eotd_jax.eval --config=configs/quickstart.py --checkpoint_dir=workdir/quickstart/train \\
        --datasets=synthetic --strategies=cot,pot,eot,etd,vote
    python -m eotd_jax.eval --config=configs/paper.py:codet5-large,etd --checkpoint_dir=/models/etd-codet5p-770m-py

`--checkpoint_dir` is a training workdir (the latest Orbax checkpoint is used)
or a Hugging Face model directory. Writes to `--eval_dir` (default
`<checkpoint_dir>/eval`): predictions.jsonl (resumable: finished questions
are not redone), results.json, results.md (the printed table) and results.png.
"""

from __future__ import annotations

import collections
import json
import os
import sys

import jax
from absl import app, flags, logging
from flax import nnx
from ml_collections import ConfigDict, config_flags
from tqdm import tqdm

from data_gen.teachers.synthetic import synthetic_problems
from eotd_jax import checkpoints
from eotd_jax.benchmarks import BENCHMARKS, Problem, load
from eotd_jax.evaluation import DecodeSettings, answer_questions
from eotd_jax.model.hf_io import import_hf
from eotd_jax.optim import make_optimizer
from eotd_jax.strategies import STRATEGIES
from eotd_jax.thoughts.sandbox import SandboxPool
from eotd_jax.thoughts.scoring import THOUGHTS
from eotd_jax.tokenizer import load_tokenizer
from eotd_jax.trainer import model_and_params

_CONFIG = config_flags.DEFINE_config_file("config", None, "the training config of the student", lock_config=True)
flags.DEFINE_string("checkpoint_dir", None, "training workdir (latest checkpoint) or a Hugging Face model directory")
flags.DEFINE_list("datasets", ["gsm8k", "asdiv", "svamp", "multiarith"], f"from {', '.join(BENCHMARKS)}, synthetic")
flags.DEFINE_list("strategies", list(STRATEGIES), "cot, pot, eot (one thought), etd (fallback), vote (majority)")
flags.DEFINE_string("data_dir", os.environ.get("EOTD_DATA_DIR", os.path.join("..", "shared", "datasets")),
                    "benchmark files in their original layout (env EOTD_DATA_DIR)")
flags.DEFINE_string("eval_dir", None, "output directory (default: <checkpoint_dir>/eval)")
flags.DEFINE_integer("limit", 0, "first N questions of each dataset (0: all)")
flags.DEFINE_integer("samples", 1, "rationales per thought: 1 = greedy, K > 1 = sampled (self-consistency vote)")
flags.DEFINE_integer("max_new_tokens", 256, "rationale length limit")
flags.DEFINE_integer("batch_size", 32, "questions decoded together")
flags.DEFINE_integer("chunk", 128, "questions decoded, executed and written per step")
flags.DEFINE_integer("workers", None, "sandbox processes (default: CPU count)")
FLAGS = flags.FLAGS


def load_student(config: ConfigDict, checkpoint_dir: str):
    """(model, tokenizer) from a training workdir's latest checkpoint or from a Hugging Face directory."""
    if os.path.isfile(os.path.join(checkpoint_dir, "config.json")) and not os.path.isdir(
            os.path.join(checkpoint_dir, "checkpoints")):
        _, model = import_hf(checkpoint_dir)
        return model, load_tokenizer(checkpoint_dir)
    _, graphdef, state, _ = model_and_params(config)
    manager = checkpoints.make_manager(checkpoint_dir, keep=1, keep_best=0, asynchronous=False)
    step = manager.latest_step()
    if step is None:
        raise FileNotFoundError(f"{checkpoint_dir}: no checkpoint (and not a Hugging Face model directory)")
    params_shape = nnx.to_pure_dict(state)
    abstract = {"params": params_shape, "opt_state": jax.eval_shape(make_optimizer(config.train).init, params_shape),
                "step": jax.ShapeDtypeStruct((), "int32")}
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    restored, _ = checkpoints.restore(manager, step, checkpoints.abstract_like(
        abstract, jax.tree.map(lambda _: device, abstract)))
    manager.close()
    return nnx.merge(graphdef, restored["params"]), load_tokenizer(config.tokenizer or "byte")


def load_problems(name: str) -> list[Problem]:
    if name == "synthetic":  # held out: a split the training data never uses
        problems = synthetic_problems(FLAGS.limit or 200, seed=0, split="test")
    else:
        problems = [p for p in load(name, FLAGS.data_dir) if p.answer is not None]
    return problems[: FLAGS.limit] if FLAGS.limit else problems


def read_done(path: str) -> dict[str, dict]:
    """Finished predictions by (source, id); a torn last line from an interrupted run is ignored."""
    done = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                done[record["source"], record["id"]] = record
    return done


def results_table(predictions: dict[str, list[dict]], strategies: list[str]) -> tuple[dict, str]:
    results = {}
    lines = ["| dataset | questions | " + " | ".join(strategies) + " |", "|---" * (len(strategies) + 2) + "|"]
    for name, records in predictions.items():
        accuracy = {s: sum(r["correct"][s] for r in records) / max(len(records), 1) for s in strategies}
        failures = {t: dict(collections.Counter(r["thoughts"][t][0]["failure"] or "correct" for r in records
                                                if r["thoughts"].get(t)))
                    for t in THOUGHTS}
        results[name] = {"questions": len(records), "accuracy": accuracy, "outcomes_per_thought": failures}
        lines.append(f"| {name} | {len(records)} | " + " | ".join(f"{100 * accuracy[s]:.1f}" for s in strategies)
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
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    if not FLAGS.checkpoint_dir:
        sys.exit("error: --checkpoint_dir is required")
    unknown = [s for s in FLAGS.strategies if s not in STRATEGIES]
    if unknown:
        sys.exit(f"error: --strategies: unknown {', '.join(unknown)}; known: {', '.join(STRATEGIES)}")
    unknown = [d for d in FLAGS.datasets if d not in (*BENCHMARKS, "synthetic")]
    if unknown:
        sys.exit(f"error: --datasets: unknown {', '.join(unknown)}")
    logging.set_verbosity(logging.WARNING)  # Orbax and JAX log every save and compile at INFO
    config = _CONFIG.value
    if config is None and not os.path.isfile(os.path.join(FLAGS.checkpoint_dir, "config.json")):
        sys.exit("error: --config is required for a training workdir")
    eval_dir = FLAGS.eval_dir or os.path.join(FLAGS.checkpoint_dir, "eval")
    os.makedirs(eval_dir, exist_ok=True)
    try:
        model, tokenizer = load_student(config, FLAGS.checkpoint_dir)
        problems = {name: load_problems(name) for name in FLAGS.datasets}
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    thoughts = [t for t in THOUGHTS if any(s in (t, "etd", "vote") for s in FLAGS.strategies)]
    settings = DecodeSettings(max_new_tokens=FLAGS.max_new_tokens, batch_size=FLAGS.batch_size,
                              samples=FLAGS.samples)
    path = os.path.join(eval_dir, "predictions.jsonl")
    done = read_done(path)
    predictions = {name: [done[p.source, p.id] for p in ps if (p.source, p.id) in done]
                   for name, ps in problems.items()}
    todo = {name: [p for p in ps if (p.source, p.id) not in done] for name, ps in problems.items()}
    total = sum(map(len, problems.values()))
    with SandboxPool(num_workers=FLAGS.workers) as pool, open(path, "a", encoding="utf-8") as out, \
            tqdm(total=total, initial=total - sum(map(len, todo.values())), desc="evaluating", unit="q") as bar:
        for name, remaining in todo.items():
            for start in range(0, len(remaining), FLAGS.chunk):
                chunk = remaining[start:start + FLAGS.chunk]
                records = answer_questions(model, tokenizer, chunk, thoughts, FLAGS.strategies, pool, settings)
                for record in records:
                    out.write(json.dumps(record) + "\n")
                out.flush()
                predictions[name].extend(records)
                bar.update(len(chunk))
    results, table = results_table(predictions, FLAGS.strategies)
    with open(os.path.join(eval_dir, "results.json"), "w", encoding="utf-8") as file:
        json.dump(results, file, indent=2)
    with open(os.path.join(eval_dir, "results.md"), "w", encoding="utf-8") as file:
        file.write(table + "\n")
    plot(results, FLAGS.strategies, os.path.join(eval_dir, "results.png"))
    print(table)


if __name__ == "__main__":
    app.run(main)
