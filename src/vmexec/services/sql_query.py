"""ZStack queries (:mod:`vmexec.zstack.query`) evaluated in SQL, for tables too large to hold
in memory (executions, runs).

The semantics are those of the in-memory evaluator, :func:`vmexec.zstack.query.evaluate`
(property-tested against it on SQLite and PostgreSQL):

- a null field matches no operator but ``is null`` (SQL's own rule: NULL compares unknown);
- strings compare case-sensitively by code point (PostgreSQL: ``COLLATE "C"``, whatever the
  database's locale; SQLite compares UTF-8 bytes, the same order);
- ``~=`` / ``!~=``: ``%`` any run, ``_`` one character, every other character literal and
  case-sensitive, backslash included. PostgreSQL: ``LIKE`` with the escape character escaped;
  SQLite, whose ``LIKE`` ignores ASCII case: ``GLOB`` with its own wildcards and ``[`` quoted.
  A number is matched as its decimal text. Dates are not: the in-memory form (ISO-8601 of a
  Python datetime) has no SQL equivalent, so a like on a date is refused;
- sorting puts nulls first ascending (last descending), ties in the table's default order.

A :class:`Column` maps a query field to a SQL expression and its kind; boolean columns are
queried as the strings ``true`` / ``false`` (:func:`boolean_text`), as ZStack does.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    Select,
    SQLColumnExpression,
    String,
    and_,
    case,
    cast,
    literal,
)
from sqlalchemy import not_ as sql_not
from sqlalchemy.sql import operators

from vmexec.zstack.like import LikePattern
from vmexec.zstack.query import Condition, FieldKind, Op, Query, QueryError

_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1
#: ``limit`` and ``start`` beyond any table's size mean "all" / "none": bound them so that
#: SQL's integers take them.
MAX_ROWS = 2 ** 62
#: Dialects whose LIKE is case-sensitive and honours ESCAPE (the others use GLOB: SQLite).
_LIKE_DIALECTS = frozenset({"postgresql"})


@dataclass(frozen=True, slots=True)
class Column:
    """A queryable field: the SQL expression that holds it, and its kind."""

    expression: SQLColumnExpression[Any]
    kind: FieldKind


def boolean_text(column: SQLColumnExpression[Any]) -> ColumnElement[Any]:
    """A boolean column as the strings ``true`` / ``false`` (null stays null)."""
    flag = cast(column, Boolean)
    return case((flag.is_(True), "true"), (flag.is_(False), "false"), else_=None)


class SqlQuery:
    """Builds statements for queries over one table's fields, for one SQL dialect."""

    def __init__(self, columns: Mapping[str, Column], dialect: str, *,
                 default_order: Sequence[ColumnElement[Any]]) -> None:
        self._columns = columns
        self._like = dialect in _LIKE_DIALECTS
        self._collate = dialect == "postgresql"
        self._default_order = default_order

    def where(self, query: Query) -> list[ColumnElement[bool]]:
        """The conditions of ``query`` as SQL. Raises QueryError (a like on a date)."""
        return [self.condition(c) for c in query.conditions]

    def page(self, statement: Select[Any], query: Query) -> Select[Any]:
        """``statement`` filtered, sorted and paged as ``query`` says."""
        statement = statement.where(*self.where(query))
        if query.sort_by is not None:
            key = self._comparable(query.sort_by)
            statement = statement.order_by(
                key.desc().nulls_last() if query.descending else key.asc().nulls_first())
        return statement.order_by(*self._default_order).offset(
            min(query.start, MAX_ROWS)).limit(min(query.limit, MAX_ROWS))

    def condition(self, condition: Condition) -> ColumnElement[bool]:
        column = self._columns[condition.field]
        value = self._comparable(condition.field)
        operand = condition.operand
        if column.kind is FieldKind.NUMBER and operand is not None and condition.op not in (
                Op.LIKE, Op.NOT_LIKE):
            operand = ([_number(x) for x in operand] if isinstance(operand, list)
                       else _number(operand))
        match condition.op:
            case Op.IS_NULL:
                return column.expression.is_(None)
            case Op.NOT_NULL:
                return column.expression.is_not(None)
            case Op.EQ:
                return _compare(value, operators.eq, operand)
            case Op.NOT_EQ:
                return _compare(value, operators.ne, operand)
            case Op.GT:
                return _compare(value, operators.gt, operand)
            case Op.LT:
                return _compare(value, operators.lt, operand)
            case Op.GT_AND_EQ:
                return _compare(value, operators.ge, operand)
            case Op.LT_AND_EQ:
                return _compare(value, operators.le, operand)
            case Op.IN:
                return value.in_(operand)
            case Op.NOT_IN:
                # NOT IN on a null is unknown, as in memory: not selected.
                return and_(column.expression.is_not(None), value.not_in(operand))
            case Op.LIKE:
                return self._like_of(condition.field, column, operand)
            case Op.NOT_LIKE:
                return and_(column.expression.is_not(None),
                            sql_not(self._like_of(condition.field, column, operand)))
        raise AssertionError(condition.op)  # pragma: no cover - every Op is handled above

    def _comparable(self, field: str) -> SQLColumnExpression[Any]:
        column = self._columns[field]
        if column.kind is FieldKind.STRING and self._collate:
            return column.expression.collate("C")
        return column.expression

    def _like_of(self, field: str, column: Column,
                 pattern: LikePattern) -> ColumnElement[bool]:
        if column.kind is FieldKind.DATE:
            raise QueryError(f"field {field!r} is a date: '~=' and '!~=' do not apply to it; "
                             "compare it with >, <, >=, <=")
        text: SQLColumnExpression[Any] = column.expression
        if column.kind is FieldKind.NUMBER:
            text = cast(text, String)
        if not self._like:
            return text.op("GLOB", is_comparison=True)(glob_pattern(pattern.pattern))
        if self._collate:
            text = text.collate("C")
        return text.like(like_pattern(pattern.pattern), escape="\\")


def _number(value: Any) -> Any:
    """A numeric operand as SQL can bind it: an integer beyond 64 bits, which no column
    holds, compares as the float it is near (SQL's integers overflow), as do fractions."""
    if isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX:
        return value
    return literal(float(value), Float)


def _compare(value: SQLColumnExpression[Any], op: operators.OperatorType,
             operand: Any) -> ColumnElement[bool]:
    # The operators of a typed column return Any in SQLAlchemy's stubs.
    return typing.cast("ColumnElement[bool]", value.operate(op, operand))


def like_pattern(pattern: str) -> str:
    """A ZStack like pattern for SQL ``LIKE ... ESCAPE '\\'``: only ``%`` and ``_`` are
    wildcards, so the escape character itself is escaped."""
    return pattern.replace("\\", "\\\\")


def glob_pattern(pattern: str) -> str:
    """A ZStack like pattern as a SQLite ``GLOB`` (case-sensitive): ``%`` → ``*``, ``_`` →
    ``?``, and GLOB's own special characters quoted in brackets."""
    special = {"*": "[*]", "?": "[?]", "[": "[[]", "%": "*", "_": "?"}
    return "".join(special.get(ch, ch) for ch in pattern)
