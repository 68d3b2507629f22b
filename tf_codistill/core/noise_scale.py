"""The gradient noise scale B_simple (McCandlish et al. 2018, appendix A), measured in the train step.

The mean gradient G_b of b examples has E|G_b|^2 = |G|^2 + tr(Sigma)/b (G the true gradient,
Sigma the per-example gradient covariance), so squared gradient norms at two batch sizes b < B
give unbiased estimates

    |G|^2     ~ (B |G_B|^2 - b |G_b|^2) / (B - b)
    tr(Sigma) ~ (|G_b|^2 - |G_B|^2) / (1/b - 1/B)

and B_simple = tr(Sigma) / |G|^2 is the batch size past which a larger batch stops saving steps
(S(B) = S_min (1 + B_noise / B); exact for a Hessian proportional to the identity, a proxy
otherwise). Where the two sizes come from:

- several replicas: each replica's local gradient (b = the per-replica batch, before the
  all-reduce) and the all-reduced one (B = the global batch), every step; the local squared norms
  travel as one scalar in the gradients' own all-reduce;
- one replica: every ``interval`` steps, the two halves of the batch (alternate rows):
  d = (G_A - G_B) / 2 comes from one more backward pass of the student, with the loss' gradient
  at the logits signed +1 / -1 by row; then |G_b|^2 = |g|^2 + |d|^2 on average over the halves.
  The train step is traced twice, measuring and plain, and ``halves_due`` picks one per step:
  a branch inside the step would hand every forward activation to the extra backward pass on
  every step, which cost 7% of a step under XLA even when not taken.

Each estimate goes into its own exponential moving average (bias-corrected, like Adam's moments,
over about ``AVERAGING_STEPS`` steps); the reported noise scale is the ratio of the averages,
since one step's |G|^2 estimate is noisy and can be negative. Measuring starts at optimizer
step ``WARMUP_STEPS``: the averages weigh each estimate by its size, and the gradient of a freshly
initialized model is orders of magnitude larger than a few steps later, so a measurement at
step 0 would stand for the noise scale for thousands of steps. Batch sizes count rows (for a
language model, streams); multiply by the tokens of a row for tokens.
"""

from __future__ import annotations

import math

import tensorflow as tf

# Steps an exponential moving average spans (its decay is 1 - 1 / AVERAGING_STEPS a step):
# long enough that a one-replica run measuring every 50 steps averages ~10 measurements, short
# enough to follow the noise scale as it grows while the loss falls.
AVERAGING_STEPS = 500
# Optimizer steps before the first measurement. The demo's LSTM LM (configs/demo.flags) gave
# tr(Sigma) ~1,100 at step 0, 7-90 at steps 1-5, 0.5-6 from step 10 to 300 (|G|^2: 0.5-1.6,
# then ~0.01); averaged in, the step-0 estimate alone set the noise scale a one-replica run
# reported for all its 800 steps (the two groups ended at 1,488 and 638 rows with it, 496 and
# 525 without).
WARMUP_STEPS = 50
# The train logs the measurement adds (``GradientNoiseScale.result``).
NOISE_SCALE_LOGS = ("noise_scale", "grad_norm_sq", "grad_trace_cov")


class GradientNoiseScale(tf.Module):
    """Moving averages of |G|^2 and tr(Sigma), and the all-reduce that feeds them.

    Create it in the strategy's scope (its variables are mirrored); call ``all_reduce`` in the
    train step's replica context in place of the optimizer's own gradient aggregation.

    Args:
      interval: with one replica, steps between measurements from two half batches (each one
        extra backward pass of the student); several replicas measure every step.
      warmup_steps: optimizer steps before the first measurement (``WARMUP_STEPS``).
    """

    def __init__(self, interval: int, warmup_steps: int = WARMUP_STEPS,
                 name: str = "gradient_noise_scale"):
        super().__init__(name=name)
        for what, value, least in (("interval", interval, 1), ("warmup_steps", warmup_steps, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{what} must be an integer >= {least}, got {value!r}.")
        self.interval = interval
        self.warmup_steps = warmup_steps
        self.payload = []  # what the train step all-reduces, for timing it alone (payload())
        with self.name_scope:
            self._gradient_sq = _replicated_scalar("gradient_sq")
            self._trace = _replicated_scalar("trace_covariance")
            self._weight = _replicated_scalar("weight")  # how much of the averages is filled

    def all_reduce(self, grads, student_count: int, local_rows, step, half_difference=None):
        """The gradients summed over replicas (as the optimizer would), measuring on the way.

        Args:
          grads: this replica's gradients of the objective divided by the replica count; the
            first ``student_count`` are the student's, the only ones measured.
          local_rows: rows of this replica's batch.
          step: the optimizer step (for the warm-up).
          half_difference: with one replica, None (no measurement this step) or a function
            returning the student's gradients signed by half (d above), called once; the
            caller decides when (``halves_due``).
        """
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync
        present = [g for g in grads if g is not None]
        self.payload = [_payload_spec(g) for g in present]  # traced once: the step's shapes
        if replicas > 1:
            local = squared_norm(grads[:student_count])
            reduced = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                         present + [replicas * local])
            local_mean = reduced.pop()  # the replicas' mean |G_b|^2 (local grads are / R)
            self._measure_two_sizes(local_mean, squared_norm(_student(reduced, grads,
                                                                      student_count)),
                                    tf.cast(local_rows, tf.float32), replicas,
                                    self._warmed_up(step))
        else:
            reduced = context.all_reduce(tf.distribute.ReduceOp.SUM, present)
            if half_difference is not None:
                self._measure_halves(grads[:student_count], local_rows, half_difference)
        iterator = iter(reduced)
        return [None if g is None else next(iterator) for g in grads]

    def halves_due(self, step, rows) -> tf.Tensor:
        """Whether a one-replica step measures from its two half batches: every ``interval``
        steps after the warm-up, on an even batch."""
        rows = tf.cast(rows, tf.int64)
        return tf.logical_and(
            tf.logical_and(tf.equal(tf.cast(step, tf.int64) % self.interval, 0),
                           self._warmed_up(step)),
            tf.logical_and(rows >= 2, tf.equal(rows % 2, 0)))

    def _measure_halves(self, student_grads, rows, half_difference):
        full_sq, difference_sq = squared_norm(student_grads), squared_norm(half_difference())
        self._update(full_sq - difference_sq, tf.cast(rows, tf.float32) * difference_sq,
                     steps=self.interval)

    def _warmed_up(self, step):
        return tf.cast(step, tf.int64) >= self.warmup_steps

    def _measure_two_sizes(self, small_sq, big_sq, small_batch, replicas, counts):
        big_batch = small_batch * replicas
        gradient_sq = (big_batch * big_sq - small_batch * small_sq) / (big_batch - small_batch)
        trace = (small_sq - big_sq) / (1.0 / small_batch - 1.0 / big_batch)
        self._update(gradient_sq, trace, steps=1, counts=counts)

    def _update(self, gradient_sq, trace, steps, counts=True):
        """One measurement into the averages; skipped where ``counts`` is false (the warm-up)
        or it is not finite (a float16 overflow)."""
        keep = (1.0 - 1.0 / AVERAGING_STEPS) ** steps
        used = tf.logical_and(tf.logical_and(tf.math.is_finite(gradient_sq),
                                             tf.math.is_finite(trace)), counts)
        keep = tf.where(used, keep, 1.0)
        for variable, value in ((self._gradient_sq, gradient_sq), (self._trace, trace),
                                (self._weight, 1.0)):
            value = tf.where(used, tf.cast(value, tf.float32), 0.0)
            variable.assign(keep * variable + (1.0 - keep) * value)

    def result(self) -> dict:
        """noise_scale (B_simple, rows), grad_norm_sq (|G|^2) and grad_trace_cov (tr(Sigma) of
        one row's gradient); NaN until measured, and noise_scale NaN while |G|^2 <= 0. Every
        replica computes the same values (``CodistillModel`` logs the first replica's)."""
        filled = self._weight > 0
        gradient_sq = tf.where(filled, self._gradient_sq / self._weight, math.nan)
        trace = tf.where(filled, self._trace / self._weight, math.nan)
        noise = tf.where(gradient_sq > 0, trace / gradient_sq, math.nan)
        return dict(zip(NOISE_SCALE_LOGS, (noise, gradient_sq, trace)))


def measurement_count(steps: int, interval: int | None, replicas: int,
                      warmup_steps: int, rows: int) -> int | None:
    """How many measurements went into the noise scale's averages by optimizer step ``steps``:
    every step from the warm-up on with several replicas, every ``interval``-th with one and
    an even batch of ``rows`` (the rule ``halves_due`` applies in the step); None where the
    interval is unknown."""
    if replicas > 1:
        return max(0, steps - warmup_steps)
    if not interval:
        return None
    if rows < 2 or rows % 2:
        return 0
    first = -(-warmup_steps // interval) * interval  # the first multiple at or past the warm-up
    return max(0, (steps - 1 - first) // interval + 1)


def signed_halves(values: tf.Tensor) -> tf.Tensor:
    """``values`` (rows first) times +1 on even rows and -1 on odd ones: the cotangent at the
    logits whose backward pass gives (G_A - G_B) / 2 for halves A, B of the batch."""
    rows = tf.shape(values)[0]
    signs = tf.where(tf.range(rows) % 2 == 0, 1.0, -1.0)
    signs = tf.reshape(signs, tf.concat([[rows], tf.ones([tf.rank(values) - 1], tf.int32)], 0))
    return values * tf.cast(signs, values.dtype)


def squared_norm(tensors) -> tf.Tensor:
    """Sum of squares of every (dense or IndexedSlices) tensor; sparse rows that repeat an
    index are summed first, as the dense gradient would hold them."""
    total = [tf.constant(0.0)]
    for tensor in tensors:
        if tensor is None:
            continue
        if isinstance(tensor, tf.IndexedSlices):
            unique, position = tf.unique(tensor.indices)
            tensor = tf.math.unsorted_segment_sum(tensor.values, position, tf.size(unique))
        total.append(tf.reduce_sum(tf.square(tf.cast(tensor, tf.float32))))
    return tf.add_n(total)


def payload(specs) -> list | None:
    """Zeros shaped like the gradients the train step all-reduced (``GradientNoiseScale.payload``),
    sparse ones as sparse: timing their all-reduce alone times the step's. None where a shape
    is not static (or nothing was traced yet)."""
    if not specs or not all(shape.is_fully_defined() and (kind == "dense" or dense)
                            for kind, shape, dense in specs):
        return None
    tensors = []
    for kind, shape, dense_shape in specs:
        values = tf.zeros(shape)
        if kind == "dense":
            tensors.append(values)
        else:
            indices = tf.range(shape[0], dtype=tf.int64) % dense_shape[0]
            tensors.append(tf.IndexedSlices(values, indices, tf.constant(dense_shape, tf.int64)))
    return tensors


def _payload_spec(gradient):
    if isinstance(gradient, tf.IndexedSlices):
        dense_shape = tf.get_static_value(gradient.dense_shape)
        return ("sparse", gradient.values.shape,
                None if dense_shape is None else [int(d) for d in dense_shape])
    return ("dense", gradient.shape, None)


def _student(reduced, grads, student_count):
    """The student's entries of the reduced gradients (``reduced`` skips the Nones)."""
    return reduced[:sum(g is not None for g in grads[:student_count])]


def _replicated_scalar(name):
    """A float32 scalar every replica writes alike (the first replica's write is kept)."""
    return tf.Variable(0.0, trainable=False, name=name,
                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
