"""CodistillModel: Algorithm 1 in a Keras train step, under strategies and XLA."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import tf_codistill as tc
from tests.helpers import tiny_models as tiny
from tf_codistill.core import compat, schedules
from tf_codistill.core.training import CodistillTraining


# The main cases run with models of both Keras flavours: tf_keras and Keras 3.
both_flavours = pytest.mark.parametrize("flavour", tiny.FLAVOURS)


def _keras_of(model):
    return tiny.keras_of("keras3" if compat.is_keras3_model(model) else "tf_keras")


def _codistill(student, teacher, optimizer=None, **kwargs):
    """A CodistillModel compiled with SGD(0.1), or ``optimizer(keras)``, of the student's
    flavour."""
    model = tc.CodistillModel(student, teacher, **kwargs)
    keras_module = _keras_of(student)
    model.compile((optimizer or (lambda k: k.optimizers.SGD(0.1)))(keras_module))
    return model


def _case(name, flavour="tf_keras"):
    """(model kwargs, student builder, teacher builder, data) of a named case."""
    if name == "classifier_peers":
        return (dict(), lambda: tiny.classifier(1, flavour=flavour),
                lambda: tc.InProcessPeers([tiny.classifier(2, flavour=flavour)]),
                tiny.classification_data(32))
    if name == "logistic_fixed_teacher":
        return (dict(output_kind="sigmoid", distill_loss="kl", temperature=2.0),
                lambda: tiny.logistic(1, flavour=flavour),
                lambda: tc.FixedTeacher(tiny.logistic(7, flavour=flavour)),
                tiny.binary_data(32))
    if name == "masked_sequence_peers":
        return (dict(distill_loss="logit_mse"), lambda: tiny.token_tagger(1, flavour=flavour),
                lambda: tc.InProcessPeers([tiny.token_tagger(2, flavour=flavour),
                                           tiny.token_tagger(3, flavour=flavour)]),
                tiny.sequence_data(32))
    raise KeyError(name)


def _train(strategy, case, steps=3, flavour="tf_keras"):
    kwargs, make_student, make_teacher, data = _case(case, flavour)
    with strategy.scope():
        model = _codistill(make_student(), make_teacher(), burn_in_steps=1, **kwargs)
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(8).take(steps)
    history = model.fit(dataset, epochs=1, verbose=0)
    return model, history


@pytest.mark.slow
@both_flavours
@pytest.mark.parametrize("case", ["classifier_peers", "logistic_fixed_teacher",
                                  "masked_sequence_peers"])
def test_mirrored_strategy_gives_the_single_device_update(case, flavour, mirrored_strategy):
    single, single_history = _train(tf.distribute.get_strategy(), case, flavour=flavour)
    replicated, replicated_history = _train(mirrored_strategy, case, flavour=flavour)
    assert len(single.trainable_weights) == len(replicated.trainable_weights) > 0
    for a, b in zip(single.trainable_weights, replicated.trainable_weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    for key in ("loss", "task_loss", "distill_loss"):
        np.testing.assert_allclose(single_history.history[key],
                                   replicated_history.history[key], rtol=1e-5)


@both_flavours
def test_fit_reports_task_distill_and_total_loss_per_step(flavour):
    x, y = tiny.classification_data(32)
    model = _codistill(tiny.classifier(1, flavour=flavour),
                       tc.InProcessPeers([tiny.classifier(2, flavour=flavour)]),
                       distill_weight=0.5)
    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["task_loss"] + 0.5 * logs["distill_loss"],
                                         rel=1e-5)
    assert logs["distill_loss"] > 0
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert {"loss", "task_loss", "distill_loss"} <= set(history.history)


@both_flavours
def test_burn_in_trains_on_the_task_loss_alone_then_switches_the_term_on(flavour):
    x, y = tiny.classification_data(16)
    plain = _codistill(tiny.classifier(1, flavour=flavour), None)
    model = _codistill(tiny.classifier(1, flavour=flavour),
                       tc.FixedTeacher(tiny.classifier(5, flavour=flavour)), burn_in_steps=2)
    for _ in range(2):
        plain.train_on_batch(x, y)
        logs = model.train_on_batch(x, y, return_dict=True)
        assert logs["loss"] == pytest.approx(logs["task_loss"])
    for a, b in zip(plain.student.get_weights(), model.student.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["task_loss"] + logs["distill_loss"])


def _with_weight_decay(model, decay):
    """An L2 model loss on the kernels, as models/resnet.py adds it."""
    kernels = [w for w in model.trainable_weights if "kernel" in w.name]
    model.add_loss(lambda: decay * tf.add_n([tf.reduce_sum(tf.square(k)) for k in kernels]))
    return model


def test_a_regularization_schedule_scales_each_copys_weight_decay_by_step():
    """x1, x0.1 from step 1, 0 from step 2: then the update is the undecayed one."""
    x, y = tiny.classification_data(16)
    schedule = schedules.WeightDecaySchedule.step_with_lr([1, 2])
    copies = [_with_weight_decay(tiny.classifier(seed), 0.1) for seed in (1, 2)]
    scheduled = _codistill(copies[0], tc.InProcessPeers(copies[1:]),
                           regularization_schedule=schedule)
    plain = _codistill(tiny.classifier(1), tc.InProcessPeers([tiny.classifier(2)]))
    for scale in (1.0, 0.1, 0.0, 0.0):
        for mine, other in zip(plain.trainable_weights, scheduled.trainable_weights):
            mine.assign(other)  # both models take this step from the same weights
        decay = float(tf.add_n(scheduled.student.losses))
        logs = scheduled.train_on_batch(x, y, return_dict=True)
        plain.train_on_batch(x, y)
        assert logs["loss"] == pytest.approx(
            logs["task_loss"] + logs["distill_loss"] + scale * decay, rel=1e-5)
        same = [np.allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=0)
                for a, b in zip(plain.trainable_weights, scheduled.trainable_weights)]
        kernels = [s for s, w in zip(same, plain.trainable_weights) if "kernel" in w.name]
        assert len(kernels) == 4  # two per copy: the peer is scheduled too
        assert all(kernels) if scale == 0 else not any(kernels)
    with pytest.raises(TypeError, match="regularization_schedule must be a function"):
        tc.CodistillModel(tiny.classifier(1), regularization_schedule=0.1)


@both_flavours
def test_distillation_pulls_the_student_towards_the_teacher(flavour):
    x, y = tiny.classification_data(64)
    teacher = tiny.classifier(9, flavour=flavour)
    kl = tc.get_distillation_loss("kl")
    target = kl.target([teacher.predict(x, verbose=0)], [1.0])

    def divergence_after_training(source):
        model = _codistill(tiny.classifier(1, flavour=flavour), source, distill_weight=3.0,
                           optimizer=lambda keras_module: keras_module.optimizers.Adam(0.05))
        model.fit(x, y, batch_size=16, epochs=10, verbose=0)
        return float(np.mean(kl(target, model.predict(x, verbose=0))))

    assert divergence_after_training(tc.FixedTeacher(teacher)) < 0.5 * divergence_after_training(None)


@both_flavours
def test_only_student_and_co_trained_peer_variables_change(flavour):
    x, y = tiny.classification_data(16)
    teacher = tiny.classifier(5, flavour=flavour)
    teacher_before = tiny.weights_of(teacher)
    student, peer = tiny.classifier(1, flavour=flavour), tiny.classifier(2, flavour=flavour)
    student_before, peer_before = tiny.weights_of(student), tiny.weights_of(peer)
    model = _codistill(student, tc.FixedTeacher(teacher))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for before, after in zip(teacher_before, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert all(not np.allclose(b, a) for b, a in zip(student_before, student.get_weights()))
    peers = _codistill(student, tc.InProcessPeers([peer]))
    peers.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert all(not np.allclose(b, a) for b, a in zip(peer_before, peer.get_weights()))


@both_flavours
def test_in_process_peers_each_distill_from_the_mean_of_the_others(flavour):
    """With three copies, copy 0's distillation target is the mean of copies 1, 2."""
    x, y = tiny.classification_data(16)
    copies = [tiny.classifier(s, flavour=flavour) for s in (1, 2, 3)]
    model = _codistill(copies[0], tc.InProcessPeers(copies[1:]), distill_loss="kl")
    probs = [tf.nn.softmax(c(x)) for c in copies]
    target = (probs[1] + probs[2]) / 2
    expected = np.mean(np.sum(target * (np.log(target) - tf.nn.log_softmax(copies[0](x))),
                              axis=-1))
    logs = model.test_on_batch(x, y, return_dict=True)  # builds metrics, no update
    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs["distill_loss"] == pytest.approx(expected, rel=1e-4)


@both_flavours
def test_a_prior_teacher_is_label_smoothing_toward_the_prior(flavour):
    x, y = tiny.classification_data(16)
    prior = np.array([0.5, 0.3, 0.2])
    student = tiny.classifier(1, flavour=flavour)
    expected = np.mean(-np.sum(prior * tf.nn.log_softmax(student(x)).numpy(), axis=-1))
    model = _codistill(student, tc.PriorTeacher(prior * 10), distill_weight=0.1)
    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs["distill_loss"] == pytest.approx(expected, rel=1e-5)
    assert logs["loss"] == pytest.approx(logs["task_loss"] + 0.1 * logs["distill_loss"], rel=1e-5)


@pytest.mark.parametrize("prior", [[1.0], [[0.5, 0.5]], [-1.0, 2.0], [0.0, 0.0]])
def test_a_bad_prior_is_refused(prior):
    with pytest.raises(ValueError, match="prior must be a 1-D array"):
        tc.PriorTeacher(prior)


def test_jit_compiled_train_step_matches_the_graph_step():
    x, y = tiny.binary_data(32)
    results = []
    for jit in (False, True):
        model = tc.CodistillModel(tiny.logistic(1), tc.InProcessPeers([tiny.logistic(2)]),
                                  output_kind="sigmoid")
        model.compile(keras.optimizers.SGD(0.1), jit_compile=jit)
        model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@both_flavours
def test_predict_evaluate_and_save_use_the_student_alone(tmp_path, flavour):
    x, y = tiny.classification_data(16)
    model = _codistill(tiny.classifier(1, flavour=flavour),
                       tc.InProcessPeers([tiny.classifier(2, flavour=flavour)]))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               model.student.predict(x, verbose=0), rtol=1e-6)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == {"loss"}
    if flavour == "keras3":  # Keras 3 saves a .keras file; SavedModels come from export
        model.save(str(tmp_path / "student.keras"))
        served = tiny.keras_of(flavour).models.load_model(str(tmp_path / "student.keras"))
        np.testing.assert_allclose(served(x), model.student(x), rtol=1e-5)
        assert len(served.weights) == len(model.student.weights)
        return
    model.save(str(tmp_path / "export"))
    served = tf.saved_model.load(str(tmp_path / "export"))
    np.testing.assert_allclose(served(tf.constant(x)), model.student(x), rtol=1e-5)
    assert len(tf.nest.flatten(served.variables)) == len(model.student.variables)


def test_a_keras3_student_gets_the_keras3_twin_and_one_flavour_is_required():
    import keras as keras3
    model = tc.CodistillModel(tiny.classifier(1, flavour="keras3"))
    assert isinstance(model, keras3.Model) and isinstance(model, CodistillTraining)
    assert isinstance(tc.CodistillModel(tiny.classifier(1)), keras.Model)
    with pytest.raises(TypeError, match=r"teacher\[0\] is a Keras 3 model but the student "
                                        r"is a tf_keras one"):
        tc.CodistillModel(tiny.classifier(1),
                          tc.FixedTeacher(tiny.classifier(2, flavour="keras3")))
    with pytest.raises(TypeError, match=r"peers\[0\] is a tf_keras model but the student "
                                        r"is a Keras 3 one"):
        tc.CodistillModel(tiny.classifier(1, flavour="keras3"),
                          tc.InProcessPeers([tiny.classifier(2)]))
    with pytest.raises(TypeError, match="student must be a Keras Model"):
        tc.CodistillModel(lambda x: x)


@pytest.mark.parametrize("strategy", [tf.distribute.MultiWorkerMirroredStrategy,
                                      tf.distribute.TPUStrategy])
def test_a_keras3_model_is_refused_under_multi_worker_and_tpu(strategy, monkeypatch):
    """Only the strategy's type is read: an unbuilt instance stands for a real one."""
    monkeypatch.setattr(tf.distribute, "get_strategy", lambda: strategy.__new__(strategy))
    with pytest.raises(ValueError, match=f"student is a Keras 3 model and the strategy is "
                                         f"{strategy.__name__}.*keras-team/keras#20585.*"
                                         f"default strategy or MirroredStrategy.*tf_keras"):
        tc.CodistillModel(tiny.classifier(1, flavour="keras3"))


def test_output_shapes_that_differ_are_refused():
    with pytest.raises(ValueError, match="output shapes differ"):
        tc.CodistillModel(tiny.classifier(1), tc.FixedTeacher(tiny.logistic(2)))


def test_output_shapes_that_differ_are_refused_when_first_traced():
    class Unbuilt(keras.Model):
        def __init__(self, units):
            super().__init__()
            self.dense = keras.layers.Dense(units)

        def call(self, x):
            return self.dense(x)

    x, y = tiny.classification_data(8)
    model = _codistill(Unbuilt(3), tc.InProcessPeers([Unbuilt(4)]))
    with pytest.raises(ValueError, match="differs from a teacher's output shape"):
        model.train_on_batch(x, y)


@pytest.mark.parametrize("kwargs, message", [
    (dict(distill_weight=-0.1), "distill_weight must be a finite number >= 0"),
    (dict(distill_weight=float("nan")), "distill_weight"),
    (dict(temperature=0.0), "temperature must be > 0"),
    (dict(burn_in_steps=-5), "burn_in_steps must be an integer >= 0"),
    (dict(distill_loss="l1"), r"choose one of \['cross_entropy', 'kl', 'logit_mse'\]"),
    (dict(output_kind="relu"), "output_kind='relu'"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tc.CodistillModel(tiny.classifier(1), **kwargs)


def test_string_task_loss_is_refused_because_models_output_logits():
    model = tc.CodistillModel(tiny.classifier(1))
    with pytest.raises(ValueError, match="from_logits=True"):
        model.compile("sgd", loss="sparse_categorical_crossentropy")
