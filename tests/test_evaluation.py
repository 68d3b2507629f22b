"""Held-out loss of models and ensembles from checkpoints; two-phase distillation."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import lm, runs
from tf_codistill import config as config_lib
from tf_codistill import evaluate
from tf_codistill.runner import evaluation
from tf_codistill.runner import train_lib


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, finished_lm):
    """Two LM groups trained with different seeds, every checkpoint kept: the session's
    ``finished_lm`` (tests/conftest.py, seed 0) and the same run at seed 1."""
    config, _ = finished_lm
    other = lm.reseeded(config, tmp_path_factory.mktemp("run1"), seed=1)
    return [finished_lm, (other, train_lib.run(other))]


def _softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_mean_probability_nll_matches_numpy_for_softmax_and_sigmoid():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3, 5, 7)).astype("float32")
    labels = rng.integers(0, 7, size=(3, 5))
    mean = (_softmax(a) + _softmax(b)) / 2
    expected = -np.log(np.take_along_axis(mean, labels[..., None], -1)[..., 0])
    got = evaluation.mean_probability_nll("softmax", [a, b], labels)
    np.testing.assert_allclose(got, expected, rtol=1e-5)

    x, y = rng.normal(size=(2, 6, 1)).astype("float32") * 5
    targets = rng.integers(0, 2, size=(6, 1))
    p = (1 / (1 + np.exp(-x)) + 1 / (1 + np.exp(-y))) / 2
    expected = -(targets * np.log(p) + (1 - targets) * np.log(1 - p))
    np.testing.assert_allclose(evaluation.mean_probability_nll("sigmoid", [x, y], targets),
                               expected, rtol=1e-4)
    with pytest.raises(ValueError, match="output_kind"):
        evaluation.mean_probability_nll("linear", [x], targets)


@pytest.mark.slow
def test_one_member_scores_what_the_run_evaluated_and_an_ensemble_helps(two_runs):
    (config, metrics), (other, other_metrics) = two_runs
    evaluator = evaluation.Evaluator(config, tf.distribute.get_strategy())
    latest = [evaluation.latest_checkpoint(c.group_dir) for c in (config, other)]
    assert evaluator.loss(latest[:1]) == pytest.approx(metrics["eval_loss"], rel=1e-4)
    assert evaluator.loss(latest[:1] * 2) == pytest.approx(metrics["eval_loss"], rel=1e-4)
    ensemble = evaluator.loss(latest)
    # The loss of a mean of probabilities is at most the mean of the losses (convexity).
    assert ensemble <= (evaluator.loss(latest[:1]) + evaluator.loss(latest[1:])) / 2 + 1e-6


@pytest.mark.slow
def test_a_run_is_scored_on_a_stream_of_another_batch_size(two_runs):
    (config, metrics), _ = two_runs  # trained at batch 4
    narrow = dataclasses.replace(config, trainer=dataclasses.replace(config.trainer,
                                                                     batch_size=2))
    evaluator = evaluation.Evaluator(narrow, tf.distribute.get_strategy())
    loss = evaluator.loss([evaluation.latest_checkpoint(config.group_dir)])
    # Every tiny document opens with the same menu line, most of the 2 x 8 tokens scored, so
    # the narrower stream scores nearly the same text; a fresh model scores about 5.99.
    assert loss == pytest.approx(metrics["eval_loss"], rel=0.02)


@pytest.mark.slow
def test_a_curve_scores_every_kept_checkpoint(two_runs):
    (config, metrics), (other, _) = two_runs
    assert list(evaluation.checkpoint_steps(config.group_dir)) == [3, 6]
    results = evaluate.evaluate([config.group_dir, other.group_dir], curve=True)
    assert [p["step"] for p in results["members"][0]] == [3, 6]
    assert results["members"][0][-1]["loss"] == pytest.approx(metrics["eval_loss"], rel=1e-4)
    assert [p["step"] for p in results["ensemble"]] == [3, 6]
    assert "ensemble (mean probability)" in evaluate.format_results(results)
    curve = results["members"][0]
    assert evaluation.steps_to_reach(curve, curve[-1]["loss"]) in (3, 6)
    assert evaluation.steps_to_reach(curve, -1.0) is None
    assert evaluation.best_loss(curve) == min(p["loss"] for p in curve)


@pytest.mark.slow
def test_two_phase_distillation_trains_a_fresh_model_on_the_ensemble(two_runs, tmp_path):
    (config, _), (other, _) = two_runs
    before = tf.train.load_checkpoint(evaluation.latest_checkpoint(config.group_dir))
    student = dataclasses.replace(
        config, model_dir=str(tmp_path), codistill=dataclasses.replace(
            config.codistill, teacher="ensemble",
            teacher_dirs=(config.group_dir, other.group_dir)))
    metrics = train_lib.run(student)
    assert metrics["global_step"] == 6 and metrics["distill_loss"] > 0
    assert metrics["teacher_reloads"] == 0
    # The stateful LM student's agreement with the ensemble on the held-out stream.
    assert 0 < metrics["teacher_top1_agreement"] <= 1
    assert 0 < metrics["teacher_total_variation"] < 1
    assert metrics["teacher_prob_abs_diff"] == pytest.approx(
        2 * metrics["teacher_total_variation"] / 400, rel=1e-3)  # 400 pieces
    saved = json.loads((tmp_path / "group_0" / "config.json").read_text())
    assert saved["codistill"]["teacher_dirs"] == [config.group_dir, other.group_dir]
    after = tf.train.load_checkpoint(evaluation.latest_checkpoint(config.group_dir))
    for name in before.get_variable_to_shape_map():
        np.testing.assert_array_equal(before.get_tensor(name), after.get_tensor(name))


@pytest.mark.slow  # two_runs trains (~10 s a run); the slow tests share it
def test_teacher_dirs_of_another_model_or_without_checkpoints_are_refused(two_runs, tmp_path):
    (config, _), _ = two_runs
    bigger = dataclasses.replace(config, model_dir=str(tmp_path / "big"), model=dataclasses.replace(
        config.model, units=32), codistill=dataclasses.replace(
            config.codistill, teacher="ensemble", teacher_dirs=(config.group_dir,)))
    with pytest.raises(config_lib.ConfigError, match="one task and architecture"):
        train_lib.run(bigger)
    config_lib.write_or_check(dataclasses.replace(config, model_dir=str(tmp_path / "empty")))
    untrained = dataclasses.replace(config, model_dir=str(tmp_path / "s"),
                                    codistill=dataclasses.replace(
                                        config.codistill, teacher="ensemble",
                                        teacher_dirs=(str(tmp_path / "empty" / "group_0"),)))
    with pytest.raises(config_lib.ConfigError, match="no checkpoint yet"):
        train_lib.run(untrained)
    with pytest.raises(config_lib.ConfigError, match="no config.json"):
        evaluation.load_run_config(str(tmp_path / "nothing"))


@pytest.mark.parametrize("codistill, message", [
    ({"teacher": "ensemble"}, "--teacher_dirs"),
    ({"teacher_dirs": ("runs/a/group_0",)}, "--teacher=ensemble"),
])
def test_teacher_ensemble_flags_go_together(codistill, message, tmp_path):
    config = config_lib.RunConfig(task="clusters", model_dir=str(tmp_path),
                                  codistill=config_lib.CodistillConfig(**codistill))
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.check(config)


@pytest.mark.slow
def test_the_evaluate_command_prints_and_writes_the_ensemble(two_runs, tmp_path):
    (config, _), (other, _) = two_runs
    output = tmp_path / "results.json"
    process = subprocess.run(
        [sys.executable, "-m", "tf_codistill.evaluate",
         f"--group_dirs={config.group_dir},{other.group_dir}", f"--output={output}"],
        cwd=runs.REPO, capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr
    assert "ensemble (mean probability)" in process.stdout
    results = json.loads(output.read_text())
    assert len(results["members"]) == 2 and results["ensemble"] > 0
    # Its usage error (no --group_dirs: one line, exit 2) is test_command_line's.


class _HeldOut:
    output_kind = "softmax"

    def __init__(self, x):
        self.x = x

    def eval_dataset(self, context):
        return tf.data.Dataset.from_tensor_slices((self.x, np.zeros(len(self.x)))).batch(
            context.get_per_replica_batch_size(16))


@pytest.mark.parametrize("strategy_name", ["default", "mirrored"])
def test_teacher_agreement_is_the_churn_between_student_and_teacher(strategy_name, request):
    import tf_codistill as tc
    from tests.helpers import tiny_models as tiny
    strategy = (tf.distribute.get_strategy() if strategy_name == "default"
                else request.getfixturevalue("mirrored_strategy"))
    x, _ = tiny.classification_data(64)
    with strategy.scope():
        student, other, twin = tiny.classifier(1), tiny.classifier(2), tiny.classifier(1)
    task = _HeldOut(x)
    same = evaluation.teacher_agreement(task, strategy, student, tc.FixedTeacher(twin))
    assert same == {"teacher_top1_agreement": 1.0, "teacher_prob_abs_diff": 0.0,
                    "teacher_total_variation": 0.0}
    found = evaluation.teacher_agreement(task, strategy, student,
                                         tc.FixedTeacher([other, twin]))
    p = tf.nn.softmax(student(x)).numpy()
    q = (tf.nn.softmax(other(x)).numpy() + p) / 2  # the ensemble's mean probability
    assert found["teacher_top1_agreement"] == pytest.approx(
        np.mean(p.argmax(-1) == q.argmax(-1)))
    assert found["teacher_prob_abs_diff"] == pytest.approx(np.mean(np.abs(p - q)), rel=1e-5)
    assert found["teacher_total_variation"] == pytest.approx(
        np.mean(0.5 * np.abs(p - q).sum(-1)), rel=1e-5)
    assert evaluation.teacher_agreement(task, strategy, student, tc.TeacherSource()) == {}


def test_a_peer_that_published_nothing_gives_no_agreement(tmp_path):
    from tests.helpers import tiny_models as tiny
    from tf_codistill.exchange.peers import CheckpointPeers
    x, _ = tiny.classification_data(32)
    peers = CheckpointPeers([str(tmp_path / "peer")], lambda: tiny.classifier(3),
                            poll_interval_s=60)
    try:
        assert evaluation.teacher_agreement(_HeldOut(x), tf.distribute.get_strategy(),
                                            tiny.classifier(1), peers) == {}
    finally:
        peers.close()


# metrics.json's held-out figures are evaluate's, under every strategy.

EVAL_AGREEMENT_FLAGS = ["--task=clusters", "--batch_size=32", "--num_classes=8",
                        "--hidden_units=32", "--train_steps=20", "--steps_per_loop=10",
                        "--eval_steps=4"]


def _check_eval_figures_are_evaluates(group_dir):
    """metrics.json's eval_loss is what ``evaluate`` scores for the same checkpoint, and
    the per-step losses Keras' TensorBoard callback wrote end at the loop's loss."""
    metrics = json.loads((group_dir / "metrics.json").read_text())
    scored = evaluate.evaluate([str(group_dir)])["members"][0]
    assert metrics["eval_loss"] == pytest.approx(scored, rel=1e-4)
    assert 0 < metrics["eval_accuracy"] <= 1
    train = _scalars(group_dir / "logs" / "train")
    assert train["batch_loss"][-1] == pytest.approx(train["epoch_loss"][-1], rel=1e-5)


def _scalars(directory):
    """{tag: values in step order} of the TensorBoard events under ``directory``."""
    found = {}
    for path in sorted(directory.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                found.setdefault(value.tag, []).append(
                    (event.step, float(tf.make_ndarray(value.tensor))))
    return {tag: [v for _, v in sorted(points)] for tag, points in found.items()}


@pytest.mark.parametrize("strategy_name", ["default", "mirrored"])
def test_a_groups_eval_loss_is_evaluates(tmp_path, strategy_name, request, monkeypatch):
    if strategy_name == "mirrored":  # the session's one MirroredStrategy (tests/conftest.py)
        shared = request.getfixturevalue("mirrored_strategy")
        monkeypatch.setattr(train_lib, "get_strategy", lambda name, tpu="": shared)
    from tf_codistill.tasks.clusters import ClustersModelSection
    train_lib.run(config_lib.RunConfig(  # EVAL_AGREEMENT_FLAGS
        task="clusters", model_dir=str(tmp_path), strategy=strategy_name,
        trainer=config_lib.TrainerConfig(batch_size=32, train_steps=20, steps_per_loop=10,
                                         eval_steps=4),
        model=ClustersModelSection(hidden_units=(32,), num_classes=8)))
    _check_eval_figures_are_evaluates(tmp_path / "group_0")


@pytest.mark.slow
def test_a_multi_worker_groups_eval_loss_is_evaluates(tmp_path):
    """Two MultiWorkerMirroredStrategy workers on localhost, as a user starts them."""
    workers = runs.start_workers([*EVAL_AGREEMENT_FLAGS, f"--model_dir={tmp_path}",
                                  "--strategy=multi_worker"])
    for worker in workers:
        output, _ = worker.communicate(timeout=400)
        assert worker.returncode == 0, output[-3000:]
    _check_eval_figures_are_evaluates(tmp_path / "group_0")
