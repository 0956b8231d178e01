"""A GCS emulator (`gcp-storage-emulator`, in-memory) on a free port of 127.0.0.1, for the `gs://` tests.

The environment it returns points every GCS client the project uses at it:
gcsfs (epath's `gs://` backend: files, Orbax's metadata, TFDS) and tensorstore
(Orbax's arrays). TensorFlow's own GCS file system cannot be pointed at it;
the project never hands it a `gs://` path (see `eotd_jax.paths`). The emulator
runs with one response header added that GCS sends and it leaves out (`serve`).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

BUCKET = "eotd-test"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def emulator_env(port: int) -> dict[str, str]:
    endpoint = f"http://127.0.0.1:{port}"
    return {"STORAGE_EMULATOR_HOST": endpoint, "TENSORSTORE_GCS_HTTP_URL": endpoint,
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",  # tensorstore: skip Google's auth
            "NO_GCE_CHECK": "true"}


@contextlib.contextmanager
def emulator() -> Iterator[dict[str, str]]:
    """Starts the emulator, yields the environment that points clients at it, stops it."""
    port = free_port()
    log = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen([sys.executable, __file__, "start", "--host=127.0.0.1", f"--port={port}",
                                "--in-memory", f"--default-bucket={BUCKET}", "--quiet"],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"the GCS emulator did not start: {log.read()[-2000:]}")
            time.sleep(0.1)
        yield emulator_env(port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def serve(argv: list[str]) -> None:
    """The emulator's own `main`, plus the `x-goog-generation` header that GCS sends with every object download
    and the emulator leaves out: tensorstore reads an object's generation from it, and without it Orbax's
    update of an OCDBT manifest fails ("Malformed StorageGeneration")."""
    from gcp_storage_emulator.exceptions import NotFound
    from gcp_storage_emulator.handlers import objects

    download = objects.download

    def download_with_generation(request, response, storage, *args, **kwargs):
        download(request, response, storage, *args, **kwargs)
        try:
            resource = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
        except NotFound:
            return
        response["x-goog-generation"] = resource["generation"]
        response["x-goog-metageneration"] = resource["metageneration"]

    objects.download = download_with_generation  # before the server module builds its routing table
    from gcp_storage_emulator.__main__ import main

    main(argv)


if __name__ == "__main__":
    serve(sys.argv[1:])
