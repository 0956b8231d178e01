"""Rationale readers on what real models write, verified end to end in the sandbox.

The fixtures imitate the formats of real teachers on GSM8K / SVAMP: the EoT
paper's `%`-comment systems, ToRA's prose + ```python + ```output + \\boxed,
gpt-3.5-turbo's fenced programs that print, Codex's PAL `def solution()`,
text-davinci-003's bare code and answer sentences. Each correct one must be
kept; each is also checked against a wrong gold answer, which must never be kept.
"""

from __future__ import annotations

import ast
import time

import pytest

from eotd_jax.thoughts.answers import parse_number
from eotd_jax.thoughts.outcome import Failure
from eotd_jax.thoughts.reading import read_rationale
from eotd_jax.thoughts.scoring import check, verdict

ANGELA = """System of linear equations: (Do not simplify)
% Assume Angela delivers x meals:
meals = x
% She needs to deliver 8 times as many packages as meals:
packages = 8 * meals
% She needs to deliver 27 meals and packages combined:
packages + meals = 27
% How many meals does she deliver? The answer is meals:
ans = meals"""

PAPER_EOT = [
    (ANGELA, 3),
    ("""% Janet's ducks lay 16 eggs per day:
eggs = 16
% She eats three for breakfast and bakes muffins with four:
used = 3 + 4
% She sells the remainder at $2 per egg:
income = (eggs − used) × 2
% How much in dollars does she make every day? The answer is income:
ans = income""", 18),
    ("""% A bakery sells 1,000 cookies a week at $0.5 each:
revenue = 1,000 * 0.5
% Rent is 2^8 dollars a week:
rent = 2^8
% Profit is revenue minus rent:
profit = revenue - rent
% What is the weekly profit? The answer is profit:
ans = profit""", 244),
    ("""% Each bus holds 40 students; 130 students go on the trip:
buses = ceil(130 / 40)
% How many buses are needed? The answer is buses:
ans = buses""", 4),
    ("""```
% John splits 25 apples evenly among 4 friends and keeps the rest:
each = floor(25 ÷ 4)
% The rest:
kept = 25 - 4 * each
% How many does he keep? The answer is kept:
ans = kept
```""", 1),
    ("""Let x be the number of red marbles and y the number of blue marbles.
Equation 1: x + y = 40
Equation 2: y = 3x
Equation 3: ans = y − x""", 20),
    ("""meals + packages = 27 (meals and packages combined)
packages = 8 * meals
ans = meals (the number of meals)""", 3),
    ("""% Let x be the smaller number; the two add to 50:
x + y = 50
% one is 8 more than the other
y = x + 8
% How big is the larger number? The answer is y:""", 29),  # no `ans` line: the comment names it
]

TORA = [
    ("""To find how much Janet makes, we compute the eggs she sells and multiply by the price.

```python
def daily_income():
    \"\"\"Janet's ducks lay 16 eggs per day. She eats 3 and bakes with 4. She sells the rest at $2.\"\"\"
    eggs_per_day = 16
    eggs_eaten = 3
    eggs_baked = 4
    eggs_sold = eggs_per_day - eggs_eaten - eggs_baked
    price_per_egg = 2
    total_income = eggs_sold * price_per_egg
    return total_income

total_income = daily_income()
print(total_income)
```
```output
18
```
Janet makes $\\boxed{18}$ dollars every day at the farmers' market.""", 18),
    ("""Let's solve this problem using Python code.
```python
bolts_blue = 2
bolts_white = bolts_blue / 2
total_bolts = bolts_blue + bolts_white
print(total_bolts)
```
```output
3.0
```
It takes \\boxed{3} bolts in total.""", 3),
    ("""```python
from sympy import Rational

def remaining_windows():
    total = 14
    installed = 8
    hours_each = 8
    return (total - installed) * hours_each
```
```python
hours = remaining_windows()
print(f"The builder needs {hours} more hours.")
```
```output
The builder needs 48 more hours.
```
The answer is $\\boxed{48}$.""", 48),
]

GPT_FENCED_PRINT = [
    ("""Here's a Python program that solves the problem:

```python
# Weng earns $12 an hour for babysitting
hourly_rate = 12
minutes = 50
earnings = hourly_rate / 60 * minutes
print("Weng earned:", earnings)
```

When you run this program it prints 10.0, so Weng earned $10.""", 10),
    ("""```python
price = 5
quantity = 3
total = price * quantity
print(f"The total cost is ${total:.2f}")
```""", 15),
    ("""1. Compute the remaining windows and the hours:
   ```python
   remaining = 14 - 8
   print(remaining * 8)
   ```
2. It prints 48.""", 48),
    ("""To solve this, we first compute 16 - 3 - 4, the eggs she sells. So we need the eggs times 2.

```python
# Define the variables
total_eggs = 16
remaining_eggs = total_eggs - 3 - 4

# Print the result
print("Janet makes $", remaining_eggs * 2, "every day at the farmers' market.")
```

Output:
```
Janet makes $ 18 every day at the farmers' market.
```

Therefore, Janet makes $18 every day at the farmers' market.""", 18),
    ("""```py
>>> flour_cups = 2.5
>>> batches = 4
>>> flour_cups * batches
10.0
```""", 10),
]

FUNCTION_POT = [
    ("""def solution():
    \"\"\"Olivia has $23. She bought five bagels for $3 each. How much money does she have left?\"\"\"
    money_initial = 23
    bagels = 5
    bagel_cost = 3
    money_spent = bagels * bagel_cost
    money_left = money_initial - money_spent
    result = money_left
    return result""", 8),
    ("""def main():
    apples = 10
    eaten = 3
    print(apples - eaten)


if __name__ == "__main__":
    main()""", 7),
    ("""def cost_per_person(total, people):
    return total / people

print(cost_per_person(120, 4))""", 30),
    ("""    \"\"\"A completion of a prompt that ended in `def solution():`: the body alone.\"\"\"
    money_initial = 23
    money_spent = 5 * 3
    result = money_initial - money_spent
    return result""", 8),
    ("""    money_initial = 23
    money_spent = 5 * 3
    return money_initial - money_spent""", 8),
    ("""def compute_total_pages():
    pages_per_day = 3 * 2
    return pages_per_day * 365 // 3 * 2


compute_total_pages()""", 1460),
]

CODEX_POT = [  # the PoT paper's Codex format, with completions that go on to the next few-shot question
    ("""# Python code, return ans
total_eggs = 16
eaten_eggs = 3
baked_eggs = 4
sold_eggs = total_eggs - eaten_eggs - baked_eggs
dollars_per_egg = 2
ans = sold_eggs * dollars_per_egg

Question: A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total does it take?
# Python code, return ans
ans = 99""", 18),
    ("""n0 = 5.0
n1 = 3.0
n2 = 2.0
t0 = n0 * n1
answer = t0 - n2""", 13),  # MathQA-style numbered variables, SVAMP
    ("""# Write Python Code to solve the following questions. Store your result as a variable named 'answer'.
apples_initial = 20
apples_given = 7
answer = apples_initial - apples_given
""", 13),
]

NUMERIC_SCAFFOLDS = [
    ("import numpy as np\n\nhours = 15 / 4\ndays = np.ceil(hours)\nprint(int(days))", 4),
    ("```python\nimport numpy as np\nscores = [80, 90, 100]\naverage = np.mean(scores)\n"
     "print(np.round(average, 2))\n```", 90),
    ("```python\nfrom sympy import Rational\n\ndef earnings():\n    hourly_rate = 12\n    minutes = 50\n"
     "    return Rational(hourly_rate, 60) * minutes\n\nprint(earnings())\n```\n```output\n10\n```\n"
     "Weng earned $\\boxed{10}$.", 10),
    ("```python\nfrom sympy import Rational, simplify\n\ndef pie_left():\n    eaten = Rational(3, 8) + Rational(1, 4)\n"
     "    return simplify(1 - eaten)\n\nleft = pie_left()\nprint(left)\n```\n```output\n3/8\n```\n"
     "There is $\\boxed{\\frac{3}{8}}$ of the pie left.", "3/8"),
    ("import sympy as sp\nimport numpy as np\nside = sp.sqrt(49)\nans = np.floor(float(side) * 4 / 3)", 9),
    ("```python\nfrom sympy import *\n\nshare = Rational(2, 5) * 45\nprint(simplify(share))\n```", 18),
]

UNUSED_IMPORTS = [
    ("import numpy as np\nimport math\n\nchickens = 20\nfeed_each = 3\nans = chickens * feed_each", 60),
    ("Here is the program:\nimport numpy as np\neggs_sold = 16 - 3 - 4\nThis is the number of eggs she sells.\n"
     "ans = eggs_sold * 2\nThe answer is 18.", 18),
    ("```python\nimport numpy as np\nfrom sympy import symbols, solve\n\ntotal = 48 + 48 / 2\nprint(total)\n```", 72),
    ("import math\nimport pandas as pd\n\ndef solution():\n    return math.ceil(15 / 4)", 4),
]

COT = [
    ("Natalia sold 48 / 2 = 24 clips in May.\nAltogether she sold 48 + 24 = 72 clips.\nAnswer: 72", 72),
    ("14 - 8 = 6 windows are left. Each takes 8 hours, 6 * 8 = 48.\n"
     "Answer: It will take the builder 48 hours to install the remaining 6 windows.", 48),
    ("She has 20 - 5 = 15 dollars left.\n\n**Answer:** $15", 15),
    ("The total is 3 \\times 4 = 12, so the answer is $\\boxed{12}$.", 12),
    ("Betty has 100 / 2 = 50 dollars.\nShe needs 100 - 50 - 15 - 30 = 5 more.\n#### 5", 5),
    ("Weng earns 12 / 60 = $0.2 per minute.\n0.2 * 50 = 10.\nSo Weng earned $10 for 50 minutes of babysitting.", 10),
    ("She sells 16 - 3 - 4 = 9 eggs, making 9 * 2 = 18 dollars.\n"
     "Therefore, Janet makes $18 every day.\nNote that a dozen is 12 eggs.", 18),
    ("A: The final answer is $\\frac{3}{4}$. I hope it is correct.", "3/4"),
    ("It costs 1,000 + 250 = 1,250 dollars. The answer is 1,250.", 1250),
    ("Question 1: How many eggs remain? 16 - 3 - 4 = 9.\nQuestion 2: How much money? 9 * 2 = 18.\n"
     "The answer is 18.", 18),  # sub-questions of one rationale are not a next question
    ("Let's think step by step. Roger has 5 balls and buys 2 cans of 3, so 5 + 6 = 11.\n"
     "Therefore, the answer (arabic numerals) is 11.", 11),
    ("There are 15 trees and later 21, so 21 - 15 = 6 were planted. The answer is 6.\n\n"
     "Q: If there are 3 cars in the parking lot and 2 more arrive, how many cars are there?\n"
     "A: There are 3 + 2 = 5 cars. The answer is 5.", 6),  # a completion model going on with the next question
    ("The temperature drops from 5 to −3 degrees, a change of −8.\nAnswer: −8", -8),
]

FORMAT_CLASSES = {
    "paper_eot": ("eot", PAPER_EOT),
    "tora_prose_fences": ("pot", TORA),
    "gpt_fenced_print": ("pot", GPT_FENCED_PRINT),
    "function_pot": ("pot", FUNCTION_POT),
    "unused_imports": ("pot", UNUSED_IMPORTS),
    "numeric_scaffolds": ("pot", NUMERIC_SCAFFOLDS),
    "codex_pot": ("pot", CODEX_POT),
    "cot_phrasings": ("cot", COT),
}

WRONG = [
    # The printed value is wrong; the output block and \boxed claim the right answer.
    ("pot", "```python\neggs = 16 - 3 - 4\nprint(eggs * 3)\n```\n```output\n18\n```\nSo she makes $\\boxed{18}$.", 18,
     "wrong_answer"),
    # A right program under a wrong final sentence: the reply contradicts itself, so it is no training example.
    ("pot", "```python\neggs = 16 - 3 - 4\nprint(eggs * 2)\n```\n```output\n18\n```\nShe makes $\\boxed{20}$.", 18,
     "disagrees"),
    ("eot", "```\n% Assume x meals:\nmeals = x\npackages = 8 * meals\npackages + meals = 27\nans = meals\n```\n"
     "The answer is 4.", 3, "disagrees"),
    # Right prose and a right final sentence around a program that computes something else.
    ("pot", "Each of the 6 remaining windows takes 8 hours, so 6 * 8 = 48 hours.\n```python\nprint(14 + 8)\n```\n"
     "The answer is 48.", 48, "wrong_answer"),
    ("pot", "def solution():\n    return 23 - 5 * 3 + 1", 8, "wrong_answer"),
    # A system that does not solve stays rejected, whatever its comments claim.
    ("eot", "% The answer is 3:\nmeals + packages = 27\nans = meals", 3, "underdetermined"),
    ("eot", "% Two facts that contradict:\nx = 1\nx = 2\nans = x", 1, "inconsistent"),
    # A number claimed in prose or a comment is never the system's answer.
    ("eot", "meals + packages = 27\nThe answer is 3.", 3, "no_ans"),
    ("eot", "meals + packages = 27\n% The answer is 3:", 3, "no_ans"),
    ("eot", "% 0/0 is not an answer:\ny = 1\nans = (y - 1) / (y - 1)", 1, "error"),
    # A scaffold import that IS used stays forbidden: the sandbox is never loosened for it.
    ("pot", "import numpy as np\nans = int(np.array([8, 8]).sum())", 16, "forbidden"),
    # sympy runs in the sandbox (pot.SYMPY_NAMES): a sympy program with a wrong gold is rejected by its answer.
    ("pot", "from sympy import symbols, solve\nx = symbols('x')\nans = solve(9 * x - 27, x)[0]", 4, "wrong_answer"),
    # A plain fence after the program showing a made-up output is not code: the program's own value counts.
    ("pot", "```python\nprice = 5\nprint(price * 3)\n```\nOutput:\n```\n18\n```", 18, "wrong_answer"),
    # A bare `Answer = 18` literal is not the program's result.
    ("pot", "eggs = 16 - 3 - 4\nmoney = eggs * 3\nAnswer = 18", 18, "no_ans"),
    ("pot", "```python\nimport os\nprint(os.getcwd())\n```", 0, "forbidden"),
    ("pot", "from sympy import *\nx = symbols('x')\nans = solve(9 * x - 27, x)[0]", 4, "wrong_answer"),
    ("pot", "from os import *\nans = len(getcwd()) * 0 + 3", 3, "forbidden"),
    # Prose without a program, and a program that answers nothing.
    ("pot", "The answer is 72.", 72, "syntax"),
    # The only program failed (its output block shows the traceback); the prose then just asserts an answer.
    ("pot", "```python\nx = 1 / 0\n```\n```output\nZeroDivisionError: division by zero\n```\nThe answer is 5.", 5,
     "syntax"),
    ("pot", "```python\nx = 72\n```", 72, "no_ans"),
    ("cot", "I could not work this out.", 5, "no_answer"),
]


def _verdict(record: dict, checked) -> str:
    return verdict(checked.outcome, parse_number(record["answer"]), checked.stated)


def _records(thought: str, examples) -> list[dict]:
    return [{"thought": thought, "rationale": text, "answer": str(answer)} for text, answer in examples]


@pytest.mark.parametrize("name", sorted(FORMAT_CLASSES))
def test_every_correct_rationale_of_a_format_class_is_kept(name, pool):
    thought, examples = FORMAT_CLASSES[name]
    assert len(examples) >= 3
    records = _records(thought, examples)
    results = check(records, pool)
    verdicts = [(_verdict(r, c), c.outcome.message) for r, c in zip(records, results, strict=True)]
    assert [v for v, _ in verdicts] == ["kept"] * len(records), verdicts


@pytest.mark.parametrize("name", sorted(FORMAT_CLASSES))
def test_nothing_wrong_is_ever_kept(name, pool):
    thought, examples = FORMAT_CLASSES[name]
    records = [{**r, "answer": r["answer"] + "1"} for r in _records(thought, examples)]  # 18 -> 181, 3/4 -> 3/41
    results = check(records, pool)
    assert all(_verdict(r, c) != "kept" for r, c in zip(records, results, strict=True))


@pytest.mark.parametrize("thought, text, answer, expected", WRONG)
def test_wrong_or_unreadable_rationales_are_rejected(thought, text, answer, expected, pool):
    record = {"thought": thought, "rationale": text, "answer": str(answer)}
    (result,) = check([record], pool)
    assert _verdict(record, result) == expected, result


def test_pot_form_is_a_program_ending_in_ans():
    form = read_rationale("pot", TORA[0][0]).form
    tree = ast.parse(form)
    assert ast.unparse(tree.body[-1]) == "ans = total_income"
    assert "print" not in form and "output" not in form and "boxed" not in form
    assert read_rationale("pot", FUNCTION_POT[0][0]).form.endswith("ans = solution()")
    assert "numpy" not in read_rationale("pot", UNUSED_IMPORTS[0][0]).form
    assert "import math" in read_rationale("pot", UNUSED_IMPORTS[-1][0]).form  # used, so kept


@pytest.mark.parametrize("printed, answer", [
    ("print(a + b)", "a + b"),
    ("print(17 % 5)", "17 % 5"),
    ("print(a % b)", "a % b"),
    ("print('Total: ' + str(a + b))", "str(a + b)"),
    ("print('Total: ' + f'{a:.1f}' + ' kg')", "f'{a:.1f}'"),
    ("print('%d apples' % (a * b))", "'%d' % (a * b)"),
    ("print('%d apples, %.1f kg' % (a, b))", "('%d' % (a,), '%.1f' % (b,))[-1]"),
    ("print('%d%% of them' % a)", "'%d' % a"),
    ("print('{} apples'.format(a - b))", "'{}'.format(a - b)"),
    ("print('{0} and {1:.2f}'.format(a, b))", "('{}'.format(a), '{:.2f}'.format(b))[-1]"),
    ("print(f'{a / b:.2f} each')", "f'{a / b:.2f}'"),
    ("print(f'{a} of {b!r:>4}')", "(f'{a}', f'{b!r:>4}')[-1]"),
    ("print('a', a, 'b', b)", "(a, b)[-1]"),
    ("print('total', b, sep=': ')", "b"),
    ("print(round(a * 1.5))", "round(a * 1.5)"),
    # Text that cannot be taken apart stays whole: its text is the answer (a number only if it is one).
    ("print('{1} and {0}'.format(a, b))", "'{1} and {0}'.format(a, b)"),
    ("print('%(n)d apples' % {'n': a})", "'%(n)d apples' % {'n': a}"),
    ("print('%d and %d' % (a,))", "'%d and %d' % (a,)"),
])
def test_the_printed_value_is_the_answer(printed, answer):
    assert read_rationale("pot", f"a = 7\nb = 3\n{printed}").form == f"a = 7\nb = 3\nans = {answer}"


def test_pot_with_ans_is_left_as_written():
    text = "price = 3\nans = price * 4\nprint('done', ans)"
    assert read_rationale("pot", text).form == "price = 3\nans = price * 4\nprint('done', ans)"
    branchy = "result = 7 * 2\nif result > 10:\n    ans = result - 10\nelse:\n    ans = result"
    assert read_rationale("pot", branchy).form == branchy


def test_eot_form_is_the_parsers_notation():
    assert read_rationale("eot", ANGELA).form == "meals = x\npackages = 8 * meals\npackages + meals = 27\nans = meals"
    form = read_rationale("eot", PAPER_EOT[1][0]).form
    assert "income = (eggs - used) * 2" in form and "%" not in form
    assert read_rationale("eot", "2x + 3(y) = 11").form == "2 * x + 3 * (y) = 11"
    assert read_rationale("eot", "total = 1,000,000 - 2,500").form == "total = 1000000 - 2500"
    assert read_rationale("eot", "Equation 1: tax = 8% of price").form == "tax = 8% * price"
    assert read_rationale("eot", "return = profit / cost").form == "return_ = profit / cost"
    assert read_rationale("eot", "left = total % boxes").form == "left = total % boxes"
    assert read_rationale("eot", "x + 8 * x = 27\n% The answer is 8 * x:").form == "x + 8 * x = 27\nans = 8 * x"
    assert read_rationale("eot", "x = 2\n% The answer is the number of meals:").form == "x = 2"
    assert read_rationale("eot", "left = total % boxes % the apples left over").form == "left = total % boxes"
    assert read_rationale("eot", "1. x = 5\n2. y = x + 1 // one more\n- ans = y.").form == "x = 5\ny = x + 1\nans = y"


# Programs where reading what the program "obviously" means gives another value than running it: (rationale,
# the value its run gives (None: the run fails), the value a rewriting reader would have verified). A rewrite may
# only make explicit what the program does, so each is kept with the first and never with the second.
FAITHFUL = [
    # A `__name__` guard is resolved as Python resolves it for a script.
    ("def solution():\n    \"\"\"A baker fills 3 trays.\"\"\"\n    trays = 3\n    return trays\n\nans = solution()\n"
     "if __name__ == 'not_main':\n    ans = 42", 3, 42),  # Codex PAL
    ("```python\ntotal = 12 * 4\nif __name__ != \"__main__\":\n    print(total + 100)\nelse:\n    print(total)\n```",
     48, 148),  # gpt-3.5 fenced
    ("```python\nbase = 7\n\nif __name__ != '__main__':\n    print(base * 10)\n```", None, 70),
    # A line of code that looks like a next few-shot question is code.
    ("# Python code, return ans\nans = 5\nQ: int = 2\nans = ans * Q + 1", 11, 5),  # Codex PoT completion
    ("```python\nboxes = 4\nans = boxes * 6\nQ: int = 3\nans = ans - Q\n```\nThe answer is 21.", 21, 24),
    # A later block that rebinds `ans` (here with a walrus) runs after the first, as in a notebook.
    ("First the eggs sold:\n```python\nans = 16 - 3 - 4\n```\nThen the income:\n```python\n(ans := ans * 2)\n```\n"
     "```output\n18\n```\nShe makes $\\boxed{18}$.", 18, 9),  # ToRA
    # `from math import *` binds math's two-argument `pow` over the builtin.
    ("```python\nfrom math import *\nshare = pow(7, 2, 5)\nprint(share)\n```", None, 4),
    ("from math import *\nbuses = ceil(130 / 40)\nprint(buses)", 4, 5),
    # numpy as numpy computes: int64 wraps (refused), integers to negative powers fail, its own rounding.
    ("```python\nimport numpy as np\nsides = [10**10, 10**10]\nprint(np.prod(sides))\n```", None, 10**20),
    ("```python\nimport numpy as np\nsides = [10**10, 10**10]\nprint(np.prod(sides))\n```", None,
     7766279631452241920),  # what numpy prints: wrapped, so no answer at all
    ("import numpy as np\nboxes = np.sum([2**40, 2**40])\nprint(boxes * 2**30)", None, 2**71),
    ("import numpy as np\nhalf = np.power(2, -1)\nprint(half * 10)", None, 5),
    ("import numpy as np\nprice = np.round(2.675, 2)\nprint(price)", "2.68", "2.67"),  # numpy's float64 rounding
    ("import numpy as np\nscores = [3, 4, 5]\nprint(np.sum(scores) * 2)", 24, 25),
    ("```python\nimport numpy as np\ncrates = np.ceil(130 / 40)\nprint(int(crates))\n```", 4, 3),
    # `from numpy import *` binds numpy's `sum` and `max` over the builtins.
    ("from numpy import *\nprint(sum([2**62, 2**62]))", None, 2**63),
    ("from numpy import *\nprint(max(3, 5))", None, 5),  # numpy's max(3, axis=5) fails
    ("from numpy import *\nprint(sum([1, 2]) * round(2.675, 2))", "8.04", "8.01"),  # numpy's rounding, not Python's
    # sympy runs in the sandbox: the printed `2*sqrt(2)` is read as the number it is, not a rounding of it.
    ("```python\nfrom sympy import sqrt\nside = sqrt(8)\nprint(side)\n```", "2.8284271247461903", "2.83"),
    # What a print shows is what it formats.
    ("```python\nmiles = 15.8 / 2\nprint('She runs %d miles a day' % miles)\n```", 7, "7.9"),  # gpt-3.5
    ("```python\naverage = (7 + 8) / 2\nprint(f\"Average: {average:.0f}\")\n```", 8, "7.5"),
    ("price = 2.5\nprint('{:.0f} dollars'.format(price))", 2, "2.5"),
    ("def main():\n    weight = 12.25\n    print('%.1f kg' % weight)\n\nmain()", "12.2", "12.25"),
    ("x = 3\nprint('The total is', undefined_total, 'and', x)", None, 3),  # a value shown before fails the run
]


@pytest.mark.parametrize("text, runs_to, rewritten", FAITHFUL)
def test_a_rewrite_only_makes_explicit_what_the_program_does(text, runs_to, rewritten, pool):
    checked = check([{"thought": "pot", "rationale": text}, ], pool)[0]
    if runs_to is None:
        assert not checked.outcome.ok, checked
    else:
        assert verdict(checked.outcome, parse_number(str(runs_to)), checked.stated) == "kept", checked
    assert verdict(checked.outcome, parse_number(str(rewritten)), checked.stated) != "kept", checked


def _generated_programs(count: int, seed: int) -> list[str]:
    """Straight-line PoT programs over the constructs readers rewrite: numpy calls (int64 and float64), `from math
    import *`, name guards, printf / format / f-string prints, functions that print or return."""
    import random

    rng = random.Random(seed)
    numpy_steps = ["x = np.prod([a, a, c])", "x = np.sum([a, c, 4])", "x = np.power(c, 2)", "x = np.power(2, c)",
                   "x = np.power(b, 2)", "x = np.round(b, 2)", "x = np.round(a, -1)", "x = np.ceil(b)",
                   "x = np.floor(a / 7)", "x = np.mean([a, c])", "x = np.median([a, c, 3])", "x = np.max([a, c, b])",
                   "x = np.maximum(a, c)", "x = np.sqrt(a)", "x = np.abs(c - a)", "x = np.pi * c",
                   "x = np.prod([a, a]) * 3", "x = np.sum([a, a]) * a", "x = np.trunc(-b)", "x = np.amin((a, c))"]
    math_steps = ["x = pow(c, 2)", "x = pow(a % 7, 3, 5)", "x = ceil(b)", "x = floor(b) + c", "x = sqrt(abs(b))",
                  "x = factorial(abs(c))", "x = gcd(a, c)"]
    plain_steps = ["x = a * c + b", "x = a // max(c, 1)", "x = round(b, 1)", "x = a % 7 + b", "x = (a - c) / 4"]
    shows = ["print(x)", "print('%d' % x)", "print('%.2f' % x)", "print('%d apples and %d pears' % (c, x))",
             "print(f'{x:.1f} units')", "print(f'{c} then {x:.0f}')", "print('{} and {:.2f}'.format(c, x))",
             "print('Total:', x)", "print(str(x) + ' left')", "print('%s' % x)", "ans = x"]
    programs = []
    for _ in range(count):
        preamble, steps = rng.choice([("import numpy as np", numpy_steps), ("from math import *", math_steps),
                                      ("import math", plain_steps)])
        a = rng.choice([rng.randint(2, 60), rng.randint(10**9, 10**10), -rng.randint(1, 30)])
        b = rng.choice([7.9, 2.675, 0.5, 12.25, 1.005, 2.5, -3.5])
        c = rng.randint(-2, 9)
        body = [rng.choice(steps), rng.choice(shows)]
        shape = rng.choice(["flat", "flat", "guard", "not_main", "not_equal", "function", "main"])
        if shape == "guard":
            body = ["if __name__ == '__main__':", *("    " + line for line in body)]
        elif shape == "not_main":
            body = ["ans = a", "if __name__ == 'not_main':", *("    " + line for line in body)]
        elif shape == "not_equal":
            body = ["if __name__ != '__main__':", "    ans = c", "else:", *("    " + line for line in body)]
        elif shape == "function" and not body[1].startswith("ans"):
            body = ["def solution():", "    " + body[0], "    return x"]
        elif shape == "main":
            body = ["def main():", *("    " + line for line in body), "", "main()"]
        programs.append("\n".join([preamble, f"a = {a}", f"b = {b}", f"c = {c}", *body]))
    return programs


_FAITHFUL_RUN = """
import contextlib, io, json, sys, warnings
import numpy
warnings.simplefilter("ignore")
for source in json.load(sys.stdin):
    printed, namespace = io.StringIO(), {"__name__": "__main__"}
    try:
        with contextlib.redirect_stdout(printed):
            exec(source, namespace)
            value = namespace["ans"] if "ans" in namespace else (
                namespace["solution"]() if callable(namespace.get("solution")) else None)
    except Exception:
        print(json.dumps({"failed": True}))
        continue
    if isinstance(value, (bool, numpy.bool_)):
        value = None
    elif isinstance(value, numpy.generic):
        value = value.item()
    lines = printed.getvalue().splitlines()
    print(json.dumps({"value": None if value is None else repr(value), "line": lines[-1] if lines else None}))
"""


def test_the_verified_form_computes_what_the_program_computes(pool):
    """For generated programs, run faithfully (CPython with numpy, in a child process, never here), the form the
    reader verifies gives a value only where the program does, and the same value: the program's `ans`, else what
    its last printed line shows last. Forms may refuse what they cannot be sure of, but most programs verify."""
    import json
    import subprocess
    import sys

    from eotd_jax.thoughts.answers import answers_match

    programs = _generated_programs(300, seed=25)
    run = subprocess.run([sys.executable, "-c", _FAITHFUL_RUN], input=json.dumps(programs), capture_output=True,
                         text=True, timeout=300, check=True)
    originals = []
    for line in run.stdout.splitlines():
        result = json.loads(line)
        if result.get("failed"):
            originals.append(None)
        elif result["value"] is not None:
            originals.append(parse_number(result["value"]))  # the repr of an int or a float
        else:
            shown = [parse_number(word.strip(",:;")) for word in (result["line"] or "").split()]
            originals.append(next((v for v in reversed(shown) if v is not None), None))
    assert len(originals) == len(programs)
    checked = check([{"thought": "pot", "rationale": program} for program in programs], pool)
    wrong = [(program, original, c.outcome) for program, original, c in zip(programs, originals, checked, strict=True)
             if c.outcome.ok and not answers_match(c.outcome.value, original)]
    assert not wrong, wrong[:3]
    verified = sum(c.outcome.ok for c in checked)
    running = sum(original is not None for original in originals)
    assert verified >= 0.75 * running, (verified, running)


def test_reader_executes_nothing(monkeypatch):
    """Reading hostile text only parses it: no eval/exec/compile and no sympify in the main process."""
    import builtins

    import sympy

    def refuse(*args, **kwargs):
        raise AssertionError("the reader must not evaluate untrusted text")

    real_compile = builtins.compile

    def parse_only(source, filename, mode, flags=0, *args, **kwargs):
        assert flags & ast.PyCF_ONLY_AST, "the reader may parse, never compile to code"
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    for name in ("eval", "exec"):
        monkeypatch.setattr(builtins, name, refuse)
    monkeypatch.setattr(builtins, "compile", parse_only)
    monkeypatch.setattr(sympy, "sympify", refuse)
    hostile = "```python\nimport os\nprint(os.system('touch /tmp/reader-pwned'))\n```"
    assert read_rationale("pot", hostile).form == "import os\nans = os.system('touch /tmp/reader-pwned')"
    assert read_rationale("eot", "% x\nans = __import__('os').system('id')").form is not None
    assert read_rationale("pot", "x = (" * 300).failure is Failure.SYNTAX
    assert read_rationale("pot", "ans = 1\n" * 30_000).failure is Failure.TOO_LARGE


HOSTILE = [  # each repeated to the length the test asks for
    "1+", "a", "x = a", "```\n", "`", "~", "Answer: ", "\\boxed{", "So 1 + 1 ", "% ", "(" * 90 + "\n", "x\nQ: ",
    "def f(:\n", "```python\nx = 1\n```\n```output\nError\n```\n", " ", "\n", " \t\n", " " * 999 + "a\n", "ab ",
    "ab =", "answer is ", "\nQ ", "Q: int = 1\n", "1,", "x = ab 1 ", "% The answer is ", "print(", ">>> ", "\n  ",
    "ans = 1 # ", "- 1. x = ", "=" * 50 + " ",
]


@pytest.mark.parametrize("thought", ["cot", "pot", "eot"])
@pytest.mark.parametrize("piece", HOSTILE)
def test_hostile_text_is_read_in_linear_time(thought, piece):
    """Readers and answer extraction are linear-time: no pattern backtracks on adversarial text. A rationale of
    the largest size read (MAX_TEXT_CHARS) takes under a second of CPU; a megabyte is refused at once."""
    from eotd_jax.thoughts.cot import MAX_TEXT_CHARS, extract_cot_answer

    for length in (MAX_TEXT_CHARS, 1_000_000):
        text = (piece * (length // len(piece) + 1))[:length]
        start = time.process_time()
        reading = read_rationale(thought, text)
        if thought == "cot" and reading.form:
            extract_cot_answer(reading.form)
        assert time.process_time() - start < 1.0, length


SURFACE_VARIANTS = {
    "fenced": lambda t: f"Here is the system:\n```\n{t}\n```",
    "header": lambda t: "System of linear equations: (Do not simplify)\n" + t,
    "unicode_operators": lambda t: t.replace(" * ", " × ").replace(" - ", " − ").replace(" / ", " ÷ "),
    "hash_comments": lambda t: t.replace("% ", "# "),
    "slash_comments": lambda t: t.replace("% ", "// "),
    "numbered": lambda t: "\n".join(f"{i}. {line}" if not line.startswith("%") else line
                                    for i, line in enumerate(t.splitlines(), 1)),
}


@pytest.mark.parametrize("variant", sorted(SURFACE_VARIANTS))
def test_surface_variants_of_gold_systems_verify_alike(variant, pool):
    """The same systems in the notations real models use: every one the plain form verifies is kept."""
    from data_gen.teachers.gold import gold_rationales
    from eotd_jax.benchmarks.synthetic import synthetic_problems
    from eotd_jax.thoughts.answers import format_number

    problems = [p for p in synthetic_problems(35, seed=11) if "\n" in gold_rationales(p)["eot"]]
    assert len(problems) >= 30
    records = [{"thought": "eot", "answer": format_number(p.answer),
                "rationale": SURFACE_VARIANTS[variant](_commented(gold_rationales(p)["eot"]))} for p in problems]
    results = check(records, pool)
    assert [_verdict(r, c) for r, c in zip(records, results, strict=True)] == ["kept"] * len(records)


def _commented(system: str) -> str:
    return "\n".join(f"% fact {i}:\n{line}" for i, line in enumerate(system.splitlines()))


def _printing(program: str) -> str:
    """`... ans = x` -> `... print(x)`: the answer shown instead of assigned."""
    *body, last = program.splitlines()
    return "\n".join([*body, "print(" + last.split("=", 1)[1].strip() + ")"])


def _as_function(program: str) -> str:
    *body, last = program.splitlines()
    lines = ["def solution():", *("    " + line for line in body), "    return " + last.split("=", 1)[1].strip()]
    return "\n".join(lines)


POT_VARIANTS = {
    "tora": lambda p, a: f"Let's compute it.\n```python\n{_as_function(p)}\n\nresult = solution()\nprint(result)\n```\n"
                         f"```output\n{a}\n```\nThe answer is $\\boxed{{{a}}}$.",
    "fenced_print": lambda p, a: f"```python\n{_printing(p)}\n```",
    "pal": lambda p, a: _as_function(p),
    "numpy_scaffold": lambda p, a: "import numpy as np\nimport math\n\n" + _printing(p),
    "main_guard": lambda p, a: "def main():\n" + "\n".join("    " + line for line in _printing(p).splitlines())
                               + '\n\nif __name__ == "__main__":\n    main()',
}


@pytest.mark.parametrize("variant", sorted(POT_VARIANTS))
def test_surface_variants_of_gold_programs_verify_alike(variant, pool):
    from data_gen.teachers.gold import gold_rationales
    from eotd_jax.benchmarks.synthetic import synthetic_problems
    from eotd_jax.thoughts.answers import format_number

    problems = synthetic_problems(35, seed=12)
    records = []
    for problem in problems:
        program = gold_rationales(problem)["pot"]
        answer = format_number(problem.answer)
        records.append({"thought": "pot", "answer": answer, "rationale": POT_VARIANTS[variant](program, answer)})
    results = check(records, pool)
    verdicts = [_verdict(r, c) for r, c in zip(records, results, strict=True)]
    failed = [(v, r["rationale"]) for v, r in zip(verdicts, records, strict=True) if v != "kept"]
    assert not failed, failed
