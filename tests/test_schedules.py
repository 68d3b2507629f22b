"""The Goyal et al. learning-rate schedule and the weight-decay schedule."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tf_codistill import config as config_lib
from tf_codistill.core import schedules


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


def test_weight_decay_scale_changes_exactly_at_the_boundaries():
    schedule = schedules.WeightDecaySchedule([3, 5], [1.0, 0.5, 0.25])
    assert _values(schedule, [0, 2, 3, 4, 5, 10**9]) == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert _values(schedules.WeightDecaySchedule([], [0.3]), [0, 10**6]) == \
        pytest.approx([0.3, 0.3])
    assert float(schedule(tf.Variable(4, dtype=tf.int64))) == 0.5  # optimizer.iterations


def test_step_with_lr_is_sodhani_et_al_x1_then_x0_1_then_0():
    schedule = schedules.WeightDecaySchedule.step_with_lr([10, 20, 30])
    assert (schedule.boundaries, schedule.scales) == ([10, 20], [1.0, 0.1, 0.0])
    np.testing.assert_allclose(_values(schedule, [0, 9, 10, 19, 20, 30, 1000]),
                               [1, 1, 0.1, 0.1, 0, 0, 0], rtol=1e-6)
    assert schedules.weight_decay_schedule("constant", [10, 20]) is None
    assert schedules.weight_decay_schedule("step_with_lr", [10, 20]).scales == schedule.scales


@pytest.mark.parametrize("make, message", [
    (lambda: schedules.WeightDecaySchedule([5], [1.0]), "one scale more than boundaries"),
    (lambda: schedules.WeightDecaySchedule([5, 5], [1, 1, 1]), "strictly increasing"),
    (lambda: schedules.WeightDecaySchedule([-1], [1, 1]), "strictly increasing steps >= 0"),
    (lambda: schedules.WeightDecaySchedule([5], [1, -0.1]), "finite numbers >= 0"),
    (lambda: schedules.WeightDecaySchedule([5], [1, float("nan")]), "finite numbers >= 0"),
    (lambda: schedules.WeightDecaySchedule.step_with_lr([100]), "two learning-rate decay"),
    (lambda: schedules.weight_decay_schedule("cosine"), "choose 'constant' or 'step_with_lr'"),
])
def test_bad_weight_decay_schedules_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("name", config_lib.WEIGHT_DECAY_SCHEDULES)
def test_every_flag_choice_has_a_schedule(name):
    schedules.weight_decay_schedule(name, [10, 20])


def _config(weight_decay_schedule, lr_decay_boundaries):
    trainer = config_lib.TrainerConfig(weight_decay_schedule=weight_decay_schedule,
                                       lr_decay_boundaries=lr_decay_boundaries)
    return config_lib.RunConfig(task="imagenet", model_dir="unused", trainer=trainer)


@pytest.mark.parametrize("boundaries", [(), (100,)])
def test_step_with_lr_without_two_lr_decays_says_what_to_pass(boundaries):
    with pytest.raises(config_lib.ConfigError,
                       match=r"needs two --lr_decay_boundaries.*--lr_decay_boundaries=2346,4692"):
        config_lib.check(_config("step_with_lr", boundaries))
    config_lib.check(_config("constant", boundaries))


def test_step_with_lr_with_two_lr_decays_is_valid_and_other_names_are_not():
    config_lib.check(_config("step_with_lr", (100, 200, 300)))
    with pytest.raises(config_lib.ConfigError, match="--weight_decay_schedule='linear' is not"):
        config_lib.check(_config("linear", (100, 200)))
