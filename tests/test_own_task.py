"""--task=package.module:Name in the train command: the example task as two groups in two
processes, and a task that cannot be used named on one line, exit 2, nothing written."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import runs
from tests.test_command_line import train

EXAMPLE = "--task=examples.rings_task:RingsTask"


@pytest.mark.slow
def test_the_example_task_trains_as_two_groups_that_exchange_snapshots(tmp_path):
    """docs/own-task.md's command, with fewer steps."""
    code, output = runs.run([EXAMPLE, "--num_groups=2", f"--model_dir={tmp_path}",
                             "--train_steps=400", "--steps_per_loop=100",
                             "--reload_interval=20", "--eval_steps=8", "--width=16"],
                            timeout=600)
    assert code == 0, output[-3000:]
    for group in (0, 1):
        metrics = runs.metrics(tmp_path, group)
        assert metrics["global_step"] == 400 and metrics["peer_bytes_read"] > 0
        assert metrics["peers"][0]["directory"].endswith(f"group_{1 - group}/published")
        assert metrics["eval_accuracy"] > 0.8
        saved = json.loads((tmp_path / f"group_{group}" / "config.json").read_text())
        assert saved["task"] == "examples.rings_task:RingsTask"
        assert saved["model"] == {"width": 16}  # its own flag
        assert saved["data"] == {"noise": 0.3, "train_examples": 8192}
        served = tf.saved_model.load(str(tmp_path / f"group_{group}" / "export"))
        probabilities = served(tf.constant([[0.0, 1.0], [0.0, 2.0]])).numpy()
        assert np.all((probabilities >= 0) & (probabilities <= 1))
    assert f"  {tmp_path / 'group_1' / 'metrics.json'}" in output  # the closing summary


BAD_TASKS = [
    ("no_such_module:Task", "module 'no_such_module' does not import (No module named "
     "'no_such_module'); put its directory on PYTHONPATH"),
    ("tests.helpers.task_that_fails_to_import:Task",
     "module 'tests.helpers.task_that_fails_to_import' does not import (RuntimeError: this "
     "module needs a GPU driver); fix what its import raises"),
    ("examples.rings_task:rings", "examples.rings_task.rings is not a Task; subclass "
     "tf_codistill.tasks.base.Task."),
    ("tests.helpers.broken_tasks:NoHeldOutData", "tests.helpers.broken_tasks.NoHeldOutData "
     "does not implement eval_dataset; define them"),
]


@pytest.mark.slow  # a train command per case
@pytest.mark.parametrize("task, message", BAD_TASKS, ids=[t for t, _ in BAD_TASKS])
def test_a_task_that_cannot_be_used_is_one_line_exit_2_and_nothing_written(tmp_path, task,
                                                                           message):
    model_dir = tmp_path / "run"
    result = train(f"--task={task}", f"--model_dir={model_dir}", cwd=runs.REPO)
    assert result.returncode == 2, result.stderr
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --task={task}: "), lines
    assert message in lines[0]
    assert not model_dir.exists()
