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


def _error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    return lines[0]


def test_the_output_never_overwrites_the_input(tmp_path):
    source = tmp_path / "rationales.jsonl"
    text = json.dumps({"thought": "cot", "rationale": "The answer is 4.", "answer": "4"}) + "\n"
    source.write_text(text)
    (tmp_path / "link.jsonl").symlink_to(source)
    for output in (source, tmp_path / "link.jsonl", tmp_path / "." / "rationales.jsonl"):
        assert "is the input file" in _error_line(run_verify(f"--input={source}", f"--output={output}"))
        assert source.read_text() == text


def test_mistakes_are_one_line_before_any_work(tmp_path):
    source = tmp_path / "rationales.jsonl"
    source.write_text(json.dumps({"thought": "cot", "rationale": "The answer is 4.", "answer": "4"}) + "\n")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n")
    cases = {
        "does not exist": [f"--input={source}", f"--output={tmp_path / 'missing' / 'verdicts.jsonl'}"],
        "is a directory": [f"--input={source}", f"--output={tmp_path}"],
        "no rationales": [f"--input={empty}"],
        "--workers=0": [f"--input={source}", "--workers=0"],
        "--cpu_seconds=-1": [f"--input={source}", "--cpu_seconds=-1"],
        "workers": [f"--input={source}", "--workers=many"],
        "Did you mean: output": [f"--input={source}", "--outptu=x"],
        "unexpected arguments": [f"--input={source}", "extra"],
        "not JSON (nested too deeply)": [f"--input={_written(tmp_path, '[' * 100_000)}"],
    }
    for expected, args in cases.items():
        assert expected in _error_line(run_verify(*args)), args  # one line: the sandbox never started
    assert not (tmp_path / "missing").exists()


def _written(directory, text: str, name: str = "input.jsonl"):
    path = directory / name
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def test_any_text_in_any_field_gets_its_verdict_line(tmp_path):
    """Random Unicode (lone surrogates, controls, `|`, line separators) and bytes that are not UTF-8, in every
    field: no crash, one ASCII JSON verdict line per input line, ids kept, the yield table printed."""
    import random

    rng = random.Random(3)
    pieces = ["\udc80", "\ud83d", "\U0001f600", "\x00", "\x1b[2J", "|", "\u2028", "\u202e", "é", "ans = ", "print(",
              "```python\n", "```\n", "= ", "The answer is ", "\\boxed{", "%", " " * 50, "\n", "7", "3.5", "x"]
    lines, ids = [], []
    for number in range(60):
        rationale = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        record = {"id": f"r{number}-" + rng.choice(pieces), "source": rng.choice(pieces), "answer": "7",
                  "thought": rng.choice(["cot", "pot", "eot"]), "rationale": rationale}
        ids.append(record["id"])
        try:  # raw UTF-8 where it can be, else JSON escapes (`"\udc80"`: a lone surrogate)
            line = json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            line = json.dumps(record).encode("ascii")
        if number % 5 == 0:  # raw bytes that are no UTF-8, inside the rationale's text
            line = line.replace(b'"rationale": "', b'"rationale": "\xff\xfe\xc3', 1)
        lines.append(line)
    source = tmp_path / "fuzz.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "verdicts.jsonl"
    result = run_verify(f"--input={source}", f"--output={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    raw = out.read_bytes()
    assert raw.isascii()
    verdicts = [json.loads(line) for line in raw.decode("ascii").splitlines()]
    assert [v["id"] for v in verdicts] == ids
    assert all(isinstance(v["verdict"], str) and v["verdict"] for v in verdicts)
    assert "| source | thought |" in result.stdout


def test_random_bytes_are_one_error_line(tmp_path):
    import random

    rng = random.Random(5)
    source = tmp_path / "noise.jsonl"
    source.write_bytes(bytes(rng.randrange(256) for _ in range(20_000)))
    assert "not JSON" in _error_line(run_verify(f"--input={source}"))
