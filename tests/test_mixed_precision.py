"""--mixed_precision: Keras policies for the group's models, loss scaling for float16."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tests.helpers import lm
from tf_codistill import config as config_lib
from tf_codistill.runner import train_lib
from tf_codistill.tasks import get_task
from tf_codistill.tasks.clusters import ClustersModelSection


def _clusters(model_dir, policy, **codistill):
    return config_lib.RunConfig(
        task="clusters", model_dir=str(model_dir),
        trainer=config_lib.TrainerConfig(train_steps=6, batch_size=32, steps_per_loop=3,
                                         eval_steps=2, mixed_precision=policy),
        codistill=config_lib.CodistillConfig(**codistill),
        model=ClustersModelSection(hidden_units=(16,), num_classes=4))


def _finite(metrics, keys=("train_loss", "train_total_loss", "distill_loss", "eval_loss")):
    for key in keys:
        assert np.isfinite(metrics[key]), (key, metrics[key])


def test_bfloat16_builds_16_bit_compute_over_float32_variables_and_restores_the_policy(
        tmp_path):
    config = _clusters(tmp_path, "mixed_bfloat16")
    model, _ = train_lib.build(config, get_task(config), tf.distribute.get_strategy())
    assert keras.mixed_precision.global_policy().name == "float32"
    assert model.student.layers[0].compute_dtype == "bfloat16"
    assert {v.dtype for v in model.student.variables} == {tf.float32}
    assert not isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer)


def test_bfloat16_group_trains_with_a_distillation_term(tmp_path):
    metrics = train_lib.run(_clusters(tmp_path, "mixed_bfloat16", teacher="uniform"))
    assert metrics["global_step"] == 6
    _finite(metrics)
    assert metrics["distill_loss"] > 0


@pytest.mark.slow
def test_bfloat16_lm_trains_and_keeps_float32_state(tmp_path, corpus):
    config = lm.lm_config(tmp_path / "run", *corpus)
    config = dataclasses.replace(config, trainer=dataclasses.replace(
        config.trainer, mixed_precision="mixed_bfloat16"))
    metrics = train_lib.run(config)
    assert metrics["global_step"] == 6
    _finite(metrics, ("train_loss", "eval_loss"))


def test_float16_scales_the_loss_under_mirrored_strategy(tmp_path, mirrored_strategy):
    config = _clusters(tmp_path, "mixed_float16", teacher="uniform")
    task = get_task(config)
    model, _ = train_lib.build(config, task, mirrored_strategy)
    assert isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer)
    assert model.student.layers[0].compute_dtype == "float16"
    dataset = mirrored_strategy.distribute_datasets_from_function(task.train_dataset)
    scale = float(model.optimizer.loss_scale.numpy())
    history = model.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][-1]) and history["distill_loss"][-1] > 0
    assert int(model.optimizer.iterations.numpy()) == 3  # no step skipped for overflow
    assert float(model.optimizer.loss_scale.numpy()) == scale  # dynamic scale, no overflow
    assert {v.dtype for v in model.student.variables} == {tf.float32}


def test_float16_overflow_skips_the_step_and_lowers_the_scale(tmp_path):
    """The loss scale reaches the CodistillModel's gradients: an overflow is caught."""
    config = _clusters(tmp_path, "mixed_float16")
    task = get_task(config)
    model, _ = train_lib.build(config, task, tf.distribute.get_strategy())
    x = np.full((32, 16), 3e4, np.float32)  # float16 activations overflow to inf
    y = np.zeros(32, np.int32)
    before = [w.copy() for w in model.student.get_weights()]
    scale = float(model.optimizer.loss_scale.numpy())
    model.train_on_batch(x, y)
    assert float(model.optimizer.loss_scale.numpy()) < scale
    for a, b in zip(before, model.student.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_an_unknown_policy_is_refused(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="--mixed_precision='float8'"):
        config_lib.check(_clusters(tmp_path, "float8"))
