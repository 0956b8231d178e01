"""Hand a trained student to the Hugging Face ecosystem: `python -m eotd_jax.export --workdir=W --out=DIR`.

    python -m eotd_jax.export --workdir=workdir/quickstart/train --step=best --out=/tmp/student
    python -c "import transformers as t; t.T5ForConditionalGeneration.from_pretrained('/tmp/student')"
    hf upload my-name/etd-student /tmp/student     # publish it as it is

Writes `config.json`, `model.safetensors`, the run's tokenizer (`ByT5Tokenizer`
for byte-level students, which has the same ids), `student_input.json` (the
input template and selectors it was trained with, which the eval binary reads
back) and `README.md`, a model card: how to prompt it, its eval table at that
step (when `python -m eotd_jax.eval` wrote one) and its training config. One
process reads the parameters alone; on a TPU slice run it on one worker with
`JAX_PLATFORMS=cpu` (`bash launch/tpu_pod.sh export`).
"""

from __future__ import annotations

import json
import sys

import jax
from absl import flags, logging

from eotd_jax import cli, paths
from eotd_jax.input import student_input
from eotd_jax.model.hf_io import export_hf
from eotd_jax.model.sharding import make_mesh
from eotd_jax.student import Student, load_student

flags.DEFINE_string("workdir", None, "the training run directory (local or gs://)")
flags.DEFINE_string("step", "latest", "latest, best (highest in-training eval accuracy) or a step number")
flags.DEFINE_string("out", None, "the Hugging Face model directory to write (local or gs://)")
FLAGS = flags.FLAGS


def model_card(student: Student, workdir: str) -> str:
    """README.md of the export: what a user needs to prompt and judge the model, from the run itself."""
    results = paths.path(workdir) / "eval" / f"step_{student.step}" / "results.md"
    table = results.read_text() if results.is_file() else (
        f"Not evaluated at this step: `python -m eotd_jax.eval --workdir={workdir} --step={student.step}`.\n")
    selectors = "\n".join(f"| {thought} | `{text}` |" for thought, text in student.student_input.selectors.items())
    config = json.dumps(student.config.to_dict() if student.config is not None else {}, indent=2, default=str)
    return f"""---
library_name: transformers
pipeline_tag: text2text-generation
tags: [t5, math-word-problems, chain-of-thought, program-of-thought, equations-of-thought, eotd_jax]
---
# A math-reasoning student distilled with eotd_jax

A `T5ForConditionalGeneration` fine-tuned on verified rationales (chain of thought,
program of thought, equations of thought), step {student.step} of its run. It writes the
thought its input's selector asks for; `python -m eotd_jax.eval --workdir=<this directory>`
runs the programs and solves the equations in a sandbox and scores ETD (EoT, falling back to
PoT, then CoT) and the vote.

## Input

The template (`student_input.json`), with `{{question}}` and `{{selector}}` filled in:

```
{student.student_input.template}
```

| thought | selector |
|---|---|
{selectors}

## Evaluation at this step

{table}
## Training config

```json
{config}
```
"""


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    if not FLAGS.workdir or not FLAGS.out:
        sys.exit("error: --workdir and --out are required")
    logging.set_verbosity(logging.WARNING)
    try:
        student = load_student(FLAGS.workdir, FLAGS.step, make_mesh((1, -1, 1), jax.local_devices()))
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    if student.step is None:
        sys.exit(f"error: {FLAGS.workdir} is a Hugging Face directory already (export takes a training workdir)")
    with paths.Mirror(FLAGS.out) as out:  # the writers below write local files
        export_hf(student.model, out.local)
        student.tokenizer.hf_tokenizer().save_pretrained(out.local)
        student_input.save(student.student_input, out.local)
        paths.path(out.local, "README.md").write_text(model_card(student, FLAGS.workdir))
    print(f"step {student.step} of {FLAGS.workdir} -> {FLAGS.out}")


if __name__ == "__main__":
    cli.run(main)
