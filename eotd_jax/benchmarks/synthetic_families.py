"""Synthetic problems whose solving order is not the text's order, in four families beside the forward one.

    family_problems("start_from_end", 200, split="test")
    family_problems("two_unknowns", 200, split="test_compositional")
    family_problems("forward", 200, split="test_unseen")     # the forward family (`synthetic.py`)

- start_from_end: an amount changes two or three times; the end is given, the start is asked.
- two_unknowns: two counts tied by two relations (a sum, a difference, a ratio, a total value).
- part_whole: a whole found from a part of a part, each given as a percentage, a fraction or "the rest".
- backward_rates: hours of work found from the total made at several rates, with fixed amounts.

The text states the relations in the order things happen; the solution (worked in words, with GSM8K
calculator annotations, from which the gold teacher derives CoT and PoT) inverts them, and the EoT
system in `equation` states them as read, with `ans` the unknown asked for.

A family's templates are compositions of steps: `fraction+spend` gives away a fraction, then an
amount. Splits: train (80%), validation (10%) and test (10%) draw from the trained compositions, and a
problem's composition and the numbers of its relations pick its split by hash, so a test problem never
has a training problem's numbers, however it is worded (and no split shares a question);
`test_compositional` draws compositions never trained on, each made only of steps the trained ones use.
Every sentence has several wordings, and half the problems carry a distractor sentence.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import re
from collections.abc import Callable
from fractions import Fraction

from eotd_jax.benchmarks.problem import Problem
from eotd_jax.benchmarks.synthetic import Draw, Template, add_distractor, bucket, calc, synthetic_problems
from eotd_jax.thoughts.answers import format_number

FORWARD = "forward"
SPLITS = ("train", "validation", "test", "test_compositional")
_BUCKETS = {"train": range(0, 8), "validation": range(8, 9), "test": range(9, 10), "test_compositional": range(0, 10)}


@dataclasses.dataclass(frozen=True)
class Family:
    """Templates named by their composition of steps (`spend+gain`): the trained ones and the held-out ones."""

    name: str
    trained: dict[str, Template]
    compositional: dict[str, Template]


def steps_of(template: str) -> tuple[str, ...]:
    return tuple(template.split("+"))


def _family(name: str, build: Callable, trained: tuple[str, ...], compositional: tuple[str, ...]) -> Family:
    def templates(names):
        return {n: functools.partial(build, steps_of(n)) for n in names}

    return Family(name, templates(trained), templates(compositional))


# -- start_from_end --------------------------------------------------------------------------------------------

_MULTIPLIED = {2: "doubled", 3: "tripled"}
_CHANGE_WORDS = {  # (items, money): each a tuple of wordings; {q} is the amount with its unit
    "opener": (("{name} had some {unit}.", "{name} started the week with a jar of {unit}."),
               ("{name} had some money.", "{name} took some money to the fair.")),
    "spend": (("{name} gave {q} to a friend.", "Then {name} lost {q}."),
              ("{name} spent {q} on lunch.", "Then {name} paid {q} for a ticket.")),
    "gain": (("{name} then got {q} more from a cousin.", "Then {name} bought {q} more."),
             ("{name} then earned {q} more.", "Then a cousin gave {name} {q}.")),
    "fraction": (("{name} gave 1/{k} of the {unit} to a neighbour.", "Then {name} sold 1/{k} of the {unit}."),
                 ("{name} spent 1/{k} of the money on a book.", "Then {name} gave 1/{k} of the money to charity.")),
    "multiply": (("Then the number of {unit} {name} had {grew}.", "{name}'s pile of {unit} then {grew}."),
                 ("Then {name}'s money {grew}.", "{name}'s savings then {grew}.")),
    "end": (("Now {name} has {q}.", "In the end {name} has {q} left."),
            ("Now {name} has {q}.", "In the end {name} has {q} left.")),
    "ask": (("How many {unit} did {name} have at first?", "How many {unit} did {name} start with?"),
            ("How many dollars did {name} have at first?", "How much money did {name} start with?")),
}
_AFTER = {"spend": "after_loss", "gain": "after_gain", "fraction": "after_share", "multiply": "after_growth"}
_DRAWN = {"spend": (11, 60), "gain": (11, 60), "fraction": (3, 5), "multiply": (2, 3)}  # the amount, k or the factor
_APPLIED = {"spend": lambda now, v: now - v, "gain": lambda now, v: now + v,
            "fraction": lambda now, v: now - now // v, "multiply": lambda now, v: now * v}
_STATED = {"spend": "{0} - {1}", "gain": "{0} + {1}", "fraction": "{0} - {0} / {1}", "multiply": "{0} * {1}"}


def _start_from_end(changes: tuple[str, ...], d: Draw):
    name, money = d.name(), d.rng.random() < 0.5
    unit = "dollars" if money else d.item()

    def say(key: str, amount: int = 0, **fields) -> str:
        quantity = f"${amount}" if money else f"{amount} {unit}"
        return d.pick(*_CHANGE_WORDS[key][money]).format(name=name, unit=unit, q=quantity, **fields)

    params = [d.int(*_DRAWN[change]) for change in changes]
    while True:  # a start from which every step gives a whole amount of at least 10
        amounts = [d.int(40, 300)]
        for change, value in zip(changes, params, strict=True):
            if change == "fraction" and amounts[-1] % value:
                break
            amounts.append(_APPLIED[change](amounts[-1], value))
        if len(amounts) == len(changes) + 1 and min(amounts) >= 10:
            break
    start, end = amounts[0], amounts[-1]
    statement, equations, previous = [say("opener")], [], "ans"
    for change, value in zip(changes, params, strict=True):
        statement.append(say(change, value, k=value, grew=_MULTIPLIED.get(value, "")))
        equations.append(f"{_AFTER[change]} = " + _STATED[change].format(previous, value))
        previous = _AFTER[change]
    statement.append(say("end", end))
    equations.append(f"{previous} = {end}")
    solution = []
    for change, value, before, after in reversed(list(zip(changes, params, amounts[:-1], amounts[1:], strict=True))):
        if change == "spend":
            solution.append(f"Before losing {value} {unit}, {name} had {calc(f'{after}+{value}', before)} {unit}.")
        elif change == "gain":
            solution.append(f"Before getting {value} more, {name} had {calc(f'{after}-{value}', before)} {unit}.")
        elif change == "fraction":
            part = after // (value - 1)
            solution += [f"{after} {unit} is {value - 1}/{value} of what {name} had before, so 1/{value} of it is "
                         f"{calc(f'{after}/{value - 1}', part)} {unit}.",
                         f"Before that {name} had {calc(f'{part}*{value}', before)} {unit}."]
        else:
            solution.append(f"Before the {unit} {_MULTIPLIED[value]}, {name} had "
                            f"{calc(f'{after}/{value}', before)} {unit}.")
    return statement, say("ask"), solution, start, equations


# -- two_unknowns ----------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Kinds:
    """Two kinds of thing counted together, and how a problem about them says each relation.

    Sentences use {a} {b} (the kinds), {big} {small} (the kinds by count), {S} {D} {m} {V} {pa} {pb};
    each difference and ratio wording comes with its equation as stated, over {vbig} and {vsmall}.
    """

    opener: tuple[str, ...]
    sum: tuple[str, ...]
    difference: tuple[tuple[str, str], ...]
    times: tuple[tuple[str, str], ...]
    value: tuple[str, ...]
    ask: tuple[str, ...]
    noun: str  # both kinds together: "tickets", "coins"
    value_unit: str  # what the value counts: "dollars", "legs"


_MORE = ("{vbig} = {vsmall} + {D}", "{vsmall} = {vbig} - {D}")
_TIMES = ("{vbig} = {m} * {vsmall}", "{vsmall} = {vbig} / {m}")
_TICKETS = _Kinds(
    opener=("A theater sells {a} and {b} for a show.", "The school play has {a} and {b} on sale."),
    sum=("{S} tickets are sold in all.", "The theater sells {S} tickets."),
    difference=(("It sells {D} more {big} than {small}.", _MORE[0]),
                ("It sells {D} fewer {small} than {big}.", _MORE[1])),
    times=(("It sells {m} times as many {big} as {small}.", _TIMES[0]),
           ("The {small} sold are 1/{m} as many as the {big}.", _TIMES[1])),
    value=("{A} cost ${pa} each and {b} ${pb} each, and the sales come to ${V}.",
           "Each of the {a} costs ${pa}, each of the {b} ${pb}; the tickets bring in ${V}."),
    ask=("How many {asked} are sold?", "How many {asked} does the theater sell?"),
    noun="tickets", value_unit="dollars")
_COINS = _Kinds(
    opener=("{name}'s jar holds only {a} and {b}.", "A jar is full of {a} and {b}."),
    sum=("There are {S} coins in the jar.", "The jar holds {S} coins."),
    difference=(("There are {D} more {big} than {small}.", _MORE[0]),
                ("There are {D} fewer {small} than {big}.", _MORE[1])),
    times=(("There are {m} times as many {big} as {small}.", _TIMES[0]),
           ("The {small} are 1/{m} as many as the {big}.", _TIMES[1])),
    value=("A {a1} is worth {pa} cents and a {b1} {pb} cents; the coins are worth {V} cents in all.",
           "The coins make {V} cents, each {a1} {pa} cents and each {b1} {pb} cents."),
    ask=("How many {asked} are in the jar?", "How many {asked} does the jar hold?"),
    noun="coins", value_unit="cents")
_ANIMALS = _Kinds(
    opener=("A farm keeps only {a} and {b}.", "{name}'s farm has {a} and {b}."),
    sum=("There are {S} animals in all.", "The farm has {S} animals."),
    difference=(("There are {D} more {big} than {small}.", _MORE[0]),
                ("There are {D} fewer {small} than {big}.", _MORE[1])),
    times=(("There are {m} times as many {big} as {small}.", _TIMES[0]),
           ("The {small} are 1/{m} as many as the {big}.", _TIMES[1])),
    value=("A {a1} has {pa} legs and a {b1} {pb}, and the animals have {V} legs in all.",
           "The animals have {V} legs: {pa} for each {a1} and {pb} for each {b1}."),
    ask=("How many {asked} are on the farm?", "How many {asked} does the farm keep?"),
    noun="animals", value_unit="legs")
_PEOPLE = _Kinds(
    opener=("{a} and {b} collect {item}.", "{a} and {b} keep {item}."),
    sum=("Together they have {S} {item}.", "They have {S} {item} between them."),
    difference=(("{big} has {D} more {item} than {small}.", _MORE[0]),
                ("{small} has {D} fewer {item} than {big}.", _MORE[1])),
    times=(("{big} has {m} times as many {item} as {small}.", _TIMES[0]),
           ("{small} has 1/{m} as many {item} as {big}.", _TIMES[1])),
    value=("Each of {a}'s {item} weighs {pa} grams and each of {b}'s {pb} grams; all of them weigh {V} grams.",
           "All the {item} weigh {V} grams: {a}'s weigh {pa} grams each, {b}'s {pb} grams each."),
    ask=("How many {item} does {asked} have?", "How many {item} has {asked} collected?"),
    noun="{item}", value_unit="grams")
_COIN_PAIRS = ((("nickels", "nickel", 5), ("dimes", "dime", 10)), (("dimes", "dime", 10), ("quarters", "quarter", 25)),
               (("nickels", "nickel", 5), ("quarters", "quarter", 25)))
_ANIMAL_PAIRS = ((("chickens", "chicken", 2), ("pigs", "pig", 4)), (("ducks", "duck", 2), ("goats", "goat", 4)),
                 (("geese", "goose", 2), ("cows", "cow", 4)))


def _kinds(d: Draw) -> tuple[_Kinds, dict, list[str], list[int]]:
    """A context: its wordings, its fields, the two kinds' labels and the value of one of each."""
    context = d.rng.choice(("tickets", "coins", "animals", "people"))
    if context == "tickets":
        return _TICKETS, {}, ["adult tickets", "child tickets"], [d.int(12, 25), d.int(5, 11)]
    if context == "people":
        return _PEOPLE, {"item": d.item()}, d.names(2), d.rng.sample(range(3, 10), 2)
    kinds, pairs = (_COINS, _COIN_PAIRS) if context == "coins" else (_ANIMALS, _ANIMAL_PAIRS)
    first, second = d.rng.sample(d.rng.choice(pairs), 2)
    return kinds, {"a1": first[1], "b1": second[1]}, [first[0], second[0]], [first[2], second[2]]


def _two_unknowns(relations: tuple[str, ...], d: Draw):
    kinds, fields, labels, values = _kinds(d)
    people = kinds is _PEOPLE
    variables = [label.lower() if people else label.split()[0] for label in labels]
    m = d.int(3, 5) if "difference" in relations else d.int(2, 5)
    small_count = d.int(12, 90)
    big_count = m * small_count if "times" in relations else small_count + d.int(11, 80)
    big, asked = d.rng.randint(0, 1), d.rng.randint(0, 1)  # which kind has more, which is asked for
    counts = [small_count, small_count]
    counts[big] = big_count
    total, value = sum(counts), values[0] * counts[0] + values[1] * counts[1]
    fields.update(a=labels[0], b=labels[1], A=labels[0].capitalize(), big=labels[big], small=labels[1 - big],
                  vbig=variables[big], vsmall=variables[1 - big], S=total, D=big_count - small_count, m=m, V=value,
                  pa=values[0], pb=values[1], asked=labels[asked], name=d.name())
    statement, equations = [d.pick(*kinds.opener).format(**fields)], []
    for relation in relations:
        if relation in ("difference", "times"):
            sentence, equation = d.rng.choice(getattr(kinds, relation))
            statement.append(sentence.format(**fields))
            equations.append(equation.format(**fields))
        else:
            statement.append(d.pick(*getattr(kinds, relation)).format(**fields))
            equations.append(f"{variables[0]} + {variables[1]} = {total}" if relation == "sum" else
                             f"{values[0]} * {variables[0]} + {values[1]} * {variables[1]} = {value}")
    equations = [re.sub(rf"\b{variables[asked]}\b", "ans", e) for e in equations]
    pair = _Pair(labels, fields.get("item", ""), values, counts, big, m, kinds.noun.format(**fields),
                 kinds.value_unit)
    solution, found = pair.solve(relations)
    if found != asked:
        solution.append(pair.other(relations, found))
    return statement, d.pick(*kinds.ask).format(**fields), solution, counts[asked], equations


@dataclasses.dataclass(frozen=True)
class _Pair:
    """The two counts of a two_unknowns problem, for its solution in words."""

    kinds: list[str]  # as the sentences name them: "adult tickets", "nickels", or the two people
    item: str  # what the people have; "" for the other contexts
    values: list[int]
    counts: list[int]
    big: int  # the index of the larger count
    m: int
    noun: str
    unit: str

    def bare(self, i: int) -> str:
        return f"{self.kinds[i]}'s {self.item}" if self.item else self.kinds[i]

    def the(self, i: int) -> str:
        return self.bare(i) if self.item else f"the {self.kinds[i]}"

    def count(self, i: int, number: str) -> str:
        return f"{self.kinds[i]} has {number} {self.item}" if self.item else f"there are {number} {self.kinds[i]}"

    def solve(self, relations: tuple[str, ...]) -> tuple[list[str], int]:
        """Lines that find one count by inverting the two relations, and which count they find."""
        big, small, m, unit = self.big, 1 - self.big, self.m, self.unit
        s, gap, total = self.counts[small], self.counts[big] - self.counts[small], sum(self.counts)
        value = sum(v * c for v, c in zip(self.values, self.counts, strict=True))
        if relations == ("sum", "difference"):
            return [f"Taking away the difference of {gap} leaves {calc(f'{total}-{gap}', total - gap)} {self.noun}, "
                    "the same number of each.", f"So {self.count(small, calc(f'{total - gap}/2', s))}."], small
        if relations == ("sum", "times"):
            return [f"For each one of {self.the(small)} there are {m} of {self.the(big)}, so the {self.noun} come "
                    f"in groups of {calc(f'{m}+1', m + 1)}.",
                    f"So {self.count(small, calc(f'{total}/{m + 1}', s))}."], small
        if relations == ("difference", "times"):
            return [f"The difference, {gap}, is {calc(f'{m}-1', m - 1)} times the number of {self.bare(small)}.",
                    f"So {self.count(small, calc(f'{gap}/{m - 1}', s))}."], small
        if relations == ("difference", "value"):
            extra, pair = gap * self.values[big], self.values[big] + self.values[small]
            return [f"{gap} of {self.the(big)} are extra; they count {calc(f'{gap}*{self.values[big]}', extra)} "
                    f"{unit}.",
                    f"The other {calc(f'{value}-{extra}', value - extra)} {unit} come from pairs of one of each, "
                    f"{calc(f'{self.values[big]}+{self.values[small]}', pair)} {unit} a pair.",
                    f"So {self.count(small, calc(f'{value - extra}/{pair}', s))}."], small
        if relations == ("times", "value"):
            group_big = m * self.values[big]
            group = group_big + self.values[small]
            return [f"{m} of {self.the(big)} count {calc(f'{m}*{self.values[big]}', group_big)} {unit}.",
                    f"With one of {self.the(small)} such a group counts "
                    f"{calc(f'{group_big}+{self.values[small]}', group)} {unit}.",
                    f"There are {calc(f'{value}/{group}', s)} such groups, so {self.count(small, str(s))}."], small
        if relations == ("sum", "value"):
            cheap = 0 if self.values[0] < self.values[1] else 1
            dear = 1 - cheap
            all_cheap, rise = total * self.values[cheap], self.values[dear] - self.values[cheap]
            return [f"If all {total} {self.noun} were {self.bare(cheap)}, they would count "
                    f"{calc(f'{total}*{self.values[cheap]}', all_cheap)} {unit}.",
                    f"The other {calc(f'{value}-{all_cheap}', value - all_cheap)} {unit} come from "
                    f"{self.the(dear)}, each {calc(f'{self.values[dear]}-{self.values[cheap]}', rise)} more.",
                    f"So {self.count(dear, calc(f'{value - all_cheap}/{rise}', self.counts[dear]))}."], dear
        raise ValueError(f"two_unknowns: no solution for {'+'.join(relations)}")

    def other(self, relations: tuple[str, ...], found: int) -> str:
        """The line that finds the other count from the one found, through the simplest relation."""
        other, known = 1 - found, self.counts[found]
        if "times" in relations:
            expression = f"{known}*{self.m}" if found != self.big else f"{known}/{self.m}"
        elif "difference" in relations:
            gap = self.counts[self.big] - self.counts[1 - self.big]
            expression = f"{known}+{gap}" if found != self.big else f"{known}-{gap}"
        else:
            expression = f"{sum(self.counts)}-{known}"
        line = self.count(other, calc(expression, self.counts[other]))
        return f"{line[0].upper()}{line[1:]}."


# -- part_whole ------------------------------------------------------------------------------------------------

# Adjective pairs (what a level is, what the rest of it is), by dimension in the order they nest, the outermost
# level's adjective standing next to the noun: "striped blue glass marbles".
_DIMENSIONS = ((("glass", "plastic"), ("wooden", "metal")),
               (("blue", "red"), ("green", "yellow"), ("white", "black")),
               (("striped", "plain"), ("spotted", "shiny")),
               (("large", "small"),))
_PERCENTS = (10, 20, 25, 30, 40, 60, 70, 75, 80)
_FRACTIONS = ((1, 3), (2, 3), (1, 4), (3, 4), (2, 5), (3, 5), (1, 6), (5, 6))
_LEVEL_WORDS = {
    "opener": ("{name} has a box of {item}.", "{name} collects {item}."),
    "percent": ("{p}% of the {outer} are {adj}.", "Of the {outer}, {p}% are {adj}."),
    "fraction": ("{a}/{b} of the {outer} are {adj}.", "Of the {outer}, {a}/{b} are {adj}."),
    "rest": ("{p}% of the {outer} are {other} and the rest are {adj}.",
             "Of the {outer}, {p}% are {other}; the others are {adj}."),
    "known": ("{name} has {n} {inner}.", "There are exactly {n} {inner}."),
    "ask": ("How many {item} does {name} have?", "How many {item} does {name} have in all?"),
}


def _part_whole(levels: tuple[str, ...], d: Draw):
    name, item = d.name(), d.rng.choice(("marbles", "beads", "buttons"))
    dimensions = sorted(d.rng.sample(range(len(_DIMENSIONS)), len(levels)))
    adjectives = [d.rng.choice(_DIMENSIONS[k]) for k in dimensions]
    shares = [Fraction(d.rng.choice(_PERCENTS), 100) if level != "fraction" else Fraction(*d.rng.choice(_FRACTIONS))
              for level in levels]  # of the outer count: the level's own share ("rest": the other part's)
    kept = [1 - share if level == "rest" else share for level, share in zip(levels, shares, strict=True)]
    denominators = 1
    for share in kept:
        denominators *= share.denominator
    whole = denominators * d.int(max(1, 60 // denominators), max(2, 2400 // denominators))
    counts = [whole]
    for share in kept:
        counts.append(int(counts[-1] * share))
    labels = [item]
    for adjective, _ in adjectives:
        labels.append(f"{adjective} {labels[-1]}")
    words = {key: d.pick(*options) for key, options in _LEVEL_WORDS.items()}
    statement, equations = [words["opener"].format(name=name, item=item)], []
    variables = ["ans"] + [adjective for adjective, _ in adjectives]
    for i, (level, share, (adjective, other)) in enumerate(zip(levels, shares, adjectives, strict=True)):
        fields = {"outer": labels[i], "adj": adjective, "other": other, "p": int(share * 100),
                  "a": share.numerator, "b": share.denominator}
        statement.append(d.pick(*_LEVEL_WORDS[level]).format(**fields))
        outer = variables[i]
        if level == "percent":
            equations.append(f"{adjective} = {fields['p']} / 100 * {outer}")
        elif level == "fraction":
            equations.append(f"{adjective} = {share.numerator} / {share.denominator} * {outer}")
        else:
            equations += [f"{other} = {fields['p']} / 100 * {outer}", f"{adjective} = {outer} - {other}"]
    statement.append(words["known"].format(name=name, n=counts[-1], inner=labels[-1]))
    equations.append(f"{variables[-1]} = {counts[-1]}")
    solution = []
    for i in reversed(range(len(levels))):
        inner, outer, share, label = counts[i + 1], counts[i], shares[i], labels[i]
        p = int(share * 100)
        if levels[i] == "percent":
            solution.append(f"{inner} is {p}% of the {label}, so there are {calc(f'{inner}*100/{p}', outer)} of them.")
        elif levels[i] == "rest":
            solution.append(f"{inner} is the rest, {calc(f'100-{p}', 100 - p)}% of the {label}, so there are "
                            f"{calc(f'{inner}*100/{100 - p}', outer)} of them.")
        elif share.numerator == 1:
            solution.append(f"{inner} is 1/{share.denominator} of the {label}, so there are "
                            f"{calc(f'{inner}*{share.denominator}', outer)} of them.")
        else:
            one = inner // share.numerator
            solution.append(f"{inner} is {share.numerator}/{share.denominator} of the {label}, so 1/"
                            f"{share.denominator} is {calc(f'{inner}/{share.numerator}', one)} and there are "
                            f"{calc(f'{one}*{share.denominator}', outer)} of them.")
    return statement, words["ask"].format(name=name, item=item), solution, whole, equations


# -- backward_rates --------------------------------------------------------------------------------------------

_WORK = (("packs", "packed", "pack", "boxes"), ("bakes", "baked", "bake", "cookies"),
         ("types", "typed", "type", "pages"), ("picks", "picked", "pick", "apples"))
_RATE_WORDS = {
    "base": ("{name} {verbs} {r1} {unit} an hour for some hours.",
             "For a few hours, {name} {verbs} {r1} {unit} an hour."),
    "helper": ("A friend works beside {name} during those hours and {verbs} {r2} {unit} an hour.",
               "During those hours a helper {verbs} {r2} {unit} an hour too."),
    "longer": ("Then {name} {verbs} {r3} {unit} an hour for {k} hours longer than that.",
               "After that, {name} switches to {r3} {unit} an hour, {k} hours longer than the first part."),
    "twice": ("Then {name} {verbs} {r4} {unit} an hour for {times} as long.",
              "After that, {name} {verbs} {r4} {unit} an hour for {times} as many hours."),
    "fixed": ("{e} {unit} had already been {verbed} before {name} started.", "A neighbour adds {e} {unit} at the end."),
    "total": ("{T} {unit} are {verbed} in all.", "Altogether {T} {unit} get {verbed}."),
    "ask": ("How many hours does {name} work at {r1} {unit} an hour?",
            "For how many hours does {name} {verb} at the first speed?"),
}
_TIMES_WORDS = {2: "twice", 3: "three times"}


def _backward_rates(parts: tuple[str, ...], d: Draw):
    verbs, verbed, verb, unit = d.rng.choice(_WORK)
    hours, r1, r2, r3, r4 = d.int(3, 14), d.int(12, 45), d.int(11, 30), d.int(11, 30), d.int(11, 30)
    k, times, e = d.int(2, 6), d.int(2, 3), d.int(15, 150)
    made = {"first": r1 * hours, "helper": r2 * hours, "longer": r3 * (hours + k), "twice": r4 * times * hours,
            "fixed": e}
    total = made["first"] + sum(made[part] for part in parts)
    fields = {"name": d.name(), "verbs": verbs, "verbed": verbed, "verb": verb, "unit": unit, "r1": r1, "r2": r2,
              "r3": r3, "r4": r4, "k": k, "times": _TIMES_WORDS[times], "e": e, "T": total}
    order = ["base", *(p for p in ("helper", "longer", "twice", "fixed") if p in parts), "total"]
    statement = [d.pick(*_RATE_WORDS[key]).format(**fields) for key in order]
    terms = {"first": f"first = {r1} * ans", "helper": f"helper = {r2} * ans", "longer": f"second = {r3} * (ans + {k})",
             "twice": f"second = {r4} * {times} * ans"}
    equations = [terms["first"], *(terms[p] for p in parts if p in terms)]
    equations.append(" + ".join(["first", *({"helper": "helper", "longer": "second", "twice": "second",
                                             "fixed": str(e)}[p] for p in parts)]) + f" = {total}")
    solution, fixed, per_hour = [], [e] if "fixed" in parts else [], [r1]
    if "helper" in parts:
        per_hour.append(r2)
    if "longer" in parts:
        solution.append(f"The {k} extra hours at {r3} an hour make {calc(f'{r3}*{k}', r3 * k)} {unit}.")
        fixed.append(r3 * k)
        per_hour.append(r3)
    if "twice" in parts:
        solution.append(f"{times} hours at {r4} an hour make {calc(f'{r4}*{times}', r4 * times)} {unit}.")
        per_hour.append(r4 * times)
    rest = total - sum(fixed)
    if len(fixed) == 2:
        solution.append(f"With the {e} other {unit} that is {calc(f'{fixed[0]}+{fixed[1]}', sum(fixed))} {unit}.")
    if fixed:
        solution.append(f"That leaves {calc(f'{total}-{sum(fixed)}', rest)} {unit}.")
    rate = sum(per_hour)
    if len(per_hour) > 1:
        solution.append(f"Each hour at the first speed comes with {calc('+'.join(map(str, per_hour)), rate)} "
                        f"{unit} in all.")
    solution.append(f"So {fields['name']} works {calc(f'{rest}/{rate}', hours)} hours at the first speed.")
    return statement, d.pick(*_RATE_WORDS["ask"]).format(**fields), solution, hours, equations


FAMILIES: dict[str, Family] = {family.name: family for family in (
    _family("start_from_end", _start_from_end,
            trained=("fraction+spend", "spend+fraction", "gain+multiply", "multiply+spend", "spend+gain"),
            compositional=("multiply+fraction", "fraction+gain", "gain+fraction+spend")),
    _family("two_unknowns", _two_unknowns,
            trained=("sum+difference", "sum+times", "sum+value"),
            compositional=("difference+times", "difference+value", "times+value")),
    _family("part_whole", _part_whole,
            trained=("percent+fraction", "fraction+percent", "fraction+rest", "rest+percent"),
            compositional=("percent+rest", "rest+fraction", "fraction+percent+rest")),
    _family("backward_rates", _backward_rates,
            trained=("fixed", "helper", "longer", "twice", "helper+fixed"),
            compositional=("longer+fixed", "helper+longer", "helper+twice+fixed")),
)}
FAMILY_NAMES = (FORWARD, *FAMILIES)


def family_problems(family: str, count: int, seed: int = 0, split: str = "train") -> list[Problem]:
    """`count` problems of `family` cycling through the split's templates; the same arguments give the same list."""
    if family == FORWARD:
        return synthetic_problems(count, seed, split)
    if family not in FAMILIES:
        raise ValueError(f"synthetic: unknown family {family!r}; known: {', '.join(FAMILY_NAMES)}")
    if split not in SPLITS:
        raise ValueError(f"synthetic: {family} has no split {split!r}; it has {', '.join(SPLITS)}")
    templates = FAMILIES[family].compositional if split == "test_compositional" else FAMILIES[family].trained
    draw, names = Draw(random.Random(f"{seed}/{family}/{split}")), list(templates)
    problems, seen = [], set()
    while len(problems) < count:
        template = names[len(problems) % len(names)]
        statement, ask, solution, answer, equations = templates[template](draw)
        add_distractor(statement, draw)
        question = " ".join([*statement, ask])
        if bucket(numbers_key(template, equations)) not in _BUCKETS[split] or question in seen:
            continue
        seen.add(question)
        problems.append(Problem(
            id=f"synthetic-{family}-{split}-{len(problems)}-{template}",
            source=f"synthetic/{family}/{split}",
            question=question,
            answer=Fraction(answer),
            answer_text=format_number(Fraction(answer)),
            equation="\n".join(equations),
            solution="\n".join(solution),
        ))
    return problems


def numbers_key(template: str, equations: list[str]) -> str:
    """What train, validation and test never share: a composition with the numbers of its relations."""
    return " ".join([template, *re.findall(r"\d+", " ".join(equations))])


def parse_dataset(spec: str) -> tuple[str, str]:
    """(family, split) of what follows `synthetic/`: `test`, `two_unknowns`, `two_unknowns/test_compositional`.

    The family defaults to forward and the split to test.
    """
    first, _, second = spec.partition("/")
    if first in FAMILY_NAMES:
        return first, second or "test"
    if second:
        raise ValueError(f"synthetic: unknown family {first!r}; known: {', '.join(FAMILY_NAMES)}")
    return FORWARD, first or "test"
