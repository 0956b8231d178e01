"""One reader per thought: what a model wrote -> the canonical form its executor takes.

Real teachers and students wrap their rationales in prose, Markdown fences,
comment lines and answer-printing scaffolds. The readers find the rationale in
that text WITHOUT executing anything (regular expressions and `ast` only, in
the main process); the sandbox then runs the form they return, unchanged in
its policy. Shared by data_gen's verification and the student eval.

- PoT: the code of the fenced `python` blocks (```output / console blocks
  skipped) or the code found in the text; imports whose names are never used
  dropped; the prelude names it uses without binding them imported
  (`pot.PRELUDE`); when no top-level `ans` is assigned, the answer is made
  explicit: the last `print(expr)` becomes `ans = expr`, a called function that returns
  becomes `ans = f()`, a defined but never called `solution()` is called.
- EoT: the equations of fenced blocks or of the text; comment lines (`%`, `#`,
  `//`) and prose lines dropped; `^ × ÷ −`, `$`, thousands separators, `2x`
  normalised. The functions and the percent reading are the parser's (`eot.py`).
- CoT: the prose itself (`cot.py` reads its answer).

Where a PoT or EoT reply puts its code in fences and states a final answer in
the prose around them (`\\boxed{18}`, "The answer is 18"), that answer is
recorded as `stated`: the verifier rejects a reply whose prose contradicts
what its program computes, so no wrong sentence reaches the training data.

The training target stays what the model wrote; the form is recorded beside it.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import itertools
import re
import textwrap
from fractions import Fraction

from eotd_jax.thoughts.cot import marked_answer
from eotd_jax.thoughts.outcome import Failure
from eotd_jax.thoughts.pot import prelude_imports

MAX_TEXT_CHARS = 50_000

_FENCE = re.compile(r"^[ \t]*(?P<mark>`{3,}|~{3,})[ \t]*(?P<lang>[\w+#.-]*)[^\n]*\n"
                    r"(?P<body>.*?)(?:^[ \t]*(?P=mark)[ \t]*$|\Z)", re.MULTILINE | re.DOTALL)
_OUTPUT_LANGS = frozenset("output console stdout stderr result results".split())
_CODE_LANGS = frozenset("python py python3 py3 ipython pycon code".split()) | {""}
_FAILED_RUN = re.compile(r"Traceback \(most recent call last\)|^\w*(?:Error|Exception)\b", re.MULTILINE)
_ANSWERED = re.compile(r"^\s*(?:ans\s*=|return\b|print\()", re.MULTILINE)
_NEXT_QUESTION = re.compile(r"\n[ \t]*(?:Q|Question|Problem)[ \t]*\d*[ \t]*:")
_CODE_START = re.compile(r"^(?:def |class |import |from \w|for |while |if |with |try:|@|print\(|[A-Za-z_][\w.]*"
                         r"(?:\[[^\]]*\])?\s*(?:[-+*/%]|\*\*|//)?=(?!=)|[A-Za-z_][\w.]*\(.*\)\s*$|#)")


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
    readers = {"cot": read_cot, "pot": read_pot, "eot": read_eot}
    if thought not in readers:
        raise ValueError(f"unknown thought {thought!r}; known: {', '.join(readers)}")
    return readers[thought](_without_next_question(text))


def _without_next_question(text: str) -> str:
    """A completion model that goes on to write the next "Q: ..." of its few-shot prompt: that part is cut,
    once what comes before it has answered (so "Question 1: ..." sub-questions of one rationale stay)."""
    text = text.strip("\r\n").rstrip()  # a first line's indentation may be code's
    for match in itertools.islice(_NEXT_QUESTION.finditer(text), 8):  # bounded: linear in the text
        before = text[: match.start()]
        if _ANSWERED.search(before) or marked_answer(before) is not None:
            return before
    return text


def read_cot(text: str) -> Reading:
    text = text.strip()
    return Reading(text) if text else Reading.fail(Failure.NO_ANSWER, "empty rationale")


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each Markdown fence in `text`, in order; an unclosed last fence runs to the end."""
    return [(m["lang"].lower(), textwrap.dedent(m["body"])) for m in _FENCE.finditer(text)]


def stated_answer(text: str) -> Fraction | None:
    """The final answer the prose outside the fences states with an explicit marker (`\\boxed{}`, "The answer
    is", "Answer:", "####"), if any; concluding sentences and stray numbers are not read as claims."""
    if "```" not in text and "~~~" not in text:
        return None
    return marked_answer(_FENCE.sub(" ", text))


def program_blocks(text: str) -> list[str]:
    """The Python blocks of a reply, without those whose ```output block shows they failed (a later one retries)."""
    blocks, fences = [], fenced_blocks(text)
    for index, (lang, body) in enumerate(fences):
        if lang not in _CODE_LANGS or not _is_code(body):
            continue
        following = fences[index + 1] if index + 1 < len(fences) else ("", "")
        if following[0] in _OUTPUT_LANGS and _FAILED_RUN.search(following[1]):
            continue
        blocks.append(body)
    return blocks


# ---------------------------------------------------------------------------------------------- PoT


def read_pot(text: str) -> Reading:
    blocks = program_blocks(text)
    if not blocks and _FENCE.search(text):
        return Reading.fail(Failure.SYNTAX, "no runnable program in the reply's fences")
    source = "\n".join(_strip_prompts(b) for b in blocks) if blocks else _code_in_prose(text)
    try:
        tree = _parse_program(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        return Reading.fail(Failure.SYNTAX, f"no program found: {error}")
    try:
        _portable_numerics(tree)
        _drop_unused_imports(tree)
        tree.body[:0] = prelude_imports(_unbound_names(tree))  # `ceil(x)` with no import: `from math import ceil`
        _flatten_main_guard(tree)
        _make_answer_explicit(tree)
        return Reading(ast.unparse(ast.fix_missing_locations(tree)), stated=stated_answer(text))
    except RecursionError:
        return Reading.fail(Failure.TOO_LARGE, "program nested too deeply")


def _is_code(block: str) -> bool:
    """A block that does something (assigns, defines, imports, loops, calls); not a bare `18` shown as output."""
    try:
        tree = ast.parse(_strip_prompts(block))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return ">>>" not in block and bool(_CODE_START.match(block.lstrip()))  # broken code still counts as code
    return any(isinstance(node, _CODE_NODES) for node in ast.walk(tree))


_CODE_NODES = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.FunctionDef, ast.Import, ast.ImportFrom, ast.For,
               ast.While, ast.If, ast.Call, ast.BinOp)


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


# Scalar helpers of numpy and sympy that the standard library computes to the same value (neither module
# is in the sandbox). ToRA's prompt asks for sympy's `Rational`; PoT prompts open with `import numpy as np`.
# "" means the identity (`simplify(x)` is x).
_EQUIVALENTS = {
    "numpy": {
        "ceil": "math.ceil", "floor": "math.floor", "trunc": "math.trunc", "sqrt": "math.sqrt", "exp": "math.exp",
        "log": "math.log", "log10": "math.log10", "log2": "math.log2", "pi": "math.pi", "e": "math.e",
        "prod": "math.prod", "round": "round", "around": "round", "abs": "abs", "absolute": "abs", "sum": "sum",
        "max": "max", "amax": "max", "maximum": "max", "min": "min", "amin": "min", "minimum": "min",
        "power": "pow", "mean": "statistics.mean", "median": "statistics.median",
    },
    "sympy": {
        "Rational": "fractions.Fraction", "Integer": "int", "Float": "float", "N": "float", "sqrt": "math.sqrt",
        "pi": "math.pi", "E": "math.e", "floor": "math.floor", "ceiling": "math.ceil", "Abs": "abs", "Min": "min",
        "Max": "max", "simplify": "", "nsimplify": "",
    },
}


def _portable_numerics(tree: ast.Module) -> None:
    """`np.ceil(x)` -> `math.ceil(x)`, sympy's `Rational(1, 2)` -> `fractions.Fraction(1, 2)`, ...

    Only names in `_EQUIVALENTS` are rewritten; a program that uses anything
    else of numpy or sympy keeps its import and is refused by the sandbox.
    """
    modules: dict[str, str] = {}  # local name of an imported module -> module
    imported: dict[str, str] = {}  # local name of a from-imported helper -> its equivalent
    unbound = _unbound_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update({_bound(a): a.name for a in node.names if a.name in _EQUIVALENTS})
        elif isinstance(node, ast.ImportFrom) and node.module in _EQUIVALENTS and not node.level:
            known = _EQUIVALENTS[node.module]
            imported.update({a.asname or a.name: known[a.name] for a in node.names if a.name in known})
            if any(a.name == "*" for a in node.names):  # `from sympy import *`: the helpers the program uses
                imported.update({name: known[name] for name in unbound if name in known})
            node.names = [a for a in node.names if a.name not in known]  # emptied: dropped as unused
    if not modules and not imported:
        return
    needed: set[str] = set()

    def equivalent(node: ast.expr) -> str | None:
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            return imported.get(node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            return _EQUIVALENTS[modules[node.value.id]].get(node.attr)
        return None

    class Rewrite(ast.NodeTransformer):
        def visit_Call(self, node):
            if equivalent(node.func) == "" and len(node.args) == 1 and not node.keywords:
                return self.visit(node.args[0])
            return self.generic_visit(node)

        def visit_Name(self, node):
            return self._replace(node)

        def visit_Attribute(self, node):
            return self._replace(node) if equivalent(node) else self.generic_visit(node)

        def _replace(self, node):
            target = equivalent(node)
            if not target:
                return node
            module, _, name = target.rpartition(".")
            if not module:
                return ast.copy_location(ast.Name(name, ast.Load()), node)
            needed.add(module)
            return ast.copy_location(ast.Attribute(ast.Name(module, ast.Load()), name, ast.Load()), node)

    Rewrite().visit(tree)
    tree.body[:0] = [ast.Import([ast.alias(module)]) for module in sorted(needed)]


def _loaded_names(tree: ast.AST) -> set[str]:
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def _unbound_names(tree: ast.Module) -> set[str]:
    """Names the program reads but never binds and that are not builtins: what a `*` import would have to give."""
    bound = set(dir(builtins))
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
    return _loaded_names(tree) - bound


def _drop_unused_imports(tree: ast.Module) -> None:
    """Removes imported names the program never uses (`import numpy as np` as scaffolding), and `*` imports
    once every name the program reads is bound without them."""
    used = _loaded_names(tree)
    star_needed = bool(_unbound_names(tree))
    for node in ast.walk(tree):
        body_fields = [f for f in ("body", "orelse", "finalbody") if isinstance(getattr(node, f, None), list)]
        for field in body_fields:
            kept = []
            for statement in getattr(node, field):
                if isinstance(statement, (ast.Import, ast.ImportFrom)):
                    statement.names = [a for a in statement.names
                                       if (star_needed if a.name == "*" else _bound(a) in used)]
                    if not statement.names:
                        continue
                kept.append(statement)
            setattr(node, field, kept or ([ast.Pass()] if field == "body" and node is not tree else []))


def _bound(alias: ast.alias) -> str:
    return alias.asname or alias.name.split(".", 1)[0]


def _flatten_main_guard(tree: ast.Module) -> None:
    """`if __name__ == "__main__": body` runs its body in the sandbox; make that visible to the answer search."""
    flat = []
    for statement in tree.body:
        test = getattr(statement, "test", None)
        if (isinstance(statement, ast.If) and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
                and test.left.id == "__name__"):
            flat.extend(statement.body)
        else:
            flat.append(statement)
    tree.body = flat


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


def _printed_answer(call: ast.Call) -> ast.expr | None:
    """The numeric expression a `print(...)` shows: the last argument that is not just text."""
    answers = [a for a in (_shown_value(arg) for arg in call.args) if a is not None]
    return answers[-1] if answers else None


def _shown_value(node: ast.expr) -> ast.expr | None:
    """The value inside a text-building expression (`f"{x:.2f} dollars"`, `"%d" % x`, `str(x)`), or the node."""
    if isinstance(node, ast.Constant):
        return None if isinstance(node.value, str) else node
    if isinstance(node, ast.JoinedStr):
        values = [v for v in node.values if isinstance(v, ast.FormattedValue)]
        return _formatted(values[-1]) if values else None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "str" and node.args:
        return _shown_value(node.args[0])
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
            and isinstance(node.func.value, ast.Constant) and node.args):
        return _shown_value(node.args[-1])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and _is_text(node.left):  # "%d" % x
        right = node.right.elts[-1] if isinstance(node.right, ast.Tuple) and node.right.elts else node.right
        return _shown_value(right)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and (_is_text(node.left) or _is_text(node.right)):
        parts = [p for p in (_shown_value(node.left), _shown_value(node.right)) if p is not None]
        return parts[-1] if parts else None  # "Total: " + str(x)
    return node


def _is_text(node: ast.expr) -> bool:
    """An expression that builds text: a string, an f-string, `str(...)`, `"...".format(...)`, or a sum of these."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "str":
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return isinstance(node.func.value, ast.Constant)
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and (_is_text(node.left) or
                                                                              _is_text(node.right))


def _formatted(value: ast.FormattedValue) -> ast.expr:
    """`{x:.2f}` shows x rounded to 2 places; other format specs show the value itself."""
    spec = value.format_spec
    if isinstance(spec, ast.JoinedStr) and len(spec.values) == 1 and isinstance(spec.values[0], ast.Constant):
        if match := re.fullmatch(r",?\.(\d)f", str(spec.values[0].value)):
            return ast.Call(ast.Name("round", ast.Load()), [value.value, ast.Constant(int(match[1]))], [])
    return value.value


# ---------------------------------------------------------------------------------------------- EoT

_COMMENT_LINE = re.compile(r"^\s*(?:%|#|//|--)")
_LIST_MARK = re.compile(r"^\s*(?:\d+[.)]|[*•]|-(?=\s+[A-Za-z_]))\s+")
_CHARACTERS = str.maketrans({"×": "*", "·": "*", "⋅": "*", "∗": "*", "÷": "/", "∕": "/", "−": "-", "–": "-",
                             "—": "-", "$": None, "`": None, "≠": "!"})
_THOUSANDS = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?![\d.]|,\d)")
_IMPLICIT_PRODUCT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(?=[A-Za-z_(])(?![eE][-+]?\d)|(\))\s*(?=[A-Za-z_(])")
_TRAILING_COMMENT = re.compile(r"\s(?://|%)\s+[A-Za-z]+\s+[A-Za-z]+.*$")  # words, not `total % boxes`
_DECLARATION = re.compile(r"^[A-Za-z_]\w*\s*=\s*\?$")  # "meals = ?": an unknown announced, not an equation
_PERCENT_OF = re.compile(r"(\d)\s*%\s+of\b")
_KEYWORD = re.compile(r"\b(yield|return|class|pass|from|with|import|global|def|del|assert|break|continue|except|"
                      r"finally|for|while|try|raise|nonlocal|lambda)\b")
_TRAILING_WORDS = re.compile(r"([\w)])\s+(?:\([A-Za-z][^()]*\)|[A-Za-z]{2,}(?:\s+[A-Za-z]+)*)\s*$")
_LABEL = re.compile(r"^[A-Za-z][\w ]{0,30}:\s*")
_PROSE = re.compile(r"\b[A-Za-z]{2,}\s+[A-Za-z]{2,}")
_ANSWER_IS = re.compile(r"answer\s+is\s*:?\s*`?([^`]{1,80}?)`?\s*[.:]?\s*$", re.IGNORECASE)


def read_eot(text: str) -> Reading:
    blocks = [body for lang, body in fenced_blocks(text) if lang not in _OUTPUT_LANGS and "=" in body]
    lines = "\n".join(blocks).splitlines() if blocks else text.splitlines()
    equations, answer_name = [], None
    for raw in lines:
        if _COMMENT_LINE.match(raw):
            if match := _ANSWER_IS.search(raw.rstrip()):
                answer_name = match[1]
            continue
        line = _normalise_equation(raw)
        if line is not None:
            equations.append(line)
        elif match := _ANSWER_IS.search(raw.strip()):
            answer_name = match[1]
    if not equations:
        return Reading.fail(Failure.SYNTAX, "no equations found")
    named = answer_name is not None and answer_name != "ans" and _refers_to_unknowns(answer_name, equations)
    if named and not any(re.match(r"\s*ans\s*=", e) for e in equations):
        equations.append(f"ans = {answer_name}")  # "% ... The answer is meals:" (or `meals * 2`), no `ans` line
    return Reading("\n".join(equations), stated=stated_answer(text))


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
        line = _TRAILING_WORDS.sub(r"\1", line)  # "ans = meals (the number of meals)", "cost = 5 dollars"
    if not _parses(line):
        line = _KEYWORD.sub(r"\1_", line)  # "return = profit / cost": a Python keyword as a variable
    line = line.replace("^", "**")
    line = _THOUSANDS.sub(lambda m: m[0].replace(",", ""), line)
    line = _IMPLICIT_PRODUCT.sub(lambda m: (m[1] or m[2]) + " * ", line)
    if _PROSE.search(line.split("#", 1)[0]) and not _parses(line):
        return None  # "Let x = the number of meals"
    return line


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
