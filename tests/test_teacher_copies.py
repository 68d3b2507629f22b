"""Teacher copies at 16 bits: bfloat16 variables and compute, float32 carried state."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tf_codistill.core.losses import get_distillation_loss
from tf_codistill.exchange import snapshots
from tf_codistill.exchange.peers import (CheckpointPeers, build_teacher_copy,
                                         exchanged_variables, named_weights)
from tf_codistill.models.lstm_lm import (LanguageModelConfig, Orthogonal16,
                                         StatefulLanguageModel)

CONFIG = LanguageModelConfig(vocab_size=50, embedding_dim=8, units=16)
BATCH, LENGTH = 4, 6


def _lm():
    return StatefulLanguageModel(CONFIG, BATCH)


def _tokens(seed):
    return tf.constant(np.random.RandomState(seed).randint(0, 50, (BATCH, LENGTH)), tf.int32)


def test_orthogonal16_draws_orthogonal_values_in_float32_and_casts():
    expected = keras.initializers.Orthogonal(seed=3)((16, 16), dtype=tf.float32)
    np.testing.assert_array_equal(Orthogonal16(seed=3)((16, 16), dtype=tf.float32), expected)
    bf16 = Orthogonal16(seed=3)((16, 16), dtype=tf.bfloat16)
    assert bf16.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(bf16, tf.float32), expected, atol=2 ** -8)


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_a_16_bit_teacher_copy_holds_bfloat16_weights_and_predicts_like_float32(
        tmp_path, precision):
    keras.utils.set_random_seed(0)
    source = _lm()
    source(_tokens(0))
    snapshots.PeerPublisher(str(tmp_path), precision=precision).publish(
        5, named_weights(source))
    peers = CheckpointPeers([str(tmp_path)], lambda: build_teacher_copy(_lm, precision),
                            poll_interval_s=60)
    try:
        copy = peers.frozen_models[0]
        copy(_tokens(0))
        source.reset_states()
        copy.reset_states()
        peers.poller.poll_once()
        assert peers.swap_in_new_weights(5) == 1
        assert {v.dtype for v in exchanged_variables(copy)} == {tf.bfloat16}
        assert {v.dtype for v in copy.carried_state_variables} == {tf.float32}
        x = _tokens(1)
        expected = source(x)
        logits = tf.cast(copy(x), tf.float32)
        loss = get_distillation_loss("cross_entropy", "softmax", 1.0)
        student = tf.random.stateless_normal(tf.shape(expected), seed=(1, 2)) * 3
        exact = float(tf.reduce_mean(loss(loss.target([expected], [1.0]), student)))
        approx = float(tf.reduce_mean(loss(loss.target([logits], [1.0]), student)))
        assert approx == pytest.approx(exact, rel=0.02)
        assert float(tf.reduce_max(tf.abs(tf.nn.softmax(logits) - tf.nn.softmax(expected)))) \
            < 0.02
    finally:
        peers.close()
