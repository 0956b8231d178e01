"""Reading data_gen's shards (TFRecord with TFDS metadata, or JSON lines) into plain records."""

from __future__ import annotations

import glob
import json
import os

TEXT_FIELDS = ("id", "source", "question", "thought", "rationale", "answer", "teacher")


def read_records(data_dir: str, thoughts: tuple[str, ...] | None = None) -> list[dict]:
    """All records under `data_dir` (in shard order), optionally only those of some thoughts."""
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data dir {data_dir} does not exist (build it with python -m data_gen.build)")
    tfrecords = sorted(glob.glob(os.path.join(data_dir, "*-train.tfrecord-*-of-*")))
    jsonl = sorted(glob.glob(os.path.join(data_dir, "*-train.jsonl-*-of-*")))
    if tfrecords:
        records = _read_tfrecords(tfrecords)
    elif jsonl:
        records = []
        for path in jsonl:
            with open(path, encoding="utf-8") as lines:
                records.extend(json.loads(line) for line in lines if line.strip())
    else:
        raise FileNotFoundError(f"data dir {data_dir} holds no *-train.tfrecord-* or *-train.jsonl-* shards")
    if thoughts is not None:
        records = [r for r in records if r["thought"] in thoughts]
    return records


def _read_tfrecords(paths: list[str]) -> list[dict]:
    import tensorflow as tf

    records = []
    for raw in tf.data.TFRecordDataset(paths):
        features = tf.train.Example.FromString(raw.numpy()).features.feature
        record = {name: features[name].bytes_list.value[0].decode("utf-8") for name in TEXT_FIELDS}
        record["sample_index"] = int(features["sample_index"].int64_list.value[0])
        records.append(record)
    return records
