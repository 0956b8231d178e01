"""Teacher -> verified CoT / PoT / EoT rationales -> shards: `python -m data_gen.build`.

    python -m data_gen.build --teacher=gold --dataset=gsm8k --split=train --out=/tmp/gsm8k_gold
    python -m data_gen.build --teacher=gold --dataset=synthetic --synthetic_count=2000 --out=/tmp/synth
    OPENAI_API_KEY=... python -m data_gen.build --teacher=openai --model=gpt-4o-mini \\
        --dataset=gsm8k --split=train --samples=4 --out=/tmp/gsm8k_gpt

    OPENAI_API_KEY=... python -m data_gen.build --teacher=openai --batch_api ...   # Batch API: half the price

The API teacher journals every answer in `--out/journal.jsonl` as it arrives:
re-running the same command after a crash or kill sends only what is missing.
With `--batch_api` the requests go as batch files (kept, with the ids of the
submitted batches, in `<journal dir>/batch_api/`); re-running a killed run
polls the batches it had submitted instead of submitting them again.
Output: shards, TFDS metadata, `manifest.json`, and a yield table on stdout.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from absl import app, flags

from data_gen.prompts import PROMPT_STYLES, load_prompt
from data_gen.teachers.base import TeacherError
from data_gen.teachers.gold import GoldTeacher
from data_gen.teachers.openai_api import OpenAITeacher
from data_gen.teachers.settings import ApiSettings
from data_gen.verification import verify_candidates, yield_report
from data_gen.writer import dataset_names, write_shards
from eotd_jax import paths
from eotd_jax.benchmarks import DATASETS, SYNTHETIC, DatasetFormatError, Problem, load_problems
from eotd_jax.benchmarks.synthetic_families import FAMILY_NAMES, FORWARD
from eotd_jax.thoughts import THOUGHTS
from eotd_jax.thoughts.sandbox import SandboxPool

_DEFAULT_DATA_DIR = os.environ.get("EOTD_DATA_DIR", os.path.join("..", "shared", "datasets"))
_HELP = "python -m data_gen.build --helpfull lists every flag"
_INTERRUPTED = ("error: interrupted (the API teacher's journal keeps every answer received: re-run the same command "
                "to resume)")

flags.DEFINE_enum("teacher", "gold", ["gold", "openai"],
                  "gold: derive thoughts offline from dataset annotations; openai: any OpenAI-compatible server")
flags.DEFINE_string("dataset", "synthetic", f"one of {', '.join(DATASETS)}")
flags.DEFINE_string("split", "train", "dataset split (synthetic: train, validation, test, and test_unseen for the "
                    "forward family, test_compositional for the others)")
flags.DEFINE_enum("prompt_style", "paper", list(PROMPT_STYLES),
                  "paper: EoT with a `%` comment line before each equation, as the paper's teacher wrote it "
                  "(also the gold teacher's EoT); compact: bare equations")
flags.DEFINE_string("data_dir", _DEFAULT_DATA_DIR, "benchmark files in their original layout, local or gs:// "
                    "(env EOTD_DATA_DIR); 'hub' or 'hub:<dir>' for hub copies (see eotd_jax.benchmarks.load_from)")
flags.DEFINE_list("thoughts", list(THOUGHTS), "thoughts to generate, from cot,pot,eot")
flags.DEFINE_integer("samples", 1, "samples per problem and thought (the gold teacher gives one)", lower_bound=1)
flags.DEFINE_integer("limit", 0, "use only the first N problems (0: all)", lower_bound=0)
flags.DEFINE_integer("synthetic_count", 2000, "problems drawn from each synthetic family", lower_bound=1)
flags.DEFINE_list("synthetic_families", [FORWARD], f"synthetic families to draw from: {', '.join(FAMILY_NAMES)}")
flags.DEFINE_integer("max_per_thought", 0, "keep at most this many distinct verified rationales per problem and "
                     "thought (0: no cap)", lower_bound=0)
flags.DEFINE_string("out", None, "output directory, local or gs://", required=True)
flags.DEFINE_string("name", "eotd", "dataset name in shard file names")
flags.DEFINE_integer("num_shards", 4, "number of output shards", lower_bound=1)
flags.DEFINE_enum("format", "tfrecord", ["tfrecord", "jsonl"], "tfrecord (with TFDS metadata) or jsonl to inspect")
flags.DEFINE_integer("seed", 0, "seed of the synthetic source and of the shard shuffle")
flags.DEFINE_integer("workers", None, "sandbox processes verifying PoT / EoT (default: CPU count)", lower_bound=1)
flags.DEFINE_float("pot_cpu_seconds", 2.0, "CPU seconds one PoT program may use (a brute-force search may need more)",
                   lower_bound=0.01)
flags.DEFINE_string("journal", None, "API response journal (default: <out>/journal.jsonl)")
flags.DEFINE_bool("progress", True, "show progress bars")
ApiSettings.define_flags()  # the API teacher's: --model, --base_url, --rpm, --batch_api, ...

FLAGS = flags.FLAGS


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with a bad flag said in one line."""
    try:
        return FLAGS(argv)
    except flags.Error as error:
        sys.exit(f"error: {error} ({_HELP})")


def problems_to_teach() -> list[Problem]:
    """The answerable problems of --dataset / --split (non-numeric ASDiv answers cannot be verified)."""
    limit = FLAGS.limit
    if FLAGS.dataset == SYNTHETIC:
        limit = min(limit, FLAGS.synthetic_count) if limit else FLAGS.synthetic_count
        return [problem for family in FLAGS.synthetic_families
                for problem in load_problems(f"{SYNTHETIC}/{family}/{FLAGS.split}", FLAGS.data_dir, limit, FLAGS.seed)]
    return load_problems(f"{FLAGS.dataset}/{FLAGS.split}", FLAGS.data_dir, limit, FLAGS.seed)


def make_teacher(settings: ApiSettings):
    if FLAGS.teacher == "gold":
        return GoldTeacher(FLAGS.prompt_style)
    journal = FLAGS.journal or os.fspath(paths.path(FLAGS.out) / "journal.jsonl")
    return OpenAITeacher(settings, journal, FLAGS.prompt_style, progress=FLAGS.progress)


def check_flags() -> None:
    """What the flags' own ranges cannot say, checked before any work."""
    unknown = [t for t in FLAGS.thoughts if t not in THOUGHTS]
    if unknown or not FLAGS.thoughts:
        raise ValueError(f"--thoughts: unknown thought {', '.join(unknown) or '(none given)'} (choose from "
                         f"{','.join(THOUGHTS)})")
    if FLAGS.dataset not in DATASETS:
        raise ValueError(f"--dataset: unknown dataset {FLAGS.dataset!r}; known: {', '.join(DATASETS)}")
    if paths.path(FLAGS.out).exists() and not paths.path(FLAGS.out).is_dir():
        raise ValueError(f"--out={FLAGS.out} is a file (give a directory)")
    others = sorted(dataset_names(FLAGS.out) - {FLAGS.name})
    if others:
        raise ValueError(f"--out={FLAGS.out} holds the dataset {others[0]!r}; writing {FLAGS.name!r} beside it would "
                         f"mix the two (give another --out, or --name={others[0]} to rebuild that one)")


def build() -> None:
    check_flags()
    settings = ApiSettings.from_flags()
    thoughts = [t for t in THOUGHTS if t in FLAGS.thoughts]
    problems = problems_to_teach()
    teacher = make_teacher(settings)
    candidates = teacher.generate(problems, thoughts, FLAGS.samples)
    with SandboxPool(num_workers=FLAGS.workers, pot_cpu_seconds=FLAGS.pot_cpu_seconds) as pool:
        examples, counts = verify_candidates(candidates, problems, pool, teacher.name, FLAGS.max_per_thought,
                                             FLAGS.progress)
    print(yield_report(counts))
    if not examples:
        raise ValueError("no rationale was verified, so nothing was written (the yield table above counts each "
                         "reason for rejecting one)")
    shards = write_shards(examples, FLAGS.out, FLAGS.name, FLAGS.num_shards, FLAGS.seed, FLAGS.format)
    manifest = {
        "name": FLAGS.name,
        "teacher": teacher.name,
        "dataset": FLAGS.dataset,
        "split": FLAGS.split,
        "problems": len(problems),
        "thoughts": thoughts,
        "prompt_style": FLAGS.prompt_style,
        "prompts_sha256": ({t: load_prompt(t, FLAGS.prompt_style).sha256 for t in thoughts}
                           if FLAGS.teacher == "openai" else {}),
        "settings": {name: FLAGS[name].value for name in _SETTINGS} | (
            dataclasses.asdict(settings) if FLAGS.teacher == "openai" else {}),
        "counts": {t: {"candidates": sum(c.values()), "kept": c["kept"],
                       "rejected": {r: n for r, n in sorted(c.items()) if r != "kept"}} for t, c in counts.items()},
        "usage": vars(teacher.usage),
        "format": FLAGS.format,
        "shards": shards,
    }
    (paths.path(FLAGS.out) / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print(f"{len(examples)} verified examples in {len(shards)} shards under {FLAGS.out}")


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {' '.join(argv[1:])} (every setting is a --flag=value; {_HELP})")
    try:
        build()
    except KeyboardInterrupt:
        print(_INTERRUPTED, file=sys.stderr)
        sys.exit(130)
    except (OSError, ValueError, DatasetFormatError, TeacherError) as error:
        sys.exit(f"error: {error}")


_SETTINGS = ("teacher", "dataset", "split", "samples", "limit", "synthetic_count", "synthetic_families",
             "max_per_thought", "num_shards", "seed", "pot_cpu_seconds")

if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
