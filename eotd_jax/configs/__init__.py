"""The shipped training configs (ml_collections, configs as code): `default` (every field, its default and its
meaning), `quickstart` and `paper` (the paper grid). Each file's `get_config(arguments)` returns a `ConfigDict`.

A binary's `--config` takes one by name, `--config=quickstart`, `--config=paper:codet5-large,etd`, or any config
file's path, `--config=my_configs/run.py:args`; `with_shipped_paths` turns names into paths before absl reads them.
"""

from __future__ import annotations

import os

SHIPPED = ("default", "quickstart", "paper")


def shipped_path(spec: str) -> str:
    """`name[:arguments]` of a shipped config as `path[:arguments]`; any other spec (a file path) as it is."""
    name, colon, arguments = spec.partition(":")
    if name not in SHIPPED:
        return spec
    return os.path.join(os.path.dirname(__file__), f"{name}.py") + colon + arguments


def with_shipped_paths(argv: list[str], flag: str = "config") -> list[str]:
    """`argv` with `--config=NAME...` (or `--config NAME...`) naming a shipped config replaced by its path."""
    out, expect_value = [], False
    for argument in argv:
        if expect_value:
            argument, expect_value = shipped_path(argument), False
        elif argument == f"--{flag}":
            expect_value = True
        elif argument.startswith(f"--{flag}="):
            argument = f"--{flag}=" + shipped_path(argument.split("=", 1)[1])
        out.append(argument)
    return out
