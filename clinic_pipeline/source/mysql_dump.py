"""Read a MySQL/MariaDB `mysqldump` file into DuckDB without a MySQL server: `CLINIC_SOURCE=dump.sql`.

Dumps do not run in DuckDB as they are (`INT(11)`, `ENGINE=InnoDB`, backslash escapes), so the file
is read statement by statement, streaming line by line: a dump is never held whole in memory, only one
statement (mysqldump's extended INSERTs are about 1 MB each). `CREATE TABLE` and `ALTER TABLE` are
parsed with sqlglot's MySQL dialect for column names and declared foreign keys; INSERT rows are read
by a regex scanner, because a full SQL parse of every VALUES tuple is far too slow for millions of
rows. Every value is kept as text, exactly as MySQL would store it after unescaping: `0000-00-00`,
leading zeros and sentinels stay visible for the typed layer; binary values (`_binary '…'`, `0x…`)
become lowercase hex, as the SQLite adapter writes BLOBs.

Tables then look like every other source: `source."<table>"`, original column names as VARCHAR plus
`_source_row` (1-based, in insert order), declared foreign keys in `SourceExport.foreign_keys`.
Errors name the file and line, never a value.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from clinic_pipeline.source.errors import SourceError
from clinic_pipeline.source.manifest import read_manifest

# The reader imports this module lazily (from `open_source`), so importing it back here is not circular.
from clinic_pipeline.source.reader import (
    DATA_SCHEMA,
    DeclaredForeignKey,
    SourceExport,
    _Builder,
    quote_ident,
    table_name,
)

__all__ = ["Statement", "iter_statements", "open_mysql_dump"]

_BATCH_ROWS = 50_000

# One complete statement from a position: text outside quotes and comments up to the first `;`.
# Possessive quantifiers keep a statement with an unterminated quote from backtracking exponentially:
# the match simply fails and the reader appends the next line.
_STATEMENT = re.compile(
    r"""(?:
        [^'"`;/\-\#]++
      | '(?:[^'\\]++|\\.)*+'
      | "(?:[^"\\]++|\\.)*+"
      | `[^`]*+`
      | /\*.*?\*/
      | --(?=\s)[^\n]*+
      | \#[^\n]*+
      | [/\-]
    )*+;""",
    re.VERBOSE | re.DOTALL,
)
_LEADING_COMMENTS = re.compile(r"(?:\s++|--(?=\s)[^\n]*+|\#[^\n]*+|/\*(?!!).*?\*/)*+", re.DOTALL)
_KEYWORDS = re.compile(r"[A-Za-z]+(?:\s+[A-Za-z]+)?")

_IDENT = r"`(?:[^`]|``)+`|[\w$]+"
_INSERT_HEAD = re.compile(
    rf"(?:INSERT|REPLACE)(?:\s+(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE))*\s+(?:INTO\s+)?"
    rf"(?P<first>{_IDENT})(?:\s*\.\s*(?P<second>{_IDENT}))?\s*"
    rf"(?:\((?P<columns>(?:[^)`]|`(?:[^`]|``)*`)*)\)\s*)?VALUES?(?=[\s(])",
    re.IGNORECASE,
)
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_STRING_BODY = r"[^'\\]*+(?:(?:\\.|'')[^'\\]*+)*+"
# MySQL reads "…" as a string too (unless ANSI_QUOTES); hand-edited dumps use it.
_DQ_STRING_BODY = r'[^"\\]*+(?:(?:\\.|"")[^"\\]*+)*+'
_QUOTED = f"'{_STRING_BODY}'|\"{_DQ_STRING_BODY}\""
# One value of a VALUES tuple with the `,` or `)` after it, so each value costs one regex match; the
# group that matched (`lastindex`, none for NULL) says its kind: 1 quoted string, 2 number,
# 3 `_binary`, 4 other charset introducer, 5 `0x` hex, 6 `x''` hex, 7 `b''` bits.
_VALUE = re.compile(
    rf"""\s*(?:
        ({_QUOTED})
      | NULL
      | ({_NUMBER})
      | _binary\s*'({_STRING_BODY})'
      | _[a-z0-9]+\s*'({_STRING_BODY})'
      | 0x([0-9A-Fa-f]*)
      | [xX]'([0-9A-Fa-f]*)'
      | [bB]'([01]*)'
    )\s*[,)]""",
    re.VERBOSE | re.DOTALL | re.IGNORECASE,
)
# The common case, a tuple of only strings, numbers and NULLs, is validated by one match and split by
# one findall: per-value matching in Python is most of the reader's time on large dumps.
_SIMPLE = rf"{_QUOTED}|NULL|{_NUMBER}"
_SIMPLE_TUPLE = re.compile(rf"\s*\(\s*(?:(?:{_SIMPLE})\s*,\s*)*+(?:{_SIMPLE})\s*\)", re.DOTALL | re.IGNORECASE)
_SIMPLE_VALUE = re.compile(rf"({_QUOTED})|({_NUMBER})|NULL", re.DOTALL | re.IGNORECASE)
_TUPLE_OPEN = re.compile(r"\s*\(")
_TUPLE_NEXT = re.compile(r"\s*(,|$)")
_ESCAPE = {"'": re.compile(r"\\(.)|''", re.DOTALL), '"': re.compile(r'\\(.)|""', re.DOTALL)}
# MySQL's string escapes; `\%` and `\_` keep their backslash outside LIKE patterns, any other `\x` is `x`.
_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "%": "\\%", "_": "\\_"}
_SURROGATE = re.compile("[\udc80-\udcff]")

# Statements that carry neither rows nor schema: session settings, locks, transactions, drops.
_IGNORED = frozenset({"DROP", "LOCK", "UNLOCK", "SET", "USE", "START", "BEGIN", "COMMIT", "ROLLBACK"})


@dataclass(frozen=True)
class Statement:
    text: str = field(repr=False)  # may hold record values: never log it
    line: int
    # Set when the statement held bytes that are not UTF-8 (kept as surrogates): only binary values may.
    raw_bytes: bool = False


def _decode(raw: bytes) -> tuple[str, bool]:
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        # mysqldump without --hex-blob writes BLOBs as raw bytes inside `_binary '…'`.
        return raw.decode("utf-8", "surrogateescape"), True


def _split(text: str, start: int, raw_bytes: bool) -> Generator[Statement, None, int]:
    """Yield the complete statements at the head of `text` (which starts on line `start`); return where they end."""
    pos = 0
    while match := _STATEMENT.match(text, pos):
        body_start = _LEADING_COMMENTS.match(text, pos).end()  # type: ignore[union-attr]  # it matches ""
        body = text[body_start : match.end() - 1].strip()
        if body:
            yield Statement(body, start + text.count("\n", 0, body_start), raw_bytes)
        pos = match.end()
    return pos


def iter_statements(path: Path) -> Iterator[Statement]:
    """Yield each SQL statement of the dump (without its `;`) with the line it starts on.

    Quotes, backslash escapes and comments are respected; client commands (`DELIMITER`) and comment
    lines between statements are dropped, and so are statements between `DELIMITER ;;` lines
    (triggers and routines: they hold no rows).
    """
    pending: list[str] = []
    start, raw_bytes, delimiter = 0, False, ";"
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            line, bad = _decode(raw.removeprefix(b"\xef\xbb\xbf") if lineno == 1 else raw)
            if not pending:
                stripped = line.strip()
                if not stripped or stripped == "--" or stripped.startswith(("-- ", "--\t", "#")):
                    continue
                if stripped[:10].upper() == "DELIMITER ":
                    delimiter = stripped[10:].strip() or ";"
                    continue
                start, raw_bytes = lineno, False
            pending.append(line)
            raw_bytes = raw_bytes or bad
            if not line.rstrip().endswith(delimiter):
                continue
            if delimiter != ";":
                # Trigger and routine bodies hold `;` of their own: the block ends at the custom delimiter.
                pending = []
                continue
            text = "".join(pending)
            pos = yield from _split(text, start, raw_bytes)
            rest = text[pos:]
            if _LEADING_COMMENTS.fullmatch(rest):
                pending = []
            else:
                # A second statement begun on the same line, or a `;` that was inside a quote.
                start += text.count("\n", 0, pos)
                pending = [rest]
    if pending:
        # The last line may end in a comment after its `;`, which the line test above does not see.
        text = "".join(pending)
        pos = yield from _split(text, start, raw_bytes)
        start += text.count("\n", 0, pos)
        if not _LEADING_COMMENTS.fullmatch(text[pos:]):
            raise SourceError(f"{path}: line {start}: statement never ends (unbalanced quote or missing ';')")


def _unquote(identifier: str) -> str:
    identifier = identifier.strip()
    if identifier.startswith("`") and identifier.endswith("`") and len(identifier) >= 2:
        return identifier[1:-1].replace("``", "`")
    return identifier


def _unescape(body: str, quote: str = "'") -> str:
    """The text of a string literal's `body` quoted with `quote`: a doubled quote is one, like `\\'`."""
    if "\\" not in body and quote * 2 not in body:
        return body
    return _ESCAPE[quote].sub(lambda m: quote if m[1] is None else _ESCAPES.get(m[1], m[1]), body)


def _binary_hex(body: str) -> str:
    return _unescape(body).encode("utf-8", "surrogateescape").hex()


def _other_value(kind: int, body: str) -> str:
    """Text for a `_VALUE` match other than a string or NULL."""
    if kind == 2:
        return body
    if kind == 3:
        return _binary_hex(body)
    if kind == 4:
        return _unescape(body)
    if kind == 7:
        return str(int(body or "0", 2))
    return body.lower()


@dataclass
class _Table:
    raw: str
    name: str
    columns: list[str]
    rows: list[tuple[str | None, ...]] = field(default_factory=list)


@dataclass
class _PendingKey:
    table: str
    columns: list[str]
    ref_table: str
    ref_columns: list[str]


class _DumpLoader:
    """Applies the statements of one dump to `_source_data` tables, in batches of Arrow columns."""

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection, builder: _Builder) -> None:
        self.path = path
        self.con = con
        self.builder = builder
        self.tables: dict[str, _Table] = {}
        self.names: set[str] = set()
        self.keys: list[_PendingKey] = []
        self.skipped: Counter[str] = Counter()

    def error(self, line: int, reason: str) -> SourceError:
        return SourceError(f"{self.path}: line {line}: {reason}")

    def apply(self, stmt: Statement) -> None:
        text = stmt.text
        if text.startswith("/*!"):
            return  # mysqldump's version-gated session settings, key toggles and view stubs
        words = _KEYWORDS.match(text)
        kind = words.group().upper().split() if words else [text[:1]]
        if kind[0] in ("INSERT", "REPLACE"):
            self.insert(stmt)
        elif kind[:2] == ["CREATE", "TABLE"] or kind[:2] == ["CREATE", "TEMPORARY"]:
            self.create(stmt)
        elif kind[:2] == ["ALTER", "TABLE"]:
            self.alter(stmt)
        elif kind[0] not in _IGNORED and kind[:2] not in (["CREATE", "DATABASE"], ["CREATE", "SCHEMA"]):
            self.skipped[" ".join(kind)] += 1

    def parse(self, stmt: Statement, what: str) -> exp.Expression:
        try:
            return sqlglot.parse_one(stmt.text, read="mysql")
        except SqlglotError:
            # sqlglot's message quotes the statement, which may hold defaults or comments: name the line only.
            raise self.error(stmt.line, f"cannot parse {what}") from None

    def create(self, stmt: Statement) -> None:
        parsed = self.parse(stmt, "CREATE TABLE")
        schema = parsed.this
        if not isinstance(schema, exp.Schema):
            self.skipped["CREATE TABLE without columns"] += 1  # `CREATE TABLE a LIKE b`, `... AS SELECT`
            return
        raw = schema.this.name
        columns = [c.name for c in schema.expressions if isinstance(c, exp.ColumnDef)]
        if not columns:
            raise self.error(stmt.line, f"CREATE TABLE `{raw}` declares no columns")
        previous = self.tables.get(raw)
        if previous is not None:
            # Re-created (after its DROP TABLE): MySQL would hold only the new definition and rows.
            self.con.execute(f"DROP TABLE {DATA_SCHEMA}.{quote_ident(previous.name)}")
            self.keys = [k for k in self.keys if k.table != raw]
            name = previous.name
        else:
            name = self.claim(raw)
        defs = ", ".join(f"{quote_ident(c)} VARCHAR" for c in columns)
        self.con.execute(f"CREATE TABLE {DATA_SCHEMA}.{quote_ident(name)} ({defs})")
        self.tables[raw] = _Table(raw=raw, name=name, columns=columns)
        self.collect_keys(raw, parsed)

    def claim(self, raw: str) -> str:
        base = table_name(raw)
        name, n = base, 1
        while name in self.names:
            n += 1
            name = f"{base}_{n}"
        self.names.add(name)
        return name

    def alter(self, stmt: Statement) -> None:
        # phpMyAdmin-style dumps add their foreign keys at the end, in ALTER TABLE statements.
        if "FOREIGN" not in stmt.text.upper():
            return
        parsed = self.parse(stmt, "ALTER TABLE")
        table = parsed.find(exp.Table)
        if table is not None:
            self.collect_keys(table.name, parsed)

    def collect_keys(self, raw: str, parsed: exp.Expression) -> None:
        for fk in parsed.find_all(exp.ForeignKey):
            reference = fk.args.get("reference")
            target = reference.this if reference is not None else None
            if not isinstance(target, exp.Schema):
                continue  # MySQL requires the referenced columns; anything else is not a usable key
            self.keys.append(
                _PendingKey(
                    table=raw,
                    columns=[c.name for c in fk.expressions],
                    ref_table=target.this.name,
                    ref_columns=[c.name for c in target.expressions],
                )
            )

    def insert(self, stmt: Statement) -> None:
        text = stmt.text
        head = _INSERT_HEAD.match(text)
        if head is None:
            raise self.error(stmt.line, "cannot read the INSERT statement's table or VALUES")
        raw = _unquote(head["second"] or head["first"])
        table = self.tables.get(raw)
        if table is None:
            raise self.error(stmt.line, f"INSERT into `{raw}` before its CREATE TABLE")
        width = len(table.columns)
        order: list[int | None] | None = None
        if head["columns"] is not None:
            listed = [_unquote(c) for c in re.findall(_IDENT, head["columns"])]
            unknown = [c for c in listed if c not in table.columns]
            if unknown:
                raise self.error(stmt.line, f"INSERT into `{raw}` names unknown columns {unknown}")
            width = len(listed)
            order = [listed.index(c) if c in listed else None for c in table.columns]
        for row in self.values(stmt, head.end(), raw, width):
            if order is not None:
                row = tuple(row[i] if i is not None else None for i in order)
            table.rows.append(row)
        if len(table.rows) >= _BATCH_ROWS:
            self.flush(table)

    def values(self, stmt: Statement, pos: int, raw: str, width: int) -> Iterator[tuple[str | None, ...]]:
        text = stmt.text
        simple_tuple, simple_values = _SIMPLE_TUPLE.match, _SIMPLE_VALUE.findall
        number = 0
        while True:
            number += 1
            simple = simple_tuple(text, pos)
            if simple is not None:
                # A tuple already validated as a whole: findall cannot skip over anything but separators.
                row = [
                    _unescape(quoted[1:-1], quoted[0]) if quoted else (num or None)
                    for quoted, num in simple_values(text, simple.start(), simple.end())
                ]
                if stmt.raw_bytes and any(v is not None and _SURROGATE.search(v) for v in row):
                    raise self.error(self.line_at(stmt, pos), f"`{raw}` row {number}: text that is not UTF-8")
                pos = simple.end()
            else:
                row, pos = self.tuple_slow(stmt, pos, raw, number)
            if len(row) != width:
                line = self.line_at(stmt, pos)
                raise self.error(line, f"`{raw}` row {number} has {len(row)} values for {width} columns")
            yield tuple(row)
            after = _TUPLE_NEXT.match(text, pos)
            if after is None:
                raise self.value_error(stmt, pos, raw, number)
            if not after.group(1):
                return
            pos = after.end()

    def tuple_slow(self, stmt: Statement, pos: int, raw: str, number: int) -> tuple[list[str | None], int]:
        """One tuple value by value: binary and bit literals, and the exact place of a syntax error."""
        text = stmt.text
        opened = _TUPLE_OPEN.match(text, pos)
        if opened is None:
            raise self.value_error(stmt, pos, raw, number)
        pos = opened.end()
        row: list[str | None] = []
        while True:
            m = _VALUE.match(text, pos)
            if m is None:
                raise self.value_error(stmt, pos, raw, number)
            kind = m.lastindex
            if kind == 1:
                quoted = m.group(1)
                value = _unescape(quoted[1:-1], quoted[0])
                if stmt.raw_bytes and _SURROGATE.search(value):
                    raise self.error(self.line_at(stmt, pos), f"`{raw}` row {number}: text that is not UTF-8")
                row.append(value)
            elif kind is None:
                row.append(None)
            else:
                row.append(_other_value(kind, m.group(kind)))
            pos = m.end()
            if text[pos - 1] == ")":
                return row, pos

    def line_at(self, stmt: Statement, pos: int) -> int:
        return stmt.line + stmt.text.count("\n", 0, pos)

    def value_error(self, stmt: Statement, pos: int, raw: str, number: int) -> SourceError:
        return self.error(self.line_at(stmt, pos), f"cannot parse the VALUES of INSERT into `{raw}` (row {number})")

    def flush(self, table: _Table) -> None:
        if not table.rows:
            return
        columns = list(zip(*table.rows, strict=True))
        batch = pa.table({f"c{i}": pa.array(values, pa.string()) for i, values in enumerate(columns)})
        self.con.register("_dump_batch", batch)
        try:
            self.con.execute(f"INSERT INTO {DATA_SCHEMA}.{quote_ident(table.name)} SELECT * FROM _dump_batch")
        finally:
            self.con.unregister("_dump_batch")
        table.rows = []

    def finish(self) -> None:
        for table in self.tables.values():
            self.flush(table)
            self.builder.register(table.name, f"{self.path}:{table.raw}", table.raw)
        names = {raw: t.name for raw, t in self.tables.items()}
        for key in self.keys:
            if key.ref_table not in names:
                self.builder.warnings.append(
                    f"{self.path.name}: foreign key {key.table}.{key.columns} references `{key.ref_table}`, "
                    "which the dump does not contain"
                )
                continue
            self.builder.foreign_keys.append(
                DeclaredForeignKey(
                    table=names[key.table],
                    columns=key.columns,
                    ref_table=names[key.ref_table],
                    ref_columns=key.ref_columns,
                )
            )
        for kind, count in sorted(self.skipped.items()):
            self.builder.warnings.append(f"{self.path.name}: skipped {count} {kind} statement(s): they hold no rows")


def open_mysql_dump(spec: str, path: Path, con: duckdb.DuckDBPyConnection) -> SourceExport:
    """Load every table of the mysqldump file `path` into `con` as `source."<table>"` (see module doc)."""
    builder = _Builder(con, read_manifest(path.parent))
    loader = _DumpLoader(path, con, builder)
    try:
        for stmt in iter_statements(path):
            loader.apply(stmt)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror})") from None
    loader.finish()
    return builder.export(spec)
