"""ZStack's query API language (``GET /zstack/v1/<resources>?q=...``), parsed and evaluated.

Parameters, as ZStack's ``RestServer`` reads them:

- ``q=<field><op><value>`` (repeated; all must hold) with the operators ``=``, ``!=``, ``>``,
  ``<``, ``>=``, ``<=``, ``?=`` (in: comma list), ``!?=`` (not in), ``~=`` (like: ``%`` any
  run, ``_`` one character), ``!~=`` (not like), and ``q=<field> is null`` / ``not null``;
- ``limit`` (default 1000), ``start``, ``count=true`` (only the total), ``replyWithCount=true``,
  ``sort=+field`` / ``-field``, ``fields=a,b``; other parameters are ignored, as ZStack does.

A query has at most :data:`MAX_CONDITIONS` conditions and every parameter value at most
:data:`MAX_PARAMETER_CHARS` characters, so one request cannot buy unbounded work; likes are
matched without backtracking (:mod:`vmexec.zstack.like`).

Comparisons follow SQL, which ZStack runs them as: a null field matches no operator but
``is null`` (not even ``!=``); numeric fields compare as numbers, date fields as dates, others
as case-sensitive strings. Records are evaluated in memory: they are plain dicts of typed values
(``datetime`` for dates), rendered to wire JSON afterwards.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vmexec.zstack.dates import parse_date
from vmexec.zstack.like import LikePattern

#: ZStack's default page size for queries.
DEFAULT_LIMIT = 1000
#: The most ``q=`` conditions one query may have (ZStack's own UIs send a handful).
MAX_CONDITIONS = 20
#: The longest value of any query parameter, in characters.
MAX_PARAMETER_CHARS = 1024


class FieldKind(enum.Enum):
    STRING = "string"
    NUMBER = "number"
    DATE = "date"
    #: A list of nested inventories: only ``is null`` / ``not null`` and ``fields=`` apply.
    LIST = "list"


class QueryError(ValueError):
    """A query the client got wrong.

    ``malformed`` is true for syntax errors (ZStack answers those with a plain ``400``); false
    for well-formed queries naming unknown fields or bad values (an invalid-argument error).
    """

    def __init__(self, message: str, *, malformed: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.malformed = malformed


class Op(enum.Enum):
    EQ = "="
    NOT_EQ = "!="
    GT = ">"
    LT = "<"
    GT_AND_EQ = ">="
    LT_AND_EQ = "<="
    IN = "?="
    NOT_IN = "!?="
    LIKE = "~="
    NOT_LIKE = "!~="
    IS_NULL = "is null"
    NOT_NULL = "not null"


# Longest symbols first, so "!?=" is not read as "!" + "?=" and ">=" not as ">" + "=...".
_BINARY = "|".join(re.escape(op.value) for op in sorted(
    (op for op in Op if op not in (Op.IS_NULL, Op.NOT_NULL)), key=lambda o: -len(o.value)))
_FIELD = r"[A-Za-z_][A-Za-z0-9_.]*"
# A field name, then the operator right after it: unlike ZStack's "first operator found
# anywhere" scan, a value may itself contain "=", ">" or "<".
_CONDITION = re.compile(rf"^\s*(?P<field>{_FIELD})\s*(?P<op>{_BINARY})(?P<value>.*)$",
                        re.DOTALL)
_NULL_TEST = re.compile(rf"^\s*(?P<field>{_FIELD})\s+(?P<op>is\s+null|not\s+null)\s*$",
                        re.IGNORECASE)
#: What a well-formed ``q=`` value looks like (for the OpenAPI document): the conditions
#: above, as one regular expression.
CONDITION_PATTERN = (rf"^\s*{_FIELD}(\s*(!?[?~]?=|[<>]=?)|"
                     r"\s+([Ii][Ss]|[Nn][Oo][Tt])\s+[Nn][Uu][Ll][Ll]\s*$)")
#: What ``limit`` and ``start`` accept (a sign is read, to say a negative value is refused).
INTEGER_PATTERN = r"^\s*[0-9]+\s*$"
#: What ``fields`` accepts: at least one name among the commas.
FIELDS_PATTERN = r"[^\s,]"
_INTEGER = re.compile(INTEGER_PATTERN)
_NEGATIVE = re.compile(r"\s*-[0-9]+\s*")
_PARAMETERS = frozenset({"q", "limit", "start", "count", "replyWithCount", "sort", "fields"})


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    op: Op
    #: The typed operand: a list for ``?=``/``!?=``, a :class:`LikePattern` for likes, None for
    #: null tests, else one value of the field's kind.
    operand: Any = None

    def matches(self, record: Mapping[str, Any]) -> bool:
        value = record.get(self.field)
        if self.op is Op.IS_NULL:
            return value is None
        if self.op is Op.NOT_NULL:
            return value is not None
        if value is None:
            return False  # SQL: NULL compared with anything is unknown, i.e. not selected
        match self.op:
            case Op.EQ:
                return bool(value == self.operand)
            case Op.NOT_EQ:
                return bool(value != self.operand)
            case Op.GT:
                return bool(value > self.operand)
            case Op.LT:
                return bool(value < self.operand)
            case Op.GT_AND_EQ:
                return bool(value >= self.operand)
            case Op.LT_AND_EQ:
                return bool(value <= self.operand)
            case Op.IN:
                return value in self.operand
            case Op.NOT_IN:
                return value not in self.operand
            case Op.LIKE:
                return bool(self.operand.matches(_like_text(value)))
            case Op.NOT_LIKE:
                return not self.operand.matches(_like_text(value))
        raise AssertionError(self.op)  # pragma: no cover - every Op is handled above


@dataclass(frozen=True, slots=True)
class Query:
    conditions: tuple[Condition, ...] = ()
    limit: int = DEFAULT_LIMIT
    start: int = 0
    #: Reply with the total only.
    count: bool = False
    reply_with_count: bool = False
    sort_by: str | None = None
    descending: bool = False
    #: Fields to return; None returns all.
    fields: tuple[str, ...] | None = None

    def with_uuid(self, uuid: str) -> Query:
        """This query narrowed to one resource (``GET /resources/{uuid}``)."""
        return Query(conditions=(*self.conditions, Condition("uuid", Op.EQ, uuid)),
                     limit=self.limit, start=self.start, count=self.count,
                     reply_with_count=self.reply_with_count, sort_by=self.sort_by,
                     descending=self.descending, fields=self.fields)


@dataclass(frozen=True, slots=True)
class QueryResult:
    #: The selected page, projected to ``fields`` when given; empty for ``count=true``.
    records: list[dict[str, Any]]
    #: Number of matching records before paging; None when the client did not ask for it.
    total: int | None
    #: Number of matching records before paging, whether asked for or not.
    matched: int = 0


def parse_query(params: Iterable[tuple[str, str]], schema: Mapping[str, FieldKind]) -> Query:
    """Read the query parameters (repeated keys allowed) against the resource's fields.

    Raises:
        QueryError: malformed syntax, an unknown field, a value of the wrong kind, or more
            conditions or longer values than the bounds above.
    """
    conditions: list[Condition] = []
    limit, start = DEFAULT_LIMIT, 0
    count = reply_with_count = descending = False
    sort_by: str | None = None
    fields: tuple[str, ...] | None = None
    for key, raw in params:
        key = key.strip()
        if key in _PARAMETERS and len(raw) > MAX_PARAMETER_CHARS:
            raise QueryError(f"query parameter {key!r} is {len(raw)} characters long; at most "
                             f"{MAX_PARAMETER_CHARS} are allowed")
        if key == "q":
            if len(conditions) == MAX_CONDITIONS:
                raise QueryError(f"too many query conditions: at most {MAX_CONDITIONS} 'q' "
                                 "parameters are allowed")
            conditions.append(parse_condition(raw, schema))
        elif key == "limit":
            limit = _non_negative_int("limit", raw)
        elif key == "start":
            start = _non_negative_int("start", raw)
        elif key == "count":
            count = _boolean(raw)
        elif key == "replyWithCount":
            reply_with_count = _boolean(raw)
        elif key == "sort":
            sort_by, descending = _sort(raw, schema)
        elif key == "fields":
            fields = _fields(raw, schema)
    return Query(conditions=tuple(conditions), limit=limit, start=start, count=count,
                 reply_with_count=reply_with_count, sort_by=sort_by, descending=descending,
                 fields=fields)


def parse_condition(text: str, schema: Mapping[str, FieldKind]) -> Condition:
    """One ``q=`` value, e.g. ``name=vm1``, ``uuid?=a,b``, ``description is null``.

    Raises:
        QueryError: no operator, an unknown field, or an operand of the wrong kind.
    """
    null_test = _NULL_TEST.match(text)
    if null_test:
        field = _known_field(null_test["field"], schema, "q")
        op = Op.IS_NULL if null_test["op"].lower().startswith("is") else Op.NOT_NULL
        return Condition(field, op)
    match = _CONDITION.match(text)
    if not match:
        raise QueryError(
            f"invalid query condition {text!r}: expected <field><operator><value> with one of "
            f"the operators {', '.join(op.value for op in Op)}", malformed=True)
    field = _known_field(match["field"], schema, "q")
    op = Op(match["op"])
    kind = schema[field]
    # The value is not trimmed: ZStack keeps spaces, they can be part of a name.
    raw = match["value"]
    if kind is FieldKind.LIST:
        raise QueryError(f"field {field!r} is a list: only 'is null' and 'not null' apply to it")
    if op in (Op.IN, Op.NOT_IN):
        return Condition(field, op, [_operand(field, kind, item) for item in raw.split(",")])
    if op in (Op.LIKE, Op.NOT_LIKE):
        return Condition(field, op, LikePattern(raw))
    return Condition(field, op, _operand(field, kind, raw))


def evaluate(query: Query, records: Iterable[Mapping[str, Any]]) -> QueryResult:
    """Filter, sort, page and project ``records`` (dicts of typed values) as ``query`` says.

    Pure and thread-safe as long as nobody changes ``records`` meanwhile, so a caller may run
    it in a thread: its cost grows with records, conditions and the length of the values.
    """
    selected = [r for r in records if all(c.matches(r) for c in query.conditions)]
    matched = len(selected)
    total = matched if (query.count or query.reply_with_count) else None
    if query.count:
        return QueryResult(records=[], total=total, matched=matched)
    if query.sort_by is not None:
        selected.sort(key=_sort_key(query.sort_by), reverse=query.descending)
    page = selected[query.start:query.start + query.limit]
    if query.fields is not None:
        wanted = query.fields
        return QueryResult(records=[{f: r.get(f) for f in wanted} for r in page], total=total,
                           matched=matched)
    return QueryResult(records=[dict(r) for r in page], total=total, matched=matched)


def _known_field(name: str, schema: Mapping[str, FieldKind], where: str) -> str:
    if name not in schema:
        raise QueryError(f"unknown field {name!r} in parameter {where!r}; known fields: "
                         f"{', '.join(sorted(schema))}")
    return name


def _operand(field: str, kind: FieldKind, raw: str) -> Any:
    if kind is FieldKind.NUMBER:
        try:
            number = float(raw.strip())
        except ValueError:
            raise QueryError(f"field {field!r} is numeric, {raw!r} is not a number") from None
        return int(number) if number.is_integer() else number
    if kind is FieldKind.DATE:
        try:
            return parse_date(raw)
        except ValueError as exc:
            raise QueryError(f"field {field!r} is a date: {exc}") from None
    return raw


def _like_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _sort_key(field: str) -> Any:
    # Nulls sort first ascending, as in MySQL; a tuple keeps None from being compared to values.
    def key(record: Mapping[str, Any]) -> tuple[bool, Any]:
        value = record.get(field)
        return (value is not None, value if value is not None else 0)
    return key


def _non_negative_int(name: str, raw: str) -> int:
    # ASCII digits only (INTEGER_PATTERN): int() would also take "+5", "1_0" or "٣".
    if _NEGATIVE.fullmatch(raw):
        raise QueryError(f"invalid query parameter: {name!r} must not be negative, got {raw!r}")
    if not _INTEGER.fullmatch(raw):
        raise QueryError(f"invalid query parameter: {name!r} must be an integer, got {raw!r}",
                         malformed=True)
    return int(raw.strip())


def _boolean(raw: str) -> bool:
    # Java's Boolean.valueOf: "true" in any case is true, anything else false.
    return raw.strip().lower() == "true"


def _sort(raw: str, schema: Mapping[str, FieldKind]) -> tuple[str, bool]:
    # A '+' in a query string arrives as a space when the client did not percent-encode it;
    # stripping whitespace first makes "sort=+name" ascending either way.
    value = raw.strip()
    descending = value.startswith("-")
    field = value.lstrip("+-").strip()
    _known_field(field, schema, "sort")
    if schema[field] is FieldKind.LIST:
        raise QueryError(f"cannot sort by the list field {field!r}")
    return field, descending


def _fields(raw: str, schema: Mapping[str, FieldKind]) -> tuple[str, ...]:
    names = tuple(f.strip() for f in raw.split(",") if f.strip())
    if not names:
        raise QueryError("invalid query parameter: 'fields' names no field", malformed=True)
    for name in names:
        _known_field(name, schema, "fields")
    return names
