"""Just enough PromQL reading for the ops tests: the metric names an expression selects."""

from __future__ import annotations

import re

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
# an identifier not preceded by a word character, `:`, `.` or `$`, and not a function call
_IDENT = re.compile(r"(?<![\w:.$])([A-Za-z_:][A-Za-z0-9_:]*)\b(?!\s*\()")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
}
_NAME_MATCHER = re.compile(r"""__name__\s*=\s*["']([^"']+)["']""")


def metric_names(expr: str) -> set[str]:
    """Names of the metrics `expr` selects (`{__name__="x"}` included)."""
    names = set(_NAME_MATCHER.findall(expr))
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names.update(n for n in _IDENT.findall(text) if n.lower() not in _KEYWORDS)
    return names


_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


def grafana_variables(expr: str) -> set[str]:
    """Names of the Grafana variables (`$x`, `${x}`, `${x:fmt}`) in `expr`."""
    return {a or b for a, b in _VARIABLE.findall(expr)}
