"""The shard record: its fields, its serialisation (TFRecord example or JSON line) and reading shards back.

data_gen writes records through `to_example` / `to_json_line`; the trainer
reads them with `read_records`, local or gs://. `rationale` is the training
target exactly as the teacher wrote it; `verified_form` is what the verifier
executed (the program or system its reader found), recorded beside it. Every
field is required: a record without one names its shard as corrupt.

Where data_gen's `manifest.json` lists the shards, exactly those are read, each
checked against the sha256 the manifest gives it; a damaged, truncated or
missing shard is an error naming the file (and the digest it should have).
"""

from __future__ import annotations

import dataclasses
import hashlib
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


MANIFEST = "manifest.json"  # data_gen.build writes it beside the shards


def read_manifest(data_dir: str) -> dict | None:
    """The data dir's manifest (its thoughts, counts and shards: file, records, sha256); None when it has none."""
    path = paths.path(data_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise ValueError(f"{path} is not valid JSON (rebuild {data_dir} with python -m data_gen.build)") from None


def held_thoughts(manifest: dict) -> list[str]:
    """The thoughts a manifest's shards hold: those with at least one kept rationale."""
    counts = manifest.get("counts")
    if counts is None:
        return list(manifest.get("thoughts", []))
    return [thought for thought, count in counts.items() if count.get("kept", 0) > 0]


def read_records(data_dir: str, thoughts: tuple[str, ...] | None = None) -> list[dict]:
    """All records under `data_dir` (in shard order) as dicts of the `Record` fields, optionally of some thoughts."""
    directory = paths.path(data_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"data dir {data_dir} does not exist (build it with python -m data_gen.build)")
    manifest = read_manifest(data_dir)
    if manifest and manifest.get("shards"):
        shards = [(directory / shard["file"], shard.get("sha256")) for shard in manifest["shards"]]
    else:
        found = sorted(directory.glob("*-train.tfrecord-*-of-*"), key=str) or \
            sorted(directory.glob("*-train.jsonl-*-of-*"), key=str)
        shards = [(path, None) for path in found]
    if not shards:
        raise FileNotFoundError(f"data dir {data_dir} holds no *-train.tfrecord-* or *-train.jsonl-* shards")
    records = [record for path, sha256 in shards for record in _read_shard(path, sha256)]
    if thoughts is not None:
        records = [r for r in records if r["thought"] in thoughts]
    return records


def _read_shard(path, sha256: str | None) -> list[dict]:
    """One shard, checked against its manifest digest; tf.data reads a local copy (TensorFlow's own GCS client
    cannot be pointed elsewhere)."""
    rebuild = f"rebuild {path.parent} with python -m data_gen.build"
    if not path.exists():
        raise FileNotFoundError(f"shard {path}, listed in its {MANIFEST}, is missing ({rebuild})")
    with paths.local_copy(path) as local:
        with open(local, "rb") as file:
            content = file.read()
        if sha256 and hashlib.sha256(content).hexdigest() != sha256:
            raise ValueError(f"shard {path} is damaged: its sha256 is {hashlib.sha256(content).hexdigest()}, the "
                             f"manifest says {sha256} ({rebuild})")
        try:
            return _read_tfrecords(local) if ".tfrecord-" in path.name else _read_json_lines(content)
        except Exception as error:  # noqa: BLE001  tf.errors.DataLossError, JSON errors, missing fields
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(f"shard {path} is corrupt or truncated: {message} ({rebuild})") from None


def _read_json_lines(content: bytes) -> list[dict]:
    records = [json.loads(line) for line in content.decode("utf-8").split("\n") if line.strip()]
    for record in records:
        missing = [name for name in (*TEXT_FIELDS, "sample_index") if name not in record]
        if missing:
            raise ValueError(f"a record has no {', '.join(missing)}")
    return records


def _read_tfrecords(local: str) -> list[dict]:
    import tensorflow as tf

    records = []
    for raw in tf.data.TFRecordDataset(local):
        features = tf.train.Example.FromString(raw.numpy()).features.feature
        missing = [name for name in (*TEXT_FIELDS, "sample_index") if name not in features]
        if missing:
            raise ValueError(f"a record has no {', '.join(missing)}")
        record = {name: features[name].bytes_list.value[0].decode("utf-8") for name in TEXT_FIELDS}
        record["sample_index"] = int(features["sample_index"].int64_list.value[0])
        records.append(record)
    return records
