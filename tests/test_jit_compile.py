"""--jit_compile: every task's tiny config trains with XLA and matches graph mode."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from absl import flags as absl_flags

from data_pipelines.criteo import write_synthetic_criteo
from data_pipelines.imagenet import write_synthetic_imagenet_tfrecords
from tests.helpers import tiny_models
from tf_codistill.core.model import CodistillModel
from tf_codistill.core.teachers import FixedTeacher
from tf_codistill.exchange import snapshots
from tf_codistill.exchange.peers import CheckpointPeers, build_teacher_copy, named_weights
from tf_codistill import config as config_lib
from tf_codistill.runner import flags as flags_lib
from tf_codistill.runner import train_lib
from tf_codistill.tasks import get_task
from tf_codistill.tasks.clusters import ClustersModelSection
from tf_codistill.tasks.imagenet import ImageNetData, ImageNetModelSection

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _with_jit(config, jit_compile, model_dir):
    return dataclasses.replace(
        config, model_dir=str(model_dir),
        trainer=dataclasses.replace(config.trainer, jit_compile=jit_compile))


def _graph_and_xla(config, tmp_path):
    """Both runs from one global seed: some models (the LM) draw unseeded initializers."""
    results = []
    for jit_compile in (False, True):
        keras.utils.set_random_seed(0)
        results.append(train_lib.run(
            _with_jit(config, jit_compile, tmp_path / ("xla" if jit_compile else "graph"))))
    return results


def _assert_close(graph, xla, keys=("train_loss", "train_total_loss", "eval_loss")):
    assert xla["global_step"] == graph["global_step"]
    for key in keys:
        assert np.isfinite(xla[key]), (key, xla[key])
        assert xla[key] == pytest.approx(graph[key], rel=2e-3, abs=2e-4), key


def test_clusters_train_with_xla_like_graph_mode(tmp_path):
    config = config_lib.RunConfig(
        task="clusters", trainer=config_lib.TrainerConfig(
            train_steps=6, batch_size=32, steps_per_loop=3, eval_steps=2),
        model=ClustersModelSection(hidden_units=(16,), num_classes=4))
    _assert_close(*_graph_and_xla(config, tmp_path))


@pytest.mark.slow
def test_lm_trains_with_xla_like_graph_mode(tmp_path, finished_lm):
    """Against the session's graph-mode run (tests/conftest.py): a group seeds its own
    initializers (runner.group.Group), so the run needs no global seed of its own."""
    config, graph = finished_lm
    assert not config.trainer.jit_compile
    _assert_close(graph, train_lib.run(_with_jit(config, True, tmp_path / "xla")))


def _fixed_batch_losses(config, batch, jit_compile, steps=3):
    """Task losses of ``steps`` train steps on one fixed batch, model built as the command does.

    The ImageNet pipeline augments at random, so whole runs differ even between two
    graph-mode runs; a fixed batch compares the compiled steps alone.
    """
    config = dataclasses.replace(
        config, trainer=dataclasses.replace(config.trainer, jit_compile=jit_compile))
    task = get_task(config)
    keras.utils.set_random_seed(0)
    model, _ = train_lib.build(config, task, tf.distribute.get_strategy())
    assert model._jit_compile is jit_compile
    return [model.train_on_batch(*batch, return_dict=True)["task_loss"] for _ in range(steps)]


@pytest.mark.slow
def test_imagenet_trains_with_xla_like_graph_mode(tmp_path):
    data = tmp_path / "imagenet"
    for split in ("train", "validation"):
        write_synthetic_imagenet_tfrecords(str(data), 16, 4, 32, split=split)
    config = config_lib.RunConfig(
        task="imagenet", model_dir=str(tmp_path / "run"), trainer=config_lib.TrainerConfig(
            train_steps=3, batch_size=8, steps_per_loop=3, eval_steps=1,
            optimizer="momentum", learning_rate=0.01),
        data=ImageNetData(data_dir=str(data)),
        model=ImageNetModelSection(image_model="small_resnet", image_size=32, num_classes=4))
    batch = next(iter(get_task(config).train_dataset(tf.distribute.InputContext())))
    graph = _fixed_batch_losses(config, batch, False)
    xla = _fixed_batch_losses(config, batch, True)
    np.testing.assert_allclose(xla, graph, rtol=2e-3)
    assert xla[-1] < xla[0]  # it trains
    assert np.isfinite(train_lib.run(_with_jit(config, True, tmp_path / "xla"))["eval_loss"])


def _criteo_tiny_config(tmp_path, *flags):
    """configs/criteo_tiny.flags as one group, on generated files."""
    train, valid = tmp_path / "train.tsv", tmp_path / "valid.tsv"
    write_synthetic_criteo(str(train), 256, seed=0)
    write_synthetic_criteo(str(valid), 64, seed=1)
    flag_values = absl_flags.FlagValues()
    flags_lib.define_flags(flag_values)
    flag_values(["train", f"--flagfile={CONFIGS / 'criteo_tiny.flags'}", "--num_groups=1",
                 f"--train_files={train}", f"--eval_files={valid}", "--steps_per_loop=2",
                 "--eval_steps=2", *flags])
    return flags_lib.config_from_flags(flag_values)


def test_criteo_train_steps_compile_with_xla_on_the_hashed_batch(tmp_path):
    config = _criteo_tiny_config(tmp_path)
    batch = next(iter(get_task(config).train_dataset(tf.distribute.InputContext())))
    assert batch[0]["categorical_ids"].dtype == tf.int64
    np.testing.assert_allclose(_fixed_batch_losses(config, batch, True),
                               _fixed_batch_losses(config, batch, False), rtol=2e-3)


@pytest.mark.slow
def test_criteo_checkpoint_peers_teach_on_the_hashed_batch_under_xla(tmp_path):
    """A peer group's published Criteo weights, in a teacher copy, score the student's batch."""
    config = _criteo_tiny_config(tmp_path)
    task = get_task(config)
    features, labels = next(iter(task.train_dataset(tf.distribute.InputContext())))
    keras.utils.set_random_seed(1)
    peer_student = task.build_model(32)
    peer_student.get_layer("logit").bias.assign([0.7])  # unlike the student's
    snapshots.PeerPublisher(str(tmp_path / "peer")).publish(2, named_weights(peer_student))
    peers = CheckpointPeers([str(tmp_path / "peer")],
                            lambda: build_teacher_copy(lambda: task.build_model(32), "float32"),
                            poll_interval_s=60)
    try:
        peers.poller.poll_once()  # what the background thread does, without waiting for it
        assert peers.swap_in_new_weights(3) == 1
        np.testing.assert_allclose(peers.frozen_models[0](features), peer_student(features),
                                   rtol=1e-6)
        model = CodistillModel(task.build_model(32), peers, output_kind="sigmoid")
        model.compile(keras.optimizers.Adagrad(0.05), jit_compile=True)
        logs = model.train_on_batch(features, labels, return_dict=True)
        assert logs["distill_loss"] > 0 and np.isfinite(logs["loss"])
    finally:
        peers.close()


@pytest.mark.slow
def test_criteo_trains_with_xla_like_graph_mode_alone_and_distilling(tmp_path):
    """The hashing is in the input pipeline, so the model and its teacher copies compile."""
    config = _criteo_tiny_config(tmp_path)
    graph, xla = _graph_and_xla(config, tmp_path / "plain")
    _assert_close(graph, xla)
    teacher = str(tmp_path / "plain" / "graph" / "group_0")
    distilling = _criteo_tiny_config(tmp_path, "--teacher=ensemble", f"--teacher_dirs={teacher}")
    graph, xla = _graph_and_xla(distilling, tmp_path / "distilling")
    assert xla["distill_loss"] > 0
    _assert_close(graph, xla, keys=("train_loss", "train_total_loss", "distill_loss",
                                    "eval_loss"))


def test_codistill_model_compile_takes_keras_jit_compile():
    student, teacher = tiny_models.classifier(0), tiny_models.classifier(1)
    x, y = tiny_models.classification_data()
    losses = {}
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        s = keras.models.clone_model(student)
        s.set_weights(student.get_weights())
        model = CodistillModel(s, FixedTeacher(teacher))
        model.compile(keras.optimizers.SGD(0.1), jit_compile=jit)
        assert model._jit_compile is jit
        losses[jit] = model.fit(x, y, batch_size=16, epochs=1, shuffle=False,
                                verbose=0).history["loss"]
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-4)


def test_xla_on_several_cpu_devices_is_refused_before_anything_is_written(tmp_path,
                                                                         mirrored_strategy):
    config = config_lib.RunConfig(task="clusters", model_dir=str(tmp_path),
                                  strategy="mirrored",
                                  trainer=config_lib.TrainerConfig(jit_compile=True))
    with pytest.raises(config_lib.ConfigError, match="--jit_compile with 2 CPU devices"):
        train_lib.check_fits_strategy(config, mirrored_strategy)
    one_device = dataclasses.replace(config, strategy="default")
    train_lib.check_fits_strategy(one_device, tf.distribute.get_strategy())
    assert not list(tmp_path.iterdir())
