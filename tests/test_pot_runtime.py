"""What a PoT program may rely on: the prelude, sympy, a per-run CPU limit, one answer read from what `ans`
holds; and a parent that turns any reply of a child into an outcome. Fixtures are written in the style of
each model family; each correct one has a wrong-gold twin that must be rejected."""

from __future__ import annotations

import ast
import json
import random
import struct
from fractions import Fraction

import pytest
from runs import python_module

from eotd_jax.thoughts import frames, pot, sandbox
from eotd_jax.thoughts.answers import parse_number
from eotd_jax.thoughts.outcome import Failure, Outcome
from eotd_jax.thoughts.reading import read_rationale
from eotd_jax.thoughts.sandbox import SandboxPool
from eotd_jax.thoughts.scoring import check, verdict


def verdicts(pool: SandboxPool, rationale: str, golds: tuple) -> tuple[list[str], str | None]:
    """The verdict of `rationale` against each gold answer, and its verified form."""
    records = [{"thought": "pot", "rationale": rationale, "answer": gold} for gold in golds]
    checked = check(records, pool)
    return [verdict(c.outcome, parse_number(str(r["answer"])), c.stated).value
            for r, c in zip(records, checked, strict=True)], checked[0].form


# --- the prelude: names used without an import, bound as a runtime that pre-imports them ----------------

PRELUDE = {
    "codex solution(), ceil": (
        'def solution():\n    """125 muffins go into boxes of 12. How many boxes are needed?"""\n'
        "    muffins = 125\n    per_box = 12\n    boxes = ceil(muffins / per_box)\n    result = boxes\n"
        "    return result\n",
        11, 10, "from math import ceil",
    ),
    "chat model, math. with no import": (
        "The floor is 7.5 m by 4.2 m and each tile covers 1 m^2.\n\n```python\narea = 7.5 * 4.2\n"
        "tiles = math.ceil(area)\nprint(tiles)\n```\n\nSo 32 tiles are needed.",
        32, 31, "import math",
    ),
    "completion model, lcm and gcd": (
        "# Bus A leaves every 12 minutes, bus B every 18. When do they leave together again?\n"
        "a = 12\nb = 18\ntogether = lcm(a, b)\nassert gcd(a, b) * together == a * b\nans = together\n",
        36, 6, "from math import gcd, lcm",
    ),
    "gpt-4 style, sqrt and pi": (
        "```python\n# a circle of area 50 cm^2: its radius, to two places\nradius = sqrt(50 / pi)\n"
        "print(round(radius, 2))\n```",
        Fraction("3.99"), 4, "from math import pi, sqrt",
    ),
    "comb and factorial": (
        "ways = comb(8, 3)\ncheck = factorial(8) // (factorial(3) * factorial(5))\nprint(ways if ways == check else 0)",
        56, 55, "from math import comb, factorial",
    ),
}


@pytest.mark.parametrize("name", PRELUDE)
def test_prelude_names_are_bound_and_recorded_in_the_form(pool, name):
    rationale, gold, wrong, binding = PRELUDE[name]
    (kept, rejected), form = verdicts(pool, rationale, (gold, wrong))
    assert (kept, rejected) == ("kept", "wrong_answer"), form
    assert form.splitlines()[0] == binding  # the kept form says what was bound


def test_the_prelude_binds_only_what_the_program_leaves_unbound(pool):
    own = read_rationale("pot", "def ceil(x):\n    return 0\nans = ceil(2.5)").form
    assert "import" not in own and pool.run_program(own).value == 0
    builtin = read_rationale("pot", "ans = pow(2, 3, 5)").form  # `pow` stays the builtin, not math.pow
    assert builtin == "ans = pow(2, 3, 5)" and pool.run_program(builtin).value == 3
    statements = pot.prelude_imports({"floor", "math", "Fraction", "statistics", "total", "pow"})
    assert [ast.unparse(s) for s in statements] == [
        "import math", "import statistics", "from fractions import Fraction", "from math import floor"]


def test_the_sandbox_binds_nothing_implicitly(pool):
    assert pool.run_program("ans = ceil(2.5)").failure is Failure.ERROR  # NameError: the form must import it


# --- sympy inside the confined child -------------------------------------------------------------------

SYMPY = {
    "tora, solve in solution()": (
        "```python\nfrom sympy import symbols, Eq, solve\n\ndef solution():\n"
        '    """Tom is twice as old as Ann; in 5 years their ages add up to 40. How old is Ann now?"""\n'
        "    a = symbols('a')\n    equation = Eq((a + 5) + (2 * a + 5), 40)\n    result = solve(equation, a)[0]\n"
        "    return result\n\nresult = solution()\nprint(result)\n```\n```output\n10\n```\n"
        "Ann is $\\boxed{10}$ years old.",
        10, 11,
    ),
    "Rational arithmetic": ("from sympy import Rational\nshare = Rational(3, 8) * 64\nprint(share)", 24, 23),
    "import sympy as sp, exact roots": (
        "import sympy as sp\nside = sp.sqrt(18) * sp.sqrt(2)\nans = side", 6, 7,
    ),
    "a system, one unknown picked": (
        "from sympy import symbols, Eq, solve\nx, y = symbols('x y')\n"
        "sol = solve((Eq(x + y, 30), Eq(x - y, 4)), (x, y))\nans = sol[x]", 17, 13,
    ),
    "nsolve, a float root": (
        "from sympy import Symbol, nsolve\nt = Symbol('t')\nans = round(float(nsolve(t**3 - 2*t - 5, t, 2)), 3)",
        Fraction("2.095"), 2,
    ),
}


@pytest.mark.parametrize("name", SYMPY)
def test_sympy_programs_run_in_the_sandbox(pool, name):
    rationale, gold, wrong = SYMPY[name]
    (kept, rejected), form = verdicts(pool, rationale, (gold, wrong))
    assert (kept, rejected) == ("kept", "wrong_answer"), form


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from sympy import factorint, nextprime\nans = len(factorint(nextprime(10**30) * nextprime(10**31)))",
         {Failure.TIMEOUT}),
        ("from sympy import Matrix\nans = Matrix.ones(30000, 30000).det()", {Failure.MEMORY, Failure.TIMEOUT}),
    ],
)
def test_sympy_has_the_bounds_of_every_task(pool, source, expected):
    outcome = pool.run_program(source)
    assert outcome.failure in expected, outcome
    assert pool.run_program("from sympy import Integer\nans = Integer(6) * 7").value == 42


def test_only_programs_naming_sympy_go_to_the_zygotes_that_load_it():
    """The others run in zygotes that never import sympy (they fork faster); a program cannot import
    sympy without naming it."""
    assert sandbox._flavour("pot", "ans = 1") == "plain" and sandbox._flavour("pot", "import sympy") == "sympy"
    assert sandbox._flavour("eot", "ans = 1") == "sympy"


# --- what `ans` holds: one value, read sensibly, or a named reason ------------------------------------------

HOLDS = {
    "solve gives a list of one": ("from sympy import symbols, solve\nx = symbols('x')\nans = solve(3*x - 12, x)", 4),
    "solve gives a dict": ("from sympy import symbols, solve\nx = symbols('x')\nans = solve(3*x - 12, x, dict=True)",
                           4),
    "linsolve gives a set of one tuple": (
        "from sympy import symbols, linsolve\nx = symbols('x')\nans = linsolve([2*x - 9], [x])", Fraction(9, 2)),
    "a tuple of one": ("ans = (7,)", 7),
    "a text answer": ("ans = '1,250'", 1250),
    "a text exponent": ("ans = '1e3'", 1000),
}


@pytest.mark.parametrize("name", HOLDS)
def test_one_value_in_a_container_is_the_answer(pool, name):
    source, gold = HOLDS[name]
    assert pool.run_program(source).value == gold
    assert verdicts(pool, source, (gold, gold + 1))[0] == ["kept", "wrong_answer"]


@pytest.mark.parametrize(
    "source, failure, reason",
    [
        ("from sympy import symbols, solve\nx = symbols('x')\nans = solve(x**2 - 9, x)", Failure.AMBIGUOUS,
         "2 values (a list)"),
        ("ans = divmod(17, 5)", Failure.AMBIGUOUS, "2 values (a tuple)"),
        ("from sympy import symbols, solve\nx, y = symbols('x y')\nans = solve([x + y - 3], [x, y])",
         Failure.NOT_A_NUMBER, "expression in y"),
        ("from sympy import symbols, solve\nx = symbols('x')\nans = solve(x**2 + 1 < 0, x)", Failure.NOT_A_NUMBER,
         "sympy BooleanFalse"),
        ("from sympy import sqrt\nans = sqrt(-4)", Failure.NOT_A_NUMBER, "not a real number"),
        ("ans = []", Failure.NOT_A_NUMBER, "list of 0 values"),
        ("ans = [[[[1]]]]", Failure.NOT_A_NUMBER, "list of 1 values"),
        ("ans = 'e5'", Failure.NOT_A_NUMBER, "'e5' is not a number"),
    ],
)
def test_what_is_not_one_answer_has_a_named_reason(pool, source, failure, reason):
    outcome = pool.run_program(source)
    assert outcome.failure is failure and reason in outcome.message, outcome


# --- a per-run CPU limit for PoT ---------------------------------------------------------------------------

BRUTE_FORCE = (  # about 0.3 s of CPU: more than a tight limit, well within the default
    "# how many Pythagorean triples have a hypotenuse of at most 200? try them all\ncount = 0\n"
    "for a in range(1, 201):\n    for b in range(a, 201):\n        for c in range(b, 201):\n"
    "            if a * a + b * b == c * c:\n                count += 1\nprint(count)\n"
)


def test_the_pot_cpu_limit_is_a_parameter_of_the_pool(pool):
    with SandboxPool(num_workers=1, cpu_seconds=2.0, pot_cpu_seconds=0.05) as tight:
        assert tight.limits["pot"] == sandbox.TaskLimits(0.05, 2.05)
        assert tight.limits["eot"] == sandbox.TaskLimits(2.0, 4.0)  # EoT keeps its own
        assert verdicts(tight, BRUTE_FORCE, (127,))[0] == ["timeout"]
        assert tight.solve_equations("3 * x = 12\nans = x").value == 4
    assert verdicts(pool, BRUTE_FORCE, (127, 126))[0] == ["kept", "wrong_answer"]
    with pytest.raises(ValueError, match="positive"):
        SandboxPool(num_workers=1, pot_cpu_seconds=0)


def test_the_binaries_take_a_pot_cpu_limit(tmp_path):
    lines = [{"id": "brute", "thought": "pot", "rationale": BRUTE_FORCE, "answer": 127},
             {"id": "wrong", "thought": "pot", "rationale": BRUTE_FORCE, "answer": 128}]
    source = tmp_path / "rationales.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    runs = {"--pot_cpu_seconds=0.05": ["timeout", "timeout"], "--pot_cpu_seconds=4": ["kept", "wrong_answer"]}
    for flag, expected in runs.items():
        out = tmp_path / "verdicts.jsonl"
        result = python_module("eotd_jax.verify", f"--input={source}", f"--output={out}", "--workers=1", flag,
                               timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        assert [json.loads(line)["verdict"] for line in out.read_text().splitlines()] == expected
    bad = python_module("eotd_jax.verify", f"--input={source}", "--pot_cpu_seconds=0", timeout=120)
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].startswith("error: --pot_cpu_seconds=0.0")
    build = python_module("data_gen.build", "--synthetic_count=4", "--thoughts=pot", f"--out={tmp_path / 'data'}",
                          "--format=jsonl", "--num_shards=1", "--progress=false", "--workers=1",
                          "--pot_cpu_seconds=3.5", timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["settings"]["pot_cpu_seconds"] == 3.5 and manifest["counts"]["pot"]["kept"] > 0
    refused = python_module("data_gen.build", f"--out={tmp_path / 'none'}", "--pot_cpu_seconds=-1", timeout=120)
    assert refused.returncode != 0 and "error: flag --pot_cpu_seconds=-1: -1.0 is not number >= 0.01" in refused.stderr


# --- the parent turns any reply into an outcome ----------------------------------------------------------------


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


REPLIES = [
    {"value": "e5"}, {"value": "E10"}, {"value": "1e5"}, {"value": "1/0"}, {"value": "0/0"}, {"value": "nan"},
    {"value": "-"}, {"value": "/"}, {"value": " 1/2"}, {"value": "1/2 "}, {"value": "\u0663/1"}, {"value": "1/-2"},
    {"value": "9" * 65 + "/1"}, {"value": "\ud800"}, {"value": 5}, {"value": None}, {"value": ["1/2"]},
    {"failure": [], "message": ""}, {"failure": {}, "message": ""}, {"failure": "crashed", "message": ""},
    {"failure": "timeout", "message": 3}, {"failure": "no_such", "message": ""}, {}, [], "1/2", None,
]


@pytest.mark.parametrize("reply", REPLIES, ids=[json.dumps(r)[:40] for r in REPLIES])
def test_any_reply_is_an_outcome(reply):
    outcome = sandbox._outcome(0, frame(json.dumps(reply).encode()))
    assert outcome.failure is Failure.CRASHED and outcome.message.startswith("malformed reply"), outcome


def test_random_bytes_and_values_are_outcomes():
    rng = random.Random(25)
    alphabet = "0123456789/-+.eE _\u0663\u00bd\ud800x"
    for _ in range(5000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        data = frame(json.dumps({"value": value}).encode())
        if rng.random() < 0.3:
            data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
        outcome = sandbox._outcome(0, data)
        assert isinstance(outcome, Outcome)
        assert not outcome.ok or outcome.value == Fraction(value)


def test_exact_values_round_trip():
    for value in (Fraction(0), Fraction(-7, 3), Fraction(10**63), Fraction(1, 10**63 + 7)):
        assert frames.decode(frames.encode(frames.value_reply(value))) == Outcome(value=value)
    assert frames.value_reply(Fraction(10**64))["failure"] == Failure.TOO_LARGE.value


def test_a_batch_of_text_answers_never_aborts(pool):
    texts = ["e5", "E10", "1e5", "3/4", "", " " * 25 + "a", "\ud800", "nan", "inf", "--1", "1/0", "$5", "1 1/2"]
    outcomes = pool.map("pot", [f"ans = {text!r}" for text in texts])
    assert all(isinstance(o, Outcome) for o in outcomes) and len(outcomes) == len(texts)
    assert [o.failure for o in outcomes[:2]] == [Failure.NOT_A_NUMBER] * 2
    assert [o.value for o in outcomes[2:4]] == [100000, Fraction(3, 4)]
