"""Stateful language-model batches: B rows x T tokens, row i one continuous document stream.

The paper carries the LSTM state from batch to batch and never resets it, so row i of batch
t+1 must continue row i of batch t. Each row is fed by its own stream: documents separated
by end-of-document, a new document pulled from the shared source whenever the row runs
dry. tf.data `interleave(...).batch(B)` cannot do this (it refills a slot from whichever
input comes next), hence this packer.

Under tf.distribute, one input pipeline feeds R local replicas; elements go to replicas in
round-robin order, so the pipeline packs R*B streams and emits them as R consecutive
[B, T] elements: replica r always receives streams r*B .. r*B+B-1.
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from data_pipelines.documents import with_eod

DEFAULT_SEQUENCE_LENGTH = 32
# Batches handed over per Python generator call: the call, not the packing, dominated.
_BATCHES_PER_CALL = 16


class _Stream:
    """Tokens of one row not yet emitted; compacted so memory stays at about a document."""

    def __init__(self):
        self.tokens: list[int] = []
        self.start = 0

    def available(self) -> int:
        return len(self.tokens) - self.start

    def window(self, length: int) -> list[int]:
        return self.tokens[self.start:self.start + length]

    def advance(self, n: int) -> None:
        self.start += n
        if self.start > 4096:
            del self.tokens[:self.start]
            self.start = 0


def pack_streams(documents: Iterable[Sequence[int]], num_streams: int, sequence_length: int,
                 eod_id: int) -> Iterator[np.ndarray]:
    """Yields int32 arrays [num_streams, sequence_length + 1]: row i of consecutive arrays
    are overlapping windows (by one token) of stream i, so inputs = [:, :-1] and
    targets = [:, 1:] continue exactly where the previous batch stopped.

    Rows pull documents in row order whenever they run dry; iteration ends when a row can
    no longer be filled (the incomplete last batch is dropped, as training needs full rows).
    """
    if num_streams < 1 or sequence_length < 1:
        raise ValueError(f"need num_streams >= 1 and sequence_length >= 1, got "
                         f"{num_streams} and {sequence_length}")
    source = iter(documents)
    streams = [_Stream() for _ in range(num_streams)]
    while True:
        for stream in streams:
            while stream.available() < sequence_length + 1:
                doc = next(source, None)
                if doc is None:
                    return
                stream.tokens.extend(with_eod(doc, eod_id))
        yield np.array([s.window(sequence_length + 1) for s in streams], dtype=np.int32)
        for stream in streams:
            stream.advance(sequence_length)


def stateful_lm_dataset(document_source: Callable[[], Iterable[Sequence[int]]], eod_id: int,
                        per_replica_batch_size: int,
                        sequence_length: int = DEFAULT_SEQUENCE_LENGTH,
                        local_replicas: int = 1) -> tf.data.Dataset:
    """(inputs, targets) int32 [per_replica_batch_size, sequence_length] elements, the
    streams of `local_replicas` replicas in round-robin order (see module doc)."""
    rows = per_replica_batch_size * local_replicas

    def blocks():
        block = []
        for window in pack_streams(document_source(), rows, sequence_length, eod_id):
            block.append(window)
            if len(block) == _BATCHES_PER_CALL:
                yield np.stack(block)
                block = []
        if block:
            yield np.stack(block)

    ds = tf.data.Dataset.from_generator(
        blocks, output_signature=tf.TensorSpec([None, rows, sequence_length + 1], tf.int32))
    ds = ds.unbatch()
    ds = ds.map(lambda w: tf.reshape(w, [local_replicas, per_replica_batch_size, -1]))
    ds = ds.unbatch()
    return ds.map(lambda w: (w[:, :-1], w[:, 1:])).prefetch(tf.data.AUTOTUNE)
