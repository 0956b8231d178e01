"""A fake `gcloud` for the launch tests: a TPU VM slice whose workers are local directories $FAKE_CLOUD/worker-<i>.

`compute tpus tpu-vm ssh --worker=all|N --command=C` runs `bash -c C` on every worker at once, or on worker N
(HOME = its directory, GCE_METADATA_IP = its metadata server from $FAKE_METADATA); `scp` copies into every
worker; `storage cp` maps gs://B/P to $FAKE_CLOUD/gcs/B/P; create/describe/delete only record the
call in $FAKE_CLOUD/calls.jsonl.
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


if args[:3] == ["compute", "tpus", "tpu-vm"] and args[3] == "ssh":
    worker = options.get("--worker")
    if worker != "all" and not (worker or "").isdigit():
        sys.exit("fake gcloud: ssh without --worker=all or --worker=N")
    metadata = os.environ["FAKE_METADATA"].split(",")
    chosen = range(len(workers)) if worker == "all" else [int(worker)]
    sys.exit(max(run_all([{"args": ["bash", "-c", options["--command"]], "cwd": workers[i],
                           "env": {**os.environ, "HOME": workers[i], "GCE_METADATA_IP": metadata[i]}}
                          for i in chosen])))
elif args[:3] == ["compute", "tpus", "tpu-vm"] and args[3] == "scp":
    source, destination = positional[4:6]
    for home in workers:
        shutil.copy(source, os.path.join(home, destination.partition(":")[2]))
elif args[:3] == ["compute", "tpus", "tpu-vm"] and args[3] in ("create", "describe", "delete"):
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
