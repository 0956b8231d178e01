"""Padding fraction of the packed training stream for several row shapes and tokenizers.

    python -m data_gen.build --teacher=gold --dataset=gsm8k --split=train --out=/tmp/gsm8k_gold
    python bench/packing_padding.py --data_dir=/tmp/gsm8k_gold [--tokenizer=/models/codet5-base]

Tokenizers: the byte-level one; `--tokenizer`, a local Hugging Face tokenizer
directory (e.g. the student's); and, when `--bpe_vocab` > 0, a byte-level BPE
trained on the data's own texts with the `tokenizers` library, a stand-in for
CodeT5's 32k BPE where the real one is not at hand. Padding is the share of
input + target slots left empty over one epoch's full batches.
"""

from __future__ import annotations

import tempfile

import numpy as np
from absl import app, flags

from eotd_jax.input.pipeline import make_batches
from eotd_jax.input.records import read_records
from eotd_jax.input.student_input import StudentInput
from eotd_jax.tokenizer import HFTokenizer, load_tokenizer

_DATA_DIR = flags.DEFINE_string("data_dir", None, "a data_gen output directory", required=True)
_THOUGHTS = flags.DEFINE_string("thoughts", "cot,pot,eot", "thoughts to keep (ETD: all three)")
_ROWS = flags.DEFINE_list("rows", ["1024x448", "2048x1024", "2048x896", "4096x1792"],
                          "row shapes (source x target tokens) for the byte-level tokenizer")
_BPE_ROWS = flags.DEFINE_list("bpe_rows", ["256x256", "512x256", "512x192", "1024x384"],
                              "row shapes for the BPE / HF tokenizers")
_TOKENIZER = flags.DEFINE_string("tokenizer", "", "a local Hugging Face tokenizer directory")
_BPE_VOCAB = flags.DEFINE_integer("bpe_vocab", 32000, "vocabulary of the stand-in BPE (0: skip it)")
_BATCH = flags.DEFINE_integer("batch_size", 16, "rows per batch")


def stand_in_bpe(records: list[dict], vocab_size: int, directory: str) -> HFTokenizer:
    """A byte-level BPE (RoBERTa / CodeT5 style) trained on the questions and rationales."""
    import tokenizers
    import transformers

    bpe = tokenizers.ByteLevelBPETokenizer()
    texts = [StudentInput().text(r["question"], r["thought"]) for r in records] + [r["rationale"] for r in records]
    bpe.train_from_iterator(texts, vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"])
    wrapped = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, pad_token="<pad>",
                                                   eos_token="</s>", unk_token="<unk>")
    wrapped.save_pretrained(directory)
    return HFTokenizer(directory)


def report(name: str, tokenizer, rows: list[str]) -> None:
    sources = [{"dir": _DATA_DIR.value, "weight": 1.0, "thoughts": _THOUGHTS.value}]
    examples = make_batches(sources, tokenizer, 1, 1 << 20, 1 << 20, seed=0).examples
    print(f"| {name} | mean example: {np.mean([len(e.source) for e in examples]):.0f} / "
          f"{np.mean([len(e.target) for e in examples]):.0f} | | |", flush=True)
    for shape in rows:
        source_length, target_length = map(int, shape.split("x"))
        batches = make_batches(sources, tokenizer, _BATCH.value, source_length, target_length, seed=0)
        rows_used = batches.rows(0)
        print(f"| {name} | {source_length} / {target_length} | {len(batches.examples) / len(rows_used):.1f} "
              f"| {100 * batches.padding_fraction():.1f}% |", flush=True)


def main(argv):
    del argv
    print("| tokenizer | rows (source / target) | examples per row | padding |\n|---|---|---|---|")
    report("byte", load_tokenizer("byte"), _ROWS.value)
    if _TOKENIZER.value:
        report(_TOKENIZER.value, load_tokenizer(_TOKENIZER.value), _BPE_ROWS.value)
    if _BPE_VOCAB.value:
        records = read_records(_DATA_DIR.value, tuple(_THOUGHTS.value.split(",")))
        with tempfile.TemporaryDirectory() as directory:
            report(f"stand-in BPE {_BPE_VOCAB.value}", stand_in_bpe(records, _BPE_VOCAB.value, directory),
                   _BPE_ROWS.value)


if __name__ == "__main__":
    app.run(main)
