"""A GCE metadata server on 127.0.0.1 serving one TPU VM worker's instance attributes (as JAX and libtpu query
them: GET /computeMetadata/v1/instance/attributes/<key> with `Metadata-Flavor: Google`)."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator

PREFIX = "/computeMetadata/v1/instance/attributes/"


@contextlib.contextmanager
def metadata_server(attributes: dict[str, str]) -> Iterator[str]:
    """Yields the server's `host:port`, the value of GCE_METADATA_IP that points a process at it."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            key = self.path[len(PREFIX):] if self.path.startswith(PREFIX) else None
            if self.headers.get("Metadata-Flavor") != "Google":
                self.send_error(403, "Missing Metadata-Flavor:Google header")
            elif key not in attributes:
                self.send_error(404)
            else:
                body = attributes[key].encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def tpu_worker_attributes(worker: int, hosts: list[str], tpu_env: str = "") -> dict[str, str]:
    """What a Cloud TPU VM slice's metadata says on worker `worker` (hostnames in worker order)."""
    return {"agent-worker-number": str(worker), "worker-network-endpoints": ",".join(hosts), "tpu-env": tpu_env,
            "accelerator-type": "v5litepod-16"}
