"""Stage the four benchmarks where a run's workers read them: `python -m eotd_jax.stage_benchmarks --to=DIR`.

    python -m eotd_jax.stage_benchmarks --source=../shared/datasets --to=gs://my-bucket/benchmarks
    python -m eotd_jax.stage_benchmarks --source=hub --to=gs://my-bucket/benchmarks   # on a machine with internet

Compute nodes and TPU workers often have no internet: a run's in-training eval
(`--config.eval.data_dir`) and the eval binary (`--data_dir`) read the staged
directory instead of the hub. `--source` is a directory in the benchmarks' original
layout (its files are copied as they are) or `hub` (the hub copies, saved with
`datasets.save_to_disk` under `<to>/<name>`; the loaders read either). Every staged
benchmark is read back from `--to` and its problems counted before this exits 0.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from eotd_jax import paths
from eotd_jax.benchmarks import BENCHMARKS, HUB_SOURCE, asdiv, load_from

flags.DEFINE_string("source", None, "a directory in the original layout (local or gs://), or `hub`")
flags.DEFINE_string("to", None, "the directory the workers read (local or gs://)")
flags.DEFINE_list("benchmarks", list(BENCHMARKS), "which to stage")
FLAGS = flags.FLAGS


def stage_files(source: str, to: str, name: str) -> None:
    """Copies a benchmark's original files (and ASDiv's standard ID list when present)."""
    module = BENCHMARKS[name]
    extra = [asdiv.STANDARD_IDS] if name == "asdiv" else []
    for relative in [*module.FILES.values(), *extra]:
        origin = paths.path(source) / relative
        if not origin.is_file():
            if relative in extra:
                continue
            raise FileNotFoundError(f"{name}: no file at {origin}")
        target = paths.path(to) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(origin.read_bytes())


def stage_hub(to: str, name: str) -> None:
    """Saves a benchmark's hub copy (all its splits) under `<to>/<name>`."""
    import datasets

    path, config = BENCHMARKS[name].HUB
    with paths.Mirror(f"{to.rstrip('/')}/{name}") as out:
        datasets.load_dataset(path, config).save_to_disk(out.local)


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    if not FLAGS.source or not FLAGS.to:
        sys.exit("error: --source and --to are required (see --help)")
    unknown = [b for b in FLAGS.benchmarks if b not in BENCHMARKS]
    if unknown:
        sys.exit(f"error: --benchmarks: unknown {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    logging.set_verbosity(logging.WARNING)
    for name in FLAGS.benchmarks:
        try:
            if FLAGS.source == HUB_SOURCE:
                stage_hub(FLAGS.to, name)
            else:
                stage_files(FLAGS.source, FLAGS.to, name)
            count = len(load_from(FLAGS.to, name))
        except (OSError, ValueError) as error:
            sys.exit(f"error: {error}")
        print(f"{name}: {count} test problems at {FLAGS.to}")


if __name__ == "__main__":
    app.run(main)
