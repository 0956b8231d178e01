"""Shared fixtures: one sandbox pool per session, a compile-only TPU slice, the real datasets when present, fixture
benchmark files, and a small synthetic training set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runs import python_module

from eotd_jax.planning import slices
from eotd_jax.thoughts.sandbox import SandboxPool

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(scope="session")
def pool():
    with SandboxPool(num_workers=2) as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def v5e_2x2() -> slices.Slice:
    """A 2x2 v5e slice's compile-only devices (libtpu describes them; no TPU)."""
    try:
        return slices.load("v5e:2x2")
    except slices.SliceError as error:
        pytest.skip(f"libtpu cannot load here ({error}); pip install -e '.[tpu]'")


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not (SHARED_DATASETS / "README.md").is_file():
        pytest.skip(f"real benchmark files not found at {SHARED_DATASETS} (only CI and dev machines have ../shared)")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def training_data(tmp_path_factory) -> Path:
    """40 verified EoT rationales of synthetic problems, as JSON lines, built by the data_gen binary."""
    out = tmp_path_factory.mktemp("data")
    result = python_module("data_gen.build", "--synthetic_count=40", "--thoughts=eot", f"--out={out}",
                           "--format=jsonl", "--num_shards=1", "--progress=false", "--workers=1", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return out


ASDIV_XML = """<?xml version="1.0" encoding="UTF-8" ?>
<Machine-Reading-Corpus-File><ProblemSet>
<Problem ID="nluds-0001" Grade="1"><Body>Seven red apples and two green apples are in the basket.</Body>
<Question>How many apples are in the basket?</Question><Solution-Type>Addition</Solution-Type>
<Answer>9 (apples)</Answer><Formula>7+2=9</Formula></Problem>
<Problem ID="nluds-0002" Grade="1"><Body>Tom is 5.</Body><Question>Is he older than 3?</Question>
<Solution-Type>Comparison</Solution-Type><Answer>Yes</Answer><Formula>5&gt;3</Formula></Problem>
<Problem ID="nluds-0003" Grade="2"><Body>Ann and Bo are 5 and 15.</Body><Question>Find their ages.</Question>
<Solution-Type>Age</Solution-Type><Answer>5 (years old); 15 (years old)</Answer><Formula>x+10=15</Formula></Problem>
</ProblemSet></Machine-Reading-Corpus-File>
"""


@pytest.fixture
def benchmark_files(tmp_path) -> Path:
    """A few problems of each benchmark in its original file format, including awkward ones."""
    (tmp_path / "gsm8k").mkdir()
    rows = [
        {"question": "Q1?", "answer": "48/2 = <<48/2=24>>24\n#### 24"},
        {"question": "Q2?", "answer": "Total <<1000+234=1234>>1234\n#### 1,234"},
    ]
    (tmp_path / "gsm8k" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "svamp").mkdir()
    svamp_rows = [{"ID": "chal-1", "Body": "A pack costs 76.", "Question": "Pay?", "Equation": "( 76.0 - 25.0 )",
                   "Answer": 51.0, "Type": "Subtraction"}]
    (tmp_path / "svamp" / "SVAMP.json").write_text(json.dumps(svamp_rows))
    (tmp_path / "multiarith").mkdir()
    multiarith_rows = [{"iIndex": 7, "sQuestion": "  Debby had 32.  ", "lEquations": ["X=((32.0+42.0)-35.0)"],
                        "lSolutions": [39.0], "lAlignments": [1]}]
    (tmp_path / "multiarith" / "MultiArith.json").write_text(json.dumps(multiarith_rows))
    (tmp_path / "asdiv").mkdir()
    (tmp_path / "asdiv" / "ASDiv.xml").write_text(ASDIV_XML)
    (tmp_path / "asdiv" / "standard_2096_ids.txt").write_text("nluds-0003\nnluds-0001\n")
    return tmp_path


@pytest.fixture(scope="session")
def gcs():
    """`gs://<bucket>` on an emulator this session starts; this process's environment points at it."""
    import os

    from gcs import BUCKET, emulator

    with emulator() as env:
        previous = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        try:
            yield f"gs://{BUCKET}"
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def upload(local_dir: Path, destination: str) -> str:
    """Copies a local directory tree to `destination` (local or gs://) through the path layer."""
    from eotd_jax import paths

    for file in local_dir.rglob("*"):
        if file.is_file():
            target = paths.path(destination) / file.relative_to(local_dir).as_posix()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.read_bytes())
    return destination


def save_hub_copy(name: str, rows: list[dict], destination: str, as_dict: bool = True) -> None:
    """`rows` in a benchmark's hub schema, saved with `datasets.save_to_disk` (a DatasetDict with a test split)."""
    import datasets

    dataset = datasets.Dataset.from_list(rows)
    (datasets.DatasetDict({"test": dataset}) if as_dict else dataset).save_to_disk(f"{destination}/{name}")


HUB_ROWS = {
    "gsm8k": {"question": "Q?", "answer": "step <<2*3=6>>6\n#### 6"},
    "svamp": {"ID": "chal-9", "Body": "B.", "Question": "Q?", "Equation": "( 2.0 * 3.0 )", "Answer": 6.0,
              "Type": "Multiplication", "question_concat": "B. Q?"},
    "multiarith": {"question": " Q? ", "final_ans": "6"},
    "asdiv": {"body": "B.", "question": "Q?", "solution_type": "Multiplication", "answer": "6 (cm)",
              "formula": "2*3=6"},
}
