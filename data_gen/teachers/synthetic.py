"""An offline source of templated multi-step word problems with known answers.

Each template draws its numbers from a seeded `random.Random`, so
`synthetic_problems(n, seed)` is reproducible. A problem carries a GSM8K-style
solution (calculator annotations `<<a*b=c>>`) and a declarative EoT system in
`equation`, so the gold teacher derives all three thoughts from it exactly as
it does for real data. This is the quickstart's embedded default.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from fractions import Fraction

from eotd_jax.benchmarks import Problem
from eotd_jax.thoughts.answers import format_number

_NAMES = ("Ava", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Iris", "Jun", "Kofi", "Lena")
_ITEMS = ("apples", "pencils", "stickers", "marbles", "cookies", "books", "cards", "shells")


def _n(value: Fraction | int) -> str:
    return format_number(Fraction(value))


def _rates(rng: random.Random):
    name, rate, hours, extra = rng.choice(_NAMES), rng.randint(2, 30), rng.randint(2, 9), rng.randint(1, 40)
    first, total = rate * hours, rate * hours + extra
    question = (f"{name} packs {rate} boxes every hour. {name} works for {hours} hours and then packs "
                f"{extra} more boxes. How many boxes does {name} pack in all?")
    solution = [f"In {hours} hours {name} packs {rate}*{hours}=<<{rate}*{hours}={first}>>{first} boxes.",
                f"With the extra boxes that is {first}+{extra}=<<{first}+{extra}={total}>>{total} boxes."]
    equations = [f"hourly = {rate}", f"packed = hourly * {hours}", f"ans = packed + {extra}"]
    return question, solution, total, equations


def _totals(rng: random.Random):
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    bags, per_bag, loose = rng.randint(2, 12), rng.randint(3, 25), rng.randint(1, 30)
    in_bags, total = bags * per_bag, bags * per_bag + loose
    question = (f"{name} has {bags} bags with {per_bag} {item} in each bag and {loose} loose {item}. "
                f"How many {item} does {name} have?")
    solution = [f"The bags hold {bags}*{per_bag}=<<{bags}*{per_bag}={in_bags}>>{in_bags} {item}.",
                f"Adding the loose ones gives {in_bags}+{loose}=<<{in_bags}+{loose}={total}>>{total} {item}."]
    equations = [f"in_bags = {bags} * {per_bag}", f"ans = in_bags + {loose}"]
    return question, solution, total, equations


def _differences(rng: random.Random):
    first, second, item = *rng.sample(_NAMES, 2), rng.choice(_ITEMS)
    start, given, bought = rng.randint(30, 99), rng.randint(2, 29), rng.randint(2, 40)
    after_giving, total = start - given, start - given + bought
    question = (f"{first} had {start} {item}. {first} gave {given} to {second} and then bought {bought} more. "
                f"How many {item} does {first} have now?")
    solution = [f"After giving some away {first} has {start}-{given}=<<{start}-{given}={after_giving}>>{after_giving}.",
                f"After buying more {first} has {after_giving}+{bought}=<<{after_giving}+{bought}={total}>>{total}."]
    equations = [f"{start} - {given} = left", f"ans = left + {bought}"]
    return question, solution, total, equations


def _fractions(rng: random.Random):
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    denominator = rng.choice((2, 3, 4, 5))
    total = denominator * rng.randint(3, 20)
    eaten = total // denominator
    left = total - eaten
    question = (f"{name} has {total} {item} and gives away 1/{denominator} of them. "
                f"How many {item} are left?")
    solution = [f"{name} gives away {total}/{denominator}=<<{total}/{denominator}={eaten}>>{eaten} {item}.",
                f"So {total}-{eaten}=<<{total}-{eaten}={left}>>{left} {item} are left."]
    equations = [f"given = {total} / {denominator}", f"ans + given = {total}"]
    return question, solution, left, equations


def _percentages(rng: random.Random):
    name = rng.choice(_NAMES)
    price, percent = rng.randint(1, 20) * 20, rng.choice((10, 20, 25, 50))  # exact discounts
    discount = price * percent // 100
    paid = price - discount
    question = (f"A jacket costs ${price}. {name} buys it at {percent}% off. How many dollars does {name} pay?")
    solution = [f"The discount is {price}*{percent}/100=<<{price}*{percent}/100={discount}>>{discount} dollars.",
                f"{name} pays {price}-{discount}=<<{price}-{discount}={paid}>>{paid} dollars."]
    equations = [f"discount = {price} * {percent} / 100", f"ans = {price} - discount"]
    return question, solution, paid, equations


def _unit_prices(rng: random.Random):
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    count, unit, budget_extra = rng.randint(2, 12), rng.randint(2, 15), rng.randint(1, 50)
    cost = count * unit
    budget = cost + budget_extra
    question = (f"{name} has ${budget} and buys {count} {item} at ${unit} each. How many dollars are left?")
    solution = [f"The {item} cost {count}*{unit}=<<{count}*{unit}={cost}>>{cost} dollars.",
                f"{name} has {budget}-{cost}=<<{budget}-{cost}={budget_extra}>>{budget_extra} dollars left."]
    equations = [f"cost = {count} * {unit}", f"{budget} = cost + ans"]
    return question, solution, budget_extra, equations


def _two_unknowns(rng: random.Random):
    first, second = rng.sample(_NAMES, 2)
    smaller, gap = rng.randint(3, 40), rng.randint(1, 20)
    larger, total = smaller + gap, 2 * smaller + gap
    question = (f"{first} and {second} have {total} stamps together. {first} has {gap} more stamps than "
                f"{second}. How many stamps does {first} have?")
    twice = total - gap
    solution = [f"Without the difference they would have {total}-{gap}=<<{total}-{gap}={twice}>>{twice} stamps.",
                f"So {second} has {twice}/2=<<{twice}/2={smaller}>>{smaller} stamps.",
                f"{first} has {smaller}+{gap}=<<{smaller}+{gap}={larger}>>{larger} stamps."]
    equations = [f"ans + other = {total}", f"ans - other = {gap}"]
    return question, solution, larger, equations


TEMPLATES: dict[str, Callable[[random.Random], tuple]] = {
    "rates": _rates,
    "totals": _totals,
    "differences": _differences,
    "fractions": _fractions,
    "percentages": _percentages,
    "unit_prices": _unit_prices,
    "two_unknowns": _two_unknowns,
}


def synthetic_problems(count: int, seed: int = 0, split: str = "train") -> list[Problem]:
    """`count` problems cycling through the templates; the same (count, seed, split) gives the same list."""
    rng = random.Random(f"{seed}/{split}")
    names = list(TEMPLATES)
    problems = []
    for index in range(count):
        template = names[index % len(names)]
        question, solution, answer, equations = TEMPLATES[template](rng)
        problems.append(Problem(
            id=f"synthetic-{split}-{index}-{template}",
            source=f"synthetic/{split}",
            question=question,
            answer=Fraction(answer),
            answer_text=_n(answer),
            equation="\n".join(equations),
            solution="\n".join(solution),
        ))
    return problems
