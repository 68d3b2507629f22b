"""TFRecord shards of tokenized documents: the hand-off from Beam preprocessing to training.

One tf.train.Example per document: `tokens` (int64 list, ending with end-of-document) and
`record_id` (bytes). Files are named `<prefix>-<partition>.tfrecord-SSSSS-of-NNNNN`, where
partition is "validation", "train" (same-data mode) or "group-k-of-N".
"""
from __future__ import annotations

from typing import Iterable, Iterator, Sequence

import tensorflow as tf

SHARD_SUFFIX = ".tfrecord"


def shard_prefix(output_prefix: str, partition_name: str) -> str:
    return f"{output_prefix}-{partition_name}{SHARD_SUFFIX}"


def shard_files(output_prefix: str, partition_name: str) -> list[str]:
    files = sorted(tf.io.gfile.glob(shard_prefix(output_prefix, partition_name) + "-*"))
    if not files:
        raise FileNotFoundError(
            f"no TFRecord shards match {shard_prefix(output_prefix, partition_name)}-*; run "
            "data_pipelines.beam_pipeline with this output prefix and partition first")
    return files


def encode_example(tokens: Sequence[int], record_id: str) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        "tokens": tf.train.Feature(int64_list=tf.train.Int64List(value=list(tokens))),
        "record_id": tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[record_id.encode("utf-8")])),
    })).SerializeToString()


def decode_example(serialized: bytes) -> tuple[list[int], str]:
    example = tf.train.Example.FromString(serialized)
    features = example.features.feature
    return (list(features["tokens"].int64_list.value),
            features["record_id"].bytes_list.value[0].decode("utf-8"))


def read_token_documents(files: Iterable[str]) -> Iterator[tuple[list[int], str]]:
    """(tokens, record_id) per document, streaming file by file."""
    for path in files:
        for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
            yield decode_example(serialized)
