"""A byte-level BPE tokenizer trained on the training texts: `python -m eotd_jax.train_tokenizer`.

    python -m eotd_jax.train_tokenizer --data=workdir/quickstart/data --out=workdir/quickstart/tokenizer

A tiny student reads byte-level text badly: every number is one to three
tokens in a long source. A BPE of 2,048 tokens learnt on the student's own
inputs and targets shortens synthetic sources about 4x (188 bytes to 50
tokens) and targets 3x, and makes nearly every number one token. A digit run
is a pre-token of its own, so a number is the same token wherever it stands:
after "$" in the question and after a space in the equation the student
copies it into (GPT-2's regex alone makes "$283" and " 283" two unrelated
tokens, and the quickstart student then copied dollar amounts 36% of the
time, against 67% for the others; with one token per number its validation
ETD at step 1,200 went from 15% to 45%, docs/training.md). Merges never join a
number to a word or an operator, every byte is in the alphabet
(nothing is unknown), and ids 0, 1, 2 are `<pad>` (also the decoder start),
`</s>`, `<unk>` as in T5. The output is
a Hugging Face tokenizer directory: `--config.tokenizer=<out>` trains with it,
and `transformers.AutoTokenizer.from_pretrained(<out>)` loads it, as it loads
the copy exported beside the student.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from absl import flags

from eotd_jax import cli
from eotd_jax.input.records import read_records
from eotd_jax.input.student_input import StudentInput

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2: T5's pad (decoder start), EOS and unknown

flags.DEFINE_list("data", None, "data_gen output directories whose questions and rationales the BPE learns from")
flags.DEFINE_string("out", None, "output directory (a Hugging Face tokenizer)")
flags.DEFINE_integer("vocab_size", 2048, "vocabulary size, special tokens and the 256 bytes included; at most the "
                     "model's vocab_size")
flags.DEFINE_integer("min_frequency", 2, "a merge must occur at least this often")
flags.DEFINE_enum("digits", "whole", ["whole", "single"], "whole: a digit run is one pre-token (merges may make "
                  "it one token); single: every digit is its own token")
FLAGS = flags.FLAGS
STUDENT_INPUT = StudentInput()  # the default input template and selectors (default, input.*)


def training_texts(records: Iterable[dict]) -> Iterable[str]:
    """What the student reads and writes: each record's input (question and selector) and its rationale."""
    for record in records:
        yield STUDENT_INPUT.text(record["question"], record["thought"])
        yield record["rationale"]


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2, single_digits: bool = False):
    """A `transformers.PreTrainedTokenizerFast` with a byte-level BPE learnt on `texts`."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must be at least {256 + len(SPECIAL_TOKENS)} (the bytes and special tokens)")
    tokenizer = Tokenizer(models.BPE())
    # Digit runs (or single digits) are pre-tokens of their own, so a number is the same token after "$", "/", "("
    # or a space (GPT-2's regex alone makes " 283" and "$283" different tokens); then GPT-2's byte-level split.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=single_digits),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    eos = SPECIAL_TOKENS[1]
    # Like T5's tokenizer, encoding with special tokens appends EOS.
    tokenizer.post_processor = processors.TemplateProcessing(single=f"$A {eos}", pair=f"$A {eos} $B {eos}",
                                                             special_tokens=[(eos, tokenizer.token_to_id(eos))])
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=SPECIAL_TOKENS[0], eos_token=eos, unk_token=SPECIAL_TOKENS[2],
        clean_up_tokenization_spaces=False, model_max_length=1_000_000)


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    if not FLAGS.data or not FLAGS.out:
        sys.exit("error: --data and --out are required")
    if os.path.exists(FLAGS.out) and not os.path.isdir(FLAGS.out):
        sys.exit(f"error: --out {FLAGS.out} is a file; the tokenizer is a directory (name a new or existing "
                 "directory)")
    try:
        records = [record for directory in FLAGS.data for record in read_records(directory)]
        tokenizer = train_bpe(training_texts(records), FLAGS.vocab_size, FLAGS.min_frequency,
                              FLAGS.digits == "single")
        tokenizer.save_pretrained(FLAGS.out)
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    sources = [len(tokenizer.encode(STUDENT_INPUT.text(r["question"], r["thought"]), add_special_tokens=False))
               for r in records]
    targets = [len(tokenizer.encode(r["rationale"], add_special_tokens=False)) for r in records]
    print(f"{len(tokenizer)} tokens learnt from {len(records)} records; mean source {sum(sources) / len(sources):.0f} "
          f"tokens (max {max(sources)}), mean target {sum(targets) / len(targets):.0f} (max {max(targets)}); "
          f"saved to {FLAGS.out}")


if __name__ == "__main__":
    cli.run(main)
