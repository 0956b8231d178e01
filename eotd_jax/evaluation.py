"""The student answers benchmark questions: decode each thought, execute / extract, apply the strategies.

Shared by the eval binary and the trainer's periodic eval. Decoding is batched
(inputs padded to a few bucket lengths, so few compiles); PoT and EoT run in
the sandbox pool, where a failing or hanging program costs only its question.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from eotd_jax import multihost
from eotd_jax.benchmarks import Problem
from eotd_jax.input.student_input import StudentInput
from eotd_jax.model.decoding import greedy, sample
from eotd_jax.model.sharding import batch_sharding, data_parallel_size
from eotd_jax.model.t5 import T5
from eotd_jax.strategies import choose
from eotd_jax.thoughts.answers import format_number
from eotd_jax.thoughts.outcome import Outcome
from eotd_jax.thoughts.sandbox import SandboxPool
from eotd_jax.thoughts.scoring import Verdict, check, verdict
from eotd_jax.tokenizer import Tokenizer

_BUCKET = 64


@dataclasses.dataclass(frozen=True)
class DecodeSettings:
    max_source_length: int = 512
    max_new_tokens: int = 256
    batch_size: int = 32
    samples: int = 1  # >1: sampled rationales per thought (self-consistency); 1: greedy
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0

    @classmethod
    def from_config(cls, config) -> DecodeSettings:
        """What a training config decodes with: its in-training eval's settings, which the eval binary reuses."""
        return cls(max_source_length=config.data.source_length, max_new_tokens=config.eval.max_new_tokens,
                   batch_size=config.eval.batch_size)


def accuracy(records: Sequence[dict], strategy: str) -> float:
    return sum(r["correct"][strategy] for r in records) / max(len(records), 1)


def generate(model: T5, tokenizer: Tokenizer, questions: Sequence[str], thought: str,
             settings: DecodeSettings, student_input: StudentInput,
             before_batch: Callable[[], None] | None = None, mesh: Mesh | None = None) -> list[list[str]]:
    """`settings.samples` rationales per question for one thought; `before_batch` may raise to stop early.

    With a `mesh` (the params sharded on it), every process calls this with its own questions, as many
    on each process: their rows form one global batch over the mesh's data axes.
    """
    texts: list[list[str]] = [[] for _ in questions]
    rows = settings.batch_size  # a fixed batch shape: one compile per length bucket
    if mesh is not None:
        local_devices = data_parallel_size(mesh) // jax.process_count()
        rows = -(-rows // local_devices) * local_devices
    for start in range(0, len(questions), settings.batch_size):
        if before_batch is not None:
            before_batch()
        chunk = questions[start:start + settings.batch_size]
        encoded = tokenizer.encode_batch([student_input.text(q, thought) for q in chunk], settings.max_source_length)
        longest = max(map(len, encoded))
        if mesh is not None:  # every process must compile the same shape
            longest = int(np.max(multihost_utils.process_allgather(np.int32(longest))))
        length = min(-(-longest // _BUCKET) * _BUCKET, settings.max_source_length)
        ids = np.full((rows, length), tokenizer.pad_id, np.int32)
        mask = np.zeros((rows, length), bool)
        for i, tokens in enumerate(encoded):
            ids[i, : len(tokens)], mask[i, : len(tokens)] = tokens, True
        for sample_index in range(settings.samples):
            if settings.samples == 1:
                out = greedy(model, *_device_rows(mesh, ids, mask), settings.max_new_tokens)
            else:
                key = jax.random.fold_in(jax.random.key(settings.seed), start * 1000 + sample_index)
                out = sample(model, *_device_rows(mesh, ids, mask), settings.max_new_tokens, key,
                             settings.temperature, settings.top_p)
            for i, row in enumerate(_host_rows(mesh, out)[: len(chunk)]):
                texts[start + i].append(tokenizer.decode(row))
    return texts


def _device_rows(mesh: Mesh | None, *arrays: np.ndarray) -> list[jax.Array]:
    """This process's rows as its part of one global batch on `mesh` (without a mesh: on the default device)."""
    if mesh is None:
        return [jnp.asarray(a) for a in arrays]
    return [jax.make_array_from_process_local_data(batch_sharding(mesh), a) for a in arrays]


def _host_rows(mesh: Mesh | None, out: jax.Array) -> np.ndarray:
    """The rows of `out` that this process gave (`_device_rows`), as numpy."""
    if mesh is None:
        return np.asarray(out)
    full = np.asarray(multihost_utils.process_allgather(out, tiled=True))
    indices = batch_sharding(mesh).addressable_devices_indices_map(full.shape).values()
    blocks = sorted({(index[0].start or 0, index[0].stop or full.shape[0]) for index in indices})
    return np.concatenate([full[start:stop] for start, stop in blocks])


def answer_questions(model: T5, tokenizer: Tokenizer, problems: Sequence[Problem], thoughts: Sequence[str],
                     strategies: Sequence[str], pool: SandboxPool, settings: DecodeSettings,
                     student_input: StudentInput, before_batch: Callable[[], None] | None = None,
                     mesh: Mesh | None = None) -> list[dict]:
    """One prediction record per problem (see `prediction_record`); `before_batch` as in `generate`.

    With a `mesh`, every process of the run calls this with the same problems: each decodes and runs its
    share (`multihost.share`), and every process returns all the records, in the problems' order.
    """
    if mesh is None:
        mine, padding = list(problems), 0
    else:
        indices, per_process = multihost.share(len(problems))
        mine = [problems[i] for i in indices]
        padding = per_process - len(mine) if problems else 0  # the last processes decode a few rows twice
    questions = [p.question for p in mine] + [p.question for p in problems[:padding]]
    rationales = {t: generate(model, tokenizer, questions, t, settings, student_input, before_batch, mesh)[:len(mine)]
                  for t in thoughts}
    records = score(mine, rationales, strategies, pool)
    return records if mesh is None else multihost.all_gather_json(records)


def score(problems: Sequence[Problem], rationales: dict[str, list[list[str]]], strategies: Sequence[str],
          pool: SandboxPool) -> list[dict]:
    """Executes / extracts every rationale and applies the strategies; also used on teacher text (oracle)."""
    flat = [(t, i, j, text) for t, per_problem in rationales.items()
            for i, texts in enumerate(per_problem) for j, text in enumerate(texts)]
    outcomes = [c.outcome for c in check([{"thought": t, "rationale": text} for t, _, _, text in flat], pool)]
    answers: list[dict[str, list[Outcome]]] = [{t: [] for t in rationales} for _ in problems]
    for (thought, i, _, _), outcome in zip(flat, outcomes, strict=True):
        answers[i][thought].append(outcome)
    return [prediction_record(problem, {t: rationales[t][i] for t in rationales}, answers[i], strategies)
            for i, problem in enumerate(problems)]


def prediction_record(problem: Problem, texts: dict[str, list[str]], answers: dict[str, list[Outcome]],
                      strategies: Sequence[str]) -> dict:
    record = {"id": problem.id, "source": problem.source, "question": problem.question,
              "gold": problem.answer_text, "thoughts": {}, "chosen": {}, "correct": {}}
    for thought, outcomes in answers.items():
        record["thoughts"][thought] = [
            {"text": text, "answer": format_number(o.value) if o.ok else None,
             "failure": None if (v := verdict(o, problem.answer)) is Verdict.KEPT else v.value}
            for text, o in zip(texts[thought], outcomes, strict=True)]
    for strategy in strategies:
        chosen = choose(strategy, answers)
        record["chosen"][strategy] = format_number(chosen) if chosen is not None else None
        record["correct"][strategy] = chosen is not None and verdict(Outcome(chosen), problem.answer) is Verdict.KEPT
    return record
