"""Tokenizers behind one small interface: a byte-level one needing no files, or any HF tokenizer directory.

    tokenizer = load_tokenizer("byte")                 # tiny models, tests, the quickstart
    tokenizer = load_tokenizer("/models/codet5p-770m")  # transformers.AutoTokenizer on a directory (or gs://)
    tokenizer.encode_batch(["Question: ..."], max_length=256)

Texts are encoded as the tokenizer's own template wraps them (CodeT5 / RoBERTa
BPE: `<s> ... </s>`; T5 SentencePiece: `... </s>`), the way `tokenizer(texts)`
encoded them when the student was trained with `transformers`, on both the
input and the target side.
"""

from __future__ import annotations

import json
from typing import Protocol

from eotd_jax import paths


class Tokenizer(Protocol):
    pad_id: int
    eos_id: int
    vocab_size: int

    def encode_batch(self, texts: list[str], max_length: int) -> list[list[int]]:
        """Ids of each text in the tokenizer's template, cut to `max_length` keeping the template, ending in EOS."""
        ...

    def decode(self, ids) -> str:
        """Text of ids up to the first EOS, special tokens dropped."""
        ...

    def hf_tokenizer(self):
        """The `transformers` tokenizer with the same ids, saved beside an exported model."""
        ...


class ByteTokenizer:
    """UTF-8 bytes shifted by 3: 0 pad (also the decoder start), 1 EOS, 2 unknown.

    The id layout of `transformers.ByT5Tokenizer(extra_ids=0)`, so an exported
    byte-level student works in the HF ecosystem with that tokenizer (`hf_tokenizer`).
    """

    pad_id, eos_id, offset = 0, 1, 3
    vocab_size = 256 + offset

    def hf_tokenizer(self):
        import transformers

        return transformers.ByT5Tokenizer(extra_ids=0)

    def encode_batch(self, texts: list[str], max_length: int) -> list[list[int]]:
        return [[byte + self.offset for byte in text.encode("utf-8")[: max_length - 1]] + [self.eos_id]
                for text in texts]

    def decode(self, ids) -> str:
        data = bytearray()
        for token in ids:
            token = int(token)
            if token == self.eos_id:
                break
            if token >= self.offset:
                data.append(token - self.offset)
        return data.decode("utf-8", errors="replace")


_WEIGHTS = ("*.safetensors", "*.bin", "*.msgpack", "*.h5", "*.pt", "*.ckpt")


class HFTokenizer:
    """A `transformers` tokenizer loaded from a directory, local or gs:// (no hub access at run time)."""

    def __init__(self, directory: str):
        import transformers

        if not paths.path(directory).is_dir():
            raise FileNotFoundError(f"tokenizer: no directory at {directory}")
        with paths.local_copy(directory, skip=_WEIGHTS) as local:  # a gs:// directory: its tokenizer files
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(local, local_files_only=True)
        self.pad_id = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else 0
        self.eos_id = self._tokenizer.eos_token_id
        if self.eos_id is None:
            raise ValueError(f"tokenizer: {directory} defines no eos_token (a student must learn where to stop)")
        self.vocab_size = len(self._tokenizer)

    def encode_batch(self, texts: list[str], max_length: int) -> list[list[int]]:
        """`tokenizer(texts, truncation=True)`: its post-processor adds the special tokens. A template without a
        closing EOS (a hand-made tokenizer) gets one, so the student learns where a rationale ends."""
        encoded = self._tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
        return [ids if ids and ids[-1] == self.eos_id else ids[: max_length - 1] + [self.eos_id] for ids in encoded]

    def hf_tokenizer(self):
        return self._tokenizer

    def decode(self, ids) -> str:
        ids = [int(t) for t in ids]
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self._tokenizer.decode(ids, skip_special_tokens=True)


def load_tokenizer(spec: str) -> Tokenizer:
    """"byte", or a directory (local or gs://) holding a Hugging Face tokenizer: the imported model's, a run's
    copy, an export's. A saved `ByT5Tokenizer` without extra ids is the byte-level one (`hf_tokenizer` saves it)."""
    if spec == "byte" or _is_saved_byte_tokenizer(spec):
        return ByteTokenizer()
    return HFTokenizer(spec)


def _is_saved_byte_tokenizer(directory: str) -> bool:
    settings = paths.path(directory) / "tokenizer_config.json"
    if not settings.is_file():
        return False
    saved = json.loads(settings.read_text())
    return saved.get("tokenizer_class") == "ByT5Tokenizer" and not saved.get("extra_ids")
