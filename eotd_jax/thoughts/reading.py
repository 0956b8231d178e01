"""One reader per thought: what a model wrote -> the canonical form its executor takes.

Real teachers and students wrap their rationales in prose, Markdown fences,
comment lines and answer-printing scaffolds. The readers find the rationale in
that text WITHOUT executing anything (regular expressions and `ast` only, in
the main process); the sandbox then runs the form they return, unchanged in
its policy. Shared by data_gen's verification and the student eval.

- PoT: the code of the fenced `python` blocks (```output / console blocks
  skipped) or the code found in the text; imports whose names are never used
  dropped; the prelude names it uses without binding them imported
  (`pot.PRELUDE`); when no top-level `ans` is assigned, the answer is made explicit:
  the last `print(...)` becomes `ans = <what it shows>`, a called function that
  returns becomes `ans = f()`, a defined but never called `solution()` is called.
  Every rewrite only makes explicit what the program does when run as written
  (`__name__` is "__main__"): a printed `'%d' % x` stays `'%d' % x`, an f-string
  field keeps its format, the other printed values are still evaluated, a
  `__name__` guard is resolved as Python resolves it, a `*` import that binds a
  name the program reads stays, numpy calls become helpers with numpy's
  semantics (`numerics.py`); sympy programs run as written. Where that cannot be made sure, the program runs
  as written (and fails where the sandbox lacks what it needs) or is rejected.
- EoT: the equations of fenced blocks or of the text; comment lines (`%`, `#`,
  `//`) and prose lines dropped; `^ × ÷ −`, `$`, thousands separators, `2x`
  normalised. The functions and the percent reading are the parser's (`eot.py`).
- CoT: the prose itself (`cot.py` reads its answer).

Where a PoT or EoT reply puts its code in fences and states a final answer in
the prose around them (`\\boxed{18}`, "The answer is 18"), that answer is
recorded as `stated`: the verifier rejects a reply whose prose contradicts
what its program computes, so no wrong sentence reaches the training data.

The training target stays what the model wrote; the form is recorded beside it.
`read_rationale` is the one entry: it refuses a text longer than MAX_TEXT_CHARS
unread, and every step below it is linear in the text (no pattern backtracks).
"""

from __future__ import annotations

import ast
import bisect
import builtins
import dataclasses
import itertools
import re
import string
import textwrap
from fractions import Fraction

from eotd_jax.thoughts import numerics
from eotd_jax.thoughts.cot import MAX_TEXT_CHARS, marked_answer
from eotd_jax.thoughts.outcome import Failure
from eotd_jax.thoughts.pot import prelude_imports

# Possessive quantifiers (`*+`) never give back what they took: no pattern here backtracks over a run of blanks,
# backticks or letters, so each is linear in the text.
_FENCE = re.compile(r"^[ \t]*+(?P<mark>`{3,}+|~{3,}+)[ \t]*+(?P<lang>[\w+#.-]*+)[^\n]*+\n"
                    r"(?P<body>.*?)(?:^[ \t]*+(?P=mark)[ \t]*+$|\Z)", re.MULTILINE | re.DOTALL)
_OUTPUT_LANGS = frozenset("output console stdout stderr result results".split())
_CODE_LANGS = frozenset("python py python3 py3 ipython pycon code".split()) | {""}
_FAILED_RUN = re.compile(r"Traceback \(most recent call last\)|^\w*(?:Error|Exception)\b", re.MULTILINE)
_ANSWERED = re.compile(r"^[ \t]*+(?:ans[ \t]*+=|return\b|print\()", re.MULTILINE)
_NEXT_QUESTION = re.compile(r"\n[ \t]*+(?:Q|Question|Problem)[ \t]*+(?:\d++[ \t]*+)?:")
_CODE_START = re.compile(r"^(?:def |class |import |from \w|for |while |if |with |try:|@|print\(|[A-Za-z_][\w.]*+"
                         r"(?:\[[^\]]*+\])?[ \t]*+(?:[-+*/%]|\*\*|//)?=(?!=)|[A-Za-z_][\w.]*+\(.*\)[ \t]*+$|#)")


@dataclasses.dataclass(frozen=True)
class Reading:
    """The canonical form of a rationale, or why none was found (`form` is None exactly then).

    `stated` is the final answer the prose around fenced code claims, if it claims one.
    """

    form: str | None
    failure: Failure | None = None
    message: str = ""
    stated: Fraction | None = None

    @classmethod
    def fail(cls, failure: Failure, message: str) -> Reading:
        return cls(None, failure, message[:500])


def read_rationale(thought: str, text: str) -> Reading:
    """The form of `text` that the executor of `thought` takes (rules in the module doc)."""
    if len(text) > MAX_TEXT_CHARS:
        return Reading.fail(Failure.TOO_LARGE, f"rationale longer than {MAX_TEXT_CHARS} characters")
    readers = {"cot": _read_cot, "pot": _read_pot, "eot": _read_eot}
    if thought not in readers:
        raise ValueError(f"unknown thought {thought!r}; known: {', '.join(readers)}")
    return readers[thought](_without_next_question(text))


def _without_next_question(text: str) -> str:
    """A completion model that goes on to write the next "Q: ..." of its few-shot prompt: that part is cut,
    once what comes before it has answered (so "Question 1: ..." sub-questions of one rationale stay).
    A line inside a fence, or one that is a Python statement (`Q: int = 1`), is code, never a question."""
    text = text.strip("\r\n").rstrip()  # a first line's indentation may be code's
    fences = [(m.start(), m.end()) for m in _FENCE.finditer(text)]
    starts = [start for start, _ in fences]
    for match in itertools.islice(_NEXT_QUESTION.finditer(text), 8):  # bounded: linear in the text
        index = bisect.bisect_right(starts, match.start()) - 1
        if index >= 0 and fences[index][1] > match.start():
            continue
        line_end = text.find("\n", match.start() + 1)
        if _is_statement(text[match.start() + 1: line_end if line_end >= 0 else len(text)].strip()):
            continue
        before = text[: match.start()]
        if _ANSWERED.search(before) or marked_answer(before) is not None:
            return before
    return text


def _is_statement(line: str) -> bool:
    try:
        ast.parse(line)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


def _read_cot(text: str) -> Reading:
    text = text.strip()
    return Reading(text) if text else Reading.fail(Failure.NO_ANSWER, "empty rationale")


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each Markdown fence in `text`, in order; an unclosed last fence runs to the end."""
    return [(m["lang"].lower(), textwrap.dedent(m["body"])) for m in _FENCE.finditer(text)]


def _stated_answer(text: str) -> Fraction | None:
    """The final answer the prose outside the fences states with an explicit marker (`\\boxed{}`, "The answer
    is", "Answer:", "####"), if any; concluding sentences and stray numbers are not read as claims."""
    if "```" not in text and "~~~" not in text:
        return None
    return marked_answer(_FENCE.sub(" ", text))


def _program_blocks(text: str) -> list[str]:
    """The Python blocks of a reply, without those whose ```output block shows they failed (a later one retries)."""
    blocks, fences = [], _fenced_blocks(text)
    for index, (lang, body) in enumerate(fences):
        if lang not in _CODE_LANGS or not _is_code(body):
            continue
        following = fences[index + 1] if index + 1 < len(fences) else ("", "")
        if following[0] in _OUTPUT_LANGS and _FAILED_RUN.search(following[1]):
            continue
        blocks.append(body)
    return blocks


# ---------------------------------------------------------------------------------------------- PoT


def _read_pot(text: str) -> Reading:
    blocks = _program_blocks(text)
    if not blocks and _FENCE.search(text):
        return Reading.fail(Failure.SYNTAX, "no runnable program in the reply's fences")
    source = "\n".join(_strip_prompts(b) for b in blocks) if blocks else _code_in_prose(text)
    try:
        tree = _parse_program(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        return Reading.fail(Failure.SYNTAX, f"no program found: {error}")
    try:
        helpers = set()
        if any(isinstance(node, (ast.Import, ast.ImportFrom)) for node in ast.walk(tree)):
            helpers = _portable_numerics(tree)
            _drop_unused_imports(tree)
        tree.body[:0] = prelude_imports(_unbound_names(tree))  # `ceil(x)` with no import: `from math import ceil`
        _resolve_name_guards(tree)
        _make_answer_explicit(tree)
        form = numerics.helpers_source(helpers) + ast.unparse(ast.fix_missing_locations(tree))
        return Reading(form, stated=_stated_answer(text))
    except RecursionError:
        return Reading.fail(Failure.TOO_LARGE, "program nested too deeply")


def _is_code(block: str) -> bool:
    """A block that does something (assigns, defines, imports, loops, calls, ...); not a bare `18` or `[1, 2]`
    shown as output."""
    try:
        tree = ast.parse(_strip_prompts(block))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return ">>>" not in block and bool(_CODE_START.match(block.lstrip()))  # broken code still counts as code
    return any(not isinstance(statement, ast.Expr) or not _is_shown_literal(statement.value)
               for statement in tree.body)


def _is_shown_literal(node: ast.expr) -> bool:
    """What an output block shows: a number, a text, a name, or a display of these (`-3`, `(1, 2)`)."""
    if isinstance(node, (ast.Constant, ast.Name)):
        return True
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.operand, ast.Constant)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_is_shown_literal(element) for element in node.elts)
    return False


def _parse_program(source: str) -> ast.Module:
    """The program's tree; a bare function body (a completion of a prompt ending in `def solution():`)
    is parsed as the body of `solution()`."""
    try:
        return ast.parse(source)
    except SyntaxError as error:
        bare_body = source[:1].isspace() or any(m in str(error) for m in ("'return' outside", "unexpected indent"))
        if not bare_body:
            raise
        return ast.parse("def solution():\n" + textwrap.indent(textwrap.dedent(source), "    "))


def _strip_prompts(block: str) -> str:
    """An interpreter transcript (`>>> x = 1`) as plain code; other blocks unchanged."""
    lines = block.splitlines()
    if not any(line.startswith(">>>") for line in lines):
        return block
    return "\n".join(line[4:] for line in lines if line.startswith((">>> ", "... ", ">>>", "...")))


def _code_in_prose(text: str) -> str:
    """The whole text if it parses, else the lines from the first to the last one that looks like code."""
    text = text.strip("\n").rstrip()
    try:
        ast.parse(text)
        return text
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        pass
    lines = text.splitlines()
    code = [i for i, line in enumerate(lines) if _CODE_START.match(line) or (line[:1].isspace() and line.strip())]
    if not code:
        return text
    kept = [line for line in lines[code[0]: code[-1] + 1] if not _is_prose_line(line)]
    return "\n".join(kept)


def _is_prose_line(line: str) -> bool:
    """A sentence between code lines ("This is the number of eggs sold.")."""
    if not line.strip() or line[:1].isspace() or _CODE_START.match(line) or not _PROSE.search(line):
        return False
    try:
        ast.parse(line)
        return False
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return True


def _portable_numerics(tree: ast.Module) -> set[str]:
    """`np.ceil(x)` -> `numpy_ceil(x)`, ... (the rules and the helpers' semantics are in `numerics.py`); returns
    the helpers the rewritten program calls.

    Only calls of the shape a helper takes are rewritten; a program that uses anything else of numpy keeps its
    import and is refused by the sandbox. Names that a `*` import of numpy binds are numpy's even where they
    shadow a builtin (`from numpy import *` binds `sum` and `round`).
    """
    modules: dict[str, str] = {}  # local name of an imported numpy -> the module
    imported: dict[str, tuple[str, str]] = {}  # local name of a from-imported name -> (module, name)
    read = _loaded_names(tree)
    if any(name.startswith(numerics.RESERVED_PREFIXES) for name in read | _bound_names(tree)):
        return set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update({_bound(a): a.name for a in node.names if a.name in numerics.EQUIVALENTS})
        elif isinstance(node, ast.ImportFrom) and node.module in numerics.EQUIVALENTS and not node.level:
            names = [a.name for a in node.names]
            if "*" in names:
                exported = numerics.exported_names(node.module) or frozenset()
                names = [n for n in read if n in exported and n not in _bound_names(tree)]
            imported.update({alias.asname or alias.name: (node.module, alias.name)
                             for alias in node.names if alias.name != "*"})
            imported.update({name: (node.module, name) for name in names if name not in imported})
    if not modules and not imported:
        return set()
    helpers: set[str] = set()

    def member(node: ast.expr) -> tuple[str, str] | None:
        """(module, name) when `node` names a member of numpy: `np.ceil`, or `ceil` from-imported."""
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            return imported.get(node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            return modules[node.value.id], node.attr
        return None

    def reference(target: str, node: ast.expr) -> ast.expr:
        module, _, name = target.rpartition(".")
        helpers.add(module or name)  # a helper, or a module the helpers import (builtins are none of them)
        if not module:
            return ast.copy_location(ast.Name(name, ast.Load()), node)
        return ast.copy_location(ast.Attribute(ast.Name(module, ast.Load()), name, ast.Load()), node)

    class Rewrite(ast.NodeTransformer):
        def visit_Call(self, node):
            self.generic_visit(node)
            found = member(node.func)
            rule = numerics.EQUIVALENTS[found[0]].get(found[1]) if found else None
            if rule is None or any(isinstance(a, ast.Starred) for a in node.args):
                return node
            target, counts, keywords = rule
            if len(node.args) + len(node.keywords) not in counts or any(k.arg not in keywords for k in node.keywords):
                return node
            node.func = reference(target, node.func)
            return node

        def visit_Name(self, node):
            return self._constant(node)

        def visit_Attribute(self, node):
            return self._constant(node) if member(node) else self.generic_visit(node)

        def _constant(self, node):
            found = member(node)
            target = numerics.CONSTANTS[found[0]].get(found[1]) if found else None
            return reference(target, node) if target else node

    Rewrite().visit(tree)
    return helpers


def _loaded_names(tree: ast.AST) -> set[str]:
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


def _bound_names(tree: ast.Module) -> set[str]:
    """Every name the program binds: assigned, defined, a parameter, imported (but by `*`), caught."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update(_bound(a) for a in node.names if a.name != "*")
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound


def _unbound_names(tree: ast.Module) -> set[str]:
    """Names the program reads but never binds and that are not builtins: what a runtime's prelude would give."""
    return _loaded_names(tree) - _bound_names(tree) - set(dir(builtins))


def _drop_unused_imports(tree: ast.Module) -> None:
    """Removes imported names the program never reads (`import numpy as np` as scaffolding), and a `*` import
    of a module whose names are known when the program reads none of them (`from math import *` stays where
    the program calls `pow`: math's two-argument `pow` shadows the builtin)."""
    read = _loaded_names(tree)

    def used(statement: ast.Import | ast.ImportFrom, alias: ast.alias) -> bool:
        if alias.name != "*":
            return _bound(alias) in read
        exported = numerics.exported_names(statement.module) if not statement.level else None
        return exported is None or bool(read & exported)

    for node in ast.walk(tree):
        body_fields = [f for f in ("body", "orelse", "finalbody") if isinstance(getattr(node, f, None), list)]
        for field in body_fields:
            kept = []
            for statement in getattr(node, field):
                if isinstance(statement, (ast.Import, ast.ImportFrom)):
                    statement.names = [a for a in statement.names if used(statement, a)]
                    if not statement.names:
                        continue
                kept.append(statement)
            setattr(node, field, kept or ([ast.Pass()] if field == "body" and node is not tree else []))


def _bound(alias: ast.alias) -> str:
    return alias.asname or alias.name.split(".", 1)[0]


def _resolve_name_guards(tree: ast.Module) -> None:
    """`if __name__ == "__main__": body` runs its body, `if __name__ != "__main__"` its `else` (the sandbox runs
    a program as a script): made visible to the answer search. Any other test stays as written."""
    resolved = []
    for statement in tree.body:
        outcome = _name_guard(statement.test) if isinstance(statement, ast.If) else None
        if outcome is None:
            resolved.append(statement)
        else:
            resolved.extend(statement.body if outcome else statement.orelse)
    tree.body = resolved


def _name_guard(test: ast.expr) -> bool | None:
    """The value of `__name__ == "<text>"` or `!=` (either side) when run as a script; None for other tests."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.Eq, ast.NotEq))):
        return None
    sides = (test.left, test.comparators[0])
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    texts = [s.value for s in sides if isinstance(s, ast.Constant) and isinstance(s.value, str)]
    if len(names) != 1 or len(texts) != 1:
        return None
    return (texts[0] == "__main__") == isinstance(test.ops[0], ast.Eq)


def _assigns_ans(tree: ast.Module) -> bool:
    """True when the program binds `ans` at module level, also inside `if` / `for` / ... (not inside functions)."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Name) and node.id == "ans" and isinstance(node.ctx, ast.Store):
            return True
        pending.extend(ast.iter_child_nodes(node))
    return False


def _make_answer_explicit(tree: ast.Module) -> None:
    """Ends the program in `ans = ...` when it answers by printing, returning or a bare last expression."""
    if _assigns_ans(tree):
        return
    functions = {s.name: s for s in tree.body if isinstance(s, ast.FunctionDef)}
    for index in range(len(tree.body) - 1, -1, -1):
        statement = tree.body[index]
        if not isinstance(statement, ast.Expr):
            continue
        value = statement.value
        if _is_print(value):
            answer = _printed_answer(value)
            if answer is not None:
                tree.body[index] = _assign_ans(answer)
                return
        elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in functions:
            if _answer_by_return(functions[value.func.id]):
                tree.body[index] = _assign_ans(value)
                return
        elif index == len(tree.body) - 1 and not isinstance(value, ast.Constant):
            tree.body[index] = _assign_ans(value)  # a notebook's last expression
            return
    if _nested_prints_to_ans(tree.body):
        return
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    uncalled = [f for name, f in functions.items() if name not in called and _takes_no_arguments(f)]
    chosen = functions.get("solution") if "solution" in functions else (uncalled[0] if len(uncalled) == 1 else None)
    if chosen is not None and _takes_no_arguments(chosen) and _answer_by_return(chosen):
        tree.body.append(_assign_ans(ast.Call(ast.Name(chosen.name, ast.Load()), [], [])))
        return
    named = [s.targets[0].id for s in tree.body if isinstance(s, ast.Assign) and len(s.targets) == 1
             and isinstance(s.targets[0], ast.Name) and _ANSWER_NAME.search(s.targets[0].id)
             and not isinstance(s.value, ast.Constant)]
    if named:  # `result = money_left` as the program's last word
        tree.body.append(_assign_ans(ast.Name(named[-1], ast.Load())))


_ANSWER_NAME = re.compile(r"answer|result", re.IGNORECASE)


def _nested_prints_to_ans(body: list[ast.stmt]) -> bool:
    """Prints inside top-level `if` / `for` / `while` / `with` / `try` become `ans = ...` (the last one run wins)."""
    changed = False
    for statement in body:
        if isinstance(statement, (ast.If, ast.For, ast.While, ast.With, ast.Try)):
            for field in ("body", "orelse", "finalbody"):
                block = getattr(statement, field, [])
                for index, inner in enumerate(block):
                    if isinstance(inner, ast.Expr) and _is_print(inner.value):
                        if (answer := _printed_answer(inner.value)) is not None:
                            block[index], changed = _assign_ans(answer), True
                changed = _nested_prints_to_ans(block) or changed
            for handler in getattr(statement, "handlers", []):
                changed = _nested_prints_to_ans(handler.body) or changed
    return changed


def _is_print(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"


def _takes_no_arguments(function: ast.FunctionDef) -> bool:
    arguments = function.args
    required = len(arguments.posonlyargs) + len(arguments.args) - len(arguments.defaults)
    return required == 0 and all(d is not None for d in arguments.kw_defaults)


def _answer_by_return(function: ast.FunctionDef) -> bool:
    """True when the function returns a value; a function that ends by printing is changed to return it."""
    if any(isinstance(n, ast.Return) and n.value is not None for n in ast.walk(function)):
        return True
    last = function.body[-1]
    if isinstance(last, ast.Expr) and _is_print(last.value) and (answer := _printed_answer(last.value)) is not None:
        function.body[-1] = ast.Return(answer)
        return True
    return False


def _assign_ans(value: ast.expr) -> ast.Assign:
    return ast.Assign([ast.Name("ans", ast.Store())], value)


# ---------------------------------------------------------------------------------------------- printed values
#
# `print(...)` becomes the value it shows, as text where the program formats it: `print(f"{x:.2f} dollars")` is
# `f'{x:.2f}'` ("15.00"), `print("%d apples" % x)` is `'%d' % (x,)` ("7" for 7.9), `print("Total:", x)` is `x`.
# Every other value the print shows is still evaluated, in the same order (`(f'{a}', x)[-1]`), so that an error
# in it fails the program as it would fail the original. Text that cannot be taken apart (a template computed
# at run time, `'%(name)d'`, `'{0.attr}'`) stays whole: its text is then the answer, which reads as a number
# only when it is one.


def _printed_answer(call: ast.Call) -> ast.expr | None:
    """What `print(...)` shows as its answer (see above), or None when it shows no value (only text)."""
    keywords = {k.arg: k.value for k in call.keywords}
    if any(isinstance(a, ast.Starred) for a in call.args) or set(keywords) - {"sep", "end"} \
            or not all(isinstance(v, ast.Constant) for v in keywords.values()):
        return None  # `print(*values)`, `print(x, file=f)`: not a line of the program's output
    parts = [_shown(arg) for arg in call.args]
    return _answer_of(parts)


def _answer_of(parts: list[tuple[ast.expr | None, list[ast.expr]]]) -> ast.expr | None:
    """The last shown value of `parts` ((shown, evaluated before it) pairs), after all that is evaluated before."""
    shown_at = [i for i, (shown, _) in enumerate(parts) if shown is not None]
    if not shown_at:
        return None
    last = shown_at[-1]
    before = [e for shown, evaluated in parts[:last] for e in (*evaluated, *([shown] if shown is not None else []))]
    before += parts[last][1]
    shown = parts[last][0]
    if not before:
        return shown
    return ast.Subscript(ast.Tuple([*before, shown], ast.Load()), ast.Constant(-1), ast.Load())


def _shown(node: ast.expr) -> tuple[ast.expr | None, list[ast.expr]]:
    """(the value `node` shows, or None for plain text; what else in it is evaluated before that value)."""
    if isinstance(node, ast.Constant):
        return (None, []) if isinstance(node.value, str) else (node, [])
    if isinstance(node, ast.JoinedStr):  # each field as an f-string of its own: conversion and format kept
        fields = [ast.JoinedStr([value]) for value in node.values if isinstance(value, ast.FormattedValue)]
        return (fields[-1], fields[:-1]) if fields else (None, [])
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "str" \
            and len(node.args) == 1 and not node.keywords and _is_text(node.args[0]):
        return _shown(node.args[0])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant) \
            and isinstance(node.left.value, str):
        return _printf_fields(node)
    if _is_format_call(node):
        return _format_fields(node)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and _is_text(node.left) and _is_text(node.right):
        left, right = _shown(node.left), _shown(node.right)
        answer = _answer_of([left, right])
        return (answer, []) if answer is not None else (None, [*left[1], *right[1]])
    return node, []


def _is_text(node: ast.expr) -> bool:
    """An expression that always builds text: a string, an f-string, `str(...)`, a format call or a sum of these."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr) or _is_format_call(node):
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "str":
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and _is_text(node.left) and _is_text(node.right)


def _is_format_call(node: ast.expr) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
            and isinstance(node.func.value, ast.Constant) and isinstance(node.func.value.value, str))


# A printf conversion: `%`, an optional (key), flags, width, precision, length, type.
_PRINTF_FIELD = re.compile(r"%(?:\([^)]*+\))?[#0 +-]*+(?:\*|\d++)?(?:\.(?:\*|\d++))?[hlL]?"
                           r"(?P<type>[diouxXeEfFgGcrsa%])")


def _printf_fields(node: ast.BinOp) -> tuple[ast.expr | None, list[ast.expr]]:
    """`"%d apples and %.1f kg" % (a, b)` -> `'%.1f' % (b,)` shown, `'%d' % (a,)` evaluated before it."""
    template = node.left.value
    fields = [m for m in _PRINTF_FIELD.finditer(template) if m["type"] != "%"]
    values = node.right.elts if isinstance(node.right, ast.Tuple) else None
    simple = all("(" not in m[0] and "*" not in m[0] for m in fields)
    if not fields or not simple:
        return (node, []) if fields else (None, [])
    if values is None:
        if len(fields) != 1:
            return node, []
        return ast.BinOp(ast.Constant(fields[0][0]), ast.Mod(), node.right), []  # the one value, as written
    if len(values) != len(fields) or any(isinstance(v, ast.Starred) for v in values):
        return node, []  # the original raises "not all arguments converted": so does its text
    shown = [ast.BinOp(ast.Constant(m[0]), ast.Mod(), ast.Tuple([v], ast.Load()))
             for m, v in zip(fields, values, strict=True)]
    return shown[-1], shown[:-1]


def _format_fields(node: ast.Call) -> tuple[ast.expr | None, list[ast.expr]]:
    """`"{} apples, {:.2f} kg".format(a, b)` -> `'{:.2f}'.format(b)` shown, `'{}'.format(a)` evaluated before it;
    when fields are not one per argument in order, the whole text."""
    try:
        parsed = string.Formatter().parse(node.func.value.value)
        fields = [(name, conversion, spec) for _, name, spec, conversion in parsed if name is not None]
    except ValueError:
        return node, []  # the original raises on its template: so does its text
    arguments = [*node.args, *(k.value for k in node.keywords)]
    names = [str(i) for i in range(len(node.args))] + [k.arg for k in node.keywords]
    wanted = [name or str(index) for index, (name, _, _) in enumerate(fields)]
    if not fields:
        return (None, [])
    automatic = {name == "" for name, _, _ in fields}
    if any(isinstance(a, ast.Starred) for a in node.args) or None in names or wanted != names \
            or len(automatic) > 1 or any("{" in spec for _, _, spec in fields):
        return node, []
    shown = [ast.Call(ast.Attribute(ast.Constant("{" + ("!" + conversion if conversion else "")
                                                 + (":" + spec if spec else "") + "}"), "format", ast.Load()),
                      [argument], []) for (_, conversion, spec), argument in zip(fields, arguments, strict=True)]
    return shown[-1], shown[:-1]


# ---------------------------------------------------------------------------------------------- EoT

_COMMENT_LINE = re.compile(r"^\s*+(?:%|#|//|--)")
_LIST_MARK = re.compile(r"^\s*+(?:\d++[.)]|[*•]|-(?=\s++[A-Za-z_]))\s++")
_CHARACTERS = str.maketrans({"×": "*", "·": "*", "⋅": "*", "∗": "*", "÷": "/", "∕": "/", "−": "-", "–": "-",
                             "—": "-", "$": None, "`": None, "≠": "!"})
_THOUSANDS = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?![\d.]|,\d)")
_IMPLICIT_PRODUCT = re.compile(r"(?<![\w.])(\d++(?:\.\d++)?)\s*+(?=[A-Za-z_(])(?![eE][-+]?\d)|(\))\s*+(?=[A-Za-z_(])")
_TRAILING_COMMENT = re.compile(r"\s(?://|%)\s++[A-Za-z]++\s++[A-Za-z]++.*$")  # words, not `total % boxes`
_DECLARATION = re.compile(r"^[A-Za-z_]\w*+\s*+=\s*+\?$")  # "meals = ?": an unknown announced, not an equation
_PERCENT_OF = re.compile(r"(\d)\s*+%\s++of\b")
_KEYWORD = re.compile(r"\b(yield|return|class|pass|from|with|import|global|def|del|assert|break|continue|except|"
                      r"finally|for|while|try|raise|nonlocal|lambda)\b")
# Words after the last operand ("cost = 5 dollars", "ans = meals (the number of meals)"), matched on the REVERSED
# line from its start: anchored at the line's end, one pass.
_TRAILING_WORDS_REVERSED = re.compile(r"\s*+(?:\)[^()]*[A-Za-z]\(|(?:[A-Za-z]++\s++)*[A-Za-z]{2,}+)\s++(?=[\w)])")
_LABEL = re.compile(r"^[A-Za-z][\w ]{0,30}:\s*")
_PROSE = re.compile(r"\b[A-Za-z]{2,}+\s++[A-Za-z]{2}")
_ANSWER_IS = re.compile(r"answer\s++is", re.IGNORECASE)
_NAMED_ANSWER = re.compile(r":?\s*`?([^`]{1,80}?)`?\s*[.:]?")


def _read_eot(text: str) -> Reading:
    blocks = [body for lang, body in _fenced_blocks(text) if lang not in _OUTPUT_LANGS and "=" in body]
    lines = "\n".join(blocks).splitlines() if blocks else text.splitlines()
    equations, answer_name = [], None
    for raw in lines:
        if _COMMENT_LINE.match(raw):
            answer_name = _named_answer(raw) or answer_name
            continue
        line = _normalise_equation(raw)
        if line is not None:
            equations.append(line)
        else:
            answer_name = _named_answer(raw) or answer_name
    if not equations:
        return Reading.fail(Failure.SYNTAX, "no equations found")
    named = answer_name is not None and answer_name != "ans" and _refers_to_unknowns(answer_name, equations)
    if named and not any(re.match(r"\s*ans\s*=", e) for e in equations):
        equations.append(f"ans = {answer_name}")  # "% ... The answer is meals:" (or `meals * 2`), no `ans` line
    return Reading("\n".join(equations), stated=_stated_answer(text))


def _normalise_equation(line: str) -> str | None:
    """One equation in the parser's notation, or None for a line that is prose or empty."""
    line = _LIST_MARK.sub("", line.translate(_CHARACTERS)).strip()
    line = _PERCENT_OF.sub(r"\1% *", line)  # "20% of total"
    line = _TRAILING_COMMENT.sub("", line).rstrip(" .,;:")
    if "=" not in line or _DECLARATION.match(line):
        return None
    if not _parses(line):
        line = _LABEL.sub("", line)  # "Equation 1: x + y = 10"
    if not _parses(line):
        line = _without_trailing_words(line)
    if not _parses(line):
        line = _KEYWORD.sub(r"\1_", line)  # "return = profit / cost": a Python keyword as a variable
    line = line.replace("^", "**")
    line = _THOUSANDS.sub(lambda m: m[0].replace(",", ""), line)
    line = _IMPLICIT_PRODUCT.sub(lambda m: (m[1] or m[2]) + " * ", line)
    if _PROSE.search(line.split("#", 1)[0]) and not _parses(line):
        return None  # "Let x = the number of meals"
    return line


def _named_answer(line: str) -> str | None:
    """What "... The answer is <this>." names at the end of the line (at most 80 characters), or None."""
    ends = [match.end() for match in _ANSWER_IS.finditer(line)]
    if not ends:
        return None
    rest = line[ends[-1]:].strip()
    match = _NAMED_ANSWER.fullmatch(rest) if len(rest) <= 90 else None
    return match[1] if match else None


def _without_trailing_words(line: str) -> str:
    """"ans = meals (the number of meals)" -> "ans = meals", "cost = 5 dollars" -> "cost = 5"."""
    match = _TRAILING_WORDS_REVERSED.match(line[::-1])
    return line[: len(line) - match.end()] if match else line


def _refers_to_unknowns(expression: str, equations: list[str]) -> bool:
    """True for an expression of the system's unknowns ("meals", "8 * x"); a bare number claimed in prose
    ("The answer is 3") never becomes the system's answer."""
    try:
        names = {n.id for n in ast.walk(ast.parse(expression.strip(), mode="eval")) if isinstance(n, ast.Name)}
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    unknowns = set(re.findall(r"[A-Za-z_]\w*", "\n".join(equations)))
    return bool(names) and names <= unknowns


def _parses(line: str) -> bool:
    sides = line.split("#", 1)[0].replace("==", "=").split("=")
    try:
        return len(sides) == 2 and all(ast.parse(s.strip(), mode="eval") for s in sides)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
