"""The run directory: what a training workdir holds so the run can be resumed, evaluated and exported anywhere.

    <workdir>/config.json          the training config (written when the run starts)
    <workdir>/model.json           the resolved architecture (`T5Config` fields)
    <workdir>/tokenizer/           the tokenizer's files (`transformers` format; byte-level: ByT5's)
    <workdir>/student_input.json   the input template and selectors it trains with
    <workdir>/checkpoints/<step>/  Orbax: params, opt_state, data position, config (`eotd_jax.checkpoints`)
    <workdir>/eval/step_<N>/       the eval binary's predictions and tables
    <workdir>/tensorboard/         scalars

The first start writes the first four from the config's sources (`model.build.resolve`, the
tokenizer directory, the config's `input`); after that nothing reads `init_from_hf` or
`config.tokenizer` again. Local or gs://, like every path here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from ml_collections import ConfigDict

from eotd_jax import paths
from eotd_jax.input import student_input
from eotd_jax.input.student_input import StudentInput
from eotd_jax.model.config import T5Config
from eotd_jax.tokenizer import Tokenizer, load_tokenizer

CONFIG = "config.json"
MODEL = "model.json"
TOKENIZER = "tokenizer"


class RunDirError(FileNotFoundError):
    """A workdir without its run files: not a training workdir, or one started by an older eotd_jax."""


@dataclasses.dataclass(frozen=True)
class RunFiles:
    config: ConfigDict
    model_config: T5Config
    tokenizer: Tokenizer
    student_input: StudentInput


def has_run_files(workdir: str) -> bool:
    return (paths.path(workdir) / MODEL).is_file()


def write(workdir: str, files: RunFiles) -> None:
    """Writes the run files (process 0 only: every process reads the same directory)."""
    directory = paths.path(workdir)
    directory.mkdir(parents=True, exist_ok=True)
    with paths.Mirror(str(directory / TOKENIZER)) as out:  # the tokenizer writes local files
        files.tokenizer.hf_tokenizer().save_pretrained(out.local)
    student_input.save(files.student_input, str(directory))
    (directory / MODEL).write_text(json.dumps(dataclasses.asdict(files.model_config), indent=2))
    write_config(workdir, files.config)


def write_config(workdir: str, config: ConfigDict) -> None:
    (paths.path(workdir) / CONFIG).write_text(config.to_json_best_effort(indent=2))


def read(workdir: str) -> RunFiles:
    """The run files of a training workdir; RunDirError when it has none."""
    directory = paths.path(workdir)
    if not has_run_files(workdir):
        hint = (" (started by an older eotd_jax: resume it once with `python -m eotd_jax.train --config=<its config> "
                f"--workdir={workdir}`, which writes them, or train anew)"
                if (directory / "checkpoints").is_dir() else " (not a training workdir)")
        raise RunDirError(f"{workdir}: no {MODEL}{hint}")
    model_config = T5Config(**json.loads((directory / MODEL).read_text()))
    config = ConfigDict(json.loads((directory / CONFIG).read_text()))
    return RunFiles(config, model_config, load_tokenizer(str(directory / TOKENIZER)),
                    student_input.load(str(directory)))


def tokenizer_fingerprint(tokenizer: Tokenizer) -> str:
    """A hash of the ids a tokenizer gives its pieces and specials: equal for the same vocabulary wherever it lives."""
    hf = tokenizer.hf_tokenizer()
    vocabulary = sorted(hf.get_vocab().items())
    specials = sorted((str(k), str(v)) for k, v in hf.special_tokens_map.items())
    return hashlib.sha256(json.dumps([type(tokenizer).__name__, vocabulary, specials]).encode()).hexdigest()[:16]


ARCHITECTURE = ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
                "relative_attention_num_buckets", "relative_attention_max_distance", "feed_forward_proj",
                "tie_word_embeddings", "pad_token_id", "eos_token_id", "decoder_start_token_id")


def architecture_changes(saved: T5Config, asked: T5Config) -> list[str]:
    """The architecture fields that differ (compute settings such as dtype, remat or dropout may change)."""
    return [f"{name} {getattr(saved, name)} -> {getattr(asked, name)}" for name in ARCHITECTURE
            if getattr(saved, name) != getattr(asked, name)]


def compute_settings(saved: T5Config, asked: T5Config) -> T5Config:
    """The saved architecture with the asked compute settings (dtype, remat, scan_layers, dropout)."""
    architecture = {name: getattr(saved, name) for name in ARCHITECTURE}
    return asked.replace(**architecture)
