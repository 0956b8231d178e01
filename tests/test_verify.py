"""The verify binary on its embedded sample and on files the test writes."""

import json
import subprocess
import sys


def run_verify(*args):
    return subprocess.run([sys.executable, "-m", "eotd_jax.thoughts.verify", *args],
                          capture_output=True, text=True, timeout=120)


def test_embedded_sample_table_counts_each_reason():
    result = run_verify()
    assert result.returncode == 0, result.stderr
    rows = {line.split("|")[1].strip(): line for line in result.stdout.splitlines()[2:]}
    header = [c.strip() for c in result.stdout.splitlines()[0].split("|")[1:-1]]

    def cell(thought, column):
        return int(rows[thought].split("|")[1:-1][header.index(column)].strip())

    assert (cell("cot", "kept"), cell("cot", "wrong_answer"), cell("cot", "no_answer")) == (2, 1, 1)
    pot = (cell("pot", "kept"), cell("pot", "forbidden"), cell("pot", "timeout"), cell("pot", "memory"))
    assert pot == (3, 1, 1, 1)
    assert (cell("eot", "kept"), cell("eot", "too_large"), cell("eot", "underdetermined")) == (3, 1, 1)


def test_output_file_and_bad_input(tmp_path):
    good = tmp_path / "in.jsonl"
    good.write_text(json.dumps({"thought": "pot", "rationale": "ans = 2 + 2", "answer": "4"}) + "\n")
    out = tmp_path / "out.jsonl"
    assert run_verify(f"--input={good}", f"--output={out}").returncode == 0
    (line,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert line["predicted"] == "4" and line["correct"] is True and line["failure"] is None

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"thought": "pot", "rationale": "ans = 1", "answer": "1"}) + "\n"
                   + json.dumps({"thought": "sql", "rationale": "x", "answer": "1"}) + "\n")
    result = run_verify(f"--input={bad}")
    assert result.returncode != 0
    assert "line 2: field 'thought': 'sql'" in result.stderr
    missing = run_verify(f"--input={tmp_path / 'nope.jsonl'}")
    assert missing.returncode != 0 and "nope.jsonl" in missing.stderr
