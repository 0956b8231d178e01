"""Reading data_gen's shards (TFRecord with TFDS metadata, or JSON lines) into plain records, local or gs://."""

from __future__ import annotations

import json

from eotd_jax import paths

TEXT_FIELDS = ("id", "source", "question", "thought", "rationale", "answer", "teacher")


def read_records(data_dir: str, thoughts: tuple[str, ...] | None = None) -> list[dict]:
    """All records under `data_dir` (in shard order), optionally only those of some thoughts."""
    directory = paths.path(data_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"data dir {data_dir} does not exist (build it with python -m data_gen.build)")
    tfrecords = sorted(directory.glob("*-train.tfrecord-*-of-*"), key=str)
    jsonl = sorted(directory.glob("*-train.jsonl-*-of-*"), key=str)
    if tfrecords:
        records = [record for path in tfrecords for record in _read_tfrecords(str(path))]
    elif jsonl:
        records = []
        for path in jsonl:
            with path.open(encoding="utf-8") as lines:
                records.extend(json.loads(line) for line in lines if line.strip())
    else:
        raise FileNotFoundError(f"data dir {data_dir} holds no *-train.tfrecord-* or *-train.jsonl-* shards")
    if thoughts is not None:
        records = [r for r in records if r["thought"] in thoughts]
    return records


def _read_tfrecords(path: str) -> list[dict]:
    """One shard; tf.data reads a local copy (TensorFlow's own GCS client cannot be pointed elsewhere)."""
    import tensorflow as tf

    records = []
    with paths.local_copy(path) as local:
        for raw in tf.data.TFRecordDataset(local):
            features = tf.train.Example.FromString(raw.numpy()).features.feature
            record = {name: features[name].bytes_list.value[0].decode("utf-8") for name in TEXT_FIELDS}
            record["sample_index"] = int(features["sample_index"].int64_list.value[0])
            records.append(record)
    return records
