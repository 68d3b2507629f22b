"""Distillation losses against their closed forms."""

import numpy as np
import pytest
import tensorflow as tf

from tf_codistill.core import losses


def _logits(seed, shape):
    return tf.constant(np.random.RandomState(seed).randn(*shape).astype("float32"))


def test_soft_target_cross_entropy_matches_formula():
    teacher, student = _logits(0, (4, 5)), _logits(1, (4, 5))
    loss = losses.get_distillation_loss("cross_entropy")
    target = loss.target([teacher], [1.0])
    expected = -np.sum(tf.nn.softmax(teacher) * tf.nn.log_softmax(student), axis=-1)
    np.testing.assert_allclose(loss(target, student), expected, rtol=1e-5)


def test_kl_is_zero_for_identical_predictions_and_positive_otherwise():
    logits = _logits(0, (3, 7))
    loss = losses.get_distillation_loss("kl", temperature=2.0)
    target = loss.target([logits], [1.0])
    np.testing.assert_allclose(loss(target, logits), np.zeros(3), atol=1e-5)
    assert np.all(loss(target, _logits(1, (3, 7))).numpy() > 0)


@pytest.mark.parametrize("output_kind", ["softmax", "sigmoid"])
def test_kl_equals_cross_entropy_minus_teacher_entropy(output_kind):
    teacher, student = _logits(0, (6, 3)), _logits(1, (6, 3))
    ce = losses.get_distillation_loss("cross_entropy", output_kind, 3.0)
    kl = losses.get_distillation_loss("kl", output_kind, 3.0)
    target = ce.target([teacher], [1.0])
    entropy_term = ce(target, teacher) - kl(target, teacher)
    np.testing.assert_allclose(kl(target, student),
                               ce(target, student) - entropy_term, rtol=1e-4, atol=1e-5)


def test_temperature_softens_both_sides_and_scales_by_t_squared():
    teacher, student = _logits(0, (2, 4)), _logits(1, (2, 4))
    t = 4.0
    kl_t = losses.get_distillation_loss("kl", temperature=t)
    kl_1 = losses.get_distillation_loss("kl")
    softened = kl_1(kl_1.target([teacher / t], [1.0]), student / t)
    np.testing.assert_allclose(kl_t(kl_t.target([teacher], [1.0]), student),
                               t * t * softened, rtol=1e-5)


def test_logistic_output_cross_entropy():
    teacher, student = _logits(0, (5, 1)), _logits(1, (5, 1))
    loss = losses.get_distillation_loss("cross_entropy", "sigmoid")
    p = tf.sigmoid(teacher)[:, 0]
    q = tf.sigmoid(student)[:, 0]
    expected = -(p * np.log(q) + (1 - p) * np.log(1 - q))
    np.testing.assert_allclose(loss(loss.target([teacher], [1.0]), student),
                               expected, rtol=1e-4)


def test_logit_mse_averages_teacher_logits_not_probabilities():
    a, b, student = _logits(0, (2, 3)), _logits(1, (2, 3)), _logits(2, (2, 3))
    loss = losses.get_distillation_loss("logit_mse")
    target = loss.target([a, b], [1.0, 1.0])
    np.testing.assert_allclose(target, (a + b) / 2, rtol=1e-6)
    np.testing.assert_allclose(loss(target, student),
                               np.mean((student - (a + b) / 2) ** 2, axis=-1), rtol=1e-5)


def test_target_is_mean_of_available_teacher_probabilities():
    a, b, c = _logits(0, (2, 3)), _logits(1, (2, 3)), _logits(2, (2, 3))
    loss = losses.get_distillation_loss("cross_entropy")
    target = loss.target([a, b, c], [1.0, 0.0, 1.0])
    np.testing.assert_allclose(target, (tf.nn.softmax(a) + tf.nn.softmax(c)) / 2,
                               rtol=1e-6)


def test_per_token_losses_keep_the_time_axis():
    loss = losses.get_distillation_loss("kl")
    logits = _logits(0, (2, 5, 11))
    assert loss(loss.target([logits], [1.0]), _logits(1, (2, 5, 11))).shape == (2, 5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="hinge"), "choose one of"),
    (dict(name="kl", temperature=0.0), "temperature must be > 0"),
    (dict(name="kl", temperature=-1.0), "temperature must be > 0"),
    (dict(name="kl", output_kind="tanh"), "output_kind='tanh'"),
])
def test_bad_arguments_name_the_argument_and_choices(kwargs, message):
    with pytest.raises(ValueError, match=message):
        losses.get_distillation_loss(**kwargs)
