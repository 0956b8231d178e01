"""The shard record: its fields, its serialisation (TFRecord example or JSON line) and reading shards back.

data_gen writes records through `to_example` / `to_json_line`; the trainer
reads them with `read_records`, local or gs://. `rationale` is the training
target exactly as the teacher wrote it; `verified_form` is what the verifier
executed (the program or system its reader found), recorded beside it. Shards
written before `verified_form` existed read back with it empty.
"""

from __future__ import annotations

import dataclasses
import json

from eotd_jax import paths


@dataclasses.dataclass(frozen=True)
class Record:
    """One verified example (docs/design.md, "The shard record")."""

    id: str
    source: str
    question: str
    thought: str
    rationale: str
    answer: str
    teacher: str
    sample_index: int
    verified_form: str = ""


TEXT_FIELDS = tuple(f.name for f in dataclasses.fields(Record) if f.type == "str")
_OPTIONAL = {"verified_form": ""}


def to_example(record: Record) -> bytes:
    """A serialised `tf.train.Example`: text fields as UTF-8 bytes, `sample_index` as int64."""
    import tensorflow as tf

    feature = {name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[getattr(record, name).encode()]))
               for name in TEXT_FIELDS}
    feature["sample_index"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[record.sample_index]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def to_json_line(record: Record) -> bytes:
    return (json.dumps(dataclasses.asdict(record), ensure_ascii=False) + "\n").encode()


def tfds_features():
    """The TFDS feature spec matching `to_example`, for the metadata written beside the shards."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    return tfds.features.FeaturesDict({
        **{name: tfds.features.Text() for name in TEXT_FIELDS},
        "sample_index": tfds.features.Scalar(dtype=tf.int64),
    })


def read_records(data_dir: str, thoughts: tuple[str, ...] | None = None) -> list[dict]:
    """All records under `data_dir` (in shard order) as dicts of the `Record` fields, optionally of some thoughts."""
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
                records.extend({**_OPTIONAL, **json.loads(line)} for line in lines if line.strip())
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
            record = {name: features[name].bytes_list.value[0].decode("utf-8") for name in TEXT_FIELDS
                      if name in features or name not in _OPTIONAL}
            record = {**_OPTIONAL, **record}
            record["sample_index"] = int(features["sample_index"].int64_list.value[0])
            records.append(record)
    return records
