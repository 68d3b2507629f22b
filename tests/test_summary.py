"""The closing summary (what a run got and where) and the progress lines' ETA."""

import os

import numpy as np

from tf_codistill.config import layout
from tf_codistill.runner import summary
from tf_codistill.runner.callbacks import ProgressLogger, format_duration


def _group(name, loss, model_dir="runs/demo", seconds=300.0):
    directory = (layout.GroupLayout.of(layout.baseline_model_dir(model_dir), 0)
                 if name == "baseline" else layout.GroupLayout.of(model_dir, name))
    return summary.GroupResult(name, directory, {
        "group": name, "global_step": 400, "eval_loss": loss,
        "eval_perplexity": float(np.exp(loss)), "train_seconds": seconds})


def _run(losses=(4.2, 4.4), baseline=4.25):
    return summary.RunResult("runs/demo", tuple(_group(g, loss) for g, loss in enumerate(losses)),
                             None if baseline is None else _group("baseline", baseline))


def test_the_table_sets_each_group_and_their_mean_against_the_baseline():
    table = summary.table(_run())
    split = table.index("minus the baseline (negative: codistillation ahead):")
    rows = {line.split()[0]: line.split() for line in table[:split]}
    assert rows["mean"][1] == "4.3000" and rows["baseline"][:3] == ["baseline", "400", "4.2500"]
    minus = table[split + 1:]
    assert [line.split()[:2] for line in minus[:3]] == [["0", "-0.0500"], ["1", "+0.1500"],
                                                         ["mean", "+0.0500"]]
    assert minus[0].split()[2] == f"{np.exp(4.2) - np.exp(4.25):+.2f}"
    assert "end behind the baseline" in table[-1] and "+0.0500" in table[-1]
    ahead = summary.table(_run(losses=(4.2,)))
    assert not any(line.split()[0] == "mean" for line in ahead)
    assert "end ahead of the baseline" in ahead[-1]
    assert not any("baseline" in line for line in summary.table(_run(baseline=None)))


def test_the_closing_lines_say_where_the_outputs_are_and_how_to_watch_them():
    lines = summary.closing_lines(_run())
    at = lines.index("metrics:")
    assert lines[at + 1:at + 4] == ["  runs/demo/group_0/metrics.json",
                                    "  runs/demo/group_1/metrics.json",
                                    "  runs/demo/baseline/group_0/metrics.json"]
    assert "  runs/demo/baseline/group_0/export" in lines
    assert lines[-1] == "TensorBoard: tensorboard --logdir runs/demo"
    one = summary.closing_lines(_run(losses=(4.2,), baseline=None))
    assert "metrics: runs/demo/group_0/metrics.json" in one
    assert "exported models: runs/demo/group_0/export" in one


def test_notes_add_their_lines_for_every_group_after_the_table():
    def advice(group):
        return [f"group {group.name}: loss {group.metrics['eval_loss']}"] if group.name != 1 \
            else []

    lines = summary.closing_lines(_run(), notes=(advice,))
    notes = [line for line in lines if line.startswith("group ") and ": loss" in line]
    assert notes == ["group 0: loss 4.2", "group baseline: loss 4.25"]
    assert lines.index(notes[0]) > lines.index("minus the baseline (negative: codistillation "
                                               "ahead):")


def test_a_run_is_read_back_from_its_groups_metrics(tmp_path):
    from tf_codistill import config as config_lib
    config = config_lib.RunConfig(task="clusters", model_dir=str(tmp_path), num_groups=2)
    for name, loss in ((0, 1.0), (1, 2.0), ("baseline", 1.5)):
        group = _group(name, loss, str(tmp_path))
        os.makedirs(group.layout.directory)
        config_lib.write_json(group.layout.metrics, group.metrics)
    run = summary.read_run(config, baseline=True)
    assert [g.metrics["eval_loss"] for g in run.every_group] == [1.0, 2.0, 1.5]
    assert run.baseline.name == "baseline" and run.groups[1].config.group == 1


class _Teacher:
    def stats(self):
        return {}


def test_the_eta_counts_the_steps_left_at_the_pace_after_the_first_loop():
    progress = ProgressLogger(0, total_steps=1000, units_per_step=32, unit="examples",
                              teacher=_Teacher())
    progress._loops = [(100, 60.0)]  # tracing and compiling
    assert progress.seconds_left(100) == 900 * 0.6
    progress._loops += [(100, 10.0), (100, 20.0)]
    assert progress.seconds_left(300) == 700 * 0.15
    assert [format_duration(s) for s in (42, 185, 3725)] == ["42s", "3m05s", "1h02m"]
