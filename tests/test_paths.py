"""The path layer (`eotd_jax.paths`) on local paths and on `gs://` (a GCS emulator on 127.0.0.1)."""

from __future__ import annotations

import os
import uuid

import pytest
from conftest import upload

from eotd_jax import paths
from eotd_jax.journal import Journal


@pytest.fixture(params=["local", "gs"])
def root(request, tmp_path) -> str:
    """A fresh directory, local or in the emulator's bucket."""
    if request.param == "local":
        return str(tmp_path)
    return f"{request.getfixturevalue('gcs')}/{uuid.uuid4().hex}"


def test_absolute_keeps_urls_and_anchors_local_paths():
    assert paths.absolute("gs://bucket/run") == "gs://bucket/run"
    assert paths.absolute("run/x") == os.path.join(os.getcwd(), "run", "x")
    assert paths.is_remote("gs://bucket/x") and not paths.is_remote("/tmp/x")


def test_gs_paths_go_through_gcsfs_not_tensorflow(gcs):
    assert os.environ["EPATH_USE_TF"] == "false"
    assert type(paths.path(f"{gcs}/x")._backend).__name__ == "_FileSystemSpecBackend"


def test_files_write_read_list_and_delete(root):
    directory = paths.path(root) / "a"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "one.json").write_text('{"x": 1}')
    (directory / "two.bin").write_bytes(b"\x00\x01")
    assert (directory / "one.json").read_text() == '{"x": 1}'
    assert sorted(p.name for p in directory.glob("*.json")) == ["one.json"]
    assert directory.is_dir() and (directory / "two.bin").exists()
    (directory / "two.bin").unlink()
    assert not (directory / "two.bin").exists()


def test_local_copy_of_a_file_and_of_a_directory(root):
    (paths.path(root) / "d" / "sub").mkdir(parents=True, exist_ok=True)
    (paths.path(root) / "d" / "f.txt").write_text("file")
    (paths.path(root) / "d" / "sub" / "g.txt").write_text("nested")
    with paths.local_copy(f"{root}/d/f.txt") as local:
        assert open(local).read() == "file"
    with paths.local_copy(f"{root}/d") as local:
        assert open(os.path.join(local, "sub", "g.txt")).read() == "nested"
    with paths.local_copy(f"{root}/d", skip=("*.txt",)) as local:
        assert os.listdir(local) == [] if paths.is_remote(root) else os.path.isfile(os.path.join(local, "f.txt"))
    if paths.is_remote(root):
        assert not os.path.exists(local)  # the download was temporary
        with pytest.raises(FileNotFoundError, match="no such file"), paths.local_copy(f"{root}/missing"):
            pass


def test_a_mirror_pushes_only_changed_files_and_pulls_existing_ones(root):
    with paths.Mirror(f"{root}/m") as mirror:
        with open(os.path.join(mirror.local, "log.txt"), "w") as file:
            file.write("first\n")
        mirror.push()
        assert (paths.path(root) / "m" / "log.txt").read_text() == "first\n"
        with open(os.path.join(mirror.local, "log.txt"), "a") as file:
            file.write("second\n")
    assert (paths.path(root) / "m" / "log.txt").read_text() == "first\nsecond\n"  # close() pushes
    again = paths.Mirror(f"{root}/m")
    assert again.pull("log.txt") and not again.pull("absent.txt")
    assert open(os.path.join(again.local, "log.txt")).read() == "first\nsecond\n"
    again.close()


def test_a_throttled_mirror_waits_unless_forced(gcs):
    root = f"{gcs}/{uuid.uuid4().hex}"
    mirror = paths.Mirror(root, min_push_seconds=3600)
    mirror.push(force=True)
    with open(os.path.join(mirror.local, "x"), "w") as file:
        file.write("x")
    mirror.push()
    assert not (paths.path(root) / "x").exists()
    mirror.close()
    assert (paths.path(root) / "x").read_text() == "x"


def test_a_journal_on_gs_resumes_and_cuts_a_torn_line(gcs):
    location = f"{gcs}/{uuid.uuid4().hex}/journal.jsonl"
    paths.path(location).write_text('{"key": "a"}\n{"key": "b", "cho')
    journal = Journal(location)
    assert journal.dropped_torn_line and "a" in journal and "b" not in journal
    journal.append({"key": "c"})
    journal.close()
    assert paths.path(location).read_text().splitlines() == ['{"key": "a"}', '{"key": "c"}']
    reopened = Journal(location)
    assert "c" in reopened
    reopened.close()


def test_a_hugging_face_directory_on_gs_imports_like_the_local_one(gcs, tmp_path):
    import jax
    import numpy as np
    import transformers
    from flax import nnx

    from eotd_jax.model.config import get_config
    from eotd_jax.model.hf_io import CheckpointError, export_hf, import_hf
    from eotd_jax.model.t5 import T5
    from eotd_jax.tokenizer import load_tokenizer

    local = tmp_path / "hf"
    export_hf(T5(get_config("t5-tiny"), nnx.Rngs(0)), str(local))
    transformers.ByT5Tokenizer(extra_ids=0).save_pretrained(str(local))
    remote = upload(local, f"{gcs}/{uuid.uuid4().hex}/hf")
    (config, ours), (remote_config, theirs) = import_hf(str(local)), import_hf(remote)
    assert remote_config == config
    for a, b in zip(jax.tree.leaves(nnx.state(ours)), jax.tree.leaves(nnx.state(theirs)), strict=True):
        np.testing.assert_array_equal(a, b)
    assert load_tokenizer(remote).encode_batch(["2 + 2"], 16) == load_tokenizer(str(local)).encode_batch(["2 + 2"], 16)
    paths.path(remote, "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=f"^{remote}: no model.safetensors"):
        import_hf(remote)
