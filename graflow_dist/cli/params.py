"""Option types of the CLI that refuse what the services cannot use, with one clear line:
durations that are not finite positive numbers (``nan``, ``inf``, ``-1``), counts below
their minimum, ports out of range, names with characters graflow-dist does not accept."""

from __future__ import annotations

import math
from typing import Any

import click

from graflow_dist.names import is_prefix


class Seconds(click.ParamType):
    """A finite number of seconds, > 0 (or >= 0 with ``allow_zero``)."""

    name = "seconds"

    def __init__(self, allow_zero: bool = False) -> None:
        self.allow_zero = allow_zero

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, float | int) and not isinstance(value, bool):
            number = float(value)
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number of seconds", param, ctx)
        low_ok = number >= 0 if self.allow_zero else number > 0
        if not (math.isfinite(number) and low_ok):
            bound = ">= 0" if self.allow_zero else "> 0"
            self.fail(f"{value!r} is not a finite number of seconds {bound}", param, ctx)
        return number


class Name(click.ParamType):
    """A queue or worker name: letters, digits, ``_ . -`` (no ``:``, ``*``, ``/``)."""

    name = "name"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        if not is_prefix(value):
            self.fail(f"{value!r} is not a valid name (1-64 letters, digits, '_', '.', '-', "
                      "not starting with '.' or '-')", param, ctx)
        return str(value)


SECONDS = Seconds()
SECONDS_OR_ZERO = Seconds(allow_zero=True)
NAME = Name()
PORT = click.IntRange(0, 65535)
BYTES = click.IntRange(1, 512 * 1024 * 1024)


def count(minimum: int) -> click.IntRange:
    return click.IntRange(min=minimum)
