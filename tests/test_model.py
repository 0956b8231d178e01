"""The Flax T5 against Hugging Face's PyTorch T5 on the same random weights, through the real import code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from runs import cpu_env, fake_devices

from eotd_jax.model.config import CONFIGS, get_config
from eotd_jax.model.decoding import greedy, sample
from eotd_jax.model.hf_io import CheckpointError, export_hf, import_hf
from eotd_jax.model.t5 import T5

torch = pytest.importorskip("torch", reason="the reference is HF PyTorch T5; pip install -e .[dev] installs torch")
transformers = pytest.importorskip("transformers")

VARIANTS = {"v1_0": dict(feed_forward_proj="relu", tie_word_embeddings=True),
            "v1_1": dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False)}


def _hf_model(variant: str, directory: Path, eos_token_id: int = 1, seed: int = 0, init_scale: float = 1.0):
    config = transformers.T5Config(
        vocab_size=300, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2, num_heads=4,
        relative_attention_num_buckets=16, relative_attention_max_distance=32, dropout_rate=0.0,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=eos_token_id, initializer_factor=init_scale,
        **VARIANTS[variant])
    torch.manual_seed(seed)
    model = transformers.T5ForConditionalGeneration(config).eval()
    model.save_pretrained(directory)
    return model


def _batch():
    rng = np.random.default_rng(0)
    ids = rng.integers(2, 300, (3, 11))
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    ids[mask == 0] = 0
    decoder_ids = rng.integers(2, 300, (3, 9))
    decoder_ids[:, 0] = 0
    return ids, mask, decoder_ids


def _hf_logits(model, ids, mask, decoder_ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                     decoder_input_ids=torch.tensor(decoder_ids)).logits.numpy()


def _our_logits(model, ids, mask, decoder_ids):
    """Logits over the real vocabulary; the padding ids' (up to a multiple of 128) are checked masked."""
    logits = np.asarray(model(jnp.asarray(ids), jnp.asarray(mask, bool), jnp.asarray(decoder_ids)))
    config = model.config
    assert logits.shape[-1] == config.padded_vocab_size and config.padded_vocab_size % 128 == 0
    assert np.all(logits[..., config.vocab_size:] <= -1e9)
    return logits[..., :config.vocab_size]


@pytest.mark.parametrize("scan_layers", [True, False])
@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_match_hf_with_padding(tmp_path, variant, scan_layers):
    hf = _hf_model(variant, tmp_path)
    config, ours = import_hf(str(tmp_path), scan_layers=scan_layers)
    assert config.gated == (variant == "v1_1")
    batch = _batch()
    reference = _hf_logits(hf, *batch)
    assert np.abs(reference).max() > 1.0  # weights large enough that a wrong layer would show
    assert np.abs(reference - _our_logits(ours, *batch)).max() < 1e-4


@pytest.mark.parametrize("variant", VARIANTS)
def test_greedy_decoding_gives_hf_generate_token_ids(tmp_path, variant):
    ids, mask, _ = _batch()
    # Pick as EOS a token the model emits mid-sequence, so stopping at EOS is exercised.
    probe = _hf_model(variant, tmp_path / "probe", init_scale=3.0)  # sharper, varied outputs
    with torch.no_grad():
        first = probe.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), max_new_tokens=16,
                               do_sample=False).numpy()
    eos = int(first[0, 4])
    hf = _hf_model(variant, tmp_path / "model", eos_token_id=eos, init_scale=3.0)
    with torch.no_grad():
        expected = hf.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), max_new_tokens=16,
                               do_sample=False, num_beams=1).numpy()[:, 1:]
    _, ours = import_hf(str(tmp_path / "model"))
    got = np.asarray(greedy(ours, jnp.asarray(ids), jnp.asarray(mask, bool), 16))
    expected = np.pad(expected, ((0, 0), (0, 16 - expected.shape[1])))
    assert (got == eos).any() and len({tuple(row) for row in got}) >= 2
    np.testing.assert_array_equal(got, expected)


def test_sampling_is_seeded_and_tends_to_greedy():
    model = T5(get_config("t5-tiny", dropout_rate=0.0), nnx.Rngs(3))
    ids, mask = jnp.asarray(_batch()[0] % 260), jnp.asarray(_batch()[1], bool)
    key = jax.random.key(0)
    first, again = sample(model, ids, mask, 12, key, 1.0, 1.0), sample(model, ids, mask, 12, key, 1.0, 1.0)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, sample(model, ids, mask, 12, jax.random.key(1), 1.0, 1.0))
    np.testing.assert_array_equal(sample(model, ids, mask, 12, key, 1.0, 1e-6), greedy(model, ids, mask, 12))
    np.testing.assert_array_equal(sample(model, ids, mask, 12, key, 1e-4, 1.0), greedy(model, ids, mask, 12))


def test_export_reloads_in_hf_with_the_same_logits(tmp_path):
    for variant in VARIANTS:  # our own random init: the v1.1 LM head differs from the embedding
        name = "t5-tiny" if variant == "v1_0" else "t5-tiny-v1_1"
        ours = T5(get_config(name, dropout_rate=0.0), nnx.Rngs(7))
        export_hf(ours, str(tmp_path / variant))
        hf = transformers.T5ForConditionalGeneration.from_pretrained(str(tmp_path / variant)).eval()
        ids, mask, decoder_ids = (x % 260 for x in _batch())
        assert np.abs(_hf_logits(hf, ids, mask, decoder_ids) - _our_logits(ours, ids, mask, decoder_ids)).max() < 1e-4
        _, again = import_hf(str(tmp_path / variant))
        np.testing.assert_array_equal(_our_logits(again, ids, mask, decoder_ids),
                                      _our_logits(ours, ids, mask, decoder_ids))


def test_import_errors_name_the_problem(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        import_hf(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bart", "architectures": ["BartModel"]}))
    with pytest.raises(CheckpointError, match="unsupported architecture 'bart'"):
        import_hf(str(tmp_path))
    _hf_model("v1_0", tmp_path / "good")
    config = json.loads((tmp_path / "good" / "config.json").read_text())
    (tmp_path / "good" / "config.json").write_text(json.dumps({**config, "d_ff": 256}))
    with pytest.raises(CheckpointError, match=r"DenseReluDense.wi.weight has shape \(128, 64\)"):
        import_hf(str(tmp_path / "good"))
    os.remove(tmp_path / "good" / "model.safetensors")
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        import_hf(str(tmp_path / "good"))


def test_named_configs_build_abstractly():
    for name in CONFIGS:
        model = nnx.eval_shape(lambda name=name: T5(get_config(name), nnx.Rngs(0)))
        count = sum(np.prod(v.shape) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))
        assert count > 0
    codet5_large = nnx.eval_shape(lambda: T5(get_config("codet5-large"), nnx.Rngs(0)))
    count = sum(np.prod(v.shape) for v in jax.tree.leaves(nnx.state(codet5_large, nnx.Param)))
    assert 730e6 < count < 780e6  # CodeT5+ 770M
    with pytest.raises(ValueError, match="unknown model 'gpt2'"):
        get_config("gpt2")


SHARDED = """
import jax, jax.numpy as jnp, numpy as np
from flax import nnx
from eotd_jax.model.config import get_config
from eotd_jax.model.decoding import greedy
from eotd_jax.model.sharding import batch_sharding, make_mesh, shard_model
from eotd_jax.model.t5 import T5
assert jax.device_count() == 8
model = T5(get_config("t5-tiny-v1_1", dropout_rate=0.0, num_heads=4, d_ff=128), nnx.Rngs(0))
ids = jnp.asarray(np.random.default_rng(0).integers(2, 260, (8, 10)))
mask = jnp.asarray(np.random.default_rng(1).random((8, 10)) > 0.2).at[:, 0].set(True)
reference, reference_tokens = model(ids, mask, ids), greedy(model, ids, mask, 8)
mesh = make_mesh((1, 4, 2))
sharded = shard_model(model, mesh)
spec = sharded.decoder.mlp.wi.value.sharding.spec
assert spec == jax.sharding.PartitionSpec(None, "fsdp", "tensor"), spec
put = lambda x: jax.device_put(x, batch_sharding(mesh))
logits = nnx.jit(lambda m, a, b, c: m(a, b, c))(sharded, put(ids), put(mask), put(ids))
print("max_diff", float(jnp.abs(logits - reference).max()))
assert bool((greedy(sharded, put(ids), put(mask), 8) == reference_tokens).all())
"""


def test_sharded_over_eight_devices_gives_the_same_logits():
    env = cpu_env(fake_devices(8))
    result = subprocess.run([sys.executable, "-c", SHARDED], capture_output=True, text=True, timeout=300, env=env,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr[-3000:]
    assert float(result.stdout.split("max_diff")[1]) < 1e-5


def test_packed_rows_give_the_same_logits_as_separate_examples():
    from eotd_jax.model.t5 import shift_right

    model = T5(get_config("t5-tiny-v1_1", dropout_rate=0.0), nnx.Rngs(5))
    rng = np.random.default_rng(2)
    sources = [rng.integers(2, 260, n) for n in (5, 7)]
    targets = [rng.integers(2, 260, n) for n in (4, 6)]
    separate = []
    for source, target in zip(sources, targets, strict=True):
        decoder_in = shift_right(jnp.asarray(target)[None], 0)
        separate.append(np.asarray(model(jnp.asarray(source)[None], jnp.ones((1, len(source)), bool), decoder_in))[0])
    packed_source = jnp.asarray(np.concatenate(sources + [np.zeros(3, int)]))[None]
    source_segments = jnp.asarray([1] * 5 + [2] * 7 + [0] * 3)[None]
    packed_target = jnp.asarray(np.concatenate(targets + [np.zeros(2, int)]))[None]
    target_segments = jnp.asarray([1] * 4 + [2] * 6 + [0] * 2)[None]
    logits = np.asarray(model(packed_source, source_segments, shift_right(packed_target, 0, target_segments),
                              target_segments))[0]
    np.testing.assert_allclose(logits[:4], separate[0], atol=1e-5)
    np.testing.assert_allclose(logits[4:10], separate[1], atol=1e-5)


def test_the_vocabulary_is_padded_to_128_and_hf_import_pads_and_export_strips(tmp_path):
    assert get_config("codet5-large").padded_vocab_size == 32128 and get_config("t5-small").padded_vocab_size == 32128
    _hf_model("v1_1", tmp_path / "hf")  # 300 ids, an untied LM head
    config, ours = import_hf(str(tmp_path / "hf"))
    embedding, head = np.asarray(ours.embedding[...]), np.asarray(ours.lm_head[...])
    assert config.vocab_size == 300 and embedding.shape == (384, 64) and head.shape == (64, 384)
    assert not embedding[300:].any() and not head[:, 300:].any() and embedding[:300].any()
    export_hf(ours, str(tmp_path / "exported"))
    exported = transformers.T5ForConditionalGeneration.from_pretrained(str(tmp_path / "exported"))
    assert exported.config.vocab_size == 300 and tuple(exported.shared.weight.shape) == (300, 64)
    assert tuple(exported.lm_head.weight.shape) == (300, 64)


def test_padding_ids_are_never_decoded_even_when_their_weights_win():
    """Padding rows set to dominate the logits: greedy and sampling still pick real ids."""
    model = T5(get_config("t5-tiny-v1_1", dropout_rate=0.0), nnx.Rngs(1))
    model.lm_head.set_value(model.lm_head[...].at[:, 260:].set(50.0))
    ids, mask = jnp.asarray(_batch()[0] % 260), jnp.asarray(_batch()[1], bool)
    assert int(greedy(model, ids, mask, 6).max()) < 260
    assert int(sample(model, ids, mask, 6, jax.random.key(0), 1.0, 1.0).max()) < 260


def test_logits_are_masked_only_where_the_vocabulary_is_padded():
    """A select over every logit costs a pass forwards and backwards (8% of the quickstart's CPU step)."""
    def selects(vocab_size: int) -> int:
        model = T5(get_config("t5-tiny", dropout_rate=0.0, vocab_size=vocab_size), nnx.Rngs(1))
        jaxpr = jax.make_jaxpr(model.logits)(jnp.zeros((2, 3, model.config.d_model)))
        return str(jaxpr).count("select_n")

    assert selects(256) == 0 and selects(260) == 1


def test_dot_product_attention_matches_the_explicit_softmax_and_the_dropout_path():
    """Attention through jax.nn.dot_product_attention (no dropout) against a float64 NumPy reference of T5's
    unscaled, biased, masked softmax; and the dropout path (its own einsums) with nothing dropped against it."""
    from eotd_jax.model.t5 import Attention

    config = get_config("t5-tiny", dropout_rate=0.001)  # rounds to 0/256 dropped: the dropout path keeps all
    attention = Attention(config, nnx.Rngs(0), layers=None)
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=shape).astype(np.float32) for shape in ((2, 5, 4, 16), (2, 7, 4, 16), (2, 7, 4, 16)))
    mask = rng.random((2, 1, 5, 7)) > 0.3
    mask[1, 0, 2] = False  # a query that sees nothing (a padding position): uniform weights, no NaN
    position = rng.normal(size=(1, 4, 5, 7))
    bias = (position + np.where(mask, 0.0, -1e9)).astype(np.float32)  # T5's position bias plus the mask
    fused = np.asarray(attention.attend(*map(jnp.asarray, (q, k, v, bias)), None))
    dropout_path = np.asarray(attention.attend(*map(jnp.asarray, (q, k, v, bias)), jax.random.key(1)))
    scores = np.where(mask, np.einsum("bthd,bshd->bhts", q, k, dtype=np.float64) + position, -1e9)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    context = np.einsum("bhts,bshd->bthd", weights, v.astype(np.float64)).reshape(2, 5, 64)
    reference = context @ np.asarray(attention.out[...], np.float64).reshape(64, -1)
    assert np.isfinite(fused).all()
    np.testing.assert_allclose(fused, reference, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dropout_path, reference, rtol=1e-4, atol=1e-5)
