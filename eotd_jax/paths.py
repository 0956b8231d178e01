"""Every file the project touches, local or `gs://`, goes through this one layer: `etils.epath` on fsspec.

    paths.path("gs://bucket/run") / "config.json"      # an epath.Path: open, read_text, glob, exists, mkdir
    paths.absolute("workdir/x")                         # local paths made absolute, URLs kept as they are
    with paths.local_copy("gs://bucket/data/shard") as local: ...   # for readers that need a local file
    with paths.Mirror("gs://bucket/run/tensorboard") as mirror: ... # for writers that need a local directory

Orbax and TFDS also go through epath. Importing this module makes epath pick
fsspec (gcsfs for `gs://`) over TensorFlow's gfile (`EPATH_USE_TF=false`,
unless the environment says otherwise), so every library here shares one GCS
client, one that honours `STORAGE_EMULATOR_HOST`; Orbax's arrays go through
tensorstore, which honours `TENSORSTORE_GCS_HTTP_URL`. TensorFlow's own file
system (`tf.io.gfile`, `tf.data`, `tf.summary`) always calls Google's endpoint,
so it is never handed a `gs://` path: its writers write into a local `Mirror`
and its readers read a `local_copy`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import tempfile
import time
from collections.abc import Iterator

os.environ.setdefault("EPATH_USE_TF", "false")  # read by epath at each call, so before any gs:// use is enough
# gcsfs's classic client; its experimental zonal / hierarchical-namespace layer looks up every bucket's layout
# (a call that needs extra permissions, that emulators do not answer, and that warns on each failure).
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")  # read when gcsfs is imported

from etils import epath  # noqa: E402  (after the backend choice above)


def is_remote(location: str | os.PathLike) -> bool:
    """True for URLs (`gs://...`), False for local paths."""
    return "://" in os.fspath(location)


def path(*parts: str | os.PathLike) -> epath.Path:
    """`parts` joined into an `epath.Path` (pathlib's API, for local paths and URLs alike)."""
    return epath.Path(*parts)


def absolute(location: str | os.PathLike) -> str:
    """A local path made absolute (against the working directory); a URL as it is."""
    location = os.fspath(location)
    return location if is_remote(location) else os.path.abspath(location)


def _filesystem(location: str):
    import fsspec

    return fsspec.core.url_to_fs(location)


def create_new(location: str | os.PathLike, text: str) -> None:
    """Writes a file that must not exist yet, whole or not at all; FileExistsError when it exists (locally a
    hard link of a finished temporary file; on gs:// an upload on the condition that no object is there, after
    a look for one, for stores that ignore the condition, as emulators do)."""
    location = os.fspath(location)
    if is_remote(location):
        filesystem, remote = _filesystem(location)
        if filesystem.exists(remote):
            raise FileExistsError(location)
        with filesystem.open(remote, "xb") as file:
            file.write(text.encode())
        return
    descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(location) or ".", prefix=".new-")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.link(temporary, location)
    finally:
        os.unlink(temporary)


@contextlib.contextmanager
def local_copy(location: str | os.PathLike, skip: tuple[str, ...] = ()) -> Iterator[str]:
    """A local file or directory with the content of `location`: itself when local, else a temporary download
    (of a directory: every file whose name matches none of the `skip` patterns, e.g. "*.safetensors")."""
    location = os.fspath(location)
    if not is_remote(location):
        yield location
        return
    filesystem, remote = _filesystem(location)
    remote = remote.rstrip("/")
    if not filesystem.exists(remote):
        raise FileNotFoundError(f"{location}: no such file or directory")
    with tempfile.TemporaryDirectory(prefix="eotd-copy-") as directory:
        local = os.path.join(directory, os.path.basename(remote))
        if filesystem.isdir(remote):
            os.makedirs(local)
            for file in filesystem.find(remote):
                if not any(fnmatch.fnmatch(file.rsplit("/", 1)[-1], pattern) for pattern in skip):
                    target = os.path.join(local, os.path.relpath(file, remote))
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    filesystem.get_file(file, target)
        else:
            filesystem.get_file(remote, local)
        yield local


class Mirror:
    """A local directory standing in for `directory`, for libraries that only write local files.

    For a local `directory` it is the directory itself. For a URL it is a
    temporary directory: `pull(name)` fetches an existing file to extend it,
    `push()` uploads the files changed since the last push (at most every
    `min_push_seconds` unless forced), and `close()` pushes everything and
    removes the temporary directory. A crash loses what was not pushed yet.
    """

    def __init__(self, directory: str | os.PathLike, min_push_seconds: float = 0.0):
        self.directory = os.fspath(directory)
        self.remote = is_remote(self.directory)
        if self.remote:
            self.local = tempfile.mkdtemp(prefix="eotd-mirror-")
        else:
            self.local = self.directory
            os.makedirs(self.local, exist_ok=True)
        self.min_push_seconds = min_push_seconds
        self._pushed: dict[str, tuple[int, int]] = {}
        self._last_push = 0.0

    def pull(self, name: str) -> bool:
        """Fetches `directory/name` into the mirror; False when it does not exist."""
        if not self.remote:
            return os.path.exists(os.path.join(self.local, name))
        source = path(self.directory) / name
        if not source.exists():
            return False
        local = os.path.join(self.local, name)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        filesystem, remote = _filesystem(os.fspath(source))
        filesystem.get_file(remote, local)
        self._pushed[name] = _signature(local)
        return True

    def push(self, force: bool = False) -> None:
        """Uploads new and changed files (throttled by `min_push_seconds` unless `force`)."""
        if not self.remote or (not force and time.monotonic() - self._last_push < self.min_push_seconds):
            return
        filesystem, remote = _filesystem(self.directory)
        for root, _, files in os.walk(self.local):
            for file in files:
                local = os.path.join(root, file)
                name = os.path.relpath(local, self.local)
                signature = _signature(local)
                if self._pushed.get(name) != signature:
                    filesystem.put_file(local, f"{remote.rstrip('/')}/{name}")
                    self._pushed[name] = signature
        self._last_push = time.monotonic()

    def close(self) -> None:
        self.push(force=True)
        if self.remote:
            shutil.rmtree(self.local, ignore_errors=True)

    def __enter__(self) -> Mirror:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _signature(local: str) -> tuple[int, int]:
    stat = os.stat(local)
    return stat.st_size, stat.st_mtime_ns
