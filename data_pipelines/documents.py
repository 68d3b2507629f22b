"""Kept, tokenized documents from WET files: the steps shared by tf.data, Beam and wet_stats.

No TensorFlow here, so Beam workers and the stats tool stay light.
"""
from __future__ import annotations

from typing import Iterator, NamedTuple, Protocol, Sequence

from data_pipelines import partition, wet
from data_pipelines.filters import FilterConfig, filter_document


class DocumentEncoder(Protocol):
    """What the pipeline needs from a tokenizer: a whole document to ids, and the id that
    separates documents in a stream. `encode_document` may end with `eod_id` or not."""
    eod_id: int

    def encode_document(self, text: str) -> Sequence[int]: ...


class _EncodeAdapter:
    """For tokenizers exposing only `encode(text)`: whole documents through `encode`."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self.eod_id = tokenizer.eod_id

    def encode_document(self, text: str) -> Sequence[int]:
        return self._tokenizer.encode(text)


def as_document_encoder(tokenizer) -> DocumentEncoder:
    """Accepts an object with `encode_document` (preferred: it adds paragraph and sentence
    tokens) or only `encode`; either way it must have `eod_id`."""
    if not hasattr(tokenizer, "eod_id"):
        raise TypeError(f"{type(tokenizer).__name__} has no eod_id: the LM streams need an "
                        "end-of-document id")
    if hasattr(tokenizer, "encode_document"):
        return tokenizer
    if hasattr(tokenizer, "encode"):
        return _EncodeAdapter(tokenizer)
    raise TypeError(f"{type(tokenizer).__name__} has neither encode_document nor encode")


def with_eod(ids: Sequence[int], eod_id: int) -> list[int]:
    ids = list(ids)
    if not ids or ids[-1] != eod_id:
        ids.append(eod_id)
    return ids


class KeptDocument(NamedTuple):
    record_id: str
    text: str


def kept_documents(files: Sequence[str], split: partition.Partition | None,
                   filter_config: FilterConfig, stats: wet.ReadStats,
                   record_shards: int = 1, record_shard: int = 0, cycle_length: int = 8,
                   max_record_bytes: int = wet.DEFAULT_MAX_RECORD_BYTES,
                   ) -> Iterator[KeptDocument]:
    """Documents of `split` (all partitions if None) and of this record shard that pass the
    filters, files interleaved; drops are counted in `stats` by reason."""
    for record in wet.interleave_files(files, stats, cycle_length, max_record_bytes):
        if split is not None and not split.accepts(record.record_id):
            continue
        if not partition.in_record_shard(record.record_id, record_shards, record_shard):
            continue
        text, reason = filter_document(record, filter_config)
        if reason:
            stats.count_dropped(reason)
            continue
        stats.documents_kept += 1
        yield KeptDocument(record.record_id, text)


def encode_counted(encoder: DocumentEncoder, text: str, stats: wet.ReadStats) -> list[int]:
    ids = with_eod(encoder.encode_document(text), encoder.eod_id)
    stats.tokens += len(ids)
    return ids


def wet_token_documents(files: Sequence[str], encoder: DocumentEncoder,
                        split: partition.Partition, filter_config: FilterConfig,
                        stats: wet.ReadStats, record_shards: int = 1, record_shard: int = 0,
                        cycle_length: int = 8,
                        max_record_bytes: int = wet.DEFAULT_MAX_RECORD_BYTES,
                        ) -> Iterator[list[int]]:
    """Token ids (ending in end-of-document) of the kept documents of one pass over files."""
    for doc in kept_documents(files, split, filter_config, stats, record_shards, record_shard,
                              cycle_length, max_record_bytes):
        yield encode_counted(encoder, doc.text, stats)
