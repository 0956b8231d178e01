"""Teacher -> verified CoT / PoT / EoT rationales -> TFRecord shards.

Verification reuses `eotd_jax.thoughts` (the same checks score student output);
`eotd_jax` never imports this package.
"""
