"""Document filters: English only, long paragraphs, optional C4-style line rules.

`filter_document` returns the text to keep or the reason it was dropped, so callers (the
tf.data source, the Beam pipeline, `wet_stats`) count every drop by the same names.
"""
from __future__ import annotations

import dataclasses
import functools
import re
from typing import Callable

from data_pipelines.wet import WetRecord

# A WET paragraph is one line: the extractor writes one line per block-level element.
# 30 words keeps prose and drops menus, captions, cookie banners and link lists.
DEFAULT_MIN_PARAGRAPH_WORDS = 30
# Enough text for a confident language guess; identification cost grows with length.
LANGUAGE_ID_PREFIX_CHARS = 2000

_TERMINAL_PUNCTUATION = (".", "!", "?", '"', "\u201d")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")


@dataclasses.dataclass(frozen=True)
class FilterConfig:
    """What a document must look like to be trained on.

    header_language: ISO 639-3 code matched against the first (primary) code of the
      WARC-Identified-Content-Language header, when the record has one.
    identified_language: ISO 639-1 code the offline identifier must return otherwise.
    language_identifier: "cld2" (pycld2, ~100x faster here) or "langid"; see
      benchmarks/wet_pipeline_langid.py.
    min_paragraph_words: paragraphs (lines) shorter than this are removed; a document with
      none left is dropped.
    c4_line_rules: also apply the C4 heuristics (lines end in terminal punctuation and have
      >= 5 words, no "javascript" lines; drop pages with "lorem ipsum", "{", or < 3 sentences).
    """
    header_language: str = "eng"
    identified_language: str = "en"
    language_identifier: str = "cld2"
    min_paragraph_words: int = DEFAULT_MIN_PARAGRAPH_WORDS
    c4_line_rules: bool = False

    def __post_init__(self):
        if self.min_paragraph_words < 0:
            raise ValueError(f"min_paragraph_words must be >= 0, got {self.min_paragraph_words}")
        if self.language_identifier not in _IDENTIFIERS:
            raise ValueError(f"language_identifier must be one of {sorted(_IDENTIFIERS)}, "
                             f"got {self.language_identifier!r}")


def filter_document(record: WetRecord, config: FilterConfig) -> tuple[str | None, str | None]:
    """(kept text, None) or (None, drop reason)."""
    if record.language:
        primary = record.language.split(",")[0].strip().lower()
        if primary != config.header_language:
            return None, "language_header"
    lines = [line.strip() for line in record.text.splitlines()]
    if config.c4_line_rules:
        lines, reason = _c4_lines(lines)
        if reason:
            return None, reason
    paragraphs = [line for line in lines if len(line.split()) >= config.min_paragraph_words
                  and line]
    if not paragraphs:
        return None, "no_long_paragraph"
    text = "\n".join(paragraphs)
    if not record.language:
        identify = language_identifier(config.language_identifier)
        if identify(text[:LANGUAGE_ID_PREFIX_CHARS]) != config.identified_language:
            return None, "language_identified"
    return text, None


def _c4_lines(lines: list[str]) -> tuple[list[str], str | None]:
    page = "\n".join(lines).lower()
    if "lorem ipsum" in page:
        return [], "c4_lorem_ipsum"
    if "{" in page:
        return [], "c4_curly_bracket"
    kept = [line for line in lines
            if line.endswith(_TERMINAL_PUNCTUATION) and len(line.split()) >= 5
            and "javascript" not in line.lower()]
    if sum(len(_SENTENCE_END.findall(line)) for line in kept) < 3:
        return [], "c4_too_few_sentences"
    return kept, None


def _cld2(text: str) -> str:
    import pycld2
    try:
        return pycld2.detect(text)[2][0][1]
    except (pycld2.error, UnicodeError):  # Control characters or lone surrogates.
        return "un"


def _langid(text: str) -> str:
    import langid
    return langid.classify(text)[0]


_IDENTIFIERS: dict[str, Callable[[str], str]] = {"cld2": _cld2, "langid": _langid}


@functools.cache
def language_identifier(name: str) -> Callable[[str], str]:
    """text -> ISO 639-1 code, from a package that ships its model (no downloads)."""
    module = {"cld2": "pycld2", "langid": "langid"}[name]
    try:
        __import__(module)
    except ImportError as e:
        raise ImportError(f"language_identifier={name!r} needs the {module} package: "
                          f"pip install {module}, or choose the other identifier") from e
    return _IDENTIFIERS[name]
