"""No teacher work while it cannot count: burn-in and peers that have not published yet."""

import types

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import tf_codistill as tc
from tests.helpers import tiny_models as tiny
from tf_codistill.exchange import snapshots
from tf_codistill.exchange.peers import CheckpointPeers, named_weights


class CountingClassifier(keras.Model):
    """tiny.classifier whose forward passes are counted in a variable it does not own.

    The counter is created outside the model (and held untracked), so the copy's
    weights stay exactly those a peer publishes.
    """

    def __init__(self, seed, counter):
        super().__init__()
        self.inner = tiny.classifier(seed)
        self._count = types.SimpleNamespace(variable=counter)  # not tracked by Keras

    def call(self, x, training=None):
        self._count.variable.assign_add(1)
        return self.inner(x, training=training)


def _counter():
    return tf.Variable(0, dtype=tf.int64, trainable=False)


def _model(teacher, burn_in_steps=0, jit_compile=False):
    return tiny.codistilled_classifier(teacher, jit_compile, burn_in_steps=burn_in_steps)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_burn_in_steps_run_no_teacher_forward_and_train_like_a_plain_step(jit_compile):
    x, y = tiny.classification_data(16)
    calls = _counter()
    plain = _model(None, jit_compile=jit_compile)
    model = _model(tc.FixedTeacher(CountingClassifier(5, calls)), burn_in_steps=3,
                   jit_compile=jit_compile)
    for _ in range(3):
        expected = plain.train_on_batch(x, y, return_dict=True)
        logs = model.train_on_batch(x, y, return_dict=True)
        assert logs["loss"] == pytest.approx(expected["loss"], rel=1e-6)
        assert logs["distill_loss"] == 0.0
    assert int(calls.numpy()) == 0
    for a, b in zip(plain.student.get_weights(), model.student.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    logs = model.train_on_batch(x, y, return_dict=True)
    model.train_on_batch(x, y)
    assert int(calls.numpy()) == 2
    assert logs["distill_loss"] > 0


def test_after_burn_in_the_loss_is_the_unskipped_one():
    """The switched step gives what the step without a switch gives."""
    x, y = tiny.classification_data(16)
    switched = _model(tc.FixedTeacher(tiny.classifier(5)), burn_in_steps=1)
    always = _model(tc.FixedTeacher(tiny.classifier(5)), burn_in_steps=0)
    switched.optimizer.iterations.assign(1)
    always.optimizer.iterations.assign(1)
    a = switched.train_on_batch(x, y, return_dict=True)
    b = always.train_on_batch(x, y, return_dict=True)
    assert a == pytest.approx(b, rel=1e-6)
    for u, v in zip(switched.student.get_weights(), always.student.get_weights()):
        np.testing.assert_allclose(u, v, rtol=1e-6)


def test_a_peer_that_has_not_published_costs_no_forward_until_it_does(tmp_path):
    calls = _counter()
    peers = CheckpointPeers([str(tmp_path / "peer")], lambda: CountingClassifier(3, calls),
                            poll_interval_s=60)
    try:
        x, y = tiny.classification_data(16)
        model = _model(peers)
        for _ in range(3):
            logs = model.train_on_batch(x, y, return_dict=True)
            assert logs["distill_loss"] == 0.0
        assert int(calls.numpy()) == 0
        assert peers.frozen_models[0].built  # tracing the skipped branch built the copy
        snapshots.PeerPublisher(str(tmp_path / "peer")).publish(
            3, named_weights(tiny.classifier(7)))
        peers.poller.poll_once()
        assert peers.swap_in_new_weights(3) == 1
        assert model.train_on_batch(x, y, return_dict=True)["distill_loss"] > 0
        assert int(calls.numpy()) == 1
    finally:
        peers.close()


def test_burn_in_skip_under_mirrored_strategy(mirrored_strategy):
    x, y = tiny.classification_data(16)
    with mirrored_strategy.scope():
        # Each replica counts its own forward passes; reading sums the replicas.
        calls = tf.Variable(0, dtype=tf.int64, trainable=False,
                            synchronization=tf.VariableSynchronization.ON_READ,
                            aggregation=tf.VariableAggregation.SUM)
        plain = _model(None)
        model = _model(tc.FixedTeacher(CountingClassifier(5, calls)), burn_in_steps=2)
    for _ in range(2):
        expected = plain.train_on_batch(x, y, return_dict=True)
        logs = model.train_on_batch(x, y, return_dict=True)
        assert logs["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    assert int(calls.numpy()) == 0
    assert model.train_on_batch(x, y, return_dict=True)["distill_loss"] > 0
    assert int(calls.numpy()) == mirrored_strategy.num_replicas_in_sync
