"""The Goyal et al. learning-rate schedule: scaling, warm-up, step decays."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tf_codistill import schedules


def _values(schedule, steps):
    return [float(schedule(step)) for step in steps]


def test_linear_scaling_warm_up_from_the_base_rate_and_step_decays():
    schedule = schedules.GoyalSchedule(1024, warmup_steps=10, decay_boundaries=[20, 30])
    assert schedule.peak_learning_rate == pytest.approx(0.4)
    np.testing.assert_allclose(_values(schedule, [0, 5, 9, 10, 19, 20, 29, 30, 1000]),
                               [0.1, 0.25, 0.37, 0.4, 0.4, 0.04, 0.04, 0.004, 0.004],
                               rtol=1e-5)


def test_without_warm_up_or_decays_the_rate_is_the_scaled_one():
    schedule = schedules.GoyalSchedule(128, warmup_steps=0)
    np.testing.assert_allclose(_values(schedule, [0, 1, 10**6]), [0.05] * 3, rtol=1e-6)


def test_epochs_become_steps():
    assert schedules.steps_per_epoch(1000, 256) == 4
    schedule = schedules.goyal_schedule_in_epochs(256, 1000, warmup_epochs=1.5,
                                                  decay_epochs=[3, 4])
    assert (schedule.warmup_steps, schedule.decay_boundaries) == (6, [12, 16])


def test_an_optimizer_follows_the_schedule_and_it_serializes():
    schedule = schedules.GoyalSchedule(512, warmup_steps=4, decay_boundaries=[6],
                                       base_learning_rate=0.2)
    optimizer = keras.optimizers.SGD(schedule)
    weight = tf.Variable(0.0)
    for _ in range(3):
        optimizer.apply_gradients([(tf.constant(1.0), weight)])
    assert float(weight) == pytest.approx(-(0.2 + 0.25 + 0.3))
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert _values(again, [0, 3, 7]) == pytest.approx(_values(schedule, [0, 3, 7]))


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0, warmup_steps=1), "batch sizes"),
    (dict(batch_size=256, warmup_steps=-1), "warmup_steps"),
    (dict(batch_size=256, warmup_steps=1, decay_boundaries=[5, 3]), "increasing"),
    (dict(batch_size=256, warmup_steps=10, decay_boundaries=[5]), "inside the warm-up"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        schedules.GoyalSchedule(**kwargs)
