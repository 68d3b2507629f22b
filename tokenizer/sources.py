"""Documents for vocabulary training, read from plain text and WET files.

- Plain text (any name not ending in .wet / .wet.gz): UTF-8; documents are blocks of lines
  separated by one or more blank lines, and each line is a paragraph. A file without blank
  lines is one document.
- WET (.wet, .wet.gz): each WARC "conversion" record is one document; records whose payload
  is not UTF-8 are skipped and counted.
"""
from __future__ import annotations

import glob
import logging
import os
import re
from typing import Iterable, Iterator

from tokenizer.errors import TrainingError, invalid_utf8_message

_BLANK_LINES = re.compile(r"\n[ \t\r]*\n(?:[ \t\r]*\n)*")


def expand_inputs(patterns: Iterable[str]) -> list[str]:
    """Sorted files matching comma-free path patterns; an unmatched pattern is an error."""
    paths: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        matches = [path for path in matches if os.path.isfile(path)]
        if not matches:
            raise TrainingError(f"input {pattern!r} matches no file")
        paths.extend(matches)
    return paths


def documents_from_files(paths: Iterable[str]) -> Iterator[str]:
    for path in paths:
        if path.endswith((".wet", ".wet.gz")):
            yield from wet_documents(path)
        else:
            yield from text_documents(path)


def text_documents(path: str) -> Iterator[str]:
    """Blank-line-separated blocks of a UTF-8 text file."""
    with open(path, "rb") as file:
        data = file.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TrainingError(f"{path}: {invalid_utf8_message(data, error)}") from None
    for block in _BLANK_LINES.split(text.replace("\r\n", "\n")):
        block = block.strip("\n")
        if block.strip():
            yield block


def wet_documents(path: str, stats: dict | None = None) -> Iterator[str]:
    """Payloads of the conversion records of a WET file (gzip detected automatically)."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    stats = {} if stats is None else stats
    stats.setdefault("records", 0)
    stats.setdefault("skipped_not_utf8", 0)
    try:
        for record in ArchiveIterator(path, record_types=WarcRecordType.conversion):
            payload = record.reader.read()
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                stats["skipped_not_utf8"] += 1
                continue
            stats["records"] += 1
            yield text
    except OSError as error:
        raise TrainingError(f"{path}: cannot read as a WET file ({error})") from None
    if stats["skipped_not_utf8"]:
        logging.warning("%s: skipped %d records that are not UTF-8", path,
                        stats["skipped_not_utf8"])
