"""The BPE learnt on training texts: T5's special ids, whole numbers, exact round trips, and a directory HF loads."""

from __future__ import annotations

import dataclasses
import json

import transformers
from runs import python_module

from eotd_jax.input.records import Record
from eotd_jax.tokenizer import load_tokenizer
from eotd_jax.train_tokenizer import train_bpe, training_texts


def _records(count: int) -> list[dict]:
    """Shard records (every `Record` field) of a two-number sum, as PoT and EoT."""
    records = []
    for i, thought in ((i, thought) for i in range(count) for thought in ("pot", "eot")):
        rationale = f"ans = {12 + i} + {i % 50 + 10}" if thought == "pot" else f"ans - {i % 50 + 10} = {12 + i}"
        question = f"Ava has {12 + i} apples and buys {i % 50 + 10} more. How many apples?"
        records.append(dataclasses.asdict(Record(f"x-{i}", "x/train", question, thought, rationale,
                                                 str(12 + i + i % 50 + 10), "gold", 0, rationale)))
    return records


def test_the_binary_writes_a_tokenizer_that_transformers_and_the_trainer_load(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with open(data / "x-train.jsonl-00000-of-00001", "w", encoding="utf-8") as file:
        file.writelines(json.dumps(record) + "\n" for record in _records(300))
    result = python_module("eotd_jax.train_tokenizer", f"--data={data}", f"--out={tmp_path / 'tok'}",
                           "--vocab_size=400")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tokens learnt from 600 records" in result.stdout

    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "tok"), local_files_only=True)
    assert [hf.pad_token_id, hf.eos_token_id, hf.unk_token_id] == [0, 1, 2] and len(hf) == 400
    assert hf("ans = 37")["input_ids"][-1] == 1  # like T5's, the template appends EOS
    # A number is one token, the same wherever it stands: after a space, "$", "(" or "*", and at a line start.
    assert "37" in hf.tokenize("Ava has 37 apples") and "37" in hf.tokenize("ans = 37 + 25")
    assert [hf.tokenize(text).count("37") for text in ("pays $37.", "(37+2)", "2*37=74", "37 = ans")] == [1] * 4

    tokenizer = load_tokenizer(str(tmp_path / "tok"))
    for text in [*training_texts(_records(5)), "Zoë paid €1,234.50 — 7%\n\tdone", "x=1\n\n% comment: y"]:
        ids = tokenizer.encode_batch([text], max_length=4096)[0]
        assert ids[-1] == tokenizer.eos_id  # the template's EOS; decoding stops there
        assert tokenizer.decode([*ids, 5]) == text


def test_single_digits_makes_every_digit_a_token():
    tokenizer = train_bpe(training_texts(_records(300)), 400, single_digits=True)
    assert tokenizer.tokenize("ans = 37 + 25") == ["ans", "Ġ=", "Ġ", "3", "7", "Ġ+", "Ġ", "2", "5"]
    assert tokenizer.tokenize("$37") == ["$", "3", "7"]
    assert tokenizer.decode(tokenizer("x = 372 / 12")["input_ids"], skip_special_tokens=True) == "x = 372 / 12"


def test_a_bad_vocabulary_size_or_missing_data_is_one_line(tmp_path):
    result = python_module("eotd_jax.train_tokenizer", f"--data={tmp_path / 'none'}", f"--out={tmp_path / 'tok'}")
    assert result.returncode != 0 and "does not exist" in result.stderr.strip().splitlines()[-1]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x-train.jsonl-00000-of-00001").write_text(json.dumps(_records(1)[0]) + "\n")
    result = python_module("eotd_jax.train_tokenizer", f"--data={tmp_path / 'd'}", f"--out={tmp_path / 'tok'}",
                           "--vocab_size=100")
    assert result.returncode != 0 and "vocab_size must be at least 259" in result.stderr.strip().splitlines()[-1]
