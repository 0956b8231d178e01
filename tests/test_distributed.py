"""eotd_jax.distributed: what `jax.distributed.initialize` receives in each environment, faked on a CPU host
(environment variables as the launchers set them; a GCE metadata server on 127.0.0.1)."""

from __future__ import annotations

import pytest
from fake_metadata import metadata_server, tpu_worker_attributes

from eotd_jax import distributed
from eotd_jax.distributed import Cluster, ClusterError, resolve

NO_TPU = {"tpu_host": lambda: False}


def _slurm(proc_id: int, tasks_per_node: int, nodes: int = 2, **extra: str) -> dict[str, str]:
    """The variables srun sets for task `proc_id` of a job step (block distribution over the nodes)."""
    return {"SLURM_JOB_ID": "4242", "SLURM_STEP_NODELIST": "gpu[017-018]", "SLURM_JOB_NODELIST": "gpu[017-018]",
            "SLURM_NTASKS": str(tasks_per_node * nodes), "SLURM_PROCID": str(proc_id),
            "SLURM_LOCALID": str(proc_id % tasks_per_node), "SLURM_NODEID": str(proc_id // tasks_per_node),
            "SLURM_STEP_NUM_NODES": str(nodes), "SLURM_STEP_TASKS_PER_NODE": f"{tasks_per_node}(x{nodes})", **extra}


def test_a_single_process_joins_nothing():
    assert resolve(environ={}, **NO_TPU) is None
    assert resolve(environ=_slurm(0, 1, nodes=1), **NO_TPU) is None  # an srun of one task
    assert resolve(environ={"TPU_WORKER_HOSTNAMES": "localhost"}, **NO_TPU) is None  # a single-host GKE TPU pod


def test_explicit_flags_win_over_the_environment():
    cluster = resolve("auto", "10.0.0.2:1234", 4, 3, environ=_slurm(5, 8), **NO_TPU)
    assert cluster == Cluster("explicit", "10.0.0.2:1234", 4, 3, None)
    from_env = resolve(environ={"JAX_COORDINATOR_ADDRESS": "h:1"}, num_processes=2, process_id=1, **NO_TPU)
    assert from_env == Cluster("explicit", "h:1", 2, 1, None)
    with pytest.raises(ClusterError, match="needs --num_processes and --process_id"):
        resolve("auto", "10.0.0.2:1234", environ={}, **NO_TPU)
    with pytest.raises(ClusterError, match="--process_id 4 is not in"):
        resolve("auto", "10.0.0.2:1234", 4, 4, environ={}, **NO_TPU)


def test_slurm_one_task_per_gpu_every_task_seeing_the_node():
    """--ntasks-per-node=8 --gpus-per-node=8: each task sees 8 GPUs and takes the one of its local id."""
    visible = {"CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"}
    clusters = [resolve(environ=_slurm(i, 8, **visible), **NO_TPU) for i in range(16)]
    assert {c.coordinator_address for c in clusters} == {f"gpu017:{4242 % 4096 + 61440}"}
    assert [c.process_id for c in clusters] == list(range(16))
    assert {c.num_processes for c in clusters} == {16}
    assert [c.local_device_ids for c in clusters] == [(i % 8,) for i in range(16)]
    assert [c.partition_index for c in clusters] == [0] * 8 + [1] * 8  # a node's GPUs share a slice index


def test_slurm_gpus_bound_per_task_are_used_whole():
    """--gpus-per-task=1: SLURM shows each task only its GPU; ordinal 0 of what it sees, not its local id."""
    cluster = resolve(environ=_slurm(11, 8, CUDA_VISIBLE_DEVICES="3", SLURM_GPUS_PER_TASK="1"), **NO_TPU)
    assert cluster.process_id == 11 and cluster.local_device_ids is None
    two = resolve(environ=_slurm(1, 4, CUDA_VISIBLE_DEVICES="2,3", SLURM_GPUS_PER_TASK="h100:2"), **NO_TPU)
    assert two.local_device_ids is None


def test_slurm_one_task_per_node_uses_all_its_gpus():
    """JAX's own detection would give this task [SLURM_LOCALID] = [0]: 2 of 16 GPUs."""
    cluster = resolve(environ=_slurm(1, 1, CUDA_VISIBLE_DEVICES="0,1,2,3,4,5,6,7"), **NO_TPU)
    assert cluster == Cluster("slurm", f"gpu017:{4242 % 4096 + 61440}", 2, 1, None, partition_index=1)


def test_slurm_several_gpus_per_task_are_split_by_local_id():
    cluster = resolve(environ=_slurm(3, 2, CUDA_VISIBLE_DEVICES="0,1,2,3,4,5,6,7"), **NO_TPU)
    assert cluster.local_device_ids == (4, 5, 6, 7)
    with pytest.raises(ClusterError, match="3 GPUs visible to each of 2 tasks"):
        resolve(environ=_slurm(0, 2, CUDA_VISIBLE_DEVICES="0,1,2"), **NO_TPU)


def test_jax_local_device_ids_and_the_coordinator_port_override_slurm():
    environ = _slurm(2, 8, JAX_LOCAL_DEVICE_IDS="6,7", JAX_COORDINATOR_PORT="5555")
    assert resolve(environ=environ, **NO_TPU) == Cluster("slurm", "gpu017:5555", 16, 2, (6, 7), partition_index=0)
    assert resolve(environ=_slurm(2, 8), local_device_ids=["1"], **NO_TPU).local_device_ids == (1,)


@pytest.mark.parametrize(("node_list", "first"), [
    ("node001", "node001"), ("node001,host2", "node001"), ("gpu[003-006,9],x1", "gpu003"),
    ("a-b[12,15-16]", "a-b12"), ("h[7]", "h7")])
def test_the_coordinator_is_the_first_host_of_the_node_list(node_list, first):
    assert distributed.first_slurm_host(node_list) == first


def test_uneven_tasks_per_node_are_read_per_node():
    environ = {**_slurm(0, 8), "SLURM_STEP_TASKS_PER_NODE": "8,2(x2)", "SLURM_NODEID": "2"}
    assert distributed.slurm_tasks_on_node(environ) == 2


def test_gke_tpu_slice_and_multislice():
    hosts = "job-0.svc,job-1.svc,job-2.svc,job-3.svc"
    cluster = resolve(environ={"TPU_WORKER_HOSTNAMES": hosts, "TPU_WORKER_ID": "2"}, **NO_TPU)
    assert cluster == Cluster("gke_tpu", "job-0.svc:8482", 4, 2, None)
    multislice = {"TPU_WORKER_HOSTNAMES": hosts, "TPU_WORKER_ID": "1", "MEGASCALE_NUM_SLICES": "2",
                  "MEGASCALE_SLICE_ID": "1", "MEGASCALE_COORDINATOR_ADDRESS": "slice0-host0:8080"}
    assert resolve(environ=multislice, **NO_TPU) == Cluster("gke_tpu", "slice0-host0:8482", 8, 5, None)


def test_gce_tpu_vm_slice_from_the_metadata_server():
    hosts = ["t1v-n-0-w-0", "t1v-n-0-w-1", "t1v-n-0-w-2", "t1v-n-0-w-3"]
    for worker in range(4):
        with metadata_server(tpu_worker_attributes(worker, hosts)) as address:
            cluster = resolve(environ={"GCE_METADATA_IP": address}, tpu_host=lambda: True)
        assert cluster == Cluster("gce_tpu", "t1v-n-0-w-0:8482", 4, worker, None)


def test_gce_tpu_old_endpoint_format_and_multislice_tpu_env():
    endpoints = ["w0:0:10.1.0.5", "w1:1:10.1.0.6"]
    tpu_env = "MEGASCALE_NUM_SLICES: '2'\nMEGASCALE_SLICE_ID: '1'\nMEGASCALE_COORDINATOR_ADDRESS: '10.9.0.1'\n"
    with metadata_server(tpu_worker_attributes(1, endpoints, tpu_env)) as address:
        cluster = resolve("gce_tpu", environ={"GCE_METADATA_IP": address}, tpu_host=lambda: False)
    assert cluster == Cluster("gce_tpu", "10.9.0.1:8482", 4, 3, None)


def test_a_single_host_tpu_vm_and_a_tpu_host_without_slice_metadata_run_one_process():
    with metadata_server(tpu_worker_attributes(0, ["t1v-n-0-w-0"])) as address:
        assert resolve(environ={"GCE_METADATA_IP": address}, tpu_host=lambda: True) is None
    with metadata_server({}) as address:
        assert resolve(environ={"GCE_METADATA_IP": address}, tpu_host=lambda: True) is None
        with pytest.raises(ClusterError, match="no agent-worker-number"):
            resolve("gce_tpu", environ={"GCE_METADATA_IP": address}, **NO_TPU)


def test_an_unreachable_metadata_server_and_a_missing_environment_are_one_line_errors():
    with metadata_server({}) as address:
        pass  # closed: nothing listens there any more
    with pytest.raises(ClusterError, match="unreachable"):
        resolve("gce_tpu", environ={"GCE_METADATA_IP": address}, **NO_TPU)
    with pytest.raises(ClusterError, match="--cluster=slurm, but"):
        resolve("slurm", environ={}, **NO_TPU)
    assert resolve("none", environ=_slurm(3, 8), **NO_TPU) is None


def test_initialize_passes_every_value_and_turns_jax_detection_off(monkeypatch):
    import jax

    received = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda *args, **kwargs: received.append((args, kwargs)))
    monkeypatch.setattr(jax.config, "update", lambda *args: None)
    distributed.initialize(None)
    assert received == []
    distributed.initialize(Cluster("slurm", "gpu017:62602", 16, 9, (1,), partition_index=1))
    distributed.initialize(Cluster("gce_tpu", "w0:8482", 4, 2, None))
    off = {"cluster_detection_method": "deactivate"}
    assert received == [(("gpu017:62602", 16, 9, [1]), {**off, "partition_index": 1}),
                        (("w0:8482", 4, 2, None), {**off, "partition_index": None})]
