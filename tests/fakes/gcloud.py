"""A fake `gcloud` for the launch tests: TPU VM workers that are local directories $FAKE_CLOUD/worker-<i>.

`compute tpus tpu-vm ssh --worker=all|N --command=C` runs `bash -c C` on every worker at once, or on worker N
(HOME = its directory, GCE_METADATA_IP = its metadata server from $FAKE_METADATA); `scp` copies into every
worker. `compute tpus queued-resources ssh|scp` does the same for a Multislice queued resource: the workers
split in $FAKE_SLICES equal slices (nodes) in order, `--node=all|N` and `--worker=all|N` choose among them, each
defaulting to 0 as gcloud's do. `storage cp` maps gs://B/P to $FAKE_CLOUD/gcs/B/P; create/describe/delete only
record the call in $FAKE_CLOUD/calls.jsonl.
"""

import glob
import json
import os
import shutil
import sys

from relay import run_all

root = os.environ["FAKE_CLOUD"]
args = sys.argv[1:]
with open(os.path.join(root, "calls.jsonl"), "a", encoding="utf-8") as calls:
    calls.write(json.dumps(args) + "\n")
options = dict(a.split("=", 1) for a in args if a.startswith("--") and "=" in a)
positional = [a for a in args if not a.startswith("-")]
workers = sorted(glob.glob(os.path.join(root, "worker-*")))


def local(path: str) -> str:
    return os.path.join(root, "gcs", path.removeprefix("gs://")) if path.startswith("gs://") else path


def chosen_workers() -> list[int]:
    """The workers `--node` and `--worker` name (a TPU VM: one node; `tpu-vm ssh` has no default worker)."""
    queued = args[2] == "queued-resources"
    nodes = int(os.environ.get("FAKE_SLICES", "1")) if queued else 1
    per_node = len(workers) // nodes
    node, worker = options.get("--node", "0" if queued else "all"), options.get("--worker", "0" if queued else None)
    for name, value, count in (("--node", node, nodes), ("--worker", worker, per_node)):
        if value != "all" and not ((value or "").isdigit() and int(value) < count):
            sys.exit(f"fake gcloud: {name}={value} is not all or one of 0..{count - 1}")
    return [n * per_node + w for n in (range(nodes) if node == "all" else [int(node)])
            for w in (range(per_node) if worker == "all" else [int(worker)])]


if args[:2] == ["compute", "tpus"] and args[2] in ("tpu-vm", "queued-resources") and args[3] == "ssh":
    metadata = os.environ["FAKE_METADATA"].split(",")
    sys.exit(max(run_all([{"args": ["bash", "-c", options["--command"]], "cwd": workers[i],
                           "env": {**os.environ, "HOME": workers[i], "GCE_METADATA_IP": metadata[i]}}
                          for i in chosen_workers()])))
elif args[:2] == ["compute", "tpus"] and args[2] in ("tpu-vm", "queued-resources") and args[3] == "scp":
    source, destination = positional[4:6]
    for i in chosen_workers():
        shutil.copy(source, os.path.join(workers[i], destination.partition(":")[2]))
elif args[:2] == ["compute", "tpus"] and args[2] in ("tpu-vm", "queued-resources") \
        and args[3] in ("create", "describe", "delete"):
    pass
elif args[:2] == ["storage", "cp"]:
    *sources, destination = positional[2:]
    target = local(destination)
    os.makedirs(target if destination.endswith("/") else os.path.dirname(target), exist_ok=True)
    matches = [m for source in sources for m in glob.glob(local(source))]
    if not matches:
        sys.exit(f"fake gcloud: storage cp: no match for {sources}")
    for match in matches:
        shutil.copy(match, target)
else:
    sys.exit(f"fake gcloud: unexpected {args}")
