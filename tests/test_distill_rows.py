"""Distilling a share of the batch rows: the teacher scores only those, the term is their mean."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import tf_codistill as tc
from tests.helpers import tiny_models as tiny
from tf_codistill.exchange import snapshots
from tf_codistill.exchange.peers import CheckpointPeers, named_weights
from tf_codistill.models.lstm_lm import LanguageModelConfig, StatefulLanguageModel
from tf_codistill import config as config_lib
from tf_codistill.runner import train_lib


class RowRecordingClassifier(keras.Model):
    """tiny.classifier that records the batch sizes of the inputs it was traced with."""

    def __init__(self, seed):
        super().__init__()
        self.inner = tiny.classifier(seed)
        self.traced_rows = []

    def call(self, x, training=None):
        self.traced_rows.append(x.shape[0])
        return self.inner(x, training=training)


def _model(teacher, distill_rows=None, jit_compile=False):
    return tiny.codistilled_classifier(teacher, jit_compile, distill_rows=distill_rows)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_the_teacher_scores_the_first_rows_and_the_term_is_their_mean(jit_compile):
    x, y = tiny.classification_data(16)
    recorder = RowRecordingClassifier(5)
    partial = _model(tc.FixedTeacher(recorder), distill_rows=4, jit_compile=jit_compile)
    on_those_rows = _model(tc.FixedTeacher(tiny.classifier(5)))
    every_row = _model(tc.FixedTeacher(tiny.classifier(5)))
    logs = partial.train_on_batch(x, y, return_dict=True)
    first = on_those_rows.train_on_batch(x[:4], y[:4], return_dict=True)
    whole = every_row.train_on_batch(x, y, return_dict=True)
    assert set(recorder.traced_rows) == {4}
    assert logs["distill_loss"] == pytest.approx(first["distill_loss"], rel=1e-5)
    assert logs["task_loss"] == pytest.approx(whole["task_loss"], rel=1e-5)
    assert logs["distill_loss"] != pytest.approx(whole["distill_loss"], rel=1e-3)
    assert logs["loss"] == pytest.approx(logs["task_loss"] + logs["distill_loss"], rel=1e-5)


def test_rows_apply_to_sample_weights_and_prior_teachers():
    x, y = tiny.classification_data(8)
    weights = np.array([1, 0, 1, 0, 5, 5, 5, 5], np.float32)
    prior = tc.PriorTeacher([0.2, 0.3, 0.5])
    partial = _model(prior, distill_rows=4)
    on_those_rows = _model(tc.PriorTeacher([0.2, 0.3, 0.5]))
    logs = partial.train_on_batch(x, y, sample_weight=weights, return_dict=True)
    first = on_those_rows.train_on_batch(x[:4], y[:4], sample_weight=weights[:4],
                                         return_dict=True)
    assert logs["distill_loss"] == pytest.approx(first["distill_loss"], rel=1e-5)


def test_in_process_peers_distill_the_same_rows():
    x, y = tiny.classification_data(16)
    model = _model(tc.InProcessPeers([tiny.classifier(2)]), distill_rows=4)
    reference = _model(tc.InProcessPeers([tiny.classifier(2)]))
    a = model.train_on_batch(x, y, return_dict=True)
    b = reference.train_on_batch(x[:4], y[:4], return_dict=True)
    assert a["distill_loss"] == pytest.approx(b["distill_loss"], rel=1e-5)


@pytest.mark.parametrize("rows, message", [
    (0, "distill_rows must be None"), (2.5, "distill_rows must be None"),
    (True, "distill_rows must be None")])
def test_bad_distill_rows_are_named(rows, message):
    with pytest.raises(ValueError, match=message):
        tc.CodistillModel(tiny.classifier(1), distill_rows=rows)


def test_more_rows_than_the_batch_holds_is_refused_when_traced():
    x, y = tiny.classification_data(4)
    model = _model(tc.FixedTeacher(tiny.classifier(5)), distill_rows=8)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4, drop_remainder=True)
    with pytest.raises(ValueError, match="distill_rows=8 but a replica's batch has only 4 rows"):
        model.fit(dataset, epochs=1, verbose=0)


def test_distill_fraction_must_make_whole_rows_per_replica():
    codistill = config_lib.CodistillConfig(distill_fraction=0.3)
    with pytest.raises(config_lib.ConfigError,
                       match=r"--distill_fraction=0.3 of 8 rows per replica is 2.4 rows; "
                             r"pass a fraction that makes whole rows, e.g. 0.125 or 0.25 or 0.5"):
        codistill.distill_rows(8)
    assert config_lib.CodistillConfig(distill_fraction=0.25).distill_rows(8) == 2
    assert config_lib.CodistillConfig().distill_rows(8) is None


@pytest.mark.parametrize("fraction", [0.0, 1.5])
def test_distill_fraction_out_of_range_is_refused(fraction):
    config = config_lib.RunConfig(task="clusters", codistill=config_lib.CodistillConfig(
        distill_fraction=fraction))
    with pytest.raises(config_lib.ConfigError, match=r"--distill_fraction=.* in \(0, 1\]"):
        config_lib.check(config)


def test_the_train_command_refuses_a_fraction_of_partial_rows_before_writing(tmp_path):
    config = config_lib.RunConfig(
        task="clusters", model_dir=str(tmp_path / "run"),
        trainer=config_lib.TrainerConfig(batch_size=8),
        codistill=config_lib.CodistillConfig(distill_fraction=0.3))
    with pytest.raises(config_lib.ConfigError, match="--distill_fraction=0.3"):
        train_lib.run(config)
    assert not (tmp_path / "run").exists()


def test_a_stateful_teacher_copy_of_k_rows_follows_the_first_k_streams(tmp_path):
    """The copy is built for k rows and carries their state from batch to batch."""
    config = LanguageModelConfig(vocab_size=30, embedding_dim=8, units=8, num_layers=1)
    batches = [tf.constant(np.random.RandomState(seed).randint(0, 30, (4, 5)), tf.int32)
               for seed in range(3)]
    source = StatefulLanguageModel(config, 2, seed=7)
    source(batches[0][:2])
    source.reset_states()
    snapshots.PeerPublisher(str(tmp_path)).publish(1, named_weights(source))
    peers = CheckpointPeers([str(tmp_path)], lambda: StatefulLanguageModel(config, 2),
                            poll_interval_s=3600)
    try:
        peers.frozen_models[0](batches[0][:2])
        peers.frozen_models[0].reset_states()
        peers.poller.poll_once()
        assert peers.swap_in_new_weights(1) == 1
        model = tc.CodistillModel(StatefulLanguageModel(config, 4, seed=1), peers,
                                  distill_rows=2)
        model.compile(keras.optimizers.Adam())
        for tokens in batches:
            assert model.train_on_batch(tokens, tokens, return_dict=True)["distill_loss"] > 0
            source(tokens[:2])
        for copied, followed in zip(peers.frozen_models[0].carried_state_variables,
                                    source.carried_state_variables):
            assert copied.shape == (2, 8)
            np.testing.assert_allclose(copied.numpy(), followed.numpy(), rtol=1e-5, atol=1e-6)
    finally:
        peers.close()
