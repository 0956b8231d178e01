"""Verified records (`eotd_jax.input.records`) -> seeded, shuffled shards (TFRecord + TFDS metadata, or JSON lines).

TFRecord shards hold one `tf.train.Example` per record and are named
`<name>-train.tfrecord-0000i-of-0000n`; TFDS metadata beside them lets
`tfds.builder_from_directory(out)` read them, and plain
`tf.data.TFRecordDataset` reads them too. Files are written under temporary
names and renamed, so a crash never leaves a half shard under a final name.
A `gs://` output is written in a local `paths.Mirror` (TensorFlow's writer
cannot reach other GCS endpoints than Google's) and uploaded shard by shard.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Sequence

from eotd_jax import paths
from eotd_jax.input.records import Record, tfds_features, to_example, to_json_line

SPLIT = "train"


def shuffled(examples: Sequence[Record], seed: int) -> list[Record]:
    examples = list(examples)
    random.Random(seed).shuffle(examples)
    return examples


def shard_names(name: str, num_shards: int, file_format: str) -> list[str]:
    return [f"{name}-{SPLIT}.{file_format}-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)]


def dataset_names(out_dir: str) -> set[str]:
    """The names of the datasets already in `out_dir`: its manifest's, and those its shard files carry."""
    out = paths.path(out_dir)
    if not out.is_dir():
        return set()
    names = {file.name.split(f"-{SPLIT}.", 1)[0] for file in out.glob(f"*-{SPLIT}.*-of-*")}
    manifest = out / "manifest.json"
    if manifest.is_file():
        try:
            names.add(json.loads(manifest.read_text())["name"])
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{manifest} is not a data_gen.build manifest (give another --out, or remove the "
                             "file)") from None
    return names


def write_shards(examples: Sequence[Record], out_dir: str, name: str, num_shards: int, seed: int,
                 file_format: str = "tfrecord") -> list[dict]:
    """Writes the shards; returns [{file, records, sha256}] for the manifest."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, not {num_shards}")
    out = paths.path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(f"{name}-{SPLIT}.*-of-*"):
        stale.unlink()
    examples = shuffled(examples, seed)
    num_shards = max(1, min(num_shards, len(examples)))  # no empty shards
    serialize = to_example if file_format == "tfrecord" else to_json_line
    shards = []
    with paths.Mirror(out_dir) as mirror:
        for index, file_name in enumerate(shard_names(name, num_shards, file_format)):
            records = [serialize(example) for example in examples[index::num_shards]]
            path = os.path.join(mirror.local, file_name)
            temporary = path + ".tmp"
            if file_format == "tfrecord":
                import tensorflow as tf

                with tf.io.TFRecordWriter(temporary) as writer:
                    for record in records:
                        writer.write(record)
            else:
                with open(temporary, "wb") as file:
                    file.writelines(records)
            os.replace(temporary, path)
            with open(path, "rb") as file:
                digest = hashlib.sha256(file.read()).hexdigest()
            mirror.push()
            shards.append({"file": file_name, "records": len(records), "sha256": digest})
    if file_format == "tfrecord":
        _write_tfds_metadata(out_dir, name, shards)
    return shards


def _write_tfds_metadata(out_dir: str, name: str, shards: list[dict]) -> None:
    import tensorflow_datasets as tfds

    split = tfds.core.SplitInfo(name=SPLIT, shard_lengths=[s["records"] for s in shards], num_bytes=0,
                                filename_template=_template(out_dir, name))
    tfds.folder_dataset.write_metadata(
        data_dir=out_dir, features=tfds_features(), split_infos=[split], filename_template=_template(out_dir, name),
        check_data=False, description="Verified CoT / PoT / EoT rationales written by eotd_jax's data_gen.")


def _template(out_dir: str, name: str):
    import tensorflow_datasets as tfds

    return tfds.core.ShardedFileTemplate(data_dir=out_dir, template="{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
                                         dataset_name=name, split=SPLIT, filetype_suffix="tfrecord")
