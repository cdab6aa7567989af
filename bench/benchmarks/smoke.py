"""`--smoke` for the benchmark entry points: the same code path at sizes that take seconds (for `make test`).

Smoke figures mean nothing as measurements; the reports say `"smoke": true`.
"""

from __future__ import annotations

import argparse
from typing import Any


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None, smoke: dict[str, Any]) -> argparse.Namespace:
    """Add `--smoke` to `parser` and parse `argv`. With `--smoke`, the options in `smoke` (dest: value) take those
    values unless given on the command line."""
    text = ", ".join(f"--{dest.replace('_', '-')} {value}" for dest, value in smoke.items())
    parser.add_argument("--smoke", action="store_true",
                        help=f"tiny sizes, seconds, figures meaningless (for tests): {text}")
    if parser.parse_known_args(argv)[0].smoke:
        parser.set_defaults(**smoke)
    return parser.parse_args(argv)
