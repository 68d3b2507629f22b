"""Documents for vocabulary training, read from plain text and WET files.

- Plain text (any name not ending in .wet / .wet.gz): UTF-8; documents are blocks of lines
  separated by one or more blank lines, and each line is a paragraph. A file without blank
  lines is one document.
- WET (.wet, .wet.gz): read, filtered and partitioned by data_pipelines exactly as training
  reads them (English, long paragraphs), held-out documents excluded.
"""
from __future__ import annotations

import glob
import logging
import os
import re
from typing import Iterable, Iterator

from data_pipelines.documents import kept_documents
from data_pipelines.filters import FilterConfig
from data_pipelines.partition import DEFAULT_VALIDATION_FRACTION, Partition
from data_pipelines.wet import ReadStats
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


def documents_from_files(paths: Iterable[str],
                         validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
                         filter_config: FilterConfig | None = None) -> Iterator[str]:
    """Plain text as it is; WET files as training reads them (see ``wet_documents``)."""
    for path in paths:
        if path.endswith((".wet", ".wet.gz")):
            yield from wet_documents(path, validation_fraction, filter_config)
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


def wet_documents(path: str, validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
                  filter_config: FilterConfig | None = None,
                  stats: ReadStats | None = None) -> Iterator[str]:
    """The documents of a WET file that training reads: data_pipelines' reader and filters,
    training partition only, so the vocabulary never sees held-out text."""
    stats = ReadStats() if stats is None else stats
    split = Partition(mode="same", validation_fraction=validation_fraction)
    try:
        for document in kept_documents([path], split, filter_config or FilterConfig(), stats):
            yield document.text
    except OSError as error:
        raise TrainingError(f"{path}: cannot read as a WET file ({error})") from None
    if not stats.records_read:
        raise TrainingError(f"{path}: cannot read as a WET file (read counters: "
                            f"{stats.as_dict()})")
    if not stats.documents_kept:
        raise TrainingError(f"{path}: no document passed the filters (read counters: "
                            f"{stats.as_dict()}); check that it is a WET file of English "
                            "text with long paragraphs")
