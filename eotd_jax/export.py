"""Hand a trained student to the Hugging Face ecosystem: `python -m eotd_jax.export --checkpoint_dir=W --out=DIR`.

    python -m eotd_jax.export --checkpoint_dir=workdir/quickstart/train --step=best --out=/tmp/student
    python -c "import transformers as t; t.T5ForConditionalGeneration.from_pretrained('/tmp/student')"

Writes `config.json`, `model.safetensors`, the tokenizer (the starting
model's, or `ByT5Tokenizer` for byte-level students, which has the same ids)
and `student_input.json` (the input template and selectors it was trained
with, which the eval binary reads back).
"""

from __future__ import annotations

import sys

from absl import flags, logging

from eotd_jax import cli, paths
from eotd_jax.input import student_input
from eotd_jax.model.hf_io import export_hf
from eotd_jax.student import load_student

flags.DEFINE_string("checkpoint_dir", None, "the training workdir (local or gs://)")
flags.DEFINE_string("step", "latest", "latest, best (highest in-training eval accuracy) or a step number")
flags.DEFINE_string("out", None, "the Hugging Face model directory to write (local or gs://)")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    if not FLAGS.checkpoint_dir or not FLAGS.out:
        sys.exit("error: --checkpoint_dir and --out are required")
    logging.set_verbosity(logging.WARNING)
    try:
        student = load_student(FLAGS.checkpoint_dir, step=FLAGS.step)
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    with paths.Mirror(FLAGS.out) as out:  # the writers below write local files
        export_hf(student.model, out.local)
        student.tokenizer.hf_tokenizer().save_pretrained(out.local)
        student_input.save(student.student_input, out.local)
    print(f"step {student.step} of {FLAGS.checkpoint_dir} -> {FLAGS.out}")


if __name__ == "__main__":
    cli.run(main)
