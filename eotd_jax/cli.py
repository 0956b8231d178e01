"""How every binary starts and ends: `cli.run(main)` in place of `absl.app.run(main)`.

A mistake on the command line or a refusal of the run costs one line on stderr, `error: <what> (<how to fix>)`,
and a non-zero exit, never a traceback:

- an unknown flag, a bad flag value, a missing `--config` file, a config file that raises, or an override of a
  config field that does not exist (exit status 2);
- an `Error` raised anywhere in the binary, a full disk, or Ctrl-C before the binary has its own handler (1, 130).

`json_line` writes a final metrics line that stays JSON whatever the numbers (NaN and infinities become null).
"""

from __future__ import annotations

import errno
import json
import math
import sys
from collections.abc import Callable

from absl import app, flags

from eotd_jax import configs, platforms

USAGE_ERROR = 2  # the exit status of a command line that cannot be parsed
INTERRUPTED = 130  # the shell's status for a command stopped by Ctrl-C


class Error(Exception):
    """A failure the binary says in one line; its message is `<what> (<how to fix>)`."""


def run(main: Callable[[list[str]], object]) -> None:
    """`app.run(main)`, with every failure a user can cause said in one line."""
    platforms.skip_absent_tpu()
    sys.argv = configs.with_shipped_paths(sys.argv)  # --config=quickstart names a shipped config
    try:
        app.run(main, flags_parser=_parse_flags)
    except Error as error:
        _exit(f"error: {error}", 1)
    except KeyboardInterrupt:
        _exit("error: interrupted by Ctrl-C (run the same command again to carry on where it can)", INTERRUPTED)
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        _exit(f"error: no space left on device writing {error.filename or 'a file'} (free some space and run the "
              "same command again)", 1)


def json_line(record: dict) -> str:
    """`record` as one line of strict JSON: a NaN or infinite number becomes null."""
    def finite(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {key: finite(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(item) for item in value]
        return value

    return json.dumps(finite(record), allow_nan=False)


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's parse, then each config flag's value read at once: ml_collections defers a missing file's error
    to the first read, deep inside the run."""
    try:
        rest = flags.FLAGS(argv)
        for name in list(flags.FLAGS):
            getattr(flags.FLAGS[name].value, "get", None)  # a config that failed to load raises on any attribute
    except SystemExit:
        raise
    except Exception as error:  # noqa: BLE001  absl's flags.Error, and ml_collections' IOError / KeyError / ...
        _exit(f"error: {_flag_problem(error)}", USAGE_ERROR)
    return rest


def _flag_problem(error: BaseException) -> str:
    """`<what> (<how to fix>)` of a flag or config error; ml_collections nests them, its point on the last line."""
    while error.args and isinstance(error.args[0], BaseException):
        error = error.args[0]
    if isinstance(error, KeyError):  # an override of a field that does not exist: "'stpes'\nDid you mean ..."
        field, _, hint = str(error.args[0]).partition("\n")
        return f"no config field {field} ({hint + ' ' if hint else ''}eotd_jax/configs/default.py lists every field)"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    if any("No such file or directory" in line for line in lines):
        return f"config file not found: {lines[-1].split(': ', 1)[-1]} (name a shipped config, " \
               f"{', '.join(configs.SHIPPED)}, or give a config file's path)"
    if len(lines) > 1 and lines[0].startswith("flag --"):  # a config file that raised: its flag, then the raise
        return f"{lines[0].removesuffix(':').rsplit(': ', 1)[0]}: {lines[-1]} (fix the flag)"
    return f"{lines[0]} (--helpshort lists the flags)"


def _exit(line: str, status: int) -> None:
    print(line, file=sys.stderr)
    sys.exit(status)
