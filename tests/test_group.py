"""tc.Group: one group of a user's own model trained with model.fit, in the train command's
model_dir layout, exchanging snapshots with the other groups."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import tf_codistill as tc
from tests.helpers import runs
from tests.helpers import tiny_models as tiny
from tests.test_multi_worker import free_ports
from tf_codistill.exchange.snapshots import read_latest
from tf_codistill import config as config_lib
from tf_codistill.utils import lease as lease_lib

EXAMPLE = str(runs.REPO / "examples" / "own_model.py")


def dataset(group):
    x, y = tiny.classification_data(256, seed=group)
    return tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(16)


def train_group(model_dir, group, train_steps=20, strategy=None, flavour="tf_keras",
                **settings):
    """One group of two: a tiny classifier, its peer copy built by the group."""
    settings = {"reload_interval": 5, "steps_per_loop": 10, **settings}
    with tc.Group(str(model_dir), group, 2, train_steps=train_steps, strategy=strategy,
                  **settings) as g:
        with g.strategy.scope():
            model = tc.CodistillModel(tiny.classifier(group, flavour=flavour),
                                      g.teacher(lambda: tiny.classifier(9, flavour=flavour)))
            model.compile(tiny.keras_of(flavour).optimizers.SGD(0.1))
        return g.fit(model, dataset(group)), model


@pytest.mark.parametrize("flavour", tiny.FLAVOURS)
def test_a_group_writes_the_train_commands_layout_and_loads_its_peer(tmp_path, capsys,
                                                                     flavour):
    first, _ = train_group(tmp_path, 0, flavour=flavour)
    assert first["global_step"] == 20 and first["teacher_reloads"] == 0  # no peer yet
    group_dir = tmp_path / "group_0"
    assert tf.train.latest_checkpoint(str(group_dir / "checkpoints")).endswith("-20")
    published = read_latest(str(group_dir / "published"))  # verified against its manifest
    assert published.step == 20
    assert list((group_dir / "logs").rglob("events.out.tfevents.*"))
    assert list((group_dir / "logs" / "codistill").rglob("events.out.tfevents.*"))
    assert json.loads((group_dir / "metrics.json").read_text())["global_step"] == 20
    assert not (group_dir / "lease.json").exists()  # freed on exit

    second, model = train_group(tmp_path, 1, flavour=flavour)
    assert second["teacher_reloads"] >= 1
    assert second["peers"][0]["step"] == 20 and second["peers"][0]["directory"].endswith(
        "group_0/published")
    assert second["teacher_age_counted_steps"] > 0
    assert "group 1 step 20/20: loss" in capsys.readouterr().out
    copy = model.teacher.frozen_models[0]  # holds the weights group 0 published
    for held, sent in zip(copy.weights, published.weights):
        np.testing.assert_array_equal(held.numpy(), sent)


@pytest.mark.parametrize("flavour", tiny.FLAVOURS)
def test_a_rerun_resumes_and_a_finished_group_returns_its_metrics(tmp_path, capsys,
                                                                  flavour):
    _, trained = train_group(tmp_path, 0, flavour=flavour)
    again, _ = train_group(tmp_path, 0, flavour=flavour)
    assert "already finished at step 20" in capsys.readouterr().out
    assert again["global_step"] == 20
    with tc.Group(str(tmp_path), 0, 2, train_steps=30) as group:
        model = tc.CodistillModel(tiny.classifier(5, flavour=flavour))  # other weights
        model.compile(tiny.keras_of(flavour).optimizers.SGD(0.1))
        assert group.restore(model) == 20
        for restored, saved in zip(model.student.get_weights(), trained.student.get_weights()):
            np.testing.assert_array_equal(restored, saved)
    longer, _ = train_group(tmp_path, 0, train_steps=30, flavour=flavour)
    assert "resuming from step 20" in capsys.readouterr().out
    assert longer["global_step"] == 30


def test_a_group_has_one_summary_writer_however_many_fits_and_closes_it(tmp_path,
                                                                          monkeypatch):
    created = []

    def create_file_writer(*args, **kwargs):
        created.append(create(*args, **kwargs))
        return created[-1]

    create = tf.summary.create_file_writer
    monkeypatch.setattr(tf.summary, "create_file_writer", create_file_writer)
    with tc.Group(str(tmp_path), 0, 2, train_steps=10) as group:
        model = tc.CodistillModel(tiny.classifier(0))
        model.compile(keras.optimizers.SGD(0.1))
        group.restore(model)
        for _ in range(3):  # e.g. a fit per phase of the user's own loop
            group.callbacks(model)
        assert len(created) == 1
    with pytest.raises(RuntimeError, match="already closed"):
        created[0].as_default()


def test_groups_are_seeded_like_the_train_command(tmp_path):
    with tc.Group(str(tmp_path), 1, 2, train_steps=10, seed=3) as group:
        assert group.seed == config_lib.RunConfig(group=1, trainer=config_lib.TrainerConfig(
            seed=3)).init_seed == 3001
        drawn = np.random.rand()
    np.random.seed(3001)
    assert drawn == np.random.rand()


def test_a_group_under_mirrored_strategy_trains_and_publishes(tmp_path, mirrored_strategy):
    metrics, model = train_group(tmp_path, 0, strategy=mirrored_strategy)
    assert metrics["global_step"] == 20 and model.distribute_strategy is mirrored_strategy
    assert read_latest(str(tmp_path / "group_0" / "published")).step == 20


def test_a_second_live_owner_of_a_group_is_refused(tmp_path):
    with tc.Group(str(tmp_path), 0, 2, train_steps=10):
        with pytest.raises(lease_lib.LeaseHeld, match="group 0 is already running"):
            tc.Group(str(tmp_path), 0, 2, train_steps=10).__enter__()


@pytest.mark.parametrize("arguments, error, message", [
    ({"group": 2}, config_lib.ConfigError, r"group=2 is out of range"),
    ({"reload_interval": 0}, config_lib.ConfigError, r"--reload_interval=0 is out of range"),
    ({"topology": "star"}, config_lib.ConfigError, r"--topology='star' is not valid"),
    ({"learning_rate": 0.1}, TypeError, r"unknown settings \['learning_rate'\]; it takes"),
])
def test_bad_settings_are_named_before_anything_is_written(tmp_path, arguments, error,
                                                           message):
    arguments = {"group": 0, **arguments}
    with pytest.raises(error, match=message):
        tc.Group(str(tmp_path / "run"), num_groups=2, train_steps=10, **arguments)
    assert not (tmp_path / "run").exists()


def _example(model_dir, group, *args, env=None):
    return subprocess.Popen(
        [sys.executable, EXAMPLE, f"--model_dir={model_dir}", f"--group={group}", *args],
        cwd=runs.REPO, env={**runs.os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(processes, timeout=600):
    outputs = []
    for process in processes:
        output, _ = process.communicate(timeout=timeout)
        assert process.returncode == 0, output[-3000:]
        outputs.append(output)
    return outputs


@pytest.mark.slow
def test_the_examples_two_groups_load_each_other(tmp_path):
    """docs/own-model.md's commands, as written: two processes, --group=0 and --group=1."""
    model_dir = tmp_path / "own"
    outputs = _finish([_example(model_dir, g) for g in (0, 1)])
    for group, output in enumerate(outputs):
        other = 1 - group
        assert f"group {group} holds {model_dir}/group_{other}/published at its step" in output
        metrics = runs.metrics(model_dir, group)
        assert metrics["global_step"] == 2000 and metrics["teacher_reloads"] >= 1


@pytest.mark.slow
def test_a_multi_worker_group_of_two_workers_loads_its_peer_and_publishes(tmp_path):
    """Group 1 trains first (one process), then group 0 as two workers: both workers load
    group 1's snapshot at the same step, the chief alone publishes, every lease is freed.
    (Two groups training at once are the test above.)"""
    model_dir = tmp_path / "own"
    _finish([_example(model_dir, 1, "--train_steps=300")])
    cluster = [f"localhost:{port}" for port in free_ports(2)]
    workers = [_example(model_dir, 0, "--strategy=multi_worker", "--train_steps=300",
                        env={"TF_CONFIG": json.dumps({"cluster": {"worker": cluster},
                                                      "task": {"type": "worker",
                                                               "index": index}})})
               for index in (0, 1)]
    for output in _finish(workers):
        assert f"group 0 holds {model_dir}/group_1/published at its step 300" in output
    metrics = runs.metrics(model_dir, 0)
    assert metrics["global_step"] == 300 and metrics["teacher_reloads"] == 1
    assert read_latest(str(model_dir / "group_0" / "published")).step == 300
    assert not list((model_dir / "group_0").glob("lease*.json"))  # every lease freed
