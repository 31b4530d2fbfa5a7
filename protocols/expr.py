"""Conditions over tag values, such as ``spindle_speed > 0 and door_closed``: parsed once, safely.

A condition is a Python-like boolean expression over the profile's tag names: comparisons
(``== != < <= > >=``, chains like ``0 < x <= 5``), ``and``, ``or``, ``not``, parentheses, numbers,
``true``/``false``, quoted strings, and a bare tag name meaning "is non-zero / true". Nothing else
is accepted (no calls, attributes, arithmetic or subscripts), so a profile can never run code.

``compile_condition`` returns a ``Condition``; ``Condition.evaluate(values)`` returns True/False,
or None when a tag the answer depends on has no usable value (unknown, bad quality).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Scalar = float | int | bool | str
Values = Mapping[str, Scalar | None]

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_LITERAL_NAMES = {"true": True, "false": False, "True": True, "False": False}


class ConditionError(ValueError):
    """A condition that cannot be parsed, uses something not allowed, or names an unknown tag."""


class _Unknown(Exception):
    """A tag the expression needs has no value."""


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled condition: its source text, the tag names it reads, and its evaluator."""

    source: str
    names: frozenset[str]
    _fn: Callable[[Values], object]

    def evaluate(self, values: Values) -> bool | None:
        """True or False, or None when a tag it needs is missing or None."""
        try:
            return bool(self._fn(values))
        except _Unknown:
            return None
        except TypeError:  # e.g. a string compared with a number: the condition cannot hold
            return False


def _lookup(name: str) -> Callable[[Values], object]:
    def get(values: Values) -> object:
        value = values.get(name)
        if value is None:
            raise _Unknown(name)
        return value

    return get


def _compile(node: ast.AST, source: str) -> Callable[[Values], object]:
    match node:
        case ast.BoolOp(op=ast.And(), values=parts):
            fns = [_compile(p, source) for p in parts]
            return lambda v: all(fn(v) for fn in fns)
        case ast.BoolOp(op=ast.Or(), values=parts):
            fns = [_compile(p, source) for p in parts]
            return lambda v: any(fn(v) for fn in fns)
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            fn = _compile(operand, source)
            return lambda v: not fn(v)
        case ast.UnaryOp(op=ast.USub(), operand=ast.Constant(value=int() | float() as number)):
            negative = -number
            return lambda _v: negative
        case ast.Compare(left=left, ops=ops, comparators=rights):
            terms = [_compile(left, source), *(_compile(r, source) for r in rights)]
            tests = [_COMPARE[type(op)] for op in ops]

            def compare(v: Values) -> bool:
                values = [term(v) for term in terms]
                return all(test(values[i], values[i + 1]) for i, test in enumerate(tests))

            return compare
        case ast.Name(id=name) if name in _LITERAL_NAMES:
            literal = _LITERAL_NAMES[name]
            return lambda _v: literal
        case ast.Name(id=name):
            return _lookup(name)
        case ast.Constant(value=bool() | int() | float() | str() as constant):
            return lambda _v: constant
    text = ast.get_source_segment(source, node) or type(node).__name__
    raise ConditionError(
        f"condition {source!r}: {text!r} is not allowed (use tag names, numbers, quoted "
        "strings, comparisons == != < <= > >=, and, or, not, parentheses)"
    )


def _names(tree: ast.AST) -> frozenset[str]:
    return frozenset(
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in _LITERAL_NAMES
    )


def compile_condition(source: str, known_names: frozenset[str] | None = None) -> Condition:
    """Parse ``source``; raise ``ConditionError`` saying what is wrong (syntax, unknown tag)."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as error:
        raise ConditionError(
            f"condition {source!r} is not a valid expression: {error.msg}"
        ) from None
    fn = _compile(tree.body, source.strip())
    names = _names(tree)
    if known_names is not None:
        unknown = sorted(names - known_names)
        if unknown:
            raise ConditionError(
                f"condition {source!r} names {unknown}, which are not tags of this profile "
                f"(tags: {sorted(known_names)})"
            )
    return Condition(source.strip(), names, fn)
