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

Any text is read and written: bytes that are not UTF-8 travel as escapes, and
the output is ASCII JSON. The output is written to a temporary file beside it
and renamed at the end, so a failed run leaves an earlier output as it was.
Every mistake is one line `error: ...` and a non-zero exit, found before any
rationale is verified.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import tempfile
from importlib import resources

from absl import app, flags

from eotd_jax.thoughts import THOUGHTS
from eotd_jax.thoughts.answers import format_number, parse_number
from eotd_jax.thoughts.sandbox import SandboxPool
from eotd_jax.thoughts.scoring import Checked, Verdict, check, verdict

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
        except RecursionError:
            raise ValueError(f"{where}: line {number}: not JSON (nested too deeply)") from None
        if not isinstance(record, dict):
            raise ValueError(f"{where}: line {number}: not a JSON object")
        for field in ("thought", "rationale", "answer"):
            if field not in record:
                raise ValueError(f"{where}: line {number}: field {field!r} missing")
        if not isinstance(record["rationale"], str):
            raise ValueError(f"{where}: line {number}: field 'rationale' is not text")
        record["thought"] = str(record["thought"]).lower()
        if record["thought"] not in THOUGHTS:
            raise ValueError(f"{where}: line {number}: field 'thought': {_shown(record['thought'])} is not one of "
                             f"{THOUGHTS}")
        if parse_number(str(record["answer"])) is None:
            raise ValueError(f"{where}: line {number}: field 'answer': {_shown(record['answer'])} is not a number")
        record.setdefault("id", str(number))
        records.append(record)
    return records


def _shown(value: object) -> str:
    """A value of the input as a short, printable part of an error line."""
    text = ascii(value)
    return text if len(text) <= 60 else text[:57] + "..."


def verdict_line(record: dict, checked: Checked) -> dict:
    outcome = checked.outcome
    return {
        "id": record["id"],
        "thought": record["thought"],
        "verdict": verdict(outcome, parse_number(str(record["answer"])), checked.stated).value,
        "answer_found": format_number(outcome.value) if outcome.ok else None,
        "verified_form": checked.form,
        "message": outcome.message,
    }


def yield_table(records: list[dict], verdicts: list[str]) -> str:
    """Markdown table: per source (when given) and thought, kept (and %), wrong answers, each failure reason."""
    counts: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    for record, reason in zip(records, verdicts, strict=True):
        counts[(str(record.get("source", "")), record["thought"])][reason] += 1
    reasons = sorted({r for c in counts.values() for r in c} - {Verdict.KEPT, Verdict.WRONG_ANSWER})
    by_source = any(source for source, _ in counts)
    header = (["source"] if by_source else []) + ["thought", "total", "kept", "wrong_answer", *reasons]
    rows = [header, ["---"] * len(header)]
    for source, thought in sorted(counts, key=lambda k: (k[0], THOUGHTS.index(k[1]))):
        row_counts = counts[(source, thought)]
        total, kept = sum(row_counts.values()), row_counts[Verdict.KEPT]
        row = [thought, str(total), f"{kept} ({100 * kept / total:.1f}%)",
               *(str(row_counts[r]) for r in [Verdict.WRONG_ANSWER, *reasons])]
        rows.append(([_cell(source)] if by_source else []) + row)
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _cell(text: str) -> str:
    """Any text as one printable table cell: lone surrogates escaped, no line breaks, `|` escaped."""
    text = " ".join(text.encode("utf-8", "backslashreplace").decode("utf-8").split())
    return text.replace("|", "\\|")


def check_paths(input_path: str | None, output_path: str | None) -> None:
    """Refuses, before any work, an output that would overwrite the input or cannot be written."""
    if not output_path:
        return
    directory = os.path.dirname(os.path.abspath(output_path))
    if input_path and (os.path.realpath(output_path) == os.path.realpath(input_path) or (
            os.path.exists(output_path) and os.path.samefile(output_path, input_path))):
        raise ValueError(f"--output {output_path} is the input file (name another file for the verdicts)")
    if os.path.isdir(output_path):
        raise ValueError(f"--output {output_path} is a directory (name a file in it)")
    if not os.path.isdir(directory):
        raise ValueError(f"--output directory {directory} does not exist (create it first)")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(f"--output directory {directory} is not writable")


def write_lines(path: str, lines: list[dict]) -> None:
    """JSON lines in ASCII (any string, lone surrogates too), written whole or not at all."""
    handle, temporary = tempfile.mkstemp(prefix=".verdicts-", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(handle, "w", encoding="ascii") as out:
            out.writelines(json.dumps(line, ensure_ascii=True) + "\n" for line in lines)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]} (every setting is a --flag=value; see --help)")
    try:
        if _WORKERS.value is not None and _WORKERS.value < 1:
            raise ValueError(f"--workers={_WORKERS.value} (give at least 1, or leave it out for the CPU count)")
        if not _CPU_SECONDS.value > 0:
            raise ValueError(f"--cpu_seconds={_CPU_SECONDS.value} (give a positive number of seconds)")
        if _POT_CPU_SECONDS.value is not None and not _POT_CPU_SECONDS.value > 0:
            raise ValueError(f"--pot_cpu_seconds={_POT_CPU_SECONDS.value} (give a positive number of seconds)")
        check_paths(_INPUT.value, _OUTPUT.value)
        if _INPUT.value:
            with open(_INPUT.value, encoding="utf-8", errors="surrogateescape") as lines:
                records = read_rationales(lines, _INPUT.value)
        else:
            sample = resources.files("eotd_jax.thoughts") / "data" / "sample_rationales.jsonl"
            records = read_rationales(sample.read_text(encoding="utf-8").splitlines(), "embedded sample")
        if not records:
            raise ValueError(f"{_INPUT.value}: no rationales (one JSON object per line: "
                             "{\"thought\", \"rationale\", \"answer\"})")
        with SandboxPool(num_workers=_WORKERS.value, cpu_seconds=_CPU_SECONDS.value,
                         pot_cpu_seconds=_POT_CPU_SECONDS.value) as pool:
            checked = check(records, pool)
        lines = [verdict_line(record, result) for record, result in zip(records, checked, strict=True)]
        if _OUTPUT.value:
            write_lines(_OUTPUT.value, lines)
    except (OSError, ValueError, RuntimeError) as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt:
        sys.exit("error: interrupted (nothing was written)")
    print(yield_table(records, [line["verdict"] for line in lines]))


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with a mistake said in one line."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        sys.exit(f"error: {error} (python -m eotd_jax.verify --helpfull lists the flags)")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
