"""Counts what the WET pipeline would do to some files, as one JSON object on stdout.

    python -m data_pipelines.wet_stats [--vocab=PATH] [--min_paragraph_words=30] FILES...

Records read, documents kept, documents dropped by reason, malformed records by reason, and
tokens produced when a vocabulary is given (loaded with `tokenizer.load`). Every partition is
counted: this describes the files, not one group's share of them. Each malformed record is
also logged to stderr with its reason and position; stdout holds only the JSON.
"""
from __future__ import annotations

import json
import sys
from typing import Sequence

from absl import app, flags

from data_pipelines import documents, wet
from data_pipelines.filters import DEFAULT_MIN_PARAGRAPH_WORDS, FilterConfig

_VOCAB = flags.DEFINE_string("vocab", None, "Tokenizer file for tokenizer.load; counts tokens.")
_MIN_WORDS = flags.DEFINE_integer("min_paragraph_words", DEFAULT_MIN_PARAGRAPH_WORDS,
                                  "Paragraphs (lines) with fewer words are removed.")
_C4 = flags.DEFINE_bool("c4_line_rules", False, "Also apply the C4 line and page rules.")
_LANGUAGE_ID = flags.DEFINE_enum("language_identifier", "cld2", ["cld2", "langid"],
                                 "Offline identifier for records without a language header.")
_MAX_RECORD_BYTES = flags.DEFINE_integer("max_record_bytes", wet.DEFAULT_MAX_RECORD_BYTES,
                                         "Larger records are counted as malformed, unread.")


def collect_stats(files: Sequence[str], filter_config: FilterConfig,
                  encoder: documents.DocumentEncoder | None = None,
                  max_record_bytes: int = wet.DEFAULT_MAX_RECORD_BYTES) -> dict:
    """One streaming pass over `files`; the counts `wet_stats` prints."""
    stats = wet.ReadStats()
    for doc in documents.kept_documents(files, None, filter_config, stats,
                                        max_record_bytes=max_record_bytes):
        if encoder is not None:
            documents.encode_counted(encoder, doc.text, stats)
    result = stats.as_dict()
    result["files"] = len(files)
    if encoder is None:
        result["tokens"] = None
    return result


def _load_encoder(path: str) -> documents.DocumentEncoder:
    import tokenizer  # The project tokenizer; only needed when counting tokens.
    return documents.as_document_encoder(tokenizer.load(path))


def main(argv: Sequence[str]) -> None:
    files = list(argv[1:])
    if not files:
        raise app.UsageError("give one or more WET files (.wet.gz or .wet)")
    config = FilterConfig(min_paragraph_words=_MIN_WORDS.value, c4_line_rules=_C4.value,
                          language_identifier=_LANGUAGE_ID.value)
    encoder = _load_encoder(_VOCAB.value) if _VOCAB.value else None
    json.dump(collect_stats(files, config, encoder, _MAX_RECORD_BYTES.value), sys.stdout,
              indent=None, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    app.run(main)
