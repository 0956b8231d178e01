"""Check a teacher's rationales before paying for a full run: `python -m eotd_jax.verify`.

    python -m eotd_jax.verify --input=rationales.jsonl --output=verdicts.jsonl

Input: JSON lines `{"id", "thought", "rationale", "answer"}` (thought: cot, pot
or eot; answer: the gold answer; `id` defaults to the line number; an optional
`source` gives the yield table one row per source and thought). Every
rationale is read the way data_gen reads it (the program or system found in
prose and fences), then CoT answers are extracted, PoT run and EoT solved in
the sandbox. Output: one line per input, in order and with the same `id`:
`{"id", "thought", "verdict", "answer_found", "verified_form", "message"}`,
where the verdict is "kept", "wrong_answer", "disagrees" (right answer, but the
reply's prose around its code states another) or the failure reason (`syntax`,
`forbidden`, `no_ans`, ...). The yield table is printed at the end. Without
--input an embedded sample (correct, wrong and hostile rationales) is checked.
"""

from __future__ import annotations

import collections
import json
import sys
from importlib import resources

from absl import app, flags

from eotd_jax.thoughts import THOUGHTS
from eotd_jax.thoughts.answers import format_number, parse_number
from eotd_jax.thoughts.sandbox import SandboxPool
from eotd_jax.thoughts.scoring import Checked, check, verdict

_INPUT = flags.DEFINE_string("input", None, "JSON lines of {id, thought, rationale, answer}; default: embedded sample")
_OUTPUT = flags.DEFINE_string("output", None, "JSON lines of {id, thought, verdict, answer_found, verified_form, "
                              "message}, one per input line")
_WORKERS = flags.DEFINE_integer("workers", None, "sandbox processes (default: CPU count)")
_CPU_SECONDS = flags.DEFINE_float("cpu_seconds", 2.0, "CPU seconds one program or system may use")
_POT_CPU_SECONDS = flags.DEFINE_float("pot_cpu_seconds", None, "CPU seconds one PoT program may use "
                                      "(default: --cpu_seconds; a brute-force search may need more)")


def read_rationales(lines, where: str) -> list[dict]:
    """Validated input records; a bad line is a one-line error naming the line and field."""
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: line {number}: not JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{where}: line {number}: not a JSON object")
        for field in ("thought", "rationale", "answer"):
            if field not in record:
                raise ValueError(f"{where}: line {number}: field {field!r} missing")
        if not isinstance(record["rationale"], str):
            raise ValueError(f"{where}: line {number}: field 'rationale' is not text")
        record["thought"] = str(record["thought"]).lower()
        if record["thought"] not in THOUGHTS:
            raise ValueError(f"{where}: line {number}: field 'thought': {record['thought']!r} is not one of {THOUGHTS}")
        if parse_number(str(record["answer"])) is None:
            raise ValueError(f"{where}: line {number}: field 'answer': {record['answer']!r} is not a number")
        record.setdefault("id", str(number))
        records.append(record)
    return records


def verdict_line(record: dict, checked: Checked) -> dict:
    outcome = checked.outcome
    return {
        "id": record["id"],
        "thought": record["thought"],
        "verdict": verdict(record, outcome, checked.stated),
        "answer_found": format_number(outcome.value) if outcome.ok else None,
        "verified_form": checked.form,
        "message": outcome.message,
    }


def yield_table(records: list[dict], verdicts: list[str]) -> str:
    """Markdown table: per source (when given) and thought, kept (and %), wrong answers, each failure reason."""
    counts: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    for record, reason in zip(records, verdicts, strict=True):
        counts[(str(record.get("source", "")), record["thought"])][reason] += 1
    reasons = sorted({r for c in counts.values() for r in c} - {"kept", "wrong_answer"})
    by_source = any(source for source, _ in counts)
    header = (["source"] if by_source else []) + ["thought", "total", "kept", "wrong_answer", *reasons]
    rows = [header, ["---"] * len(header)]
    for source, thought in sorted(counts, key=lambda k: (k[0], THOUGHTS.index(k[1]))):
        row_counts = counts[(source, thought)]
        total, kept = sum(row_counts.values()), row_counts["kept"]
        row = [thought, str(total), f"{kept} ({100 * kept / total:.1f}%)",
               *(str(row_counts[r]) for r in ["wrong_answer", *reasons])]
        rows.append(([source] if by_source else []) + row)
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    try:
        if _INPUT.value:
            with open(_INPUT.value, encoding="utf-8") as lines:
                records = read_rationales(lines, _INPUT.value)
        else:
            sample = resources.files("eotd_jax.thoughts") / "data" / "sample_rationales.jsonl"
            records = read_rationales(sample.read_text(encoding="utf-8").splitlines(), "embedded sample")
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    if not _CPU_SECONDS.value > 0 or not (_POT_CPU_SECONDS.value is None or _POT_CPU_SECONDS.value > 0):
        sys.exit("error: --cpu_seconds and --pot_cpu_seconds must be positive (CPU seconds per task)")
    with SandboxPool(num_workers=_WORKERS.value, cpu_seconds=_CPU_SECONDS.value,
                     pot_cpu_seconds=_POT_CPU_SECONDS.value) as pool:
        checked = check(records, pool)
    lines = [verdict_line(record, result) for record, result in zip(records, checked, strict=True)]
    if _OUTPUT.value:
        try:
            with open(_OUTPUT.value, "w", encoding="utf-8") as out:
                out.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        except OSError as error:
            sys.exit(f"error: {error}")
    print(yield_table(records, [line["verdict"] for line in lines]))


if __name__ == "__main__":
    app.run(main)
