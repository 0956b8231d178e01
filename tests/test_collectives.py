"""eotd_jax.planning.collectives: the bytes each chip receives, read from programs libtpu compiled for v5e slices."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tiny_steps import tiny_model, tiny_train_step

from eotd_jax.model.sharding import MESH_AXES
from eotd_jax.planning import slices
from eotd_jax.planning.collectives import collective_bytes
from eotd_jax.trainer import count_params


def test_gathering_a_sharded_array_counts_the_three_quarters_each_chip_lacks(v5e_2x2):
    mesh = Mesh(np.array(v5e_2x2.devices), ("x",))
    rows = jax.ShapeDtypeStruct((4096, 256), jnp.float32, sharding=NamedSharding(mesh, PartitionSpec("x")))
    gathered = jax.jit(lambda x: x * 2, out_shardings=NamedSharding(mesh, PartitionSpec())).lower(rows).compile()
    assert collective_bytes(gathered.as_text(), 4) == {"all-gather": 4096 * 256 * 4 * 3 / 4}
    summed = jax.jit(lambda x: x.sum(axis=0), out_shardings=NamedSharding(mesh, PartitionSpec())).lower(rows)
    # Each chip's 256 partial sums, reduced across the 4 (a ring all-reduce moves 2 (N-1)/N of the bytes).
    assert collective_bytes(summed.compile().as_text(), 4) == {"all-reduce": 2 * 256 * 4 * 3 / 4}


def test_a_weight_streamed_in_a_loop_beside_its_matmul_counts_every_iteration():
    """On 8 chips libtpu overlaps an FSDP weight's gather with the matmul that uses it: a loop, unrolled to 2 steps
    an iteration, that passes the weight's eighths round the chips with collective-permutes."""
    eight = slices.load("v5e-8")
    mesh = Mesh(np.array(eight.devices), ("x",))
    rows = NamedSharding(mesh, PartitionSpec("x"))
    x = jax.ShapeDtypeStruct((16, 512, 1024), jnp.bfloat16, sharding=rows)
    w = jax.ShapeDtypeStruct((1024, 16, 64), jnp.bfloat16, sharding=rows)
    project = jax.jit(lambda x, w: jnp.einsum("bld,dhk->blhk", x, w), out_shardings=rows).lower(x, w).compile()
    hlo = project.as_text()
    assert "windowed_dot_general" in hlo and "while(" in hlo
    received = collective_bytes(hlo, 8)
    weight = 1024 * 16 * 64 * 2
    assert set(received) == {"collective-permute"}
    # A ring gather takes in the 7 eighths a chip lacks; this schedule moves one eighth more.
    assert 7 / 8 * weight <= received["collective-permute"] <= 9 / 8 * weight, received


def test_a_scanned_models_collectives_count_once_per_layer_as_the_unrolled_models_do(v5e_2x2):
    """FSDP over the 4 chips: each layer's weights are gathered and its gradients reduced inside the scan's loop
    body, which XLA prints once. The chips in libtpu's order: in the ring order `make_mesh` picks on a 2x2 v5e,
    libtpu all-reduces some of the scanned layers' gradients inside the loop where the unrolled program
    reduce-scatters them (t5-tiny: 12% more bytes), which is the compiler's choice, not the count's."""
    mesh = Mesh(np.asarray(v5e_2x2.devices).reshape(1, 4, 1), MESH_AXES)
    received = {}
    for scan in (True, False):
        model = tiny_model(scan_layers=scan, num_layers=4, num_decoder_layers=4)
        received[scan] = collective_bytes(tiny_train_step(model, mesh, 8, 64, 32).lower().compile().as_text(), 4)
    _, _, state = model  # the parameters are the same scanned or not
    params = count_params(nnx.to_pure_dict(state))
    reduced = {scan: kinds.get("all-reduce", 0) + kinds.get("reduce-scatter", 0) for scan, kinds in received.items()}
    assert abs(reduced[True] / reduced[False] - 1) < 0.01, received
    assert abs(received[True]["all-gather"] / received[False]["all-gather"] - 1) < 0.05, received
    # Each float32 gradient crosses the chips once: 3/4 of its 4 bytes a reduce-scatter, twice that an all-reduce.
    assert 3 * params < reduced[True] < 6 * 1.1 * params, (received, params)
    # A layer's bfloat16 weights are gathered for the forward pass and again for the backward, 3/4 of their 2 bytes
    # each time; the embedding once.
    assert all(1.5 * 1.5 * params < kinds["all-gather"] < 3 * 1.5 * params for kinds in received.values()), received


def test_a_gpu_loop_counts_its_stated_trip_count_and_only_groups_spanning_nodes_cross():
    """XLA:GPU states a while loop's trip count in its backend config; a collective of a group that spans two nodes
    (partitions 0-3 on node 0, 4-7 on node 1) crosses, one within a node does not."""
    hlo = """HloModule m
%body (p: (s32[], f32[1024])) -> (s32[], f32[1024]) {
  %p = (s32[], f32[1024]) parameter(0)
  %x = f32[1024] get-tuple-element(%p), index=1
  %within = f32[1024] all-reduce(%x), channel_id=1, replica_groups={{0,1,2,3},{4,5,6,7}}, to_apply=%add
  %across = f32[1024] all-reduce(%within), channel_id=2, replica_groups=[4,2]<=[2,4]T(1,0), to_apply=%add
  %i = s32[] get-tuple-element(%p), index=0
  ROOT %t = (s32[], f32[1024]) tuple(%i, %across)
}
%cond (p: (s32[], f32[1024])) -> pred[] {
  %p = (s32[], f32[1024]) parameter(0)
  ROOT %c = pred[] constant(true)
}
ENTRY %main (a: (s32[], f32[1024])) -> (s32[], f32[1024]) {
  %a = (s32[], f32[1024]) parameter(0)
  ROOT %w = (s32[], f32[1024]) while(%a), condition=%cond, body=%body, backend_config={"known_trip_count":{"n":"24"}}
}
"""
    per_run = 4096 * 2 * (3 / 4) + 4096 * 2 * (1 / 2)  # groups of 4, then pairs (0,4), (1,5)... across the nodes
    assert collective_bytes(hlo, 8) == {"all-reduce": 24 * per_run}
    assert collective_bytes(hlo, 8, across=[0, 0, 0, 0, 1, 1, 1, 1]) == {"all-reduce": 24 * 4096 * 2 * (1 / 2)}


def test_a_mesh_group_with_reordered_devices_groups_the_devices_it_names():
    """XLA:GPU prints a data x FSDP mesh over 2 nodes of 4 as `mesh[...], device_ids=([2,4]T(1,0))`: position (i, j)
    of its 4 x 2 mesh holds device 4 j + i, so a group along the size-4 axis is one node's devices, never both."""
    hlo = """HloModule m
ENTRY %main (x: f32[1024]) -> f32[1024] {
  %x = f32[1024] parameter(0)
  %fsdp = f32[1024] all-reduce(%x), channel_id=1, MESH {'axis_0'}, use_global_device_ids=true, to_apply=%add
  ROOT %data = f32[1024] all-reduce(%fsdp), channel_id=2, MESH {'axis_1'}, use_global_device_ids=true, to_apply=%add
}
""".replace("MESH", "replica_groups=mesh['axis_0'=4,'axis_1'=2], device_ids=([2,4]T(1,0))")
    within, across = 4096 * 2 * (3 / 4), 4096 * 2 * (1 / 2)
    assert collective_bytes(hlo, 8) == {"all-reduce": within + across}
    assert collective_bytes(hlo, 8, across=[0, 0, 0, 0, 1, 1, 1, 1]) == {"all-reduce": across}
    listed = hlo.replace("device_ids=([2,4]T(1,0))", "device_ids=(0,4,1,5,2,6,3,7)")
    assert collective_bytes(listed, 8, across=[0, 0, 0, 0, 1, 1, 1, 1]) == {"all-reduce": across}
