"""T5-family architecture settings and the named configurations.

T5 v1.0 (and CodeT5, CodeT5+ 220m/770m): ReLU feed-forward, LM head tied to the
embedding (logits scaled by d_model**-0.5). T5 v1.1 / Flan-T5: gated-GELU
feed-forward, untied LM head. Field names follow Hugging Face's `T5Config`, so
`config.json` maps one to one.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

VOCAB_MULTIPLE = 128


@dataclasses.dataclass(frozen=True)
class T5Config:
    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 2048
    num_layers: int = 6
    num_decoder_layers: int = 6
    num_heads: int = 8
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.1
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "relu"  # "relu" (v1.0) or "gated-gelu" (v1.1 / Flan)
    tie_word_embeddings: bool = True
    pad_token_id: int = 0
    eos_token_id: int = 1
    decoder_start_token_id: int = 0
    dtype: str = "float32"  # compute dtype; "bfloat16" for speed
    param_dtype: str = "float32"
    remat: bool = False  # recompute activations in the backward pass (saves memory for large models)
    # lax.scan over the stacked layers: XLA compiles one layer, not 24 (TPU compiles several-fold faster);
    # False unrolls them, which lets XLA schedule across layers (a tiny model's CPU step is ~10% faster)
    scan_layers: bool = True
    # jax.nn.dot_product_attention's implementation: "xla" (every platform), or "cudnn" (cuDNN's fused kernel on
    # NVIDIA GPUs, bfloat16 / float16; attention-probability dropout still runs through XLA, which the fused call
    # does not offer)
    attention: str = "xla"

    def __post_init__(self):
        if self.feed_forward_proj not in ("relu", "gated-gelu"):
            raise ValueError(f"feed_forward_proj must be 'relu' or 'gated-gelu', not {self.feed_forward_proj!r}")
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in ("float32", "bfloat16", "float16"):
                raise ValueError(f"{name} must be float32, bfloat16 or float16, not {getattr(self, name)!r}")
        if self.attention not in ("xla", "cudnn"):
            raise ValueError(f"attention must be 'xla' or 'cudnn', not {self.attention!r}")

    @property
    def gated(self) -> bool:
        return self.feed_forward_proj == "gated-gelu"

    @property
    def padded_vocab_size(self) -> int:
        """The embedding's and LM head's rows: `vocab_size` rounded up to a multiple of 128, the width matmul units
        tile (32,100 CodeT5 ids: 32,128). The extra ids' logits are masked; HF import pads, export strips."""
        return -(-self.vocab_size // VOCAB_MULTIPLE) * VOCAB_MULTIPLE

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)

    @property
    def weights_dtype(self):
        return jnp.dtype(self.param_dtype)

    def replace(self, **changes) -> T5Config:
        return dataclasses.replace(self, **changes)


_V1_1 = dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False)
_CODET5_VOCAB = 32100  # RoBERTa-style BPE of CodeT5 / CodeT5+

CONFIGS: dict[str, T5Config] = {
    # Tiny models for tests and the quickstart (the byte-level tokenizer's 259 ids, padded to 260).
    "t5-tiny": T5Config(vocab_size=260, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2,
                        num_heads=4, relative_attention_num_buckets=16, relative_attention_max_distance=64),
    "t5-tiny-v1_1": T5Config(vocab_size=260, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2,
                             num_heads=4, relative_attention_num_buckets=16, relative_attention_max_distance=64,
                             **_V1_1),
    "t5-quickstart": T5Config(vocab_size=260, d_model=128, d_kv=32, d_ff=512, num_layers=3, num_decoder_layers=3,
                              num_heads=4, dropout_rate=0.0),
    "t5-small": T5Config(),
    "t5-base": T5Config(d_model=768, d_ff=3072, num_layers=12, num_decoder_layers=12, num_heads=12),
    "t5-large": T5Config(d_model=1024, d_ff=4096, num_layers=24, num_decoder_layers=24, num_heads=16),
    "codet5-small": T5Config(vocab_size=_CODET5_VOCAB, decoder_start_token_id=0, pad_token_id=0, eos_token_id=2),
    "codet5-base": T5Config(vocab_size=_CODET5_VOCAB, d_model=768, d_ff=3072, num_layers=12, num_decoder_layers=12,
                            num_heads=12, pad_token_id=0, eos_token_id=2),
    "codet5-large": T5Config(vocab_size=_CODET5_VOCAB, d_model=1024, d_ff=4096, num_layers=24,
                             num_decoder_layers=24, num_heads=16, pad_token_id=0, eos_token_id=2),
    "flan-t5-small": T5Config(d_model=512, d_ff=1024, num_layers=8, num_decoder_layers=8, num_heads=6, **_V1_1),
    "flan-t5-base": T5Config(d_model=768, d_ff=2048, num_layers=12, num_decoder_layers=12, num_heads=12, **_V1_1),
    "flan-t5-large": T5Config(d_model=1024, d_ff=2816, num_layers=24, num_decoder_layers=24, num_heads=16, **_V1_1),
}


def get_config(name: str, **overrides) -> T5Config:
    if name not in CONFIGS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(CONFIGS)}")
    return CONFIGS[name].replace(**overrides)
