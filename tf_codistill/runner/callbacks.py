"""Keras callbacks of the training loop: stopping, checkpoints, timing, progress."""

from __future__ import annotations

import math
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tf_codistill.core import noise_scale
from tf_codistill.core.noise_scale import NOISE_SCALE_LOGS
from tf_codistill.core.step_counting import StepCountingCallback


class StopAtStep(StepCountingCallback):
    """Ends training at the step asked for, wherever a resumed run's loops fall."""

    def __init__(self, last_step):
        super().__init__()
        self._last_step = last_step

    def on_step_end(self, step):
        if step >= self._last_step:
            self.model.stop_training = True


class CheckpointEveryLoop(keras.callbacks.Callback):
    """Saves step, weights, optimizer slots and carried state after every loop.

    ``before_save`` runs first on every worker (gathering every replica's carried
    state into the variables the checkpoint holds).
    """

    def __init__(self, manager, before_save=lambda: None):
        super().__init__()
        self._manager = manager
        self._before_save = before_save

    def on_epoch_end(self, epoch, logs=None):
        self._before_save()
        self._manager.save(checkpoint_number=self.model.optimizer.iterations)


class StepTimer(keras.callbacks.Callback):
    """Wall time from one step's start to the next, callbacks (reloads, publishes) included."""

    def __init__(self):
        super().__init__()
        self._last = None
        self.seconds: list[float] = []

    def on_train_batch_begin(self, batch, logs=None):
        """``batch`` is the first step of the call: a call of K steps counts K times 1/K."""
        now = time.perf_counter()
        if self._last is not None:
            last_time, last_batch = self._last
            steps = max(batch - last_batch, 1)
            self.seconds.extend([(now - last_time) / steps] * steps)
        self._last = (now, batch)

    def on_epoch_end(self, epoch, logs=None):
        self._last = None  # checkpoint saves between loops are not step time

    def summary(self) -> dict:
        if not self.seconds:
            return {}
        return {"step_time_median_s": float(np.median(self.seconds)),
                "step_time_p95_s": float(np.percentile(self.seconds, 95))}


class ProgressLogger(keras.callbacks.Callback):
    """One line per loop: step of the total, losses, tokens (or examples) per second, the
    teacher's age (``teacher_age``), and the time left at the pace of the loops since the
    first (which also traces and compiles)."""

    def __init__(self, group, total_steps, units_per_step, unit, teacher, writer=None):
        super().__init__()
        self._group = group
        self._total_steps = total_steps
        self._units_per_step = units_per_step
        self._unit = unit
        self._teacher = teacher
        self._writer = writer
        self._start = None
        self._loops: list[tuple[int, float]] = []  # (steps, seconds) of each loop

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        steps = self.params.get("steps") or 1
        self._loops.append((steps, seconds))
        step = int(self.model.optimizer.iterations.numpy())
        line = (f"group {self._group} step {step}/{self._total_steps}: loss {logs['loss']:.4f} "
                f"task {logs['task_loss']:.4f} distill {logs['distill_loss']:.4f} "
                f"{steps * self._units_per_step / seconds:,.0f} {self._unit}/s")
        age = teacher_age(self._teacher.stats(), step)
        if age:
            line += f" {age}"
        if math.isfinite(logs.get("noise_scale", math.nan)):
            line += f" noise scale {logs['noise_scale']:,.0f} rows"
        if step < self._total_steps:
            line += f" ETA {format_duration(self.seconds_left(step))}"
        print(line, flush=True)
        if self._writer is not None:
            self._write_scalars(step, steps * self._units_per_step / seconds, logs)

    def seconds_left(self, step: int) -> float:
        """The steps left at the mean pace of the loops so far, the first left out once
        there are others."""
        loops = self._loops[1:] or self._loops
        pace = sum(seconds for _, seconds in loops) / sum(steps for steps, _ in loops)
        return max(self._total_steps - step, 0) * pace

    def _write_scalars(self, step, throughput, logs):
        """What Keras' TensorBoard callback does not log against the step: throughput, the
        gradient noise scale, teacher state."""
        scalars = {f"{self._unit}_per_second": throughput}
        scalars.update({name: logs[name] for name in NOISE_SCALE_LOGS
                        if math.isfinite(logs.get(name, math.nan))})
        stats = self._teacher.stats()
        if stats:
            now = teacher_age_now(stats, step)
            scalars.update(teacher_reloads=stats["teacher_reloads"],
                           teacher_age_steps=now if now is not None else 0.0,
                           teacher_age_mean_steps=stats["teacher_age_mean_steps"] or 0.0,
                           peer_bytes_read=stats["peer_bytes_read"],
                           peers_dropped=stats.get("peers_dropped", 0),
                           teacher_dropped_steps=stats.get("teacher_dropped_steps", 0))
        with self._writer.as_default(step=step):
            for name, value in scalars.items():
                tf.summary.scalar(name, value)
        self._writer.flush()


def teacher_age_now(stats: dict, step: int) -> int | None:
    """How many steps the oldest peer copy in use is behind a student at ``step`` (the age
    the next step distills at); None while no peer copy is loaded or in use."""
    held = [peer_step for peer, peer_step in stats.get("peer_steps", {}).items()
            if peer not in stats.get("dropped_peers", ())]
    return step - min(held) if held else None


def teacher_age(stats: dict, step: int) -> str:
    """The progress line's teacher: its age now, and over the distilling steps so far; "" for
    a teacher source without checkpoint peers (``stats`` empty).

    The age goes up by one every step and falls back at each reload: with the defaults, 5 to 54
    steps for peers that keep pace, so a loop's last step (a multiple of 50) shows about 50.
    """
    if not stats:
        return ""
    now = teacher_age_now(stats, step)
    if now is None:
        return "teacher off (peers silent)" if stats.get("peer_steps") else "no teacher yet"
    phrase = f"teacher {now} steps old"
    if stats.get("teacher_age_mean_steps") is not None:
        phrase += (f" (mean {stats['teacher_age_mean_steps']:.0f}, "
                   f"max {stats['teacher_age_max_steps']})")
    return phrase


def format_duration(seconds: float) -> str:
    """1h02m, 3m05s or 42s."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class AllReduceTimer(keras.callbacks.Callback):
    """Times the train step's all-reduce alone once per loop: tensors shaped like the gradients
    the step all-reduced (sparse ones sparse), reduced over the same replicas and workers between
    loops, when every worker is there. Its median against the median step is the share of a step
    the all-reduce takes on a link that carries nothing else (the timed call also fills the
    tensors with zeros, a memory-speed pass). The first call (tracing) is not counted, and the
    timed ones are not step time (``StepTimer`` restarts each loop)."""

    def __init__(self, strategy, noise: noise_scale.GradientNoiseScale):
        super().__init__()
        self._strategy = strategy
        self._noise = noise
        self._reduce = None
        self.seconds: list[float] = []

    def on_epoch_end(self, epoch, logs=None):
        if self._reduce is None:
            specs = self._noise.payload
            if noise_scale.payload(specs) is None:
                return  # shapes known only while running: nothing honest to time
            self._reduce = tf.function(lambda: self._strategy.run(
                lambda: _all_reduce_sum(noise_scale.payload(specs))))
            self._timed()
        self.seconds.append(self._timed())

    def _timed(self) -> float:
        start = time.perf_counter()
        done = self._reduce()
        self._strategy.experimental_local_results(done)[0].numpy()
        return time.perf_counter() - start

    def summary(self, step_seconds) -> dict:
        if not self.seconds:
            return {}
        seconds = float(np.median(self.seconds))
        return {"allreduce_seconds_median": seconds,
                "allreduce_share": seconds / step_seconds if step_seconds else None}


def _all_reduce_sum(tensors):
    reduced = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, tensors)
    return tf.add_n([tf.reshape(getattr(t, "values", t), [-1])[0] for t in reduced])
