"""Joining a multi-process run: the one place that decides what `jax.distributed.initialize` receives.

    python -m eotd_jax.distributed              # join, all-gather the process indices, print what this process sees
    python -m eotd_jax.distributed --cluster=gce_tpu

Explicit flags win (`--coordinator_address`, `--num_processes`, `--process_id`, or JAX_COORDINATOR_ADDRESS);
otherwise the launcher's environment decides: a SLURM job step with more than one task (one process per GPU), a
GKE TPU job (TPU_WORKER_HOSTNAMES / TPU_PROCESS_ADDRESSES, TPU_WORKER_ID), a Cloud TPU VM slice on GCE (this
host has TPU chips; the metadata server lists the workers), or one process and no initialize at all. Every
value is resolved here and passed explicitly with JAX's own detection off, because JAX's detection gives each
SLURM process one GPU whatever the tasks per node, and only recognises a TPU VM once libtpu has found chips;
so each process logs what it joined, and the tests fake each environment on a CPU. A SLURM process passes its
node's number as JAX's partition index: the GPUs of a node share a `slice_index`, which `sharding.make_mesh`
lays out across nodes (InfiniBand) apart from within one (NVLink).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping

from absl import app, flags, logging

CLUSTERS = ("auto", "none", "slurm", "gke_tpu", "gce_tpu")
TPU_COORDINATOR_PORT = "8482"  # JAX's port on TPU slices

_CLUSTER = flags.DEFINE_enum("cluster", "auto", CLUSTERS, "how this process finds the others: auto (explicit "
                             "flags, else SLURM, else GKE TPU, else a GCE TPU VM slice, else one process), none (one "
                             "process), or one environment by name")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0; with --num_processes and "
                                   "--process_id for runs no launcher describes (env JAX_COORDINATOR_ADDRESS)")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "processes in an explicit multi-process run")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "this process's index in an explicit multi-process run")
_LOCAL_DEVICE_IDS = flags.DEFINE_list("local_device_ids", None, "GPU ordinals this process uses (env "
                                      "JAX_LOCAL_DEVICE_IDS); default: what the environment implies")


class ClusterError(ValueError):
    """The environment describes a multi-process run that cannot be joined as it stands."""


@dataclasses.dataclass(frozen=True)
class Cluster:
    """What `jax.distributed.initialize` receives."""

    environment: str
    coordinator_address: str
    num_processes: int
    process_id: int
    local_device_ids: tuple[int, ...] | None  # None: every device this process sees
    partition_index: int | None = None  # a SLURM node's number: its GPUs' slice_index, the granule of make_mesh


def first_slurm_host(node_list: str) -> str:
    """The first host of a SLURM node list: `node[003-006,9],gpu1` -> node003."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", node_list)
    if not match:
        raise ClusterError(f"SLURM: cannot read the node list {node_list!r}")
    prefix, ranges = match.groups()
    return prefix + (re.split(r"[,-]", ranges)[0] if ranges else "")


def slurm_tasks_on_node(environ: Mapping[str, str]) -> int:
    """Tasks of this job step on this node, from SLURM_STEP_TASKS_PER_NODE (`8(x2),4`) and SLURM_NODEID."""
    spec = environ.get("SLURM_STEP_TASKS_PER_NODE") or environ.get("SLURM_TASKS_PER_NODE")
    if not spec:
        return int(environ["SLURM_NTASKS"]) // int(environ.get("SLURM_STEP_NUM_NODES") or environ.get("SLURM_NNODES")
                                                    or 1)
    per_node = []
    for part in spec.split(","):
        count, _, repeat = part.partition("(x")
        per_node += [int(count)] * int(repeat.rstrip(")") or 1)
    return per_node[min(int(environ.get("SLURM_NODEID", 0)), len(per_node) - 1)]


def slurm_local_device_ids(environ: Mapping[str, str]) -> tuple[int, ...] | None:
    """The GPUs of this task: all it sees when SLURM binds GPUs per task (or one task a node), else its share."""
    tasks = slurm_tasks_on_node(environ)
    local = int(environ["SLURM_LOCALID"])
    visible = [d for d in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
    gpus_per_task = int(environ.get("SLURM_GPUS_PER_TASK", "0").rpartition(":")[2] or 0)
    if tasks == 1:
        return None
    if not visible:
        return (local,)  # no GPU list to go by: one GPU per task, as JAX assumes
    if len(visible) < tasks or len(visible) == gpus_per_task:
        return None  # SLURM gave this task its own GPUs (--gpus-per-task)
    if len(visible) % tasks:
        raise ClusterError(f"SLURM: {len(visible)} GPUs visible to each of {tasks} tasks on this node; use one task "
                           "per GPU (--ntasks-per-node=GPUS) or set JAX_LOCAL_DEVICE_IDS")
    share = len(visible) // tasks
    return tuple(range(local * share, (local + 1) * share))


def slurm_cluster(environ: Mapping[str, str]) -> Cluster | None:
    if int(environ["SLURM_NTASKS"]) == 1:
        return None
    # JAX's port rule for SLURM: one port per job in the ephemeral range.
    port = environ.get("JAX_COORDINATOR_PORT") or str(int(environ["SLURM_JOB_ID"]) % 2**12 + 65536 - 2**12)
    host = first_slurm_host(environ.get("SLURM_STEP_NODELIST") or environ["SLURM_JOB_NODELIST"])
    return Cluster("slurm", f"{host}:{port}", int(environ["SLURM_NTASKS"]), int(environ["SLURM_PROCID"]),
                   slurm_local_device_ids(environ), int(environ.get("SLURM_NODEID", 0)))


def tpu_cluster(environment: str, hosts: list[str], worker_id: int, value: Callable[[str], str | None],
                environ: Mapping[str, str]) -> Cluster | None:
    """A TPU slice (or several, MEGASCALE_*): hosts in process order, the coordinator on process 0."""
    slices, slice_id = int(value("MEGASCALE_NUM_SLICES") or 1), int(value("MEGASCALE_SLICE_ID") or 0)
    if len(hosts) * slices == 1:
        return None
    coordinator = (value("MEGASCALE_COORDINATOR_ADDRESS") or hosts[0]).split(":")[0]
    port = environ.get("JAX_COORDINATOR_PORT") or TPU_COORDINATOR_PORT
    return Cluster(environment, f"{coordinator}:{port}", len(hosts) * slices, worker_id + slice_id * len(hosts), None)


def gke_tpu_cluster(environ: Mapping[str, str]) -> Cluster | None:
    hosts = (environ.get("TPU_PROCESS_ADDRESSES") or environ["TPU_WORKER_HOSTNAMES"]).split(",")
    return tpu_cluster("gke_tpu", hosts, int(environ.get("TPU_WORKER_ID", 0)), environ.get, environ)


def gce_metadata(key: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """An instance attribute from the GCE metadata server (GCE_METADATA_IP, as JAX reads it); None if unset."""
    host = environ.get("GCE_METADATA_IP", "metadata.google.internal")
    request = urllib.request.Request(f"http://{host}/computeMetadata/v1/instance/attributes/{key}",
                                     headers={"Metadata-Flavor": "Google"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read().decode()
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise ClusterError(f"GCE metadata server {host}: {key}: HTTP {error.code}") from None
    except OSError as error:
        raise ClusterError(f"GCE metadata server {host} unreachable ({error}); not a Cloud TPU VM? pass "
                           "--cluster=none for one process") from None


def gce_tpu_cluster(environ: Mapping[str, str], metadata: Callable[[str], str | None],
                    required: bool) -> Cluster | None:
    worker, endpoints = metadata("agent-worker-number"), metadata("worker-network-endpoints")
    if worker is None or endpoints is None:
        if required:
            raise ClusterError("GCE metadata has no agent-worker-number / worker-network-endpoints: not a TPU VM")
        return None  # TPU chips, but not a GCE TPU VM (a single-host GKE pod, say): one process
    # Entries are hostnames, or `name:id:ip` triples in the older format.
    hosts = [entry.split(":")[-1] for entry in endpoints.strip().split(",")]
    tpu_env = dict(re.findall(r"^\s*(\w+):\s*'?([^'\n]*)'?\s*$", metadata("tpu-env") or "", re.MULTILINE))
    return tpu_cluster("gce_tpu", hosts, int(worker), lambda key: environ.get(key) or tpu_env.get(key), environ)


def has_tpu_chips() -> bool:
    """TPU chips on this host's PCI bus, the check JAX itself makes before using libtpu."""
    from jax._src import hardware_utils

    return hardware_utils.num_available_tpu_chips_and_device_id()[0] > 0


def explicit_cluster(coordinator_address: str, num_processes: int | None, process_id: int | None) -> Cluster:
    if num_processes is None or process_id is None:
        raise ClusterError("--coordinator_address needs --num_processes and --process_id")
    if not 0 <= process_id < num_processes:
        raise ClusterError(f"--process_id {process_id} is not in [0, --num_processes {num_processes})")
    return Cluster("explicit", coordinator_address, num_processes, process_id, None)


def resolve(cluster: str = "auto", coordinator_address: str | None = None, num_processes: int | None = None,
            process_id: int | None = None, local_device_ids: list[str] | None = None,
            environ: Mapping[str, str] = os.environ,
            metadata: Callable[[str], str | None] | None = None,
            tpu_host: Callable[[], bool] = has_tpu_chips) -> Cluster | None:
    """The run this process belongs to, or None for a single process. Reads nothing but its arguments."""
    metadata = metadata or (lambda key: gce_metadata(key, environ))
    coordinator_address = coordinator_address or environ.get("JAX_COORDINATOR_ADDRESS")
    slurm = all(k in environ for k in ("SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID"))
    gke = bool(environ.get("TPU_PROCESS_ADDRESSES") or environ.get("TPU_WORKER_HOSTNAMES"))
    detected = cluster == "auto"
    if detected:
        cluster = ("explicit" if coordinator_address else "slurm" if slurm else "gke_tpu" if gke
                   else "gce_tpu" if tpu_host() else "none")
    missing = {"slurm": not slurm, "gke_tpu": not gke}.get(cluster)
    if missing:
        raise ClusterError(f"--cluster={cluster}, but this process's environment does not describe one")
    found = {"none": lambda: None,
             "explicit": lambda: explicit_cluster(coordinator_address, num_processes, process_id),
             "slurm": lambda: slurm_cluster(environ),
             "gke_tpu": lambda: gke_tpu_cluster(environ),
             "gce_tpu": lambda: gce_tpu_cluster(environ, metadata, required=not detected)}[cluster]()
    ids = local_device_ids or [i for i in environ.get("JAX_LOCAL_DEVICE_IDS", "").split(",") if i]
    if found is not None and ids:
        found = dataclasses.replace(found, local_device_ids=tuple(int(i) for i in ids))
    return found


def initialize(cluster: Cluster | None) -> None:
    """`jax.distributed.initialize` with every value resolved (nothing for a single process)."""
    if cluster is None:
        return
    import jax

    logging.warning("joining a %s run: process %d of %d, coordinator %s, local devices %s", cluster.environment,
                    cluster.process_id, cluster.num_processes, cluster.coordinator_address,
                    "all" if cluster.local_device_ids is None else ",".join(map(str, cluster.local_device_ids)))
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes (tests) need it; others ignore it
    jax.distributed.initialize(cluster.coordinator_address, cluster.num_processes, cluster.process_id,
                               list(cluster.local_device_ids) if cluster.local_device_ids is not None else None,
                               cluster_detection_method="deactivate", partition_index=cluster.partition_index)


def initialize_from_flags() -> Cluster | None:
    """Joins the run the flags and the environment describe; a `ClusterError` says why it cannot."""
    cluster = resolve(_CLUSTER.value, _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                      _LOCAL_DEVICE_IDS.value)
    initialize(cluster)
    return cluster


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    try:
        cluster = initialize_from_flags()
    except ClusterError as error:
        sys.exit(f"error: {error}")
    import jax
    from jax.experimental import multihost_utils

    indices = multihost_utils.process_allgather(jax.numpy.int32(jax.process_index()))
    # One write per line: the processes of a job share one log file, and print() under PYTHONUNBUFFERED writes
    # the line and its newline separately, so two processes' lines could run together.
    view = json.dumps({"environment": cluster.environment if cluster else "none",
                      "local_device_ids": list(cluster.local_device_ids or []) if cluster else [],
                      "process_index": jax.process_index(), "process_count": jax.process_count(),
                      "local_devices": [d.id for d in jax.local_devices()], "device_count": jax.device_count(),
                      "platform": jax.default_backend(), "all_process_indices": [int(i) for i in indices],
                      "usable_cpus": len(os.sched_getaffinity(0))})
    sys.stdout.write(view + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)
