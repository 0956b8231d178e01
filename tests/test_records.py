"""The shard record has one owner (eotd_jax.input.records): what data_gen writes is what the trainer reads."""

from __future__ import annotations

import dataclasses
import json

import pytest

from data_gen.writer import write_shards
from eotd_jax.input.records import TEXT_FIELDS, Record, read_records

PAPER_EOT = "% Assume x meals:\nmeals = x\n% 8 times as many packages:\npackages = 8 * meals\n" \
            "% 27 combined:\npackages + meals = 27\n% The answer is meals:\nans = meals"
RECORDS = [
    Record("gsm8k-1", "gsm8k/train", "Angela ... how many meals?", "eot", PAPER_EOT, "3", "gpt-3.5-turbo", 0,
           "meals = x\npackages = 8 * meals\npackages + meals = 27\nans = meals"),
    Record("gsm8k-2", "gsm8k/train", "Janet's ducks ... ?", "pot", "```python\nprint(16 - 3 - 4)\n```", "9", "gold", 1,
           "ans = 16 - 3 - 4"),
    Record("gsm8k-3", "gsm8k/train", "Natalia ... ?", "cot", "48 / 2 = 24 — ünïcode ok. The answer is 72.", "72",
           "gold", 0, "48 / 2 = 24 — ünïcode ok. The answer is 72."),
]


def test_fields_are_declared_once():
    assert TEXT_FIELDS == ("id", "source", "question", "thought", "rationale", "answer", "teacher", "verified_form")
    assert [f.name for f in dataclasses.fields(Record)] == [*TEXT_FIELDS[:-1], "sample_index", "verified_form"]


@pytest.mark.parametrize("file_format", ["jsonl", "tfrecord"])
def test_written_records_read_back_identical_with_the_teachers_text_and_the_verified_form(tmp_path, file_format):
    write_shards(RECORDS, str(tmp_path), "eotd", num_shards=2, seed=0, file_format=file_format)
    back = sorted(read_records(str(tmp_path)), key=lambda r: r["id"])
    assert back == [dataclasses.asdict(r) for r in RECORDS]
    assert back[0]["rationale"].startswith("% Assume") and "%" not in back[0]["verified_form"]
    assert [r["id"] for r in read_records(str(tmp_path), thoughts=("eot",))] == ["gsm8k-1"]


def test_a_json_lines_shard_whose_record_lacks_a_field_is_named(tmp_path):
    lacking = {k: v for k, v in dataclasses.asdict(RECORDS[0]).items() if k != "verified_form"}
    (tmp_path / "eotd-train.jsonl-00000-of-00001").write_text(json.dumps(lacking) + "\n")
    with pytest.raises(ValueError, match=r"eotd-train.jsonl-00000-of-00001 is corrupt or truncated: a record has no "
                                         r"verified_form \(rebuild"):
        read_records(str(tmp_path))


def test_a_tfrecord_shard_whose_record_lacks_a_field_is_named(tmp_path):
    import tensorflow as tf

    lacking = {k: v for k, v in dataclasses.asdict(RECORDS[1]).items() if k != "verified_form"}
    feature = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()]))
               for k, v in lacking.items() if k != "sample_index"}
    feature["sample_index"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[lacking["sample_index"]]))
    with tf.io.TFRecordWriter(str(tmp_path / "eotd-train.tfrecord-00000-of-00001")) as writer:
        writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    with pytest.raises(ValueError, match=r"eotd-train.tfrecord-00000-of-00001 is corrupt or truncated: a record has no "
                                         r"verified_form \(rebuild"):
        read_records(str(tmp_path))
