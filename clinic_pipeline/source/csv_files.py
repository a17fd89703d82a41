"""One CSV file of an export as one table: its encoding, its delimiter, and errors that name the line.

DuckDB reads the file; when it cannot, its message either quotes the offending row (PHI) or names
no line at all, and its line numbers are those of its sniffer. So on a failure the file is scanned
here, streaming, for the first row DuckDB cannot take: a row with more or fewer fields than the header,
a quoted field that never ends, text after a closing quote, a line break unlike the header's, a row
longer than any row may be. A row longer than DuckDB's default line size is no fault: the file is read
again with a line size that fits.

Encodings: UTF-8 (with or without a byte order mark) is read as it is; UTF-16 and UTF-32 (by their byte
order mark, or UTF-16 by its NUL bytes when it has none) and Windows-1252 are transcoded to UTF-8 first.
A file that is neither, or mixes UTF-8 with another encoding, is refused with the line of its first bad
byte: decoding it as Latin-1 would pass on wrong letters without a word.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from clinic_pipeline.model.transforms import CONTROL_CHARACTERS
from clinic_pipeline.source.errors import SourceError
from clinic_pipeline.source.export import ExportBuilder, duckdb_reason
from clinic_pipeline.source.manifest import MANIFEST_NAME
from clinic_pipeline.sql import quote_literal

__all__ = ["MAX_ROW_BYTES", "add_csv"]

_CHUNK = 1 << 20
_MIB = 1 << 20
# DuckDB's own max_line_size: a file with a longer row is read again with a larger one.
_DUCKDB_LINE_SIZE = 2 * _MIB
# Beyond this a "row" is an embedded file or a broken export, not a record to load.
MAX_ROW_BYTES = 64 * _MIB
_QUOTE = '"'
# The order matters: a UTF-32LE mark starts with the UTF-16LE one.
_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_ENCODING_NAMES = {
    "utf-8": "UTF-8",
    "cp1252": "Windows-1252",
    "utf-16-le": "UTF-16LE",
    "utf-16-be": "UTF-16BE",
    "utf-32-le": "UTF-32LE",
    "utf-32-be": "UTF-32BE",
}
_DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "pipes"}
_LINE_BREAK_NAMES = {"\r\n": "CR LF", "\n": "LF", "\r": "CR"}
# Excel's `sep=;` first line: it names the delimiter for Excel, above the header.
_SEP_HINT = re.compile(r'"?sep=.?"?', re.IGNORECASE)
# The characters staging removes, as bytes (no byte of a multi-byte UTF-8 character is below 0x20) and as text.
_CONTROL_BYTES = bytes(b for b in range(0x20) if re.fullmatch(CONTROL_CHARACTERS, chr(b)))
_CONTROL_TEXT = re.compile(CONTROL_CHARACTERS)


@dataclass(frozen=True)
class _Encoding:
    codec: str  # Python's name for it
    skip: int  # bytes of a byte order mark the codec would otherwise read as text
    found_by: str  # how it was chosen, for the error when the file does not decode after all
    fix: str = "save the file as UTF-8"
    control_characters: bool = True  # seen by the UTF-8 check (the other codecs' copies look for themselves)

    @property
    def name(self) -> str:
        return _ENCODING_NAMES.get(self.codec, self.codec.upper())


def add_csv(
    builder: ExportBuilder, name: str, path: Path, origin: str, location: str, declared: str | None, workdir: Path
) -> None:
    """Register the CSV file `path` as table `name` (unless the builder does not want it).

    `declared` is the manifest's encoding as a Python codec; None detects it. Errors name `origin`."""
    if not builder.wants(name):
        return
    encoding = _encoding(path, origin, declared)
    if encoding.codec == "utf-8":
        readable, controls = path, encoding.control_characters
    else:
        readable, controls = _utf8_copy(path, origin, encoding, workdir)
    delimiter = _header_delimiter(readable, origin)
    try:
        builder.create(name, _select(readable, delimiter))
    except duckdb.Error as exc:
        longest = _longest_row(readable, origin, delimiter or ",")
        if longest < _DUCKDB_LINE_SIZE:
            raise SourceError(f"{origin}: cannot read as {_kind(delimiter)} CSV ({duckdb_reason(exc)})") from None
        # Whole MiB above the longest row: DuckDB needs its line size larger than the row itself.
        line_size = (longest // _MIB + 1) * _MIB
        try:
            builder.create(name, _select(readable, delimiter, line_size))
        except duckdb.Error as again:
            raise SourceError(f"{origin}: cannot read as {_kind(delimiter)} CSV ({duckdb_reason(again)})") from None
    builder.register(name, origin, location, control_characters=controls)


def _select(path: Path, delimiter: str | None, line_size: int | None = None) -> str:
    options = f", delim={quote_literal(delimiter)}, quote={quote_literal(_QUOTE)}" if delimiter else ""
    if line_size:
        options += f", max_line_size={line_size}"
    # Exports always carry a header, on their first line: with every column VARCHAR the sniffer cannot
    # tell it from data, and left to guess lines to skip it takes a last row with extra fields for the
    # header and drops every row above it without a word.
    return f"SELECT * FROM read_csv({quote_literal(path)}, all_varchar=true, header=true, skip=0{options})"


def _kind(delimiter: str | None) -> str:
    return f"{_DELIMITER_NAMES[delimiter][:-1]}-separated" if delimiter else "a"


def _header_delimiter(path: Path, origin: str) -> str | None:
    """The delimiter the header line uses; None for a one-column file.

    Taken from the header rather than DuckDB's sniffer: one malformed row makes the sniffer fall back
    to a single column silently, where an explicit delimiter makes the bad row a reported error.
    """
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        header = fh.readline(MAX_ROW_BYTES)
    if _SEP_HINT.fullmatch(header.rstrip("\r\n")):
        # Read as the header, the hint would make the real header a data row (or every row "ragged").
        raise SourceError(
            f"{origin}: line 1 is a spreadsheet's delimiter hint (sep=), not the header: delete that line"
        )
    unquoted = re.sub(r'"[^"]*"', "", header)
    counts = {d: unquoted.count(d) for d in _DELIMITER_NAMES}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else None


# ---------------------------------------------------------------- encodings


def _encoding(path: Path, origin: str, declared: str | None) -> _Encoding:
    with path.open("rb") as fh:
        head = fh.read(4096)
    if declared and declared != "utf-8":
        # A UTF-8 byte order mark in front of another encoding's text happens in hand-edited exports.
        skip = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
        fix = f'correct "encoding" in {MANIFEST_NAME}, or save the file as UTF-8'
        return _Encoding(declared, skip, f"the encoding {MANIFEST_NAME} names", fix)
    mark = next(((bom, codec) for bom, codec in _BYTE_ORDER_MARKS if head.startswith(bom)), None)
    if mark and mark[1] != "utf-8":
        return _Encoding(mark[1], len(mark[0]), "as its byte order mark says")
    if not mark and (utf16 := _utf16_without_mark(head)):
        return _Encoding(utf16, 0, "as the NUL in every other byte says")
    skip = len(mark[0]) if mark else 0
    utf8 = _decode(path, "utf-8", skip)
    if utf8.bad is None:
        return _Encoding("utf-8", 0, "", control_characters=utf8.control_characters)  # DuckDB skips the mark
    if utf8.non_ascii:
        line = _line_of(path, "utf-8", skip, utf8.bad)
        raise SourceError(
            f"{origin}: line {line} is not UTF-8 though the lines before it are (two encodings in one file): "
            "save the whole file as UTF-8"
        )
    # Windows-1252 is what spreadsheet exports are when they are not UTF-8.
    cp1252 = _decode(path, "cp1252", skip)
    if cp1252.bad is not None:
        line = _line_of(path, "cp1252", skip, cp1252.bad)
        raise SourceError(
            f"{origin}: line {line} is neither UTF-8 nor Windows-1252 text: save the file as UTF-8, "
            f'or name its encoding in {MANIFEST_NAME} ("encoding")'
        )
    return _Encoding("cp1252", skip, "as the file is not UTF-8")


def _utf16_without_mark(head: bytes) -> str | None:
    """UTF-16 without a byte order mark: mostly-ASCII text then has a NUL in every other byte, and
    UTF-8 (which the NULs would pass as) has NULs in neither half of a pair but for a stray one."""
    pairs = len(head) // 2
    if pairs < 2:
        return None
    even, odd = head[0 : 2 * pairs : 2].count(0), head[1 : 2 * pairs : 2].count(0)
    if odd >= pairs / 2 and even <= pairs / 100:
        return "utf-16-le"
    if even >= pairs / 2 and odd <= pairs / 100:
        return "utf-16-be"
    return None


@dataclass(frozen=True)
class _Decoded:
    """What decoding a file with one codec found, up to its first undecodable byte if it has one."""

    bad: int | None  # the file offset of that byte
    non_ascii: bool  # non-ASCII text decoded before it
    control_characters: bool  # a control character before it (one byte each in UTF-8 and Windows-1252)


def _decode(path: Path, codec: str, skip: int) -> _Decoded:
    decoder = codecs.getincrementaldecoder(codec)()
    offset, non_ascii, controls = skip, False, False
    with path.open("rb") as fh:
        fh.seek(skip)
        while True:
            chunk = fh.read(_CHUNK)
            pending = decoder.getstate()[0]  # bytes of a character cut by the previous chunk
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                before = exc.object[: exc.start]
                return _Decoded(offset - len(pending) + exc.start, non_ascii or not before.isascii(), controls)
            if not chunk:
                return _Decoded(None, non_ascii, controls)
            non_ascii = non_ascii or not chunk.isascii()
            controls = controls or len(chunk.translate(None, _CONTROL_BYTES)) != len(chunk)
            offset += len(chunk)


def _line_of(path: Path, codec: str, skip: int, offset: int) -> int:
    """The 1-based line of the byte at `offset`: the text before it decodes, so its line breaks count."""
    decoder = codecs.getincrementaldecoder(codec)(errors="replace")
    line, remaining = 1, offset - skip
    with path.open("rb") as fh:
        fh.seek(skip)
        while remaining > 0 and (chunk := fh.read(min(_CHUNK, remaining))):
            line += decoder.decode(chunk).count("\n")
            remaining -= len(chunk)
    return line


def _utf8_copy(path: Path, origin: str, encoding: _Encoding, workdir: Path) -> tuple[Path, bool]:
    """The file transcoded to UTF-8 in `workdir`, and whether its text holds a control character."""
    target = workdir / f"{len(list(workdir.iterdir()))}.csv"
    decoder = codecs.getincrementaldecoder(encoding.codec)()
    offset, controls = encoding.skip, False
    with path.open("rb") as src, target.open("w", encoding="utf-8", newline="") as dst:
        src.seek(encoding.skip)
        while True:
            chunk = src.read(_CHUNK)
            pending = decoder.getstate()[0]
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                line = _line_of(path, encoding.codec, encoding.skip, offset - len(pending) + exc.start)
                raise SourceError(
                    f"{origin}: line {line} is not valid {encoding.name} ({encoding.found_by}): {encoding.fix}"
                ) from None
            dst.write(text)
            controls = controls or _CONTROL_TEXT.search(text) is not None
            if not chunk:
                return target, controls
            offset += len(chunk)


# ---------------------------------------------------------------- rows


class _RowScanner:
    """Fields of a CSV row, a physical line at a time, as DuckDB splits them: a field may be quoted
    (after spaces), a quote inside it doubled or backslash-escaped, a quoted field may span lines."""

    def __init__(self, delimiter: str) -> None:
        self.delimiter = delimiter
        self.in_quote = False
        self.quote_line = 0  # where the quoted field still open began
        self.fields = 0

    def feed(self, line: str, number: int) -> str | None:
        """Take one physical line (without its line break) of the current row; the fault on it, if any."""
        d, pos = self.delimiter, 0
        while True:
            if self.in_quote:
                close = self._closing_quote(line, pos)
                if close < 0:
                    return None  # the field goes on on the next line
                self.in_quote = False
                after = line.find(d, close + 1)
                if line[close + 1 : len(line) if after < 0 else after].strip(" \t"):
                    if self.quote_line < number:
                        return _never_ends(self.quote_line)
                    return (
                        f"line {number}: text follows a field's closing quote: "
                        'quote the whole field and write a quote inside it as ""'
                    )
                if after < 0:
                    return None
                self.fields, pos = self.fields + 1, after + 1
                continue
            quote = line.find(_QUOTE, pos)
            if quote < 0:
                self.fields += line.count(d, pos)
                return None
            last = line.rfind(d, pos, quote)
            if last >= 0:
                self.fields, pos = self.fields + line.count(d, pos, last + 1), last + 1
            if not line[pos:quote].strip(" \t"):
                self.in_quote, self.quote_line, pos = True, number, quote + 1
                continue
            # A quote inside an unquoted field is text: DuckDB reads 5'10" as written.
            after = line.find(d, quote)
            if after < 0:
                return None
            self.fields, pos = self.fields + 1, after + 1

    def _closing_quote(self, line: str, pos: int) -> int:
        """The quote ending the quoted field at `pos`, or -1 when the field runs past this line.

        DuckDB sniffs whether a quote inside a field is doubled or backslash-escaped: a quote after a
        backslash ends the field only where the field can end (before a delimiter or the line's end)."""
        quote = line.find(_QUOTE, pos)
        while quote >= 0:
            if line.startswith(_QUOTE, quote + 1):
                quote = line.find(_QUOTE, quote + 2)
                continue
            if quote > 0 and line[quote - 1] == "\\" and not self._field_ends(line, quote + 1):
                quote = line.find(_QUOTE, quote + 1)
                continue
            return quote
        return -1

    def _field_ends(self, line: str, pos: int) -> bool:
        rest = line[pos:].lstrip(" \t")
        return not rest or rest.startswith(self.delimiter)


def _never_ends(line: int) -> str:
    return f'line {line}: a quoted field never ends (unbalanced "): close it, and write a quote inside a field as ""'


def _byte_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def _longest_row(path: Path, origin: str, delimiter: str) -> int:
    """The longest row of `path` in bytes; a SourceError at the first row DuckDB cannot read.

    Blank lines are skipped (so does DuckDB); a line longer than MAX_ROW_BYTES is never held whole."""
    scanner = _RowScanner(delimiter)
    header: int | None = None
    header_break = ""
    start = spans_from = size = longest = number = 0
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        while piece := fh.readline(MAX_ROW_BYTES + 1):
            number += 1
            line = piece.rstrip("\r\n")
            if not scanner.in_quote:
                if not line:
                    continue
                start, spans_from, size, scanner.fields = number, 0, 0, 1
            size += _byte_length(piece)
            if size > MAX_ROW_BYTES:
                raise SourceError(
                    f"{origin}: line {start} starts a row of more than {MAX_ROW_BYTES // _MIB} MiB, the most a row "
                    "may hold: take that value out of the file (a document belongs in documents/)"
                )
            fault = scanner.feed(line, number)
            if fault:
                raise SourceError(f"{origin}: {fault}")
            if scanner.in_quote:
                spans_from = spans_from or scanner.quote_line
                continue
            longest = max(longest, size)
            # DuckDB takes one kind of line break between rows (inside a quoted field any will do).
            line_break = piece[len(line) :]
            if header is None:
                header, header_break = scanner.fields, line_break
            elif scanner.fields != header:
                raise SourceError(f"{origin}: {_ragged(start, spans_from, number, scanner, header, line)}")
            elif line_break and line_break != header_break:
                raise SourceError(
                    f"{origin}: line {number} ends in {_LINE_BREAK_NAMES[line_break]} where the header ends in "
                    f"{_LINE_BREAK_NAMES[header_break]} (mixed line breaks): save the file with one kind throughout"
                )
    if scanner.in_quote:
        raise SourceError(f"{origin}: {_never_ends(scanner.quote_line)}")
    return longest


def _ragged(start: int, spans_from: int, end: int, scanner: _RowScanner, header: int, line: str) -> str:
    if not line.strip():
        return f"line {start} holds nothing but spaces: delete it"
    fields = f"{scanner.fields} field{'s' if scanner.fields != 1 else ''}"
    if spans_from:
        # A row carried over lines by a quoted field, with the wrong count: that quote is the likely fault.
        return (
            f'line {spans_from}: a quoted field runs on to line {end} (unbalanced "?), '
            f"leaving the row with {fields} where the header has {header}"
        )
    if scanner.fields > header:
        names = _DELIMITER_NAMES[scanner.delimiter]
        return f"line {start} has {fields}, the header has {header}: fix the row or quote its {names}"
    return (
        f"line {start} has {fields}, the header has {header}: fix the row (a line break inside a field must be quoted)"
    )
