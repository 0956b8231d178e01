"""Verify rationales: `python -m eotd_jax.thoughts.verify [--input=rationales.jsonl]`.

Each input line is a JSON object with `thought` (cot|pot|eot), `rationale` and
the gold `answer`. Every rationale is turned into an answer (CoT extracted,
PoT run and EoT solved in the sandbox pool) and compared with the gold answer;
a table of kept / rejected-by-reason per thought is printed and, with
--output, each line is written back with `predicted`, `failure` and `correct`.
Without --input an embedded sample (correct, wrong and hostile rationales) is used.
"""

from __future__ import annotations

import collections
import json
import sys
from importlib import resources

from absl import app, flags

from eotd_jax.thoughts.answers import format_number, parse_number
from eotd_jax.thoughts.outcome import Outcome
from eotd_jax.thoughts.sandbox import SandboxPool
from eotd_jax.thoughts.scoring import THOUGHTS, verdict, verify

_INPUT = flags.DEFINE_string("input", None, "JSON-lines file of {thought, rationale, answer}; default: embedded sample")
_OUTPUT = flags.DEFINE_string("output", None, "write each line back with predicted / failure / correct")
_WORKERS = flags.DEFINE_integer("workers", None, "sandbox processes (default: CPU count)")
_CPU_SECONDS = flags.DEFINE_float("cpu_seconds", 2.0, "CPU seconds one program or system may use")


def read_rationales(lines, where: str) -> list[dict]:
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: line {number}: not JSON ({error.msg})") from None
        for field in ("thought", "rationale", "answer"):
            if field not in record:
                raise ValueError(f"{where}: line {number}: field {field!r} missing")
        if record["thought"] not in THOUGHTS:
            raise ValueError(f"{where}: line {number}: field 'thought': {record['thought']!r} is not one of {THOUGHTS}")
        if parse_number(str(record["answer"])) is None:
            raise ValueError(f"{where}: line {number}: field 'answer': {record['answer']!r} is not a number")
        records.append(record)
    return records


def yield_table(records: list[dict], outcomes: list[Outcome]) -> str:
    """Markdown table: per thought, kept, wrong answer, and each failure reason."""
    counts = collections.defaultdict(collections.Counter)
    for record, outcome in zip(records, outcomes, strict=True):
        counts[record["thought"]][verdict(record, outcome)] += 1
    columns = ["kept", "wrong_answer"] + sorted({r for c in counts.values() for r in c} - {"kept", "wrong_answer"})
    lines = ["| thought | total | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for thought in THOUGHTS:
        if thought in counts:
            row = [str(counts[thought][c]) for c in columns]
            lines.append(f"| {thought} | {sum(counts[thought].values())} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv):
    del argv
    try:
        if _INPUT.value:
            with open(_INPUT.value, encoding="utf-8") as lines:
                records = read_rationales(lines, _INPUT.value)
        else:
            sample = resources.files("eotd_jax.thoughts") / "data" / "sample_rationales.jsonl"
            records = read_rationales(sample.read_text(encoding="utf-8").splitlines(), "embedded sample")
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    with SandboxPool(num_workers=_WORKERS.value, cpu_seconds=_CPU_SECONDS.value) as pool:
        outcomes = verify(records, pool)
    if _OUTPUT.value:
        with open(_OUTPUT.value, "w", encoding="utf-8") as out:
            for record, outcome in zip(records, outcomes, strict=True):
                out.write(json.dumps({
                    **record,
                    "predicted": format_number(outcome.value) if outcome.ok else None,
                    "failure": outcome.failure.value if outcome.failure else None,
                    "message": outcome.message,
                    "correct": verdict(record, outcome) == "kept",
                }) + "\n")
    print(yield_table(records, outcomes))


if __name__ == "__main__":
    app.run(main)
