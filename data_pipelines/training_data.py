"""The whole training input: files -> read -> filter -> partition -> tokenize -> stateful batches.

`build_training_dataset` reads WET directly; `build_dataset_from_shards` reads the TFRecord
shards the Beam pipeline wrote. Both shard per input pipeline through the strategy's
tf.distribute.InputContext and return (inputs, targets) per-replica batches, ready for
`strategy.distribute_datasets_from_function`.
"""
from __future__ import annotations

import dataclasses
import random
from typing import Iterable, Iterator, Sequence

import tensorflow as tf

from data_pipelines import lm_batching, partition, shards, wet
from data_pipelines.documents import DocumentEncoder, as_document_encoder, wet_token_documents
from data_pipelines.filters import FilterConfig

@dataclasses.dataclass(frozen=True)
class _Sharding:
    files: list[str]
    record_shards: int
    record_shard: int
    local_replicas: int


def _sharding(files: Sequence[str], input_context: tf.distribute.InputContext | None
              ) -> _Sharding:
    if not files:
        raise ValueError("no input files given; pass WET paths (.wet.gz or .wet) or shards")
    if input_context is None:
        return _Sharding(sorted(files), 1, 0, 1)
    pipelines = input_context.num_input_pipelines
    if input_context.num_replicas_in_sync % pipelines:
        raise ValueError(f"{input_context.num_replicas_in_sync} replicas do not divide among "
                         f"{pipelines} input pipelines")
    mine, record_shards, record_shard = partition.shard_files(
        files, pipelines, input_context.input_pipeline_id)
    return _Sharding(mine, record_shards, record_shard,
                     input_context.num_replicas_in_sync // pipelines)


DEFAULT_SHUFFLE_BUFFER = 1000


def _epochs(one_pass, files: list[str], num_epochs: int | None, seed: int | None, what: str,
            shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER):
    """Chains passes over `files`; stops with a clear error instead of spinning forever when a
    pass yields nothing.

    With `seed` set, each epoch reads the files in a shuffled order and passes the documents
    through a shuffle buffer of `shuffle_buffer` documents (0: none), both seeded with
    (seed, epoch): the order differs per seed and per epoch, also when the corpus is one file.
    """
    epoch = 0
    while num_epochs is None or epoch < num_epochs:
        order = list(files)
        if seed is not None:
            rng = random.Random(f"documents/{seed}/{epoch}")
            rng.shuffle(order)
        produced = 0
        documents = one_pass(order)
        if seed is not None and shuffle_buffer > 1:
            documents = shuffle_documents(documents, shuffle_buffer, rng)
        for doc in documents:
            produced += 1
            yield doc
        if produced == 0:
            raise ValueError(f"no documents left in {what} ({len(files)} files) after "
                             "partitioning and filtering; check paths, partition and filters")
        epoch += 1


def shuffle_documents(documents: Iterable, buffer_size: int, rng: random.Random) -> Iterator:
    """The documents in a random order drawn through a buffer of `buffer_size`, as tf.data's
    shuffle: no document comes out more than `buffer_size` places early, and memory stays
    at `buffer_size` documents."""
    buffer = []
    for doc in documents:
        if len(buffer) < buffer_size:
            buffer.append(doc)
            continue
        index = rng.randrange(buffer_size)
        yield buffer[index]
        buffer[index] = doc
    rng.shuffle(buffer)
    yield from buffer


def build_training_dataset(files: Sequence[str], encoder: DocumentEncoder, *,
                           per_replica_batch_size: int,
                           sequence_length: int = lm_batching.DEFAULT_SEQUENCE_LENGTH,
                           group: int = 0, num_groups: int = 1,
                           partition_mode: str = "disjoint",
                           validation_fraction: float = partition.DEFAULT_VALIDATION_FRACTION,
                           input_context: tf.distribute.InputContext | None = None,
                           filter_config: FilterConfig | None = None,
                           num_epochs: int | None = None, seed: int | None = None,
                           shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
                           cycle_length: int = 8,
                           max_record_bytes: int = wet.DEFAULT_MAX_RECORD_BYTES,
                           stats: wet.ReadStats | None = None) -> tf.data.Dataset:
    """Stateful LM batches straight from WET files.

    partition_mode "disjoint" (group k of N reads its own share), "same" (all groups read all
    training documents) or "validation" (the held-out share no group trains on).
    num_epochs=None repeats forever. `seed` (None: file order) shuffles the files and, through
    a buffer of `shuffle_buffer` documents, the documents of every epoch, differently per
    epoch. `stats` (optional) accumulates the counts as batches are drawn.
    """
    split = partition.Partition(group, num_groups, partition_mode, validation_fraction)
    config = filter_config or FilterConfig()
    sharding = _sharding(files, input_context)
    counters = stats if stats is not None else wet.ReadStats()
    encoder = as_document_encoder(encoder)

    def one_pass(order):
        return wet_token_documents(order, encoder, split, config, counters,
                                   sharding.record_shards, sharding.record_shard,
                                   cycle_length, max_record_bytes)

    return lm_batching.stateful_lm_dataset(
        lambda: _epochs(one_pass, sharding.files, num_epochs, seed, f"partition {split.name}",
                        shuffle_buffer),
        encoder.eod_id, per_replica_batch_size, sequence_length, sharding.local_replicas)


def build_dataset_from_shards(files: Sequence[str], eod_id: int, *, per_replica_batch_size: int,
                              sequence_length: int = lm_batching.DEFAULT_SEQUENCE_LENGTH,
                              input_context: tf.distribute.InputContext | None = None,
                              num_epochs: int | None = None, seed: int | None = None,
                              shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
                              ) -> tf.data.Dataset:
    """Stateful LM batches from Beam-written TFRecord shards of one partition (see
    `shards.shard_files`); partitioning and filtering already happened in Beam."""
    sharding = _sharding(files, input_context)

    def one_pass(order) -> Iterator[list[int]]:
        for tokens, record_id in shards.read_token_documents(order):
            if partition.in_record_shard(record_id, sharding.record_shards,
                                         sharding.record_shard):
                yield tokens

    return lm_batching.stateful_lm_dataset(
        lambda: _epochs(one_pass, sharding.files, num_epochs, seed, "the shards",
                        shuffle_buffer),
        eod_id, per_replica_batch_size, sequence_length, sharding.local_replicas)
