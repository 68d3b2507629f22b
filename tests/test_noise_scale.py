"""The gradient noise scale measured in the train step, against a problem whose answer is known.

Least squares y = x.w* + e with x ~ N(0, I_d) and e ~ N(0, s^2), at fixed weights w = w* + u
(learning rate 0): one example's gradient of (x.w - y)^2 / 2 is x (x.u - e), whose mean is
G = u and whose covariance is Sigma = u u^T + (|u|^2 + s^2) I, so |G|^2 = |u|^2 and
tr(Sigma) = |u|^2 + d (|u|^2 + s^2).
"""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tf_codistill.core.model import CodistillModel
from tf_codistill.core.noise_scale import (WARMUP_STEPS, GradientNoiseScale, signed_halves,
                                           squared_norm)

DIM, NOISE_VAR, BATCH = 4, 1.0, 32
OFFSET = np.array([1.0, 0.0, 0.0, 0.0], "float32")  # u = w - w*, |u|^2 = 1
TRUE_GRADIENT_SQ = float(OFFSET @ OFFSET)
TRUE_TRACE = TRUE_GRADIENT_SQ + DIM * (TRUE_GRADIENT_SQ + NOISE_VAR)


def _least_squares(steps, seed=0):
    rng = np.random.RandomState(seed)
    true_weights = rng.randn(DIM).astype("float32")
    x = rng.randn(steps * BATCH, DIM).astype("float32")
    y = (x @ true_weights + np.sqrt(NOISE_VAR) * rng.randn(steps * BATCH)).astype("float32")
    return true_weights, tf.data.Dataset.from_tensor_slices((x, y[:, None])).batch(BATCH)


def _squared_error(y, prediction):
    return 0.5 * tf.square(prediction - y)


def _model(true_weights, interval, learning_rate=0.0, warmup_steps=None, jit_compile=False):
    """The least-squares model at fixed weights; ``warmup_steps`` other than the default's
    replaces its telemetry (call in the strategy's scope)."""
    student = keras.Sequential([keras.layers.Dense(
        1, use_bias=False, input_shape=(DIM,),
        kernel_initializer=keras.initializers.Constant((true_weights + OFFSET)[:, None]))])
    model = CodistillModel(student, noise_scale_interval=interval)
    if warmup_steps is not None:
        model.noise_scale = GradientNoiseScale(interval, warmup_steps)
    model.compile(keras.optimizers.SGD(learning_rate), loss=_squared_error,
                  jit_compile=jit_compile)
    return model


def _measured_steps(strategy, interval, steps, warmup_steps=None, jit_compile=False):
    """The optimizer steps whose measurement entered the averages."""
    true_weights, data = _least_squares(steps)
    with strategy.scope():
        model = _model(true_weights, interval, warmup_steps=warmup_steps,
                       jit_compile=jit_compile)
    weights = []
    model.fit(data, verbose=0, callbacks=[keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: weights.append(
            float(model.noise_scale._weight.numpy())))])
    return [step for step, weight in enumerate(weights)
            if weight != (weights[step - 1] if step else 0.0)]


def _measured(strategy, interval, steps):
    true_weights, data = _least_squares(steps)
    with strategy.scope():
        model = _model(true_weights, interval)
    history = model.fit(data, verbose=0)
    return {name: values[-1] for name, values in history.history.items()}


@pytest.mark.parametrize("replicas", [1, 2])
def test_the_estimate_is_within_20_percent_of_the_truth(replicas, mirrored_strategy):
    strategy = mirrored_strategy if replicas == 2 else tf.distribute.get_strategy()
    logs = _measured(strategy, interval=1, steps=400)
    assert logs["grad_norm_sq"] == pytest.approx(TRUE_GRADIENT_SQ, rel=0.2)
    assert logs["grad_trace_cov"] == pytest.approx(TRUE_TRACE, rel=0.2)
    assert logs["noise_scale"] == pytest.approx(TRUE_TRACE / TRUE_GRADIENT_SQ, rel=0.2)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_one_replica_measures_every_interval_steps_from_the_warm_up_on(jit_compile):
    """The step is traced twice, measuring and plain; the right one runs (under XLA too)."""
    strategy = tf.distribute.get_strategy()
    assert _measured_steps(strategy, interval=4, steps=13, warmup_steps=5,
                           jit_compile=jit_compile) == [8, 12]


@pytest.mark.parametrize("replicas", [1, 2])
def test_nothing_is_measured_before_the_warm_up(replicas, mirrored_strategy):
    """A freshly initialized model's gradient can be 1,000x what it is a few steps later (the
    demo's LSTM): averaged in by size, a step-0 measurement would stand for the whole run."""
    strategy = mirrored_strategy if replicas == 2 else tf.distribute.get_strategy()
    steps = WARMUP_STEPS + 2
    assert _measured_steps(strategy, interval=1, steps=steps) == [WARMUP_STEPS, WARMUP_STEPS + 1]


@pytest.mark.parametrize("replicas", [1, 2])
def test_telemetry_leaves_training_as_it_was(replicas, mirrored_strategy):
    """The model's own all-reduce moves the weights exactly as the optimizer's would, and
    one replica's measuring steps move them as its plain steps do."""
    strategy = mirrored_strategy if replicas == 2 else tf.distribute.get_strategy()
    true_weights, data = _least_squares(steps=5)
    weights = []
    for interval in (None, 2):
        with strategy.scope():
            model = _model(true_weights, interval, learning_rate=0.05,
                           warmup_steps=None if interval is None else 0)
        model.fit(data, verbose=0)
        weights.append(model.student.get_weights()[0])
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-6)


def test_signed_halves_give_half_the_difference_of_the_halves_gradients():
    keras.utils.set_random_seed(0)
    layer = keras.layers.Dense(3)
    x = tf.random.normal((6, 5))
    with tf.GradientTape(persistent=True) as tape:
        logits = layer(x)
        loss = tf.reduce_mean(tf.square(logits - 1.0))
        halves = [tf.reduce_mean(tf.square(layer(x[start::2]) - 1.0)) for start in (0, 1)]
    cotangent = signed_halves(tape.gradient(loss, logits))
    difference = tape.gradient(logits, layer.trainable_variables, output_gradients=cotangent)
    expected = [(a - b) / 2 for a, b in zip(tape.gradient(halves[0], layer.trainable_variables),
                                            tape.gradient(halves[1], layer.trainable_variables))]
    for got, want in zip(difference, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_sparse_gradient_is_measured_as_its_dense_sum():
    sparse = tf.IndexedSlices(tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
                              tf.constant([0, 2, 0]), tf.constant([3, 2]))
    dense = tf.convert_to_tensor(sparse)
    assert float(squared_norm([sparse, None, tf.ones(3)])) == pytest.approx(
        float(tf.reduce_sum(dense ** 2)) + 3)


def test_a_bad_interval_or_warm_up_is_refused():
    with pytest.raises(ValueError, match="interval must be an integer >= 1"):
        GradientNoiseScale(0)
    with pytest.raises(ValueError, match="warmup_steps must be an integer >= 0"):
        GradientNoiseScale(1, warmup_steps=-1)
