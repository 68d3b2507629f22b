"""The stateful LM: state carried across batches, per replica under MirroredStrategy."""

import numpy as np
import pytest
import tensorflow as tf

from tf_codistill.models.lstm_lm import LanguageModelConfig, StatefulLanguageModel

CONFIG = LanguageModelConfig(vocab_size=31, embedding_dim=8, units=12, num_layers=2)


def _tokens(rows, length, seed=0):
    return np.random.RandomState(seed).randint(0, CONFIG.vocab_size, (rows, length)).astype("int32")


def _copy(model, batch_size):
    twin = StatefulLanguageModel(model.config, batch_size)
    twin(tf.zeros((batch_size, 1), tf.int32))
    for mine, theirs in zip(twin.trainable_weights, model.trainable_weights):
        mine.assign(theirs)
    twin.reset_states()
    return twin


def test_two_windows_with_carried_state_equal_one_long_window():
    tokens = _tokens(3, 10)
    model = StatefulLanguageModel(CONFIG, batch_size=3)
    model(tokens[:, :1])
    reference = _copy(model, 3)
    model.reset_states()
    pieces = [model(tokens[:, :6]), model(tokens[:, 6:])]
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), reference(tokens),
                               rtol=1e-5, atol=1e-5)


def test_layer_norm_off_uses_the_plain_lstm_and_carries_state_too():
    config = LanguageModelConfig(vocab_size=31, embedding_dim=8, units=12, layer_norm=False)
    model = StatefulLanguageModel(config, batch_size=2)
    tokens = _tokens(2, 8)
    first = model(tokens[:, :4]).numpy()
    model.reset_states()
    again = model(tokens[:, :4]).numpy()
    after_state = model(tokens[:, :4]).numpy()
    np.testing.assert_allclose(first, again, rtol=1e-6)
    assert not np.allclose(first, after_state)


@pytest.mark.slow
def test_each_replica_carries_the_state_of_its_own_rows(mirrored_strategy):
    tokens = _tokens(4, 8, seed=1)
    with mirrored_strategy.scope():
        model = StatefulLanguageModel(CONFIG, batch_size=2)
    windows = tf.data.Dataset.from_tensor_slices([tokens[:, :4], tokens[:, 4:]])
    inputs = iter(mirrored_strategy.experimental_distribute_dataset(windows.unbatch().batch(4)))
    outputs = [mirrored_strategy.run(model, args=(next(inputs),)) for _ in range(2)]
    per_replica = [np.concatenate([mirrored_strategy.experimental_local_results(o)[r]
                                   for o in outputs], axis=1) for r in range(2)]
    reference = _copy(model, 4)
    expected = reference(tokens).numpy()
    np.testing.assert_allclose(np.concatenate(per_replica, axis=0), expected,
                               rtol=1e-4, atol=1e-5)
