"""TPU-shaped loops: K steps per device call end where K=1 ends, with the same reloads."""

import dataclasses
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import tf_codistill as tc
from tests.helpers import tiny_models as tiny
from tf_codistill.core.step_counting import StepCountingCallback
from tf_codistill.runner import callbacks as callbacks_lib
from tf_codistill import config as config_lib
from tf_codistill.runner import train_lib
from tf_codistill.tasks.clusters import ClustersModelSection


class RecordSteps(StepCountingCallback):
    def __init__(self, interval):
        super().__init__()
        self.interval, self.fired, self.seen = interval, [], []

    def on_step_end(self, step):
        self.seen.append(step)
        if step % self.interval == 0:
            self.fired.append(step)


def fit_tiny(steps_per_execution, jit_compile):
    teacher = tiny.classifier(7)
    teacher.build((None, 4))
    model = tc.CodistillModel(tiny.classifier(1), tc.FixedTeacher(teacher), burn_in_steps=5)
    model.compile(keras.optimizers.SGD(0.1), steps_per_execution=steps_per_execution,
                  jit_compile=jit_compile)
    dataset = tf.data.Dataset.from_tensor_slices(tiny.classification_data(64)).batch(
        8, drop_remainder=True).repeat()
    record, timer = RecordSteps(20), callbacks_lib.StepTimer()
    stop = callbacks_lib.StopAtStep(60)
    model.fit(dataset, epochs=4, steps_per_epoch=20, callbacks=[record, timer, stop], verbose=0)
    return model, record, timer


@pytest.mark.parametrize("jit_compile", [False, True])
def test_ten_steps_per_call_end_with_the_weights_of_one_step_per_call(jit_compile):
    one, record_one, timer_one = fit_tiny(1, jit_compile)
    ten, record_ten, timer_ten = fit_tiny(10, jit_compile)
    assert int(one.optimizer.iterations.numpy()) == int(ten.optimizer.iterations.numpy()) == 60
    assert record_one.seen == list(range(1, 61))
    assert record_ten.seen == list(range(10, 61, 10))  # once per call, between calls
    assert record_one.fired == record_ten.fired == [20, 40, 60]
    # Step times run from one call's start to the next inside an epoch: 19 of each
    # 20-step epoch with K=1, and with K=10 the first call's 10 steps, each counted.
    assert (len(timer_one.seconds), len(timer_ten.seconds)) == (3 * 19, 3 * 10)
    for a, b in zip(one.get_weights(), ten.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def clusters_config(model_dir, group, **trainer):
    return config_lib.RunConfig(
        task="clusters", model_dir=str(model_dir), num_groups=2, group=group,
        trainer=config_lib.TrainerConfig(**{"batch_size": 32, "eval_steps": 4,
                                            "train_steps": 60, **trainer}),
        model=ClustersModelSection(hidden_units=(32,), num_classes=8))


def student_weights(model_dir, group):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(
        str(model_dir / f"group_{group}" / "checkpoints")))
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
            if n.startswith("model/student/") and n.endswith("VARIABLE_VALUE")}


def with_reload_interval(config, interval):
    return dataclasses.replace(config, codistill=dataclasses.replace(
        config.codistill, reload_interval=interval))


@pytest.mark.slow
def test_a_group_reloads_its_peer_at_the_same_steps_with_k_10_as_with_k_1(tmp_path, capsys):
    """Group 0 publishes first; group 1 then trains against it with K=1 and with K=10."""
    peer_dir = tmp_path / "peer"
    train_lib.run(with_reload_interval(clusters_config(peer_dir, 0, steps_per_loop=20), 20))
    runs = {}
    for k, interval, loop in [(1, 20, 20), (10, 15, 15)]:  # 15 rounds up to 20 with K=10
        model_dir = tmp_path / f"k{k}"
        shutil.copytree(peer_dir, model_dir)
        config = with_reload_interval(clusters_config(
            model_dir, 1, steps_per_loop=loop, steps_per_execution=k), interval)
        runs[k] = train_lib.run(config), student_weights(model_dir, 1), capsys.readouterr().out
    (m1, w1, _), (m10, w10, out10) = runs[1], runs[10]
    assert "--reload_interval=15 is not a multiple of --steps_per_execution=10; using 20" in out10
    assert "--steps_per_loop=15 is not a multiple of --steps_per_execution=10; using 20" in out10
    assert m1["global_step"] == m10["global_step"] == 60
    assert m1["teacher_reloads"] == m10["teacher_reloads"] >= 1
    assert m1["peer_steps"] == m10["peer_steps"] == {0: 60}  # the peer's newest
    for k in (1, 10):
        steps = sorted(int(p.name.split("-")[1].split(".")[0]) for p in
                       (tmp_path / f"k{k}" / "group_1" / "checkpoints").glob("ckpt-*.index"))
        assert steps == [20, 40, 60]
    assert w1.keys() == w10.keys() and w1
    for name in w1:
        np.testing.assert_allclose(w1[name], w10[name], rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(m1["eval_loss"], m10["eval_loss"], rtol=1e-5)


def test_train_steps_that_are_not_a_multiple_of_k_are_refused():
    config = clusters_config("unused", 0, steps_per_execution=8)
    with pytest.raises(config_lib.ConfigError, match="--train_steps=60 is not a multiple of "
                       "--steps_per_execution=8.*pass --train_steps=56 or 64"):
        config_lib.check(config)


def single_group(model_dir, **trainer):
    return dataclasses.replace(clusters_config(model_dir, 0, **trainer), num_groups=1)


def test_a_resume_from_a_step_between_calls_is_refused_before_training(tmp_path):
    train_lib.run(single_group(tmp_path, steps_per_loop=10, train_steps=30))
    with pytest.raises(config_lib.ConfigError, match="resumes from step 30, which is not a "
                       "multiple of --steps_per_execution=20"):
        train_lib.run(single_group(tmp_path, steps_per_loop=20, train_steps=60,
                                   steps_per_execution=20))
    assert max(int(p.name.split("-")[1].split(".")[0])
               for p in (tmp_path / "group_0" / "checkpoints").glob("ckpt-*.index")) == 30
