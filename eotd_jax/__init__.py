"""eotd_jax: distil CoT / PoT / EoT reasoning from a teacher LLM into a small T5 student."""

__version__ = "0.1.0"
