"""CodistillModel: a student trained with a task loss plus a distillation term.

The train step implements Algorithm 1 of Anil et al. (2018):

    loss_i = phi(y, F(theta_i, x)) + w * psi(mean_{j != i} F(theta_j, x), F(theta_i, x))

where the teachers j are the other in-process copies and/or frozen teachers
from a ``TeacherSource``, and ``w`` is zero before ``burn_in_steps``.
Inference (``call``, ``predict``, ``evaluate``, ``save``) uses the student
alone, so serving costs one model.

All models output *logits*. Losses are averaged over the global batch: each
replica averages over its elements and the objective is divided by the replica
count, so with equal per-replica batches (as Keras assumes) the all-reduced
gradient of a synchronous strategy equals the single-device gradient.

One train step (``CodistillTraining``, here) serves both Keras flavours
(``core.compat``): it uses only what tf_keras and Keras 3 share (``apply_gradients``,
its own ``Mean`` trackers, its own loss scaling). ``core.model.CodistillModel`` is
its tf_keras Model and ``core.keras3_model`` its Keras 3 twin.
"""

from __future__ import annotations

import math

import tensorflow as tf

from tf_codistill.core import compat
from tf_codistill.core import losses as losses_lib
from tf_codistill.core.noise_scale import GradientNoiseScale, signed_halves
from tf_codistill.core.teachers import TeacherSource


class CodistillTraining:
    """The codistillation model of either Keras flavour: mixed into the flavour's Model,
    whose module is ``_keras``.

    Args:
      student: the model to train and serve; it outputs logits. A tf_keras model, or a
        Keras 3 model (TensorFlow backend, default or mirrored strategy only); every
        peer and teacher is of the student's flavour.
      teacher: a ``TeacherSource`` (``InProcessPeers``, ``FixedTeacher``, or the
        checkpoint-polling peers of another group); None trains the student alone.
      output_kind: "softmax" (classes on the last axis) or "sigmoid" (independent
        binary logits, e.g. a logistic output of size 1).
      distill_loss: "cross_entropy" (the paper's soft targets), "kl" or
        "logit_mse", or a ``losses.DistillationLoss``.
      distill_weight: w >= 0, the weight of the distillation term.
      temperature: T > 0 for "cross_entropy" and "kl" (both scaled by T^2).
      burn_in_steps: optimizer steps trained on the task loss alone.
      distill_rows: None distills every row of each replica's batch; k distills the
        first k rows only: the frozen teachers score those rows alone, so their forward
        pass (the cost of codistillation over plain training) shrinks with k, and the
        distillation term is their mean. Fixed rows keep a stateful teacher on the same
        streams from batch to batch; its copies are built for k rows.
      regularization_schedule: None, or a function of the optimizer step returning
        the factor on each trained copy's regularization losses (``model.losses``,
        e.g. weight decay), such as ``schedules.WeightDecaySchedule``. Codistillation
        regularizes by itself, so Sodhani et al. (2021) lower weight decay as training
        goes on; None adds the losses unscaled.
      noise_scale_interval: None, or measure the student's gradient noise scale (B_simple,
        ``core.noise_scale``) while training, reported in the train logs: with several
        replicas every step, with one every this many steps.
    """

    def __init__(self, student, teacher: TeacherSource | None = None,
                 *, output_kind: str = "softmax", distill_loss="cross_entropy",
                 distill_weight: float = 1.0, temperature: float = 1.0,
                 burn_in_steps: int = 0, distill_rows: int | None = None,
                 regularization_schedule=None, noise_scale_interval: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self._check_flavours(student, teacher)
        _check_weight(distill_weight)
        _check_burn_in(burn_in_steps)
        _check_distill_rows(distill_rows)
        self.student = student
        self.teacher = teacher if teacher is not None else TeacherSource()
        self.co_trained = list(self.teacher.co_trained_models)  # in-process copies
        self.distill_loss = losses_lib.get_distillation_loss(
            distill_loss, output_kind, temperature)
        self.distill_weight = float(distill_weight)
        self.burn_in_steps = int(burn_in_steps)
        self.distill_rows = distill_rows
        if regularization_schedule is not None and not callable(regularization_schedule):
            raise TypeError(f"regularization_schedule must be a function of the optimizer "
                            f"step or None, got {regularization_schedule!r}.")
        self.regularization_schedule = regularization_schedule
        self.task_loss = losses_lib.task_loss_for(output_kind)
        self._check_output_shapes_if_built()
        self.total_loss_tracker = self._keras.metrics.Mean(name="loss")
        self.task_loss_tracker = self._keras.metrics.Mean(name="task_loss")
        self.distill_loss_tracker = self._keras.metrics.Mean(name="distill_loss")
        # The steps return metric results only, already aggregated over every replica and
        # worker. tf_keras' default ("auto") sums a step's outputs over the workers of a
        # MultiWorkerMirroredStrategy, doubling two workers' per-step logs, and the final
        # evaluate logs too (it re-reads the metrics at the end only when a step returns
        # all of ``self.metrics``, and the test step returns a subset).
        self.distribute_reduction_method = "first"
        self.noise_scale = (None if noise_scale_interval is None
                            else GradientNoiseScale(noise_scale_interval))

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Like ``keras.Model.compile``; ``loss`` is the task loss phi on logits.

        ``loss`` defaults to cross entropy on logits for ``output_kind``. A custom
        loss must be a ``keras.losses.Loss`` (its unreduced ``call`` is used) or a
        function returning one value per element; metrics receive logits.
        ``jit_compile`` defaults to False in both flavours.
        """
        if loss is not None:
            self.task_loss = _unreduced_loss(loss, self._keras.losses.Loss)
        kwargs.setdefault("jit_compile", False)
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.task_loss_tracker,
                self.distill_loss_tracker] + self._compiled_metrics()

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def fit(self, *args, callbacks=None, **kwargs):
        """``keras.Model.fit`` plus the callbacks the teacher source needs."""
        callbacks = list(callbacks or []) + self.teacher.callbacks()
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def save(self, filepath, *args, **kwargs):
        """Saves the student alone: the served model costs one forward pass."""
        return self.student.save(filepath, *args, **kwargs)

    def distill_weight_now(self) -> tf.Tensor:
        """w after burn-in, zero before it (counted in optimizer steps)."""
        on = self.optimizer.iterations >= self.burn_in_steps
        return tf.where(on, self.distill_weight, 0.0)

    def train_step(self, data):
        if self._measures_halves():  # one replica: the measuring step every few steps
            x, _, _ = self._keras.utils.unpack_x_y_sample_weight(data)
            due = self.noise_scale.halves_due(self.optimizer.iterations, _batch_rows(x))
            return tf.cond(due, lambda: self._train_step(data, measure=True),
                           lambda: self._train_step(data, measure=False))
        return self._train_step(data, measure=self.noise_scale is not None)

    def _measures_halves(self) -> bool:
        """Whether the noise scale is measured from half batches (one replica in sync)."""
        return (self.noise_scale is not None
                and tf.distribute.get_strategy().num_replicas_in_sync == 1)

    def _train_step(self, data, measure: bool):
        """One optimizer step; ``measure``: with the noise-scale telemetry's own all-reduce
        (several replicas) or its half-batch backward pass (one replica)."""
        x, y, sample_weight = self._keras.utils.unpack_x_y_sample_weight(data)
        models = [self.student] + self.co_trained
        halves = measure and self._measures_halves()
        with tf.GradientTape(persistent=halves) as tape:
            outputs = [tf.cast(model(x, training=True), tf.float32) for model in models]
            distills = self._distill_terms(x, outputs, sample_weight)
            per_model = [self._model_losses(i, outputs, distills[i], y, sample_weight)
                         for i in range(len(models))]
            objective = tf.add_n([total for total, _, _ in per_model])
            objective /= tf.distribute.get_strategy().num_replicas_in_sync
            scaled = self._scale_loss(objective)
        variables = [v for model in models for v in model.trainable_variables]
        grads = self._unscale_gradients(tape.gradient(scaled, variables))
        if measure:
            half_difference = ((lambda: self._half_difference(tape, scaled, outputs[0]))
                               if halves else None)
            self._apply_measured_gradients(grads, variables, x, half_difference)
        else:
            self.optimizer.apply_gradients(zip(grads, variables))
        total, task, distill = per_model[0]
        self.total_loss_tracker.update_state(total)
        self.task_loss_tracker.update_state(task)
        self.distill_loss_tracker.update_state(distill)
        self._update_compiled_metrics(y, outputs[0], sample_weight)
        logs = _results(self.metrics)
        if self.noise_scale is not None:
            logs.update(self.noise_scale.result())
        return logs

    def _apply_measured_gradients(self, grads, variables, x, half_difference):
        """The optimizer's update with the all-reduce done here, so that the replicas' own
        gradients are measured before it (``half_difference``: None or, with one replica,
        the function giving the half-batch gradient difference)."""
        grads = self.noise_scale.all_reduce(grads, len(self.student.trainable_variables),
                                            _batch_rows(x), self.optimizer.iterations,
                                            half_difference)
        self.optimizer.apply_gradients(zip(grads, variables),
                                       experimental_aggregate_gradients=False)

    def _half_difference(self, tape, scaled, student_logits):
        """d = (G_A - G_B) / 2 of the student: one more backward pass of the (persistent) tape."""
        cotangent = signed_halves(tape.gradient(scaled, student_logits))
        return self._unscale_gradients(tape.gradient(student_logits,
                                                     self.student.trainable_variables,
                                                     output_gradients=cotangent))

    def _distill_terms(self, x, outputs, sample_weight):
        """The unweighted distillation loss of each trained copy, or zeros where it cannot count.

        Before ``burn_in_steps`` and while no teacher is ready (no checkpoint peer has
        published), w * distill is zero, so the teacher's forward pass and the loss are
        skipped in a ``tf.cond``: such a step costs what a plain step costs. Both
        branches are traced (building the teacher copies), one runs.
        """
        zeros = [tf.constant(0.0) for _ in outputs]
        has_frozen = self.teacher.has_frozen_teachers
        if not self.co_trained and not has_frozen:
            return zeros

        def terms():
            rows_x, rows_outputs, rows_weight = first_rows((x, outputs, sample_weight),
                                                           self.distill_rows)
            frozen = self.teacher.frozen_predictions(rows_x) if has_frozen else []
            return [self._distill_loss(i, rows_outputs, frozen, rows_weight)
                    for i in range(len(outputs))]

        ready = True if self.co_trained else self.teacher.ready()
        if self.burn_in_steps == 0 and ready is True:
            return terms()
        counts = tf.logical_and(self.optimizer.iterations >= self.burn_in_steps,
                                tf.convert_to_tensor(ready, tf.bool))
        return tf.cond(counts, terms, lambda: zeros)

    def test_step(self, data):
        x, y, sample_weight = self._keras.utils.unpack_x_y_sample_weight(data)
        logits = tf.cast(self.student(x, training=False), tf.float32)
        task = _local_mean(self.task_loss(y, logits), sample_weight)
        self.total_loss_tracker.update_state(task)
        self._update_compiled_metrics(y, logits, sample_weight)
        return _results([self.total_loss_tracker] + self._compiled_metrics())

    def _distill_loss(self, index, outputs, frozen, sample_weight):
        """The distillation loss of copy ``index`` toward the others and the frozen teachers."""
        logits = outputs[index]
        teachers = [(tf.stop_gradient(other), tf.constant(1.0))
                    for j, other in enumerate(outputs) if j != index]
        teachers += [(tf.cast(_broadcast_to(teacher, logits), tf.float32), weight)
                     for teacher, weight in frozen]
        if not teachers:
            return tf.constant(0.0)
        _check_same_shape(logits, [t for t, _ in teachers])
        teacher_logits, weights = zip(*teachers)
        target = self.distill_loss.target(teacher_logits, weights)
        distill = _local_mean(self.distill_loss(target, logits), sample_weight)
        return distill * tf.cast(tf.add_n(list(weights)) > 0, distill.dtype)

    def _model_losses(self, index, outputs, distill, y, sample_weight):
        """(total, task, distill) of copy ``index``, each a local mean."""
        logits = outputs[index]
        task = _local_mean(self.task_loss(y, logits), sample_weight)
        total = task + self.distill_weight_now() * distill
        model = ([self.student] + self.co_trained)[index]
        if model.losses:
            regularization = tf.add_n([tf.cast(loss, tf.float32) for loss in model.losses])
            if self.regularization_schedule is not None:
                regularization *= tf.cast(
                    self.regularization_schedule(self.optimizer.iterations), regularization.dtype)
            total += regularization
        return total, task, distill

    def _check_flavours(self, student, teacher):
        """Every model of the student's flavour: the flavour this class trains."""
        expected = compat.flavour(student, "student")
        if expected != self._flavour:
            raise TypeError(f"student is a {expected} model; {type(self).__name__} trains "
                            f"{self._flavour} ones: pass it to tc.CodistillModel.")
        sources = teacher or TeacherSource()
        for index, model in enumerate(sources.co_trained_models):
            compat.require_flavour(model, f"peers[{index}]", expected)
        for index, model in enumerate(sources.frozen_models):
            compat.require_flavour(model, f"teacher[{index}]", expected)

    def _check_output_shapes_if_built(self):
        models = [self.student] + self.co_trained + list(self.teacher.frozen_models)
        shapes = [_output_shape(m) for m in models]
        known = [s for s in shapes if s is not None]
        if any(s != known[0] for s in known[1:]):
            raise ValueError(
                f"Student and teacher output shapes differ: {shapes} "
                "(student first). Codistillation compares predictions of the same "
                "shape: give every copy the same output layer.")


def _batch_rows(x) -> tf.Tensor:
    """Rows of this replica's batch (of its first input)."""
    return tf.shape(tf.nest.flatten(x)[0])[0]


def _check_weight(weight):
    if not (isinstance(weight, (int, float)) and math.isfinite(weight)
            and weight >= 0):
        raise ValueError(f"distill_weight must be a finite number >= 0, got {weight!r}.")


def _check_burn_in(steps):
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"burn_in_steps must be an integer >= 0, got {steps!r}.")


def first_rows(tensors, rows: int | None):
    """The first ``rows`` rows of every tensor in the nest ``tensors`` (None: all of them);
    the rows a ``distill_rows`` model distills, and its teachers score."""
    if rows is None:
        return tensors

    def sliced(tensor):
        if tensor is None:  # no sample weights
            return None
        if tensor.shape.rank and tensor.shape[0] is not None and tensor.shape[0] < rows:
            raise ValueError(f"distill_rows={rows} but a replica's batch has only "
                             f"{tensor.shape[0]} rows; pass distill_rows <= the "
                             "per-replica batch size.")
        return tensor[:rows]

    return tf.nest.map_structure(sliced, tensors)


def _check_distill_rows(rows):
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
        raise ValueError(f"distill_rows must be None (every row) or an integer >= 1, "
                         f"got {rows!r}.")


def _check_same_shape(student_logits, teacher_logits):
    for logits in teacher_logits:
        if not student_logits.shape.is_compatible_with(logits.shape):
            raise ValueError(
                f"Student output shape {student_logits.shape} differs from a "
                f"teacher's output shape {logits.shape}; codistillation needs "
                "predictions of the same shape from every copy.")


def _broadcast_to(teacher_logits, student_logits):
    """A teacher may give one prediction for all examples (a prior): broadcast it."""
    if teacher_logits.shape.rank is not None and \
            teacher_logits.shape.rank < student_logits.shape.rank:
        return tf.broadcast_to(tf.cast(teacher_logits, student_logits.dtype),
                               tf.shape(student_logits))
    return teacher_logits


def _output_shape(model):
    try:
        return tuple(model.output_shape)
    except (AttributeError, RuntimeError):
        return None


def _results(metrics) -> dict:
    """Each metric's result by name; a metric holding several (Keras 3's compiled
    metrics) gives each of its own."""
    results = {}
    for metric in metrics:
        result = metric.result()
        results.update(result if isinstance(result, dict) else {metric.name: result})
    return results


def _unreduced_loss(loss, loss_class):
    if isinstance(loss, str):
        raise ValueError(
            f"loss={loss!r}: pass a loss object that takes logits, e.g. "
            "keras.losses.SparseCategoricalCrossentropy(from_logits=True), or omit "
            "loss for the default of the model's output_kind.")
    if isinstance(loss, loss_class):
        return loss.call
    if callable(loss):
        return loss
    raise TypeError(f"loss must be a keras.losses.Loss or a function, got {loss!r}.")


def _local_mean(values, sample_weight=None):
    """Weighted sum over this replica / its element count.

    Keras' SUM_OVER_BATCH_SIZE semantics, per replica; the train step divides by
    the replica count so the all-reduced gradient is the global-batch mean's.
    """
    values = tf.cast(values, tf.float32)
    if sample_weight is not None:
        weights = tf.cast(sample_weight, tf.float32)
        if weights.shape.rank is not None and weights.shape.rank > values.shape.rank:
            weights = tf.reshape(weights, tf.shape(values))
        while weights.shape.rank is not None and weights.shape.rank < values.shape.rank:
            weights = weights[..., tf.newaxis]
        values = values * weights
    count = tf.cast(tf.size(values), tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(values), count)
