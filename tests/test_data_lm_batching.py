"""Stateful LM batches: row i of consecutive batches is one continuous document stream."""
import numpy as np
import pytest
import tensorflow as tf

from data_pipelines import lm_batching

EOD = 1


def _documents(count, seed=0):
    """Document k is k*1000+1, k*1000+2, ...: every token names its document and place."""
    rng = np.random.default_rng(seed)
    return [[k * 1000 + j + 2 for j in range(int(rng.integers(1, 90)))] for k in range(count)]


def _split_stream(stream):
    docs, current = [], []
    for token in stream:
        if token == EOD:
            docs.append(current)
            current = []
        else:
            current.append(token)
    return docs, current


def _rows_as_streams(batches):
    """Concatenates row i of consecutive (inputs, targets) batches, plus the last target."""
    inputs = np.stack([b[0] for b in batches])  # [steps, B, T]
    targets = np.stack([b[1] for b in batches])
    streams = [np.concatenate(list(inputs[:, i])).tolist() + [int(targets[-1, i, -1])]
               for i in range(inputs.shape[1])]
    return inputs, targets, streams


def _check_streams_are_whole_documents(streams, documents):
    seen = []
    for stream in streams:
        whole, tail = _split_stream(stream)
        for doc in whole:
            k = (doc[0] - 2) // 1000
            assert doc == documents[k], "a row interleaved or cut documents"
            seen.append(k)
        if tail:
            k = (tail[0] - 2) // 1000
            assert tail == documents[k][:len(tail)]
            seen.append(k)
        ks = [(d[0] - 2) // 1000 for d in whole]
        assert ks == sorted(ks), "a row took documents out of source order"
    assert len(seen) == len(set(seen)), "a document went to two rows"
    return sorted(seen)


def test_small_example_by_hand():
    docs = [[10, 11, 12], [20], [30, 31, 32, 33, 34], [40, 41]]
    batches = list(lm_batching.pack_streams(docs, num_streams=2, sequence_length=3, eod_id=EOD))
    # Row 0 is full with doc 0; row 1 pulls docs 1 and 2; then row 0 runs dry and pulls
    # doc 3. Windows overlap by one token (the last target is the next first input).
    assert [b.tolist() for b in batches] == [
        [[10, 11, 12, EOD], [20, EOD, 30, 31]],
        [[EOD, 40, 41, EOD], [31, 32, 33, 34]],
    ]


def test_rows_are_continuous_streams_across_batches():
    documents = _documents(200)
    windows = list(lm_batching.pack_streams(documents, num_streams=4, sequence_length=32,
                                            eod_id=EOD))
    batches = [(w[:, :-1], w[:, 1:]) for w in windows]
    inputs, targets, streams = _rows_as_streams(batches)
    assert inputs.shape[1:] == (4, 32) and len(batches) > 10
    np.testing.assert_array_equal(targets[:, :, :-1], inputs[:, :, 1:])
    np.testing.assert_array_equal(targets[:-1, :, -1], inputs[1:, :, 0])
    used = _check_streams_are_whole_documents(streams, documents)
    assert used == list(range(len(used))), "documents were skipped"
    assert len(used) >= 190


def test_existing_eod_is_not_doubled():
    docs = [[5, 6, EOD], [7, 8]]
    (window,) = lm_batching.pack_streams(docs, 1, 5, EOD)
    assert window.tolist() == [[5, 6, EOD, 7, 8, EOD]]


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="num_streams"):
        next(lm_batching.pack_streams([[1]], 0, 32, EOD))


def test_tf_dataset_matches_packer_and_shapes():
    documents = _documents(120, seed=1)
    ds = lm_batching.stateful_lm_dataset(lambda: iter(documents), EOD,
                                         per_replica_batch_size=3, sequence_length=32)
    assert ds.element_spec == (tf.TensorSpec([3, 32], tf.int32),) * 2
    got = [(x.numpy(), y.numpy()) for x, y in ds]
    expected = list(lm_batching.pack_streams(documents, 3, 32, EOD))
    assert len(got) == len(expected)
    for (x, y), w in zip(got, expected):
        np.testing.assert_array_equal(x, w[:, :-1])
        np.testing.assert_array_equal(y, w[:, 1:])


def test_local_replicas_get_their_own_streams_in_round_robin():
    documents = _documents(150, seed=2)
    ds = lm_batching.stateful_lm_dataset(lambda: iter(documents), EOD,
                                         per_replica_batch_size=2, sequence_length=16,
                                         local_replicas=2)
    elements = [(x.numpy(), y.numpy()) for x, y in ds]
    per_replica = [elements[0::2], elements[1::2]]
    all_streams = []
    for batches in per_replica:
        inputs, targets, streams = _rows_as_streams(batches)
        np.testing.assert_array_equal(targets[:-1, :, -1], inputs[1:, :, 0])
        all_streams += streams
    _check_streams_are_whole_documents(all_streams, documents)


def test_mirrored_strategy_replicas_keep_continuous_streams():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    documents = _documents(200, seed=3)
    contexts = []

    def dataset_fn(ctx):
        contexts.append((ctx.num_input_pipelines, ctx.input_pipeline_id,
                         ctx.num_replicas_in_sync))
        local = ctx.num_replicas_in_sync // ctx.num_input_pipelines
        return lm_batching.stateful_lm_dataset(lambda: iter(documents), EOD, 2, 16, local)

    dist = strategy.distribute_datasets_from_function(dataset_fn)
    per_replica = [[], []]
    for x, y in dist:
        xs, ys = strategy.experimental_local_results(x), strategy.experimental_local_results(y)
        for r in range(2):
            per_replica[r].append((xs[r].numpy(), ys[r].numpy()))
    assert contexts == [(1, 0, 2)]
    assert len(per_replica[0]) > 5
    all_streams = []
    for batches in per_replica:
        inputs, targets, streams = _rows_as_streams(batches)
        assert inputs.shape[1:] == (2, 16)
        np.testing.assert_array_equal(targets[:-1, :, -1], inputs[1:, :, 0])
        all_streams += streams
    _check_streams_are_whole_documents(all_streams, documents)
