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

import json
import os
import sys

from absl import app, flags

from data_gen.prompts import PROMPT_STYLES, load_prompt
from data_gen.teachers.base import TeacherError
from data_gen.teachers.gold import GoldTeacher
from data_gen.teachers.openai_api import ApiSettings, OpenAITeacher
from data_gen.teachers.openai_batch import BatchSettings
from data_gen.verification import verify_candidates, yield_report
from data_gen.writer import write_shards
from eotd_jax import paths
from eotd_jax.benchmarks import DATASETS, SYNTHETIC, DatasetFormatError, Problem, load_problems
from eotd_jax.thoughts import THOUGHTS
from eotd_jax.thoughts.sandbox import SandboxPool

_DEFAULT_DATA_DIR = os.environ.get("EOTD_DATA_DIR", os.path.join("..", "shared", "datasets"))

flags.DEFINE_enum("teacher", "gold", ["gold", "openai"],
                  "gold: derive thoughts offline from dataset annotations; openai: any OpenAI-compatible server")
flags.DEFINE_string("dataset", "synthetic", f"one of {', '.join(DATASETS)}")
flags.DEFINE_string("split", "train", "dataset split (synthetic: train, validation, test, test_unseen)")
flags.DEFINE_enum("prompt_style", "paper", list(PROMPT_STYLES),
                  "paper: EoT with a `%` comment line before each equation, as the paper's teacher wrote it "
                  "(also the gold teacher's EoT); compact: bare equations")
flags.DEFINE_string("data_dir", _DEFAULT_DATA_DIR, "benchmark files in their original layout, local or gs:// "
                    "(env EOTD_DATA_DIR); 'hub' or 'hub:<dir>' for hub copies (see eotd_jax.benchmarks.load_from)")
flags.DEFINE_list("thoughts", list(THOUGHTS), "thoughts to generate, from cot,pot,eot")
flags.DEFINE_integer("samples", 1, "samples per problem and thought (the gold teacher gives one)")
flags.DEFINE_integer("limit", 0, "use only the first N problems (0: all)")
flags.DEFINE_integer("synthetic_count", 2000, "problems drawn from the synthetic source")
flags.DEFINE_integer("max_per_thought", 0, "keep at most this many distinct verified rationales per problem and "
                     "thought (0: no cap)")
flags.DEFINE_string("out", None, "output directory, local or gs://", required=True)
flags.DEFINE_string("name", "eotd", "dataset name in shard file names")
flags.DEFINE_integer("num_shards", 4, "number of output shards")
flags.DEFINE_enum("format", "tfrecord", ["tfrecord", "jsonl"], "tfrecord (with TFDS metadata) or jsonl to inspect")
flags.DEFINE_integer("seed", 0, "seed of the synthetic source and of the shard shuffle")
flags.DEFINE_integer("workers", None, "sandbox processes verifying PoT / EoT (default: CPU count)")
flags.DEFINE_float("pot_cpu_seconds", 2.0, "CPU seconds one PoT program may use (a brute-force search may need more)")
flags.DEFINE_string("journal", None, "API response journal (default: <out>/journal.jsonl)")
flags.DEFINE_bool("progress", True, "show progress bars")
# The API teacher.
flags.DEFINE_string("model", "gpt-3.5-turbo", "teacher model id on the server")
flags.DEFINE_string("base_url", None, "OpenAI-compatible base URL, e.g. http://localhost:8000/v1 (default: OpenAI)")
flags.DEFINE_string("api_key_env", "OPENAI_API_KEY", "environment variable holding the API key")
flags.DEFINE_float("temperature", 0.7, "sampling temperature")
flags.DEFINE_float("top_p", 1.0, "nucleus sampling mass")
flags.DEFINE_integer("max_tokens", 512, "completion token limit; longer answers are rejected as truncated")
flags.DEFINE_integer("n_per_request", 1, "samples asked for in one request (the API's n)")
flags.DEFINE_integer("concurrency", 64, "requests in flight at once")
flags.DEFINE_float("rpm", 0.0, "requests-per-minute limit (0: none)")
flags.DEFINE_float("tpm", 0.0, "tokens-per-minute limit (0: none)")
flags.DEFINE_integer("max_retries", 6, "retries of a failing request (429, 5xx, timeout, malformed reply)")
flags.DEFINE_float("timeout", 60.0, "seconds before one request times out")
flags.DEFINE_float("backoff", 1.0, "first retry delay in seconds (doubles each retry) unless Retry-After says")
flags.DEFINE_float("price_prompt", 0.0, "US dollars per million prompt tokens, for the cost report")
flags.DEFINE_float("price_completion", 0.0, "US dollars per million completion tokens, for the cost report")
flags.DEFINE_bool("batch_api", False, "send the requests through the OpenAI Batch API (half the price, answers "
                  "within --batch_window); the --price_* flags are the live prices")
flags.DEFINE_float("batch_poll_seconds", 30.0, "seconds between polls of the submitted batches")
flags.DEFINE_integer("batch_max_requests", 50_000, "requests per batch file (the API allows 50,000 and 200 MB)")
flags.DEFINE_string("batch_window", "24h", "the batches' completion window")

FLAGS = flags.FLAGS


def problems_to_teach() -> list[Problem]:
    """The answerable problems of --dataset / --split (non-numeric ASDiv answers cannot be verified)."""
    if FLAGS.dataset not in DATASETS:
        raise ValueError(f"--dataset: unknown dataset {FLAGS.dataset!r}; known: {', '.join(DATASETS)}")
    limit = FLAGS.limit
    if FLAGS.dataset == SYNTHETIC:
        limit = min(limit, FLAGS.synthetic_count) if limit else FLAGS.synthetic_count
    return load_problems(f"{FLAGS.dataset}/{FLAGS.split}", FLAGS.data_dir, limit, FLAGS.seed)


def make_teacher():
    if FLAGS.teacher == "gold":
        return GoldTeacher(FLAGS.prompt_style)
    settings = ApiSettings(
        model=FLAGS.model, base_url=FLAGS.base_url, api_key_env=FLAGS.api_key_env, temperature=FLAGS.temperature,
        top_p=FLAGS.top_p, max_tokens=FLAGS.max_tokens, samples_per_request=FLAGS.n_per_request,
        concurrency=FLAGS.concurrency, requests_per_minute=FLAGS.rpm, tokens_per_minute=FLAGS.tpm,
        prompt_style=FLAGS.prompt_style,
        max_retries=FLAGS.max_retries, timeout_seconds=FLAGS.timeout, backoff_seconds=FLAGS.backoff,
        price_prompt_per_million=FLAGS.price_prompt, price_completion_per_million=FLAGS.price_completion,
        batch=BatchSettings(poll_seconds=FLAGS.batch_poll_seconds, max_requests=FLAGS.batch_max_requests,
                            completion_window=FLAGS.batch_window)
        if FLAGS.batch_api else None)
    journal = FLAGS.journal or os.fspath(paths.path(FLAGS.out) / "journal.jsonl")
    return OpenAITeacher(settings, journal, progress=FLAGS.progress)


def check_flags() -> None:
    unknown = [t for t in FLAGS.thoughts if t not in THOUGHTS]
    if unknown or not FLAGS.thoughts:
        raise ValueError(f"--thoughts: unknown thought {', '.join(unknown) or '(none given)'}; choose from "
                         f"{','.join(THOUGHTS)}")
    for name in ("samples", "n_per_request", "concurrency", "num_shards", "batch_max_requests"):
        if getattr(FLAGS, name) < 1:
            raise ValueError(f"--{name} must be at least 1")
    if not FLAGS.pot_cpu_seconds > 0:
        raise ValueError("--pot_cpu_seconds must be positive")


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    try:
        check_flags()
        thoughts = [t for t in THOUGHTS if t in FLAGS.thoughts]
        problems = problems_to_teach()
        teacher = make_teacher()
        candidates = teacher.generate(problems, thoughts, FLAGS.samples)
        with SandboxPool(num_workers=FLAGS.workers, pot_cpu_seconds=FLAGS.pot_cpu_seconds) as pool:
            examples, counts = verify_candidates(candidates, problems, pool, teacher.name, FLAGS.max_per_thought)
        shards = write_shards(examples, FLAGS.out, FLAGS.name, FLAGS.num_shards, FLAGS.seed, FLAGS.format)
    except (OSError, ValueError, DatasetFormatError, TeacherError) as error:
        sys.exit(f"error: {error}")
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
        "settings": {name: FLAGS[name].value for name in _SETTINGS},
        "counts": {t: {"candidates": sum(c.values()), "kept": c["kept"],
                       "rejected": {r: n for r, n in sorted(c.items()) if r != "kept"}} for t, c in counts.items()},
        "usage": vars(teacher.usage),
        "format": FLAGS.format,
        "shards": shards,
    }
    (paths.path(FLAGS.out) / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print(yield_report(counts))
    print(f"{len(examples)} verified examples in {len(shards)} shards under {FLAGS.out}")


_SETTINGS = ("teacher", "dataset", "split", "samples", "limit", "synthetic_count", "max_per_thought", "num_shards",
             "seed", "model", "base_url", "temperature", "top_p", "max_tokens", "n_per_request", "concurrency", "rpm",
             "tpm", "max_retries", "timeout", "price_prompt", "price_completion", "batch_api", "pot_cpu_seconds")

if __name__ == "__main__":
    app.run(main)
