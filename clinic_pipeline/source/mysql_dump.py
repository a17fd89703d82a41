"""Read a MySQL/MariaDB `mysqldump` file into DuckDB without a MySQL server: `CLINIC_SOURCE=dump.sql`.

Dumps do not run in DuckDB as they are (`INT(11)`, `ENGINE=InnoDB`, backslash escapes), so the file
is read statement by statement, streaming line by line: a dump is never held whole in memory, only one
statement (mysqldump's extended INSERTs are about 1 MB each). `CREATE TABLE` and `ALTER TABLE` are
read by a small token scanner for column names and types, generated columns and declared foreign keys
(it skips index lines, table options and executable comments it need not understand, where a full SQL
parser stumbles on `POINT SRID`, `COLUMN_FORMAT` or partitions); INSERT rows are read by a regex
scanner, because a full SQL parse of every VALUES tuple is far too slow for millions of rows. Every
value is kept as text, exactly as MySQL would store it after unescaping: `0000-00-00`, leading zeros
and sentinels stay visible for the typed layer. Binary values (`_binary '…'`, `0x…`, `x'…'`, `b'…'`,
`UNHEX('…')`) become what the column holds in MySQL: a number in a numeric or BIT column, UTF-8 text in
a text column, lowercase hex in a binary one (as the SQLite adapter writes BLOBs). A string in a binary
or BIT column is its bytes too (mariadb-dump writes them so without --hex-blob): a column reads the
same however it was dumped.

Values are evaluated where that is deterministic (literals, `CONCAT` and `UNHEX` of them, `TRUE`);
anything else (`NOW()`, `CURRENT_TIMESTAMP`, `DEFAULT`, arithmetic) is kept as its SQL text and counted
in a warning naming the function, table and column: a dump is never refused for a value it cannot
evaluate, and no time is invented for `NOW()`.

Tables then look like every other source: `source."<table>"`, original column names as VARCHAR plus
`_source_row` (1-based, in insert order), declared foreign keys in `SourceExport.foreign_keys`.
Generated columns are left out (MySQL computes them; mysqldump writes no values for them) and named in
a warning. A column an INSERT's column list leaves out is NULL; where it declares a default or
AUTO_INCREMENT, which MySQL would fill in, a warning names it. Errors name the file and line, never a
value.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from clinic_pipeline.source.errors import SourceError
from clinic_pipeline.source.export import DATA_SCHEMA, DeclaredForeignKey, ExportBuilder, SourceExport, table_name
from clinic_pipeline.source.manifest import read_manifest
from clinic_pipeline.sql import quote_ident

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
_KEYWORDS = re.compile(r"[A-Za-z]+(?:\s+[A-Za-z]+){0,4}")

# A backquoted, bare or (in `--compatible=ansi` dumps) double-quoted identifier.
_IDENT = r"`(?:[^`]|``)+`|\"(?:[^\"]|\"\")+\"|[\w$]+"
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
# Whitespace and comments, which may stand between any two tokens of a statement. The lookahead makes
# the usual case, no comment, cost one character test: the gap is matched twice per value.
_GAP = r"\s*+(?:(?=[-\#/])(?:--(?=\s)[^\n]*+|\#[^\n]*+|/\*.*?\*/)\s*+)*+"
_WORD_END = r"(?![\w$])"
# A literal value; the group that matched (`lastindex`, none for NULL) says its kind: 1 quoted string,
# 2 number, 3 `_binary`, 4 other charset introducer, 5 `N''`, 6 `0x` hex, 7 `x''` hex, 8 `b''` bits,
# 9 TRUE or FALSE.
_LITERALS = rf"""(?:
        ({_QUOTED})
      | NULL{_WORD_END}
      | ({_NUMBER}){_WORD_END}
      | _binary\s*'({_STRING_BODY})'
      | _[a-z0-9]+\s*'({_STRING_BODY})'
      | N'({_STRING_BODY})'
      | 0x([0-9A-F]+){_WORD_END}
      | X'([0-9A-F]*)'
      | B'([01]*)'
      | (TRUE|FALSE){_WORD_END}
    )"""
_LITERAL = re.compile(_LITERALS, re.VERBOSE | re.DOTALL | re.IGNORECASE)
# A literal with the `,` or `)` after it, so each value of a tuple the fast path below refuses still costs
# one regex match; anything else, and a literal next to a comment, goes to `_expression`.
_VALUE = re.compile(rf"\s*+{_LITERALS}\s*+[,)]", re.VERBOSE | re.DOTALL | re.IGNORECASE)
# The common case, a tuple of only strings, numbers and NULLs, is validated by one match and split by
# one findall: per-value matching in Python is most of the reader's time on large dumps.
_SIMPLE = rf"{_QUOTED}|NULL|{_NUMBER}"
_SIMPLE_TUPLE = re.compile(rf"\s*\(\s*(?:(?:{_SIMPLE})\s*,\s*)*+(?:{_SIMPLE})\s*\)", re.DOTALL | re.IGNORECASE)
_SIMPLE_VALUE = re.compile(rf"({_QUOTED})|({_NUMBER})|NULL", re.DOTALL | re.IGNORECASE)
_SKIP_GAP = re.compile(_GAP, re.DOTALL)
_TUPLE_OPEN = re.compile(rf"{_GAP}\(", re.DOTALL)
_SEPARATOR = re.compile(rf"{_GAP}[,)]", re.DOTALL)
# After a tuple: another one, the end, or an upsert clause (phpMyAdmin's "ON DUPLICATE KEY UPDATE"
# export option), whose assignments hold no rows.
_TUPLE_NEXT = re.compile(rf"{_GAP}(?:(,){_GAP}|$|ON\s+DUPLICATE\s+KEY\s+UPDATE\b)", re.DOTALL | re.IGNORECASE)
# A function or keyword name, with the `(` of a call after it.
_CALL = re.compile(r"([A-Za-z_][\w$]*)(?:\s*(\())?")
_COLLATE = re.compile(rf"COLLATE\s+(?:{_IDENT}|{_QUOTED})", re.IGNORECASE)
_VARIABLE = re.compile(r"@@?(?:[\w$.]+|`(?:[^`]|``)*`|'[^']*')")
# Up to the next `(`, `)` or `,` outside quotes, to skip a call or an expression kept as text.
_NESTING = re.compile(rf"[^'\"`(),]*+(?:{_QUOTED}|`[^`]*+`|([(),]))", re.DOTALL)
_ESCAPE = {"'": re.compile(r"\\(.)|''", re.DOTALL), '"': re.compile(r'\\(.)|""', re.DOTALL)}
# MySQL's string escapes; `\%` and `\_` keep their backslash outside LIKE patterns, any other `\x` is `x`.
_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "%": "\\%", "_": "\\_"}
_SURROGATE = re.compile("[\udc80-\udcff]")
# Keywords MySQL reads as a value without parentheses; none can be evaluated when reading a dump.
_NILADIC = frozenset(
    {
        "CURRENT_TIMESTAMP",
        "CURRENT_DATE",
        "CURRENT_TIME",
        "CURRENT_USER",
        "LOCALTIME",
        "LOCALTIMESTAMP",
        "UTC_TIMESTAMP",
        "UTC_DATE",
        "UTC_TIME",
        "DEFAULT",
    }
)

# Statements that carry neither rows nor schema: session settings, locks, transactions, drops.
_IGNORED = frozenset({"DROP", "LOCK", "UNLOCK", "SET", "USE", "START", "BEGIN", "COMMIT", "ROLLBACK"})

# CREATE and ALTER TABLE tokens: whitespace and comments drop out (a group-less match), and so do the
# markers of executable comments (`/*!40101 … */`, MariaDB's `/*M!…`), whose content MySQL runs.
_DDL_TOKEN = re.compile(
    rf"""\s+|--(?=\s)[^\n]*|\#[^\n]*|/\*(?!M?!).*?\*/|/\*M?!\d*|\*/
      |(?P<str>{_QUOTED})
      |(?P<ident>`(?:[^`]|``)*`)
      |(?P<word>[\w$]+)
      |(?P<punct>.)""",
    re.VERBOSE | re.DOTALL,
)
# Table-body items that define no column.
_INDEX_WORDS = frozenset({"PRIMARY", "KEY", "INDEX", "UNIQUE", "FULLTEXT", "SPATIAL", "CHECK", "CONSTRAINT", "FOREIGN"})
# Column kinds, from the type's first word: what a binary value (`0x…`) becomes in the column: a number
# (numeric and BIT columns), UTF-8 text, or lowercase hex (binary columns).
_NUMERIC_TYPES = frozenset(
    {
        *("BOOL", "BOOLEAN", "SERIAL", "YEAR"),
        *("TINYINT", "SMALLINT", "MEDIUMINT", "MIDDLEINT", "INT", "INTEGER", "BIGINT"),
        *("INT1", "INT2", "INT3", "INT4", "INT8"),
        *("DECIMAL", "DEC", "NUMERIC", "FIXED", "FLOAT", "DOUBLE", "REAL", "FLOAT4", "FLOAT8"),
    }
)
_BINARY_TYPES = frozenset(
    {
        *("BINARY", "VARBINARY", "TINYBLOB", "BLOB", "MEDIUMBLOB", "LONGBLOB"),
        # Spatial values are dumped as their WKB bytes.
        *("GEOMETRY", "POINT", "LINESTRING", "POLYGON", "MULTIPOINT", "MULTILINESTRING", "MULTIPOLYGON"),
        *("GEOMETRYCOLLECTION", "GEOMCOLLECTION"),
    }
)


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
    quote = identifier[:1]
    if quote in ("`", '"') and identifier.endswith(quote) and len(identifier) >= 2:
        return identifier[1:-1].replace(quote * 2, quote)
    return identifier


def _unescape(body: str, quote: str = "'") -> str:
    """The text of a string literal's `body` quoted with `quote`: a doubled quote is one, like `\\'`."""
    if "\\" not in body and quote * 2 not in body:
        return body
    return _ESCAPE[quote].sub(lambda m: quote if m[1] is None else _ESCAPES.get(m[1], m[1]), body)


@dataclass(frozen=True)
class _Unevaluated:
    """A value the reader does not evaluate; kept as its SQL text."""

    label: str  # names what was not evaluated (`NOW()`), never a value


class _Malformed(Exception):
    """The text at a position is not SQL that MySQL would accept: the statement is broken."""


class _Number(str):
    """A number as written: unlike a string, not bytes to a BIT or binary column."""


# A value while a VALUES tuple is read: text, a number, a binary string, NULL, or not evaluated.
_Value = str | bytes | None | _Unevaluated


def _literal(kind: int | None, body: str | None) -> _Value:
    """The value of a `_LITERALS` match, given its `lastindex` and that group's text."""
    if kind is None or body is None:
        return None
    if kind == 1:
        return _unescape(body[1:-1], body[0])
    if kind == 2:
        return _Number(body)
    if kind == 3:
        # mysqldump without --hex-blob writes BLOB bytes raw: they were decoded as surrogates.
        return _unescape(body).encode("utf-8", "surrogateescape")
    if kind in (4, 5):
        return _unescape(body)
    if kind in (6, 7):
        return bytes.fromhex(body if len(body) % 2 == 0 else "0" + body)
    if kind == 8:
        return int(body, 2).to_bytes((len(body) + 7) // 8, "big") if body else b""
    return _Number("1" if body.upper() == "TRUE" else "0")


def _text_in(column_kind: str, text: str) -> str:
    """A string's value in a binary column (its bytes, as hex) or a BIT column (its bytes, as a number).

    mariadb-dump writes both as raw bytes inside a plain string unless given --hex-blob: read this way,
    a column reads the same whichever way it was dumped.
    """
    data = text.encode("utf-8", "surrogateescape")
    return data.hex() if column_kind == "binary" else str(int.from_bytes(data, "big"))


def _gap(text: str, pos: int) -> int:
    return _SKIP_GAP.match(text, pos).end()  # type: ignore[union-attr]  # it matches ""


def _balanced_end(text: str, pos: int) -> int:
    """Where the next `,` or `)` outside quotes and parentheses is, from `pos`."""
    depth = 0
    while match := _NESTING.match(text, pos):
        pos = match.end()
        if match[1] == "(":
            depth += 1
        elif match[1] is not None:
            if depth == 0:
                return pos - 1
            if match[1] == ")":
                depth -= 1
    raise _Malformed


def _closing(text: str, pos: int) -> int:
    """Just after the `)` that closes the `(` before `pos`."""
    while True:
        end = _balanced_end(text, pos)
        if text[end] == ")":
            return end + 1
        pos = end + 1


def _concat(args: list[_Value]) -> _Value:
    for arg in args:
        if isinstance(arg, _Unevaluated):
            return arg
    if None in args:
        return None
    if any(isinstance(arg, bytes) for arg in args):
        return b"".join(a if isinstance(a, bytes) else str(a).encode("utf-8", "surrogateescape") for a in args)
    return "".join(str(a) for a in args)


def _unhex(args: list[_Value]) -> _Value:
    (arg,) = args
    if isinstance(arg, bytes):
        arg = arg.decode("latin-1")
    if arg is None or isinstance(arg, _Unevaluated):
        return arg
    try:
        return bytes.fromhex(arg if len(arg) % 2 == 0 else "0" + arg)
    except ValueError:
        return None  # MySQL's UNHEX of a non-hex string is NULL


# The deterministic functions dumps use, with the argument counts they take (MySQL refuses others).
_FUNCTIONS = {"CONCAT": (_concat, range(1, 1 << 16)), "UNHEX": (_unhex, range(1, 2))}


def _arguments(text: str, pos: int) -> tuple[list[_Value], int]:
    """The values of a call's arguments, from just after its `(`; and where the call ends."""
    args: list[_Value] = []
    pos = _gap(text, pos)
    if text.startswith(")", pos):
        return args, pos + 1
    while True:
        value, pos = _expression(text, pos)
        args.append(value)
        pos = _gap(text, pos)
        if text.startswith(")", pos):
            return args, pos + 1
        if not text.startswith(",", pos):
            raise _Malformed
        pos = _gap(text, pos + 1)


def _call(text: str, name: str, pos: int) -> tuple[_Value, int]:
    """A function call, from just after its `(`."""
    function = _FUNCTIONS.get(name)
    if function is not None:
        try:
            args, end = _arguments(text, pos)
        except _Malformed:
            pass  # arguments beyond this reader (a column, a subquery): the call is kept as text
        else:
            evaluate, arity = function
            if len(args) in arity:
                return evaluate(args), end
    end = _closing(text, pos)
    empty = not text[pos : end - 1].strip()
    return _Unevaluated(f"{name}()" if empty else f"{name}(…)"), end


def _primary(text: str, pos: int) -> tuple[_Value, int]:
    """One literal, call, keyword or variable at `pos`, and where it ends."""
    literal = _LITERAL.match(text, pos)
    if literal is not None:
        return _literal(literal.lastindex, literal[literal.lastindex or 0]), literal.end()
    head = text[pos : pos + 1]
    if head == "(":
        return _Unevaluated("expression"), _closing(text, pos + 1)
    if head and head in "-+~!":
        end = _balanced_end(text, pos + 1)
        if not text[pos + 1 : end].strip():
            raise _Malformed
        return _Unevaluated("expression"), end
    variable = _VARIABLE.match(text, pos)
    if variable is not None:
        return _Unevaluated("@variable"), variable.end()
    call = _CALL.match(text, pos)
    if call is None:
        raise _Malformed
    name = call[1].upper()
    if call[2] is not None:
        return _call(text, name, call.end())
    if name in _NILADIC:
        return _Unevaluated(name), call.end()
    if name.startswith("_"):
        # A charset introducer before a hex or bit literal (`_utf8mb4 0xC3A9`): binary only for `_binary`.
        literal = _LITERAL.match(text, _gap(text, call.end()))
        if literal is not None and literal.lastindex in (6, 7, 8):
            value = _literal(literal.lastindex, literal[literal.lastindex])
            if name != "_BINARY" and isinstance(value, bytes):
                # Bytes that are not text in that charset stay bytes: the column's kind decides, as for `0x…`.
                with contextlib.suppress(UnicodeDecodeError):
                    value = value.decode("utf-8")
            return value, literal.end()
    raise _Malformed  # a bare name: a column reference at best, which MySQL refuses in a dump's VALUES


def _expression(text: str, pos: int) -> tuple[_Value, int]:
    """One value of a tuple or of a call's arguments, from `pos`: its value, and where it ends."""
    value, pos = _primary(text, _gap(text, pos))
    end = _gap(text, pos)
    collate = _COLLATE.match(text, end)
    if collate is not None:
        pos = collate.end()  # a collation does not change the stored value
        end = _gap(text, pos)
    if end < len(text) and text[end] not in ",)":
        # An operator and more (`1 + 1`, `NOW() - INTERVAL 1 DAY`): kept as text up to the next value.
        return _Unevaluated("expression"), _balanced_end(text, end)
    return value, pos


def _column_kind(type_word: str) -> str:
    word = type_word.upper()
    if word == "BIT":
        return "bit"
    if word in _NUMERIC_TYPES:
        return "numeric"
    return "binary" if word in _BINARY_TYPES else "text"


_Token = tuple[str, str]  # (kind, text); the kind is "str", "ident", "word" or "punct"


def _ddl_tokens(text: str) -> list[_Token]:
    return [(kind, m.group()) for m in _DDL_TOKEN.finditer(text) if (kind := m.lastgroup) is not None]


def _name(token: _Token | None) -> str | None:
    """The identifier a token spells, if it is one: `name`, "name" (ANSI_QUOTES) or a bare word."""
    if token is None:
        return None
    kind, text = token
    if kind == "word":
        return text
    if kind == "ident" or (kind == "str" and text[0] == '"'):
        return text[1:-1].replace(text[0] * 2, text[0])
    return None


def _word(tokens: list[_Token], i: int) -> str:
    return tokens[i][1].upper() if i < len(tokens) and tokens[i][0] == "word" else ""


def _table_ref(tokens: list[_Token], i: int) -> tuple[str, int]:
    """A table name at `i` (`db`.`t` names `t`), and the index after it."""
    name = _name(tokens[i] if i < len(tokens) else None)
    if name is None:
        raise _Malformed
    if i + 2 < len(tokens) and tokens[i + 1] == ("punct", ".") and _name(tokens[i + 2]) is not None:
        return _table_ref(tokens, i + 2)
    return name, i + 1


def _items(tokens: list[_Token], i: int) -> tuple[list[list[_Token]], int]:
    """The comma-separated items of the parenthesised list opening at `i`, and the index after its `)`."""
    items: list[list[_Token]] = [[]]
    depth = 0
    for j in range(i + 1, len(tokens)):
        token = tokens[j]
        if token == ("punct", ")") and depth == 0:
            return items, j + 1
        if token == ("punct", ",") and depth == 0:
            items.append([])
            continue
        if token == ("punct", "("):
            depth += 1
        elif token == ("punct", ")"):
            depth -= 1
        items[-1].append(token)
    raise _Malformed


def _names(tokens: list[_Token], i: int) -> tuple[list[str], int]:
    """The identifiers of a `(a, b)` list opening at `i`, and the index after it."""
    if i >= len(tokens) or tokens[i] != ("punct", "("):
        raise _Malformed
    items, end = _items(tokens, i)
    names = [_name(item[0]) if len(item) == 1 else None for item in items]
    if any(n is None for n in names):
        raise _Malformed
    return [n for n in names if n is not None], end


def _declares_foreign_key(item: list[_Token], i: int) -> bool:
    """Whether the item is `[CONSTRAINT [symbol]] FOREIGN KEY …` from `i` on."""
    first = _word(item, i)
    return first == "FOREIGN" or (first == "CONSTRAINT" and "FOREIGN" in (_word(item, i + 1), _word(item, i + 2)))


@dataclass
class _PendingKey:
    table: str
    columns: list[str]
    ref_table: str
    ref_columns: list[str]


def _foreign_key(table: str, item: list[_Token]) -> _PendingKey | None:
    """The key an item declares from `FOREIGN KEY`, if it names the referenced columns, as MySQL requires."""
    i = next(j for j in range(len(item)) if _word(item, j) == "FOREIGN") + 1
    if _word(item, i) != "KEY":
        raise _Malformed
    i += 1
    if i < len(item) and item[i] != ("punct", "("):
        i += 1  # the index name
    columns, i = _names(item, i)
    if _word(item, i) != "REFERENCES":
        raise _Malformed
    ref_table, i = _table_ref(item, i + 1)
    if i >= len(item) or item[i] != ("punct", "("):
        return None
    ref_columns, _ = _names(item, i)
    return _PendingKey(table=table, columns=columns, ref_table=ref_table, ref_columns=ref_columns)


@dataclass
class _Column:
    name: str
    # "numeric", "bit", "binary" or "text" (see `_NUMERIC_TYPES`); "generated": not loaded
    kind: str
    # AUTO_INCREMENT, or a DEFAULT other than NULL: what MySQL gives a row whose INSERT omits the column,
    # and this reader does not (it leaves NULL).
    defaulted: bool = False


@dataclass
class _Table:
    raw: str
    name: str
    declared: list[_Column]  # in CREATE TABLE order, generated columns too: a plain INSERT gives them all
    rows: list[tuple[str | None, ...]] = field(default_factory=list)
    columns: list[str] = field(init=False)  # the loaded ones
    by_name: dict[str, _Column] = field(init=False)

    def __post_init__(self) -> None:
        self.columns = [c.name for c in self.declared if c.kind != "generated"]
        # MySQL column names are case-insensitive.
        self.by_name = {c.name.lower(): c for c in self.declared}


# The slot of a value beyond a table's columns: read only to report the row's width.
_EXTRA = _Column("", "binary")


def _slot(slots: list[_Column], i: int) -> _Column:
    return slots[i] if i < len(slots) else _EXTRA


class _DumpLoader:
    """Applies the statements of one dump to `_source_data` tables, in batches of Arrow columns."""

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection, builder: ExportBuilder) -> None:
        self.path = path
        self.con = con
        self.builder = builder
        self.tables: dict[str, _Table] = {}
        self.names: set[str] = set()
        self.keys: list[_PendingKey] = []
        self.skipped: Counter[str] = Counter()
        # (table, column, what) → how many values were kept as SQL text; (table, column) → binary
        # values in a text column that are not UTF-8, kept as hex.
        self.unevaluated: Counter[tuple[str, str, str]] = Counter()
        self.undecoded: Counter[tuple[str, str]] = Counter()
        # table → rows, and the columns (an ordered set), of INSERTs that leave out a column with a default.
        self.omitted_rows: Counter[str] = Counter()
        self.omitted_columns: dict[str, dict[str, None]] = {}

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
        elif kind[0] == "CREATE" and "TABLE" in kind[1:] and kind[1] in ("TABLE", "TEMPORARY", "OR"):
            self.create(stmt)
        elif kind[:2] == ["ALTER", "TABLE"]:
            self.alter(stmt)
        elif kind[0] not in _IGNORED and kind[:2] not in (["CREATE", "DATABASE"], ["CREATE", "SCHEMA"]):
            self.skipped[" ".join([w for w in kind if w not in ("OR", "REPLACE")][:2])] += 1

    def create(self, stmt: Statement) -> None:
        tokens = _ddl_tokens(stmt.text)
        i = next(j for j in range(len(tokens)) if _word(tokens, j) == "TABLE") + 1
        if [_word(tokens, j) for j in range(i, i + 3)] == ["IF", "NOT", "EXISTS"]:
            i += 3
        try:
            raw, i = _table_ref(tokens, i)
            if i >= len(tokens) or tokens[i] != ("punct", "(") or _word(tokens, i + 1) == "LIKE":
                self.skipped["CREATE TABLE without columns"] += 1  # `CREATE TABLE a LIKE b`, `... AS SELECT`
                return
            items, _ = _items(tokens, i)
            columns = [c for c in (self.column(item) for item in items) if c is not None]
            keys = [_foreign_key(raw, item) for item in items if _declares_foreign_key(item, 0)]
        except (_Malformed, StopIteration):
            raise self.error(stmt.line, "cannot parse CREATE TABLE") from None
        if not any(c.kind != "generated" for c in columns):
            raise self.error(stmt.line, f"CREATE TABLE `{raw}` declares no columns")
        previous = self.tables.get(raw)
        if previous is not None:
            # Re-created (after its DROP TABLE): MySQL would hold only the new definition and rows.
            self.con.execute(f"DROP TABLE {DATA_SCHEMA}.{quote_ident(previous.name)}")
            self.keys = [k for k in self.keys if k.table != raw]
            name = previous.name
        else:
            name = self.claim(raw)
        table = _Table(raw=raw, name=name, declared=columns)
        defs = ", ".join(f"{quote_ident(c)} VARCHAR" for c in table.columns)
        self.con.execute(f"CREATE TABLE {DATA_SCHEMA}.{quote_ident(name)} ({defs})")
        self.tables[raw] = table
        self.keys.extend(k for k in keys if k is not None)

    def column(self, item: list[_Token]) -> _Column | None:
        """The column a CREATE TABLE item defines; None for an index, key or check line."""
        first = _word(item, 0)
        if first in _INDEX_WORDS or (first == "PERIOD" and _word(item, 1) == "FOR"):
            return None
        name = _name(item[0] if item else None)
        type_word = _word(item, 1)
        if name is None or not type_word:
            raise _Malformed
        # `… GENERATED ALWAYS AS (expr) VIRTUAL|STORED`, or just `AS (expr)`: the only `AS` outside parentheses.
        depth, generated, defaulted = 0, False, type_word == "SERIAL"  # SERIAL is an AUTO_INCREMENT BIGINT
        for j in range(2, len(item)):
            depth += {("punct", "("): 1, ("punct", ")"): -1}.get(item[j], 0)
            word = _word(item, j) if depth == 0 else ""
            generated = generated or word == "AS"
            defaulted = defaulted or word == "AUTO_INCREMENT" or (word == "DEFAULT" and _word(item, j + 1) != "NULL")
        if generated:
            return _Column(name, "generated")
        return _Column(name, _column_kind(type_word), defaulted)

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
        tokens = _ddl_tokens(stmt.text)
        try:
            i = next(j for j in range(len(tokens)) if _word(tokens, j) == "TABLE") + 1
            raw, i = _table_ref(tokens, i)
            # The alterations are a comma-separated list: read it as the items of a parenthesised one.
            specs, _ = _items([("punct", "("), *tokens[i:], ("punct", ")")], 0)
            keys = [
                _foreign_key(raw, spec) for spec in specs if _word(spec, 0) == "ADD" and _declares_foreign_key(spec, 1)
            ]
        except (_Malformed, StopIteration):
            raise self.error(stmt.line, "cannot parse ALTER TABLE") from None
        self.keys.extend(k for k in keys if k is not None)

    def insert(self, stmt: Statement) -> None:
        text = stmt.text
        head = _INSERT_HEAD.match(text)
        if head is None:
            raise self.error(stmt.line, "cannot read the INSERT statement's table or VALUES")
        raw = _unquote(head["second"] or head["first"])
        table = self.tables.get(raw)
        if table is None:
            raise self.error(stmt.line, f"INSERT into `{raw}` before its CREATE TABLE")
        slots = table.declared
        if head["columns"] is not None:
            listed = [_unquote(c) for c in re.findall(_IDENT, head["columns"])]
            unknown = [c for c in listed if c.lower() not in table.by_name]
            if unknown:
                raise self.error(stmt.line, f"INSERT into `{raw}` names unknown columns {unknown}")
            slots = [table.by_name[c.lower()] for c in listed]
        names = [c.name for c in slots]
        order = None if names == table.columns else [names.index(c) if c in names else None for c in table.columns]
        omitted = [c.name for c in table.declared if c.defaulted and c.name not in names]
        before = len(table.rows)
        for row in self.values(stmt, head.end(), table, slots):
            if order is not None:
                row = tuple(row[i] if i is not None else None for i in order)
            table.rows.append(row)
        if omitted:
            self.omitted_rows[table.name] += len(table.rows) - before
            self.omitted_columns.setdefault(table.name, {}).update(dict.fromkeys(omitted))
        if len(table.rows) >= _BATCH_ROWS:
            self.flush(table)

    def values(
        self, stmt: Statement, pos: int, table: _Table, slots: list[_Column]
    ) -> Iterator[tuple[str | None, ...]]:
        text, raw, width = stmt.text, table.raw, len(slots)
        simple_tuple, simple_values = _SIMPLE_TUPLE.match, _SIMPLE_VALUE.findall
        # Binary and BIT columns, whose strings are bytes: most tables have none, and skip this.
        special = {i: c.kind for i, c in enumerate(slots) if c.kind in ("binary", "bit")}
        number = 0
        pos = _gap(text, pos)
        while True:
            number += 1
            start = pos
            simple = simple_tuple(text, pos)
            if simple is not None:
                # A tuple already validated as a whole: findall cannot skip over anything but separators.
                values = simple_values(text, simple.start(), simple.end())
                row = [_unescape(quoted[1:-1], quoted[0]) if quoted else (num or None) for quoted, num in values]
                for i, kind in special.items():
                    # A number is bytes (its digits) only to a binary column.
                    if i < len(row) and row[i] is not None and (kind == "binary" or values[i][0]):
                        row[i] = _text_in(kind, row[i])  # type: ignore[arg-type]  # not None, tested above
                pos = simple.end()
            else:
                row, pos = self.tuple_slow(stmt, pos, table, slots, special, number)
            if stmt.raw_bytes and any(v is not None and _SURROGATE.search(v) for v in row):
                raise self.error(self.line_at(stmt, start), f"`{raw}` row {number}: text that is not UTF-8")
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

    def tuple_slow(
        self, stmt: Statement, pos: int, table: _Table, slots: list[_Column], special: dict[int, str], number: int
    ) -> tuple[list[str | None], int]:
        """One tuple value by value: binary literals, functions, and the exact place of a syntax error."""
        text, value_match = stmt.text, _VALUE.match
        opened = _TUPLE_OPEN.match(text, pos)
        if opened is None:
            raise self.value_error(stmt, pos, table.raw, number)
        row: list[str | None] = []
        append, pos = row.append, opened.end()
        while True:
            m = value_match(text, pos)
            if m is not None:
                # Strings, numbers and NULL inline: whole tuples come here when one value is binary.
                kind = m.lastindex
                plain = len(row) not in special  # a string's bytes matter to binary and BIT columns only
                if kind == 1 and plain:
                    quoted = m[1]
                    append(_unescape(quoted[1:-1], quoted[0]))
                elif kind is None or (kind == 2 and plain):
                    append(m[2])
                else:
                    append(self.literal_cell(kind, m[kind], _slot(slots, len(row)), table))
                pos = m.end()
            else:
                start = _gap(text, pos)
                if not row and text.startswith(")", start):
                    return row, start + 1  # `VALUES ()` for `INSERT INTO t () VALUES ()`
                try:
                    value, end = _expression(text, start)
                except _Malformed:
                    raise self.value_error(stmt, start, table.raw, number) from None
                sep = _SEPARATOR.match(text, end)
                if sep is None:
                    raise self.value_error(stmt, end, table.raw, number)
                append(self.cell(value, _slot(slots, len(row)), table, text[start:end].strip()))
                pos = sep.end()
            if text[pos - 1] == ")":
                return row, pos

    def literal_cell(self, kind: int, body: str, column: _Column, table: _Table) -> str | None:
        """The text of a non-NULL `_LITERALS` match of kind `kind` in `column`."""
        # The common binary cases without the round trip through bytes: mysqldump's --hex-blob into a
        # BLOB, and a BIT column's `b'1'`.
        if kind in (6, 7) and column.kind == "binary":
            digits = body.lower()
            return digits if len(digits) % 2 == 0 else "0" + digits
        if kind == 8 and column.kind in ("numeric", "bit"):
            return str(int(body or "0", 2))
        return self.cell(_literal(kind, body), column, table, "")

    def cell(self, value: _Value, column: _Column, table: _Table, sql: str) -> str | None:
        """The text MySQL would store for `value` in `column`; `sql` is its text in the dump."""
        if isinstance(value, _Unevaluated):
            if column.kind != "generated":
                self.unevaluated[(table.name, column.name, value.label)] += 1
            return sql
        if value is None:
            return None
        if isinstance(value, str):
            if column.kind == "binary" or (column.kind == "bit" and not isinstance(value, _Number)):
                return _text_in(column.kind, value)
            return str(value)  # a plain str, not a `_Number`
        if column.kind in ("numeric", "bit"):
            return str(int.from_bytes(value, "big"))
        if column.kind == "text":
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                self.undecoded[(table.name, column.name)] += 1
        return value.hex()

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
        file = self.path.name
        for table in self.tables.values():
            self.flush(table)
            self.builder.register(table.name, f"{self.path}:{table.raw}", table.raw)
            generated = [c.name for c in table.declared if c.kind == "generated"]
            if generated:
                self.builder.warnings.append(
                    f"{file}: {table.name}: generated column(s) {', '.join(generated)} not loaded: "
                    "MySQL computes them from the other columns"
                )
        names = {raw: t.name for raw, t in self.tables.items()}
        for key in self.keys:
            # An ALTER TABLE may name a table the dump never creates, on either side of the key.
            missing = next((t for t in (key.ref_table, key.table) if t not in names), None)
            if missing is not None:
                self.builder.warnings.append(
                    f"{file}: foreign key {key.table}.{key.columns} references `{key.ref_table}`, "
                    f"but the dump does not contain `{missing}`"
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
            self.builder.warnings.append(f"{file}: skipped {count} {kind} statement(s): they hold no rows")
        for (where, column, label), count in sorted(self.unevaluated.items()):
            plural = "s" if count != 1 else ""
            self.builder.warnings.append(f"{file}: {count} value{plural} kept as SQL text: {label} in {where}.{column}")
        for where, count in sorted(self.omitted_rows.items()):
            self.builder.warnings.append(
                f"{file}: {where}: {count} row(s) leave out column(s) with a declared default, "
                f"left NULL (MySQL would fill them in): {', '.join(self.omitted_columns[where])}"
            )
        for (where, column), count in sorted(self.undecoded.items()):
            plural = "s" if count != 1 else ""
            self.builder.warnings.append(
                f"{file}: {count} binary value{plural} in text column {where}.{column} not UTF-8: kept as hex"
            )


def open_mysql_dump(spec: str, path: Path, con: duckdb.DuckDBPyConnection) -> SourceExport:
    """Load every table of the mysqldump file `path` into `con` as `source."<table>"` (see module doc)."""
    builder = ExportBuilder(con, read_manifest(path.parent))
    loader = _DumpLoader(path, con, builder)
    try:
        for stmt in iter_statements(path):
            loader.apply(stmt)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror})") from None
    loader.finish()
    return builder.export(spec)
