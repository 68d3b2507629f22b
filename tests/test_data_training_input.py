"""WET files -> partitioned, sharded, stateful LM batches; and the same from TFRecord shards."""
import numpy as np
import pytest
import tensorflow as tf

from data_pipelines import partition, shards, synthetic_wet, training_data, wet
from data_pipelines.filters import FilterConfig, filter_document

PAD, EOD, OFFSET = 0, 1, 2


class ByteEncoder:
    """Test double for the project tokenizer: one id per UTF-8 byte."""
    eod_id = EOD
    pad_id = PAD

    def encode_document(self, text):
        return [b + OFFSET for b in text.encode("utf-8")]

    def decode(self, ids):
        return bytes(i - OFFSET for i in ids if i >= OFFSET).decode("utf-8")


CONFIG = FilterConfig(min_paragraph_words=20)


@pytest.fixture(scope="module")
def wet_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("wet")
    paths = []
    for i in range(4):
        path = str(root / f"CC-MAIN-{i:05d}.warc.wet.gz" if i % 2 == 0 else
                   root / f"CC-MAIN-{i:05d}.warc.wet")
        synthetic_wet.write_wet_file(path, seed=100 + i, count=30)
        paths.append(path)
    return paths


def _kept_documents(files, split):
    """Reference: the texts a partition should train on, from the reader and filter alone."""
    out = {}
    for path in files:
        for record in wet.read_wet_file(path, wet.ReadStats()):
            text, reason = filter_document(record, CONFIG)
            if reason is None and split.accepts(record.record_id):
                out[text] = record.record_id
    return out


def _streams(dataset):
    batches = [(x.numpy(), y.numpy()) for x, y in dataset]
    inputs = np.stack([b[0] for b in batches])
    rows = inputs.shape[1]
    return [np.concatenate(list(inputs[:, i])).tolist() + [int(batches[-1][1][i, -1])]
            for i in range(rows)]


def _documents_in(streams):
    """Whole documents (decoded) found in the rows, and the unfinished tail of each row."""
    encoder, docs = ByteEncoder(), []
    for stream in streams:
        pieces = []
        current = []
        for token in stream:
            if token == EOD:
                pieces.append(encoder.decode(current))
                current = []
            else:
                current.append(token)
        docs += pieces
    return docs


def test_rows_carry_whole_filtered_documents(wet_files):
    split = partition.Partition(0, 1, "disjoint", validation_fraction=0.1)
    expected = _kept_documents(wet_files, split)
    stats = wet.ReadStats()
    ds = training_data.build_training_dataset(
        wet_files, ByteEncoder(), per_replica_batch_size=4, sequence_length=32,
        validation_fraction=0.1, filter_config=CONFIG, num_epochs=1, stats=stats)
    found = _documents_in(_streams(ds))
    # At most one unfinished document per row, plus the one that ended the pass, is lost.
    assert len(found) == len(set(found)) >= len(expected) - 4 - 1
    assert set(found) <= set(expected)
    assert stats.dropped["language_header"] + stats.dropped["language_identified"] > 0
    assert stats.documents_kept == len(expected)
    assert stats.tokens == sum(len(t.encode()) + 1 for t in expected)


def test_groups_disjoint_or_same_and_validation_held_out(wet_files):
    def ids(group, num_groups, mode):
        return set(_kept_documents(wet_files, partition.Partition(
            group, num_groups, mode, 0.2)).values())

    g0, g1, val = ids(0, 2, "disjoint"), ids(1, 2, "disjoint"), ids(0, 2, "validation")
    same0, same1 = ids(0, 2, "same"), ids(1, 2, "same")
    assert g0 and g1 and val
    assert not g0 & g1 and not (g0 | g1) & val
    assert same0 == same1 == g0 | g1


def test_partition_hash_is_stable():
    # Fixed values: a change here would silently reshuffle every group's data.
    assert partition.stable_hash("<urn:uuid:abc>", "group") == 0x0DFF88D3867220AF
    assert partition.Partition(0, 3).name_for("<urn:uuid:abc>") == "group-2-of-3"
    assert partition.stable_hash("x", "group") != partition.stable_hash("x", "validation")


def test_partition_rejects_bad_arguments():
    with pytest.raises(ValueError, match="group < num_groups"):
        partition.Partition(2, 2)
    with pytest.raises(ValueError, match="mode"):
        partition.Partition(0, 2, "overlap")


@pytest.mark.parametrize("num_files", [4, 1], ids=["by_file", "by_record"])
def test_input_pipelines_read_disjoint_shares(wet_files, num_files):
    files = wet_files[:num_files]
    found = []
    for pipeline_id in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id,
                                         num_replicas_in_sync=2)
        stats = wet.ReadStats()
        ds = training_data.build_training_dataset(
            files, ByteEncoder(), per_replica_batch_size=2, sequence_length=16,
            input_context=ctx, filter_config=CONFIG, num_epochs=1, stats=stats,
            validation_fraction=0.0)
        found.append(set(_documents_in(_streams(ds))))
        assert stats.documents_kept > 0
    assert found[0] and found[1] and not found[0] & found[1]
    everything = set(_kept_documents(files, partition.Partition(validation_fraction=0.0)))
    assert found[0] | found[1] <= everything


def test_epochs_repeat_and_empty_partition_fails_clearly(wet_files):
    one = training_data.build_training_dataset(
        wet_files[:1], ByteEncoder(), per_replica_batch_size=2, filter_config=CONFIG,
        num_epochs=1)
    two = training_data.build_training_dataset(
        wet_files[:1], ByteEncoder(), per_replica_batch_size=2, filter_config=CONFIG,
        num_epochs=2)
    assert len(list(two)) >= 2 * len(list(one))
    nothing = training_data.build_training_dataset(
        wet_files[:1], ByteEncoder(), per_replica_batch_size=2,
        filter_config=FilterConfig(min_paragraph_words=10_000), num_epochs=None)
    with pytest.raises(tf.errors.InvalidArgumentError, match="no documents left"):
        next(iter(nothing))


def test_reads_tfrecord_shards(tmp_path):
    docs = [[OFFSET + (k * 7 + j) % 50 for j in range(5 + k % 40)] + [EOD] for k in range(80)]
    prefix = str(tmp_path / "out")
    for shard in range(2):
        path = f"{shards.shard_prefix(prefix, 'group-0-of-1')}-{shard:05d}-of-00002"
        with tf.io.TFRecordWriter(path) as writer:
            for k in range(shard, 80, 2):
                writer.write(shards.encode_example(docs[k], f"<urn:uuid:{k}>"))
    files = shards.shard_files(prefix, "group-0-of-1")
    assert len(files) == 2
    ds = training_data.build_dataset_from_shards(files, EOD, per_replica_batch_size=3,
                                                 sequence_length=8, num_epochs=1)
    streams = _streams(ds)
    stream_docs = []
    for stream in streams:
        pieces, current = [], []
        for t in stream:
            current.append(t)
            if t == EOD:
                pieces.append(current)
                current = []
        stream_docs += pieces
    assert len(stream_docs) > 60
    assert all(d in docs for d in stream_docs)
    with pytest.raises(FileNotFoundError, match="beam_pipeline"):
        shards.shard_files(prefix, "validation")


def test_wet_dataset_under_mirrored_strategy_keeps_replica_streams(wet_files):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    def dataset_fn(ctx):
        return training_data.build_training_dataset(
            wet_files, ByteEncoder(), per_replica_batch_size=2, sequence_length=32,
            input_context=ctx, filter_config=CONFIG, num_epochs=1, validation_fraction=0.0)

    per_replica = [[], []]
    for x, y in strategy.distribute_datasets_from_function(dataset_fn):
        for r, (xr, yr) in enumerate(zip(strategy.experimental_local_results(x),
                                         strategy.experimental_local_results(y))):
            per_replica[r].append((xr.numpy(), yr.numpy()))
    expected = set(_kept_documents(wet_files, partition.Partition(validation_fraction=0.0)))
    found = []
    for batches in per_replica:
        inputs = np.stack([b[0] for b in batches])
        targets = np.stack([b[1] for b in batches])
        assert inputs.shape[1:] == (2, 32) and len(batches) > 20
        np.testing.assert_array_equal(targets[:-1, :, -1], inputs[1:, :, 0])
        streams = [np.concatenate(list(inputs[:, i])).tolist() for i in range(2)]
        found += _documents_in(streams)
    # Every whole document in a replica's rows is a kept document, and none is repeated.
    assert len(found) == len(set(found)) and set(found) <= expected
    assert len(found) >= len(expected) - 6


def _document_order(files, seed, num_epochs=1, shuffle_buffer=training_data.DEFAULT_SHUFFLE_BUFFER):
    """The documents of one row, in the order the row reads them (one stream: the source order)."""
    ds = training_data.build_training_dataset(
        files, ByteEncoder(), per_replica_batch_size=1, sequence_length=64,
        validation_fraction=0.0, filter_config=CONFIG, num_epochs=num_epochs, seed=seed,
        shuffle_buffer=shuffle_buffer)
    return _documents_in(_streams(ds))


def test_a_seed_shuffles_the_documents_of_one_file_per_epoch(wet_files):
    one_file = wet_files[:1]  # file shuffling alone cannot reorder a single file
    in_file_order = _document_order(one_file, seed=None)
    assert len(in_file_order) > 10
    first = _document_order(one_file, seed=3)
    assert _document_order(one_file, seed=3) == first  # reproducible
    # The same documents (but the few cut off where the last batch is dropped), reordered.
    assert first[:10] != in_file_order[:10]
    kept = set(_kept_documents(one_file, partition.Partition(validation_fraction=0.0)))
    assert set(first) <= kept and set(in_file_order) <= kept
    assert len(first) >= len(kept) - 2 and len(set(first)) == len(first)
    assert _document_order(one_file, seed=4) != first
    assert _document_order(one_file, seed=3, shuffle_buffer=0) == in_file_order
    # Two epochs: the second pass reads the same documents in another order.
    two = _document_order(one_file, seed=3, num_epochs=2)
    n = len(first)
    assert two[:n - 1] == first[:n - 1]  # the pass's last documents may run into the next
    second = two[n + 1:n + 11]
    assert len(second) == 10 and set(second) <= kept and second != first[:10]


def test_the_shuffle_buffer_keeps_every_document_once():
    import random
    out = list(training_data.shuffle_documents(range(100), 10, random.Random(0)))
    assert sorted(out) == list(range(100)) and out != list(range(100))
    assert all(position >= value - 10 for position, value in enumerate(out))
