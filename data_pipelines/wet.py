"""Streaming, fault-tolerant reader for Common Crawl WET files.

FastWARC does the parsing. It stops at the first framing error, so this module adds what a
long preprocessing run needs on top: every bad record or region is counted by reason and
logged, and reading resumes at the next record boundary the framing still shows (the next
gzip member in `.wet.gz`, the next `WARC/1.x` line in plain `.wet`). Nothing holds more than
one record in memory; records larger than `max_record_bytes` are skipped unread.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import zlib
from typing import BinaryIO, Iterable, Iterator, NamedTuple

from fastwarc.warc import ArchiveIterator, WarcRecordType

log = logging.getLogger(__name__)

DEFAULT_MAX_RECORD_BYTES = 32 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b\x08"
_WARC_MAGICS = (b"WARC/1.0\r\n", b"WARC/1.1\r\n")
_SCAN_CHUNK = 1 << 20
_HEADER_SEARCH_LIMIT = 1 << 16

LANGUAGE_HEADER = "WARC-Identified-Content-Language"


@dataclasses.dataclass(frozen=True)
class WetRecord:
    """One WET `conversion` record: the page's extracted text and the headers we keep."""
    record_id: str
    target_uri: str | None
    language: str | None  # WARC-Identified-Content-Language, e.g. "eng" or "eng,deu".
    text: str
    source: str  # "path:offset", for logs.


class ReadStats:
    """Counters shared by reader, filters and tokenizer; printed by `wet_stats`."""

    def __init__(self):
        self.records_read = 0
        self.records_by_type: collections.Counter = collections.Counter()
        self.malformed: collections.Counter = collections.Counter()
        self.dropped: collections.Counter = collections.Counter()
        self.documents_kept = 0
        self.tokens = 0

    def count_malformed(self, reason: str, where: str, detail: str = "") -> None:
        self.malformed[reason] += 1
        log.warning("malformed WET input (%s) at %s%s", reason, where,
                    f": {detail}" if detail else "")

    def count_dropped(self, reason: str) -> None:
        self.dropped[reason] += 1

    def as_dict(self) -> dict:
        return {
            "records_read": self.records_read,
            "records_by_type": dict(sorted(self.records_by_type.items())),
            "documents_kept": self.documents_kept,
            "documents_dropped": dict(sorted(self.dropped.items())),
            "documents_dropped_total": sum(self.dropped.values()),
            "malformed_records": dict(sorted(self.malformed.items())),
            "malformed_total": sum(self.malformed.values()),
            "tokens": self.tokens,
        }


@dataclasses.dataclass
class _Pending:
    """A parsed record held back until the next header parses, so that a record whose
    Content-Length was wrong (the next header then fails) is not passed on."""
    pos: int
    content_length: int
    record: WetRecord | None = None  # None: nothing to emit (other type, or malformed).
    malformed: bool = False


def open_input(path: str) -> BinaryIO:
    """Local paths with `open`; anything with a scheme (gs://, s3://, hdfs://) via tf.io.gfile."""
    if "://" in path and not path.startswith("file://"):
        import tensorflow as tf  # Lazy: the reader itself does not need TensorFlow.
        return tf.io.gfile.GFile(path, "rb")
    return open(path.removeprefix("file://"), "rb")


def read_wet_file(path: str, stats: ReadStats,
                  max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[WetRecord]:
    """Yields the valid `conversion` records of one WET file (`.wet.gz` or `.wet`).

    Bad input never raises: it is counted in `stats.malformed` by reason and logged.
    """
    try:
        f = open_input(path)
    except OSError as e:
        stats.count_malformed("unreadable_file", path, str(e))
        return
    with f:
        gzipped = f.read(3) == _GZIP_MAGIC
        yield from _read_from(f, path, gzipped, stats, max_record_bytes)


def _read_from(f: BinaryIO, path: str, gzipped: bool, stats: ReadStats,
               max_record_bytes: int) -> Iterator[WetRecord]:
    start: int | None = 0
    any_record = False
    first_failure: str | None = None  # A failure before any record: garbage or not WARC.
    while start is not None:
        f.seek(start)
        pending: _Pending | None = None
        failure: str | None = None
        try:
            for rec in ArchiveIterator(f, record_types=WarcRecordType.any_type):
                if pending is not None and pending.record is not None:
                    yield pending.record
                pending = _parse_record(rec, path, stats, max_record_bytes)
                any_record = True
        except OSError as e:
            failure = str(e)
        if failure is None:
            if pending is not None and pending.record is not None:
                yield pending.record
            break
        if pending is None:
            # Nothing parsed since `start`: a false boundary inside an already counted bad
            # region, or garbage at the very start of the file.
            if start == 0:
                first_failure = failure
            resume_after = start
        else:
            resume_after = pending.pos
            _settle_pending(f, pending, gzipped, failure, path, stats)
            if pending.record is not None and not pending.malformed:
                yield pending.record
        start = _next_boundary(f, resume_after + 1, gzipped)
    if first_failure is not None:
        if any_record:
            _count_failure(stats, first_failure, f"{path}:0")
        else:
            stats.count_malformed("not_warc", path,
                                  f"no WARC record could be read ({first_failure}); expected "
                                  "WARC/1.0 records, plain or one gzip member per record")


def _settle_pending(f: BinaryIO, pending: _Pending, gzipped: bool, failure: str, path: str,
                    stats: ReadStats) -> None:
    """The header after `pending` failed to parse: blame `pending` if its own framing is
    wrong (then the failure is a consequence), else count the failure itself."""
    if pending.malformed:
        return
    if _frame_is_consistent(f, pending, gzipped):
        _count_failure(stats, failure, f"{path}:after record at {pending.pos}")
    else:
        pending.malformed = True
        stats.count_malformed("content_length_mismatch", f"{path}:{pending.pos}",
                              "the record does not end where its Content-Length says")


def _count_failure(stats: ReadStats, message: str, where: str) -> None:
    lowered = message.lower()
    reason = "gzip_error" if ("gzip" in lowered or "deflate" in lowered
                              or "decompress" in lowered) else "invalid_warc_header"
    stats.count_malformed(reason, where, message)


def _parse_record(rec, path: str, stats: ReadStats, max_record_bytes: int) -> _Pending:
    """Counts and validates one record; what to emit once the framing after it proves sound."""
    stats.records_read += 1
    stats.records_by_type[getattr(rec.record_type, "name", str(rec.record_type))] += 1
    declared = rec.headers.get("Content-Length")
    pending = _Pending(rec.stream_pos, int(declared) if _is_int(declared) else -1)
    outcome = _extract(rec, pending.content_length, max_record_bytes)
    where = f"{path}:{rec.stream_pos}"
    if isinstance(outcome, _Malformed):
        pending.malformed = True
        stats.count_malformed(outcome.reason, where, outcome.detail)
    elif outcome is not None:
        text, headers = outcome
        pending.record = WetRecord(record_id=headers.get("WARC-Record-ID"),
                                   target_uri=headers.get("WARC-Target-URI"),
                                   language=headers.get(LANGUAGE_HEADER),
                                   text=text, source=where)
    return pending


class _Malformed(NamedTuple):
    reason: str
    detail: str


def _extract(rec, content_length: int, max_record_bytes: int):
    """(text, headers) for a sound conversion record, None for a sound record of another
    type, or _Malformed."""
    headers = rec.headers
    if content_length < 0:
        return _Malformed("missing_content_length",
                          "every WARC record needs a numeric Content-Length")
    if rec.record_type == WarcRecordType.no_type or headers.get("WARC-Type") is None:
        return _Malformed("missing_warc_type", "every WARC record needs a WARC-Type header")
    if rec.record_type != WarcRecordType.conversion:
        return None
    if not headers.get("WARC-Record-ID"):
        return _Malformed("missing_record_id", "conversion records need WARC-Record-ID")
    if content_length > max_record_bytes:
        # Left unread: FastWARC skips the body without buffering it.
        return _Malformed("record_too_large", f"{content_length} bytes > max_record_bytes="
                          f"{max_record_bytes}; raise max_record_bytes to keep it")
    body = rec.reader.read()
    if len(body) < content_length:
        return _Malformed("truncated_record", f"{len(body)} of {content_length} bytes present")
    if not body.strip():
        return _Malformed("empty_record", "no text in the record")
    try:
        return body.decode("utf-8"), headers
    except UnicodeDecodeError as e:
        return _Malformed("invalid_utf8", str(e))


def _is_int(value: str | None) -> bool:
    return value is not None and value.strip().isdigit()


def _frame_is_consistent(f: BinaryIO, pending: _Pending, gzipped: bool) -> bool:
    """True if the record at `pending.pos` ends with CRLF CRLF right after Content-Length
    bytes of block (and, gzipped, its gzip member ends exactly there)."""
    f.seek(pending.pos)
    chunks = _gzip_member_chunks(f) if gzipped else _raw_chunks(f)
    head, total, tail = b"", 0, b""
    try:
        for chunk in chunks:
            if len(head) <= _HEADER_SEARCH_LIMIT and b"\r\n\r\n" not in head:
                head += chunk
            total += len(chunk)
            tail = (tail + chunk)[-4:]
            if not gzipped and b"\r\n\r\n" in head:
                break
    except zlib.error:
        return False
    header_end = head.find(b"\r\n\r\n")
    if header_end < 0:
        return False
    record_end = header_end + 4 + pending.content_length + 4
    if gzipped:
        return total == record_end and tail == b"\r\n\r\n"
    f.seek(pending.pos + record_end - 4)
    return f.read(4) == b"\r\n\r\n"


def _raw_chunks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(_SCAN_CHUNK):
        yield chunk


def _gzip_member_chunks(f: BinaryIO) -> Iterator[bytes]:
    """Decompressed bytes of the single gzip member starting at the file position, in
    bounded pieces (a 100 MB record of one repeated byte must not inflate at once)."""
    inflater = zlib.decompressobj(wbits=31)
    while not inflater.eof:
        data = inflater.unconsumed_tail or f.read(_SCAN_CHUNK)
        if not data:
            return
        yield inflater.decompress(data, _SCAN_CHUNK)


def _next_boundary(f: BinaryIO, offset: int, gzipped: bool) -> int | None:
    """Offset of the next place a record can start at or after `offset`, or None."""
    markers = (_GZIP_MAGIC,) if gzipped else tuple(b"\n" + m for m in _WARC_MAGICS)
    shift = 0 if gzipped else 1
    overlap = max(len(m) for m in markers) - 1
    f.seek(offset)
    base, carry = offset, b""
    while chunk := f.read(_SCAN_CHUNK):
        window = carry + chunk
        hits = [i for i in (window.find(m) for m in markers) if i >= 0]
        if hits:
            return base - len(carry) + min(hits) + shift
        carry = window[-overlap:]
        base += len(chunk)
    return None


def interleave_files(paths: Iterable[str], stats: ReadStats, cycle_length: int = 8,
                     max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                     ) -> Iterator[WetRecord]:
    """Round-robin over up to `cycle_length` open files at once, so documents from many crawl
    segments mix while only `cycle_length` readers (one record each) are in memory."""
    if cycle_length < 1:
        raise ValueError(f"cycle_length must be >= 1, got {cycle_length}")
    pending_paths = iter(paths)
    active: collections.deque = collections.deque()
    for path in pending_paths:
        active.append(read_wet_file(path, stats, max_record_bytes))
        if len(active) == cycle_length:
            break
    while active:
        reader = active.popleft()
        record = next(reader, None)
        if record is None:
            path = next(pending_paths, None)
            if path is not None:
                active.append(read_wet_file(path, stats, max_record_bytes))
            continue
        yield record
        active.append(reader)
