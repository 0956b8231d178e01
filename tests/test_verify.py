"""The verify binary (`python -m eotd_jax.verify`) on its embedded sample and on files the test writes."""

import json
import subprocess
import sys

from test_reading import ANGELA, TORA


def run_verify(*args):
    return subprocess.run([sys.executable, "-m", "eotd_jax.verify", "--workers=2", *args],
                          capture_output=True, text=True, timeout=120)


def _table(stdout: str) -> dict[str, dict[str, str]]:
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].split("|")[1:-1]]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in lines[2:]]
    return {" ".join(row[: header.index("thought") + 1]): dict(zip(header, row, strict=True)) for row in rows}


def test_embedded_sample_table_counts_each_reason():
    result = run_verify()
    assert result.returncode == 0, result.stderr
    table = _table(result.stdout)
    assert (table["cot"]["kept"], table["cot"]["wrong_answer"], table["cot"]["no_answer"]) == ("3 (60.0%)", "1", "1")
    pot = (table["pot"]["kept"], table["pot"]["wrong_answer"], table["pot"]["forbidden"], table["pot"]["timeout"])
    assert pot == ("4 (44.4%)", "1", "1", "1")  # the wrong one prints 27 above an output block claiming 18
    assert (table["eot"]["kept"], table["eot"]["too_large"], table["eot"]["underdetermined"]) == ("4 (50.0%)", "1", "1")


def test_one_verdict_line_per_input_with_the_same_id(tmp_path):
    inputs = [
        {"id": "tora-1", "source": "tora", "thought": "pot", "rationale": TORA[0][0], "answer": "18"},
        {"id": "tora-2", "source": "tora", "thought": "pot", "rationale": TORA[0][0], "answer": "19"},
        {"id": "eot-paper", "source": "paper", "thought": "EoT", "rationale": ANGELA, "answer": 3},
        {"id": "cot-1", "source": "paper", "thought": "cot", "rationale": "Answer: 48 hours", "answer": "48"},
        {"id": "pot-bad", "source": "tora", "thought": "pot", "rationale": "import os\nans = len(os.sep)",
         "answer": "1"},
    ]
    source = tmp_path / "rationales.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in inputs))
    out = tmp_path / "verdicts.jsonl"
    result = run_verify(f"--input={source}", f"--output={out}")
    assert result.returncode == 0, result.stderr
    verdicts = [json.loads(line) for line in out.read_text().splitlines()]
    assert [v["id"] for v in verdicts] == [line["id"] for line in inputs]
    assert [v["verdict"] for v in verdicts] == ["kept", "wrong_answer", "kept", "kept", "forbidden"]
    assert verdicts[0]["answer_found"] == "18" and verdicts[0]["verified_form"].endswith("ans = total_income")
    assert verdicts[2]["verified_form"].splitlines()[-1] == "ans = meals" and verdicts[2]["thought"] == "eot"
    assert verdicts[4]["answer_found"] is None and verdicts[4]["message"]
    table = _table(result.stdout)
    assert table["tora pot"]["kept"] == "1 (33.3%)" and table["tora pot"]["wrong_answer"] == "1"
    assert table["paper eot"]["kept"] == "1 (100.0%)"


def test_bad_input_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"thought": "pot", "rationale": "ans = 1", "answer": "1"}) + "\n"
                   + json.dumps({"thought": "sql", "rationale": "x", "answer": "1"}) + "\n")
    result = run_verify(f"--input={bad}")
    assert result.returncode != 0
    assert "line 2: field 'thought': 'sql'" in result.stderr
    missing = run_verify(f"--input={tmp_path / 'nope.jsonl'}")
    assert missing.returncode != 0 and "nope.jsonl" in missing.stderr
