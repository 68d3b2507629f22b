"""What a finished run says last: what it got and where.

``closing_lines(run)`` turns a run's results (``RunResult``: each group's and the
baseline's metrics.json and config) into the lines the train command prints at the
end: the evaluation table (with the baseline: the groups' mean and each difference),
then each ``GROUP_NOTES`` function's lines for every group, then where metrics.json,
export/ and the held-out curves' picture are, and the TensorBoard command. A note is a function from one
``GroupResult`` to lines (none when it has nothing to say); adding one to
``GROUP_NOTES`` adds it to every run's closing summary.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Callable, Optional

from tf_codistill.core.losses import perplexity as perplexity_of
from tf_codistill import config as config_lib
from tf_codistill.config import layout
from tf_codistill.config.layout import BASELINE
from tf_codistill.runner import scaling


@dataclasses.dataclass(frozen=True)
class GroupResult:
    """One finished group: its name in the table (its number, or "baseline"), its
    directory's layout, its metrics.json and the config it ran with."""

    name: object
    layout: layout.GroupLayout
    metrics: dict
    config: Optional[config_lib.RunConfig] = None


@dataclasses.dataclass(frozen=True)
class RunResult:
    """A finished run: its codistilled groups (or its one group) and, if trained, the baseline."""

    model_dir: str
    groups: tuple[GroupResult, ...]
    baseline: Optional[GroupResult] = None
    curves: Optional[str] = None  # the held-out curves' picture (runner/curves.py)

    @property
    def every_group(self) -> tuple[GroupResult, ...]:
        return self.groups + ((self.baseline,) if self.baseline else ())


GroupNote = Callable[[GroupResult], list]
GROUP_NOTES: tuple[GroupNote, ...] = (scaling.note,)


def group_result(config: config_lib.RunConfig, metrics: dict, name=None) -> GroupResult:
    """The result of the group ``config`` ran (``name``: its number unless given)."""
    return GroupResult(config.group if name is None else name, config.layout, metrics, config)


def one_group_run(config: config_lib.RunConfig, metrics: dict) -> RunResult:
    """The run of one group process (``--group=k``, a cluster task, or a single group)."""
    return RunResult(config.model_dir, (group_result(config, metrics),))


def read_run(config: config_lib.RunConfig, baseline: bool = False) -> RunResult:
    """A local run's results from its groups' metrics.json (and the launcher's baseline)."""
    groups = tuple(_read_group(dataclasses.replace(config, group=g), g)
                   for g in range(config.num_groups))
    plain = None
    if baseline:
        plain = _read_group(dataclasses.replace(
            config, model_dir=layout.baseline_model_dir(config.model_dir), num_groups=1,
            group=0), BASELINE)
    return RunResult(config.model_dir, groups, plain)


def _read_group(config: config_lib.RunConfig, name) -> GroupResult:
    import tensorflow as tf  # gfile: model_dirs may be buckets
    with tf.io.gfile.GFile(config.layout.metrics) as f:
        return group_result(config, json.load(f), name)


def closing_lines(run: RunResult, notes: tuple[GroupNote, ...] = GROUP_NOTES) -> list[str]:
    """The evaluation table, every note on every group, the outputs and how to watch them."""
    lines = table(run)
    for group in run.every_group:
        for note in notes:
            lines += note(group)
    lines += _paths("metrics", [g.layout.metrics for g in run.every_group])
    lines += _paths("exported models", [g.layout.export for g in run.every_group])
    if run.curves:
        lines.append(f"held-out curves: {run.curves}")
    lines.append(f"TensorBoard: tensorboard --logdir {run.model_dir}")
    return lines


def table(run: RunResult) -> list[str]:
    """Each group's steps, evaluation loss, perplexity and time; with a baseline, also the
    groups' mean, the baseline, and each one's difference from the baseline."""
    lines = [f"{'group':>8} {'steps':>7} {'eval loss':>10} {'perplexity':>11} {'time (s)':>9}"]
    lines += [_row(g.name, g.metrics) for g in run.groups]
    if run.baseline is None:
        return lines
    base = run.baseline.metrics
    losses = [g.metrics["eval_loss"] for g in run.groups]
    mean = sum(losses) / len(losses)
    has_perplexity = base.get("eval_perplexity") is not None
    if len(run.groups) > 1:
        lines.append(_row("mean", {"eval_loss": mean, "eval_perplexity":
                                   perplexity_of(mean) if has_perplexity else None}))
    lines.append(_row(BASELINE, base))
    lines.append("minus the baseline (negative: codistillation ahead):")
    differences = [(g.name, g.metrics["eval_loss"]) for g in run.groups]
    if len(run.groups) > 1:
        differences.append(("mean", mean))
    for name, loss in differences:
        perplexity = "-"
        if has_perplexity:
            perplexity = f"{perplexity_of(loss) - base['eval_perplexity']:+.2f}"
        lines.append(f"{name:>8} {'':>7} {loss - base['eval_loss']:>+10.4f} {perplexity:>11}")
    difference = mean - base["eval_loss"]
    where = "ahead of" if difference < 0 else "behind" if difference > 0 else "level with"
    lines.append(f"The codistilled groups end {where} the baseline: mean eval loss "
                 f"{mean:.4f} against {base['eval_loss']:.4f} ({difference:+.4f}; one "
                 "seed: differences of a few hundredths can be noise).")
    return lines


def _row(name, metrics: dict) -> str:
    steps = metrics.get("global_step", "")
    perplexity = metrics.get("eval_perplexity")
    perplexity = "-" if perplexity is None else f"{perplexity:.2f}"
    seconds = metrics.get("train_seconds")
    seconds = "" if seconds is None else f"{seconds:.1f}"
    return (f"{name:>8} {steps:>7} {metrics['eval_loss']:>10.4f} {perplexity:>11} "
            f"{seconds:>9}").rstrip()


def _paths(what: str, paths: list[str]) -> list[str]:
    """One line for one path, else the paths indented under their heading."""
    if len(paths) == 1:
        return [f"{what}: {paths[0]}"]
    return [f"{what}:"] + [f"  {path}" for path in paths]
