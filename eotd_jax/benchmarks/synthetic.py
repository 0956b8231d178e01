"""The synthetic benchmark's forward family: templated word problems of 2 to 5 steps, each solved in the
order its text gives the quantities, with known answers and gold thoughts (the families solved in another
order are in `synthetic_families`, which also builds its problems with the tools here).

    synthetic_problems(200, split="test")          # in-distribution test problems
    synthetic_problems(200, split="test_unseen")   # templates no training split uses

Numbers need 2- and 3-digit multiplication and division, so that computing in
prose is hard for a small model (as in GSM8K); about half the problems carry a
distractor sentence with a number the answer does not use; wording varies.
Every problem carries a GSM8K-style solution (calculator annotations
`<<a*b=c>>`, from which the gold teacher derives CoT and PoT) and a
declarative EoT system in `equation`.

Splits never share a question: each question's hash picks one of train (80%),
validation (10%) and test (10%), and a split keeps only its own draws;
`test_unseen` draws from the held-out templates only. `seed` varies the draws.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from fractions import Fraction

from eotd_jax.benchmarks.problem import Problem
from eotd_jax.thoughts.answers import format_number

SPLITS = ("train", "validation", "test", "test_unseen")
_BUCKETS = {"train": range(0, 8), "validation": range(8, 9), "test": range(9, 10), "test_unseen": range(0, 10)}
_NAMES = ("Ava", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Iris", "Jun", "Kofi", "Lena", "Mia",
          "Noah", "Omar", "Priya")
_ITEMS = ("apples", "pencils", "stickers", "marbles", "cookies", "books", "cards", "shells", "stamps", "beads")


def calc(expression: str, value: int) -> str:
    """`12*15=<<12*15=180>>180`: a calculation as GSM8K's solutions annotate it."""
    return f"{expression}=<<{expression}={value}>>{value}"


class Draw:
    """Random choices for one problem."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def name(self) -> str:
        return self.rng.choice(_NAMES)

    def names(self, count: int) -> list[str]:
        return self.rng.sample(_NAMES, count)

    def item(self) -> str:
        return self.rng.choice(_ITEMS)

    def int(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def pick(self, *options: str) -> str:
        return self.rng.choice(options)


# Each template returns (statement sentences, question sentence, solution lines, answer, EoT equations).
Template = Callable[[Draw], tuple[list[str], str, list[str], int, list[str]]]


def _packing(d: Draw):
    name, rate, hours, extra = d.name(), d.int(12, 48), d.int(11, 19), d.int(10, 99)
    packed, total = rate * hours, rate * hours + extra
    statement = [d.pick(f"{name} packs {rate} boxes every hour for {hours} hours.",
                        f"For {hours} hours, {name} packs {rate} boxes an hour."),
                 f"Then {name} packs {extra} more boxes."]
    solution = [f"In {hours} hours {name} packs {calc(f'{rate}*{hours}', packed)} boxes.",
                f"In all that is {calc(f'{packed}+{extra}', total)} boxes."]
    return statement, f"How many boxes does {name} pack in all?", solution, total, \
        [f"packed = {rate} * {hours}", f"ans = packed + {extra}"]


def _bags(d: Draw):
    name, item, bags, per_bag, loose = d.name(), d.item(), d.int(12, 35), d.int(11, 29), d.int(5, 60)
    in_bags, total = bags * per_bag, bags * per_bag + loose
    statement = [d.pick(f"{name} has {bags} bags with {per_bag} {item} in each bag.",
                        f"{name} owns {bags} bags, and each bag holds {per_bag} {item}."),
                 f"{name} also has {loose} loose {item}."]
    solution = [f"The bags hold {calc(f'{bags}*{per_bag}', in_bags)} {item}.",
                f"With the loose ones that is {calc(f'{in_bags}+{loose}', total)} {item}."]
    return statement, f"How many {item} does {name} have?", solution, total, \
        [f"in_bags = {bags} * {per_bag}", f"ans = in_bags + {loose}"]


def _sharing(d: Draw):
    name, item, people, each, given = d.name(), d.item(), d.int(12, 25), d.int(11, 39), d.int(2, 9)
    total, left = people * each, each - given
    statement = [d.pick(f"{name} shares {total} {item} equally among {people} friends.",
                        f"{total} {item} are split evenly between {people} friends of {name}."),
                 f"Each friend then gives away {given} {item}."]
    solution = [f"Each friend gets {calc(f'{total}/{people}', each)} {item}.",
                f"After giving some away each has {calc(f'{each}-{given}', left)} {item}."]
    return statement, f"How many {item} does each friend have now?", solution, left, \
        [f"share * {people} = {total}", f"ans = share - {given}"]


def _budget(d: Draw):
    name, item, count, unit, left = d.name(), d.item(), d.int(12, 25), d.int(11, 40), d.int(5, 95)
    cost, budget = count * unit, count * unit + left
    statement = [f"{name} has ${budget}.",
                 d.pick(f"{name} buys {count} {item} at ${unit} each.", f"{count} {item} cost ${unit} apiece, and "
                        f"{name} buys them all.")]
    solution = [f"The {item} cost {calc(f'{count}*{unit}', cost)} dollars.",
                f"{name} has {calc(f'{budget}-{cost}', left)} dollars left."]
    return statement, d.pick("How many dollars are left?", f"How much money does {name} have left?"), solution, \
        left, [f"cost = {count} * {unit}", f"{budget} = cost + ans"]


def _two_purchases(d: Draw):
    name = d.name()
    pens, pen_price, books, book_price = d.int(11, 24), d.int(3, 9), d.int(2, 9), d.int(12, 45)
    pen_cost, book_cost = pens * pen_price, books * book_price
    spent = pen_cost + book_cost
    budget = spent + d.int(5, 99)
    statement = [f"{name} buys {pens} pens at ${pen_price} each and {books} books at ${book_price} each.",
                 f"{name} pays with ${budget}."]
    solution = [f"The pens cost {calc(f'{pens}*{pen_price}', pen_cost)} dollars.",
                f"The books cost {calc(f'{books}*{book_price}', book_cost)} dollars.",
                f"Together that is {calc(f'{pen_cost}+{book_cost}', spent)} dollars.",
                f"The change is {calc(f'{budget}-{spent}', budget - spent)} dollars."]
    return statement, f"How much change does {name} get?", solution, budget - spent, \
        [f"pens = {pens} * {pen_price}", f"books = {books} * {book_price}", f"{budget} = pens + books + ans"]


def _buses(d: Draw):
    seats, buses, drivers = d.int(21, 48), d.int(12, 19), d.int(2, 3)
    students = seats * buses
    statement = [d.pick(f"{students} students go on a school trip.", f"A school sends {students} students on a trip."),
                 f"Each bus holds {seats} students and needs {drivers} drivers."]
    solution = [f"They need {calc(f'{students}/{seats}', buses)} buses.",
                f"So they need {calc(f'{buses}*{drivers}', buses * drivers)} drivers."]
    return statement, "How many drivers are needed if every bus is full?", solution, buses * drivers, \
        [f"buses * {seats} = {students}", f"ans = buses * {drivers}"]


def _wages(d: Draw):
    name, rate, hours, days, spent = d.name(), d.int(11, 29), d.int(4, 9), d.int(11, 22), d.int(20, 150)
    daily, earned = rate * hours, rate * hours * days
    statement = [f"{name} earns ${rate} an hour and works {hours} hours a day.",
                 d.pick(f"{name} works {days} days this month and spends ${spent} on bus fares.",
                        f"This month {name} works {days} days; bus fares cost ${spent}.")]
    solution = [f"{name} earns {calc(f'{rate}*{hours}', daily)} dollars a day.",
                f"In {days} days that is {calc(f'{daily}*{days}', earned)} dollars.",
                f"After the fares {name} keeps {calc(f'{earned}-{spent}', earned - spent)} dollars."]
    return statement, f"How many dollars does {name} keep this month?", solution, earned - spent, \
        [f"daily = {rate} * {hours}", f"earned = daily * {days}", f"ans = earned - {spent}"]


def _garden(d: Draw):
    name, rows, per_row, beds = d.name(), d.int(12, 24), d.int(11, 25), d.int(3, 9)
    planted = rows * per_row
    died = planted % beds + beds * d.int(1, 4)
    alive = planted - died
    statement = [f"{name} plants {rows} rows of {per_row} tulips.",
                 f"{died} tulips die, and {name} moves the rest into {beds} equal beds."]
    solution = [f"{name} plants {calc(f'{rows}*{per_row}', planted)} tulips.",
                f"{calc(f'{planted}-{died}', alive)} tulips live.",
                f"Each bed gets {calc(f'{alive}/{beds}', alive // beds)} tulips."]
    return statement, "How many tulips are in each bed?", solution, alive // beds, \
        [f"planted = {rows} * {per_row}", f"alive + {died} = planted", f"ans * {beds} = alive"]


def _discount(d: Draw):
    name, price, percent, count = d.name(), d.int(6, 45) * 20, d.rng.choice((10, 20, 25, 50)), d.int(2, 6)
    discount = price * percent // 100
    paid = price - discount
    statement = [f"A bike costs ${price}.", f"{name} buys {count} bikes at {percent}% off."]
    solution = [f"The discount is {calc(f'{price}*{percent}/100', discount)} dollars a bike.",
                f"Each bike costs {calc(f'{price}-{discount}', paid)} dollars.",
                f"{count} bikes cost {calc(f'{paid}*{count}', paid * count)} dollars."]
    return statement, f"How many dollars does {name} pay?", solution, paid * count, \
        [f"discount = {price} * {percent} / 100", f"each + discount = {price}", f"ans = each * {count}"]


def _fraction_sold(d: Draw):
    name, item, part, box = d.name(), d.item(), d.int(3, 5), d.int(4, 9)
    total = part * box * d.int(5, 30)
    sold, left = total // part, total - total // part
    statement = [f"{name} has {total} {item}.",
                 d.pick(f"{name} sells 1/{part} of them and packs the rest in boxes of {box}.",
                        f"After selling 1/{part} of them, {name} puts the rest into boxes of {box}.")]
    solution = [f"{name} sells {calc(f'{total}/{part}', sold)} {item}.",
                f"{calc(f'{total}-{sold}', left)} {item} are left.",
                f"That fills {calc(f'{left}/{box}', left // box)} boxes."]
    return statement, f"How many boxes does {name} fill?", solution, left // box, \
        [f"sold = {total} / {part}", f"left = {total} - sold", f"ans * {box} = left"]


def _sum_and_difference(d: Draw):
    first, second = d.names(2)
    smaller, gap = d.int(40, 400), d.int(11, 90)
    larger, total = smaller + gap, 2 * smaller + gap
    twice = total - gap
    statement = [f"{first} and {second} have {total} stamps together.",
                 f"{first} has {gap} more stamps than {second}."]
    solution = [f"Without the difference they would have {calc(f'{total}-{gap}', twice)} stamps.",
                f"So {second} has {calc(f'{twice}/2', smaller)} stamps.",
                f"{first} has {calc(f'{smaller}+{gap}', larger)} stamps."]
    return statement, f"How many stamps does {first} have?", solution, larger, \
        [f"ans + other = {total}", f"ans - other = {gap}"]


def _reading(d: Draw):
    name, per_day, days, later = d.name(), d.int(12, 35), d.int(5, 9), d.int(11, 25)
    rest = later * d.int(4, 12)
    pages = per_day * days + rest
    read = per_day * days
    statement = [f"A book has {pages} pages.", f"{name} reads {per_day} pages a day for {days} days.",
                 f"Then {name} reads {later} pages a day."]
    solution = [f"{name} first reads {calc(f'{per_day}*{days}', read)} pages.",
                f"{calc(f'{pages}-{read}', rest)} pages are left.",
                f"They take {calc(f'{rest}/{later}', rest // later)} more days."]
    return statement, f"How many more days does {name} need to finish the book?", solution, rest // later, \
        [f"read = {per_day} * {days}", f"rest + read = {pages}", f"ans * {later} = rest"]


def _savings(d: Draw):
    name, weekly, weeks, has = d.name(), d.int(12, 45), d.int(11, 20), d.int(20, 99)
    saved = weekly * weeks
    price = saved + has + d.int(15, 200)
    statement = [f"{name} wants a game console that costs ${price}.", f"{name} already has ${has}.",
                 d.pick(f"{name} saves ${weekly} a week for {weeks} weeks.",
                        f"For {weeks} weeks {name} puts away ${weekly} each week.")]
    solution = [f"{name} saves {calc(f'{weekly}*{weeks}', saved)} dollars.",
                f"With the money {name} had that is {calc(f'{saved}+{has}', saved + has)} dollars.",
                f"{name} still needs {calc(f'{price}-{saved + has}', price - saved - has)} dollars."]
    return statement, f"How many more dollars does {name} need?", solution, price - saved - has, \
        [f"saved = {weekly} * {weeks}", f"saved + {has} + ans = {price}"]


def _factory(d: Draw):
    box, boxes, price = d.int(4, 8), d.int(25, 120), d.int(3, 9)
    made = box * boxes
    statement = [d.pick(f"A machine makes {made} toys in one shift.", f"In one shift a machine turns out {made} toys."),
                 f"The toys are packed {box} to a box, and each box sells for ${price}."]
    solution = [f"The toys fill {calc(f'{made}/{box}', boxes)} boxes.",
                f"The boxes sell for {calc(f'{boxes}*{price}', boxes * price)} dollars."]
    return statement, "How many dollars do the boxes sell for?", solution, boxes * price, \
        [f"boxes * {box} = {made}", f"ans = boxes * {price}"]


def _tickets(d: Draw):
    adults, adult_price, children, child_price = d.int(11, 30), d.int(12, 25), d.int(11, 40), d.int(5, 11)
    adult_cost, child_cost = adults * adult_price, children * child_price
    spent = adult_cost + child_cost
    budget = spent + d.int(10, 300)
    statement = [f"A club has ${budget} for a museum visit.",
                 f"Adult tickets cost ${adult_price} and child tickets cost ${child_price}.",
                 f"{adults} adults and {children} children go."]
    solution = [f"Adult tickets cost {calc(f'{adults}*{adult_price}', adult_cost)} dollars.",
                f"Child tickets cost {calc(f'{children}*{child_price}', child_cost)} dollars.",
                f"All tickets cost {calc(f'{adult_cost}+{child_cost}', spent)} dollars.",
                f"The club has {calc(f'{budget}-{spent}', budget - spent)} dollars left."]
    return statement, "How many dollars does the club have left?", solution, budget - spent, \
        [f"adult = {adults} * {adult_price}", f"child = {children} * {child_price}",
         f"ans + adult + child = {budget}"]


def _resale(d: Draw):
    name, packs, per_pack, price = d.name(), d.int(11, 25), d.int(6, 12), d.int(4, 9)
    pack_price = d.int(12, per_pack * price - 3)
    given = d.int(3, min(20, (packs * (per_pack * price - pack_price) - 1) // price))  # a profit, not a loss
    cost, pens = packs * pack_price, packs * per_pack
    left = pens - given
    income = left * price
    statement = [f"{name} buys {packs} packs of pens at ${pack_price} a pack.",
                 f"Each pack has {per_pack} pens.",
                 f"{name} gives {given} pens to friends and sells the rest for ${price} each."]
    solution = [f"The packs cost {calc(f'{packs}*{pack_price}', cost)} dollars.",
                f"There are {calc(f'{packs}*{per_pack}', pens)} pens.",
                f"{calc(f'{pens}-{given}', left)} pens are sold.",
                f"They bring {calc(f'{left}*{price}', income)} dollars.",
                f"The profit is {calc(f'{income}-{cost}', income - cost)} dollars."]
    return statement, f"How many dollars of profit does {name} make?", solution, income - cost, \
        [f"cost = {packs} * {pack_price}", f"pens = {packs} * {per_pack}", f"sold + {given} = pens",
         f"ans + cost = sold * {price}"]


# Held out of every training split: the `test_unseen` split.
def _ages(d: Draw):
    first, second = d.names(2)
    times, younger = d.int(2, 5), d.int(11, 60)
    older = times * younger
    total = older + younger
    statement = [f"{first} is {times} times as old as {second}.",
                 f"Their ages add up to {total} years."]
    solution = [f"Together they are {calc(f'{times}+1', times + 1)} times {second}'s age.",
                f"{second} is {calc(f'{total}/{times + 1}', younger)} years old.",
                f"{first} is {calc(f'{younger}*{times}', older)} years old."]
    return statement, f"How old is {first}?", solution, older, \
        [f"ans = {times} * other", f"ans + other = {total}"]


def _travel(d: Draw):
    name, speed, hours, slow, slow_hours = d.name(), d.int(41, 90), d.int(2, 9), d.int(11, 39), d.int(2, 6)
    fast_distance, slow_distance = speed * hours, slow * slow_hours
    statement = [f"{name} drives at {speed} miles an hour for {hours} hours.",
                 f"Then {name} cycles at {slow} miles an hour for {slow_hours} hours."]
    solution = [f"Driving covers {calc(f'{speed}*{hours}', fast_distance)} miles.",
                f"Cycling covers {calc(f'{slow}*{slow_hours}', slow_distance)} miles.",
                f"In all {calc(f'{fast_distance}+{slow_distance}', fast_distance + slow_distance)} miles."]
    return statement, f"How many miles does {name} travel?", solution, fast_distance + slow_distance, \
        [f"drive = {speed} * {hours}", f"cycle = {slow} * {slow_hours}", "ans = drive + cycle"]


def _recipe(d: Draw):
    name, servings, per_serving, times = d.name(), d.int(3, 8), d.int(12, 45), d.int(3, 12)
    grams, wanted = servings * per_serving, servings * times
    statement = [f"A recipe uses {grams} grams of flour for {servings} servings.",
                 f"{name} wants to make {wanted} servings."]
    solution = [f"One serving needs {calc(f'{grams}/{servings}', per_serving)} grams.",
                f"{wanted} servings need {calc(f'{per_serving}*{wanted}', per_serving * wanted)} grams."]
    return statement, f"How many grams of flour does {name} need?", solution, per_serving * wanted, \
        [f"per_serving * {servings} = {grams}", f"ans = per_serving * {wanted}"]


TRAIN_TEMPLATES: dict[str, Template] = {
    "packing": _packing, "bags": _bags, "sharing": _sharing, "budget": _budget, "two_purchases": _two_purchases,
    "buses": _buses, "wages": _wages, "garden": _garden, "discount": _discount, "fraction_sold": _fraction_sold,
    "sum_and_difference": _sum_and_difference, "reading": _reading, "savings": _savings, "factory": _factory,
    "tickets": _tickets, "resale": _resale,
}
UNSEEN_TEMPLATES: dict[str, Template] = {"ages": _ages, "travel": _travel, "recipe": _recipe}

_DISTRACTORS = (
    lambda d: f"{d.name()} is {d.int(8, 70)} years old.",
    lambda d: f"The shop opened {d.int(3, 40)} years ago.",
    lambda d: f"It rained on {d.int(2, 19)} days last month.",
    lambda d: f"{d.name()} also keeps {d.int(12, 250)} {d.item()} at home.",
    lambda d: f"The town has {d.int(120, 990)} houses.",
)


def add_distractor(statement: list[str], d: Draw) -> None:
    """Half the time, a sentence with a number the answer does not use, somewhere in the statement."""
    if d.rng.random() < 0.5:
        statement.insert(d.rng.randint(0, len(statement)), d.rng.choice(_DISTRACTORS)(d))


def _question(template: Template, d: Draw) -> tuple[str, list[str], int, list[str]]:
    statement, ask, solution, answer, equations = template(d)
    add_distractor(statement, d)
    return " ".join([*statement, ask]), solution, answer, equations


def bucket(text: str) -> int:
    """0-9 from a hash of `text`: which split a problem belongs to (train 0-7, validation 8, test 9)."""
    return hashlib.sha256(text.encode()).digest()[0] % 10


def synthetic_problems(count: int, seed: int = 0, split: str = "train") -> list[Problem]:
    """`count` problems cycling through the split's templates; the same arguments give the same list."""
    if split not in SPLITS:
        raise ValueError(f"synthetic: unknown split {split!r}; known: {', '.join(SPLITS)}")
    templates = UNSEEN_TEMPLATES if split == "test_unseen" else TRAIN_TEMPLATES
    draw, names, buckets = Draw(random.Random(f"{seed}/{split}")), list(templates), _BUCKETS[split]
    problems, seen = [], set()
    while len(problems) < count:
        template = names[len(problems) % len(names)]
        question, solution, answer, equations = _question(templates[template], draw)
        if bucket(question) not in buckets or question in seen:
            continue
        seen.add(question)
        problems.append(Problem(
            id=f"synthetic-{split}-{len(problems)}-{template}",
            source=f"synthetic/{split}",
            question=question,
            answer=Fraction(answer),
            answer_text=format_number(Fraction(answer)),
            equation="\n".join(equations),
            solution="\n".join(solution),
        ))
    return problems
