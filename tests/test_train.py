"""The train command: model_dir layout, resume, multi-group runs, bad input."""

import dataclasses
import json
import os
import signal

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import runs
from tf_codistill import config as config_lib
from tf_codistill.runner import train_lib
from tf_codistill.runner.group import Group
from tf_codistill.tasks import get_task
from tf_codistill.tasks.clusters import ClustersModelSection

CLUSTERS = ["--task=clusters", "--batch_size=32", "--num_classes=8", "--hidden_units=32",
            "--eval_steps=0"]
REQUIRED_METRICS = {"global_step", "train_loss", "eval_loss", "distill_loss",
                    "teacher_reloads", "teacher_age_mean_steps", "peer_bytes_read",
                    "reload_latency_s"}


def _config(model_dir, **trainer):
    return config_lib.RunConfig(
        task="clusters", model_dir=str(model_dir),
        trainer=config_lib.TrainerConfig(batch_size=32, steps_per_loop=10, eval_steps=0,
                                         **trainer),
        model=ClustersModelSection(hidden_units=(32,), num_classes=8))


@pytest.mark.slow
def test_a_run_fills_its_model_dir_and_a_rerun_resumes(tmp_path, capsys):
    config = _config(tmp_path, train_steps=20)
    first = train_lib.run(config)
    group_dir = tmp_path / "group_0"
    assert first["global_step"] == 20 and REQUIRED_METRICS <= set(first)
    assert json.loads((group_dir / "config.json").read_text())["task"] == "clusters"
    assert json.loads((group_dir / "metrics.json").read_text())["global_step"] == 20
    assert list((group_dir / "logs").rglob("events.out.tfevents.*"))
    served = tf.saved_model.load(str(group_dir / "export"))
    assert served(tf.zeros((2, 16))).shape == (2, 8)

    again = train_lib.run(config)
    assert "already finished at step 20" in capsys.readouterr().out
    assert again["global_step"] == 20

    longer = train_lib.run(dataclasses.replace(
        config, trainer=dataclasses.replace(config.trainer, train_steps=35)))
    assert "resuming from step 20" in capsys.readouterr().out
    assert longer["global_step"] == 35  # stops mid-loop, where it was asked to


def test_a_restore_brings_back_weights_and_optimizer_slots(tmp_path):
    config = _config(tmp_path, train_steps=20)
    train_lib.run(config)
    served = tf.saved_model.load(str(tmp_path / "group_0" / "export"))
    task = get_task(config)
    group = Group.of_run(config, tf.distribute.get_strategy())
    model, _ = train_lib.build(config, task, group.strategy, group)
    assert group.restore(model) == 20
    x = tf.random.normal((4, 16), seed=1)
    np.testing.assert_allclose(model.student(x), served(x), rtol=1e-5, atol=1e-6)
    model.optimizer.build(model.trainable_variables)  # slots restore when created
    slots = [v for v in model.optimizer.variables if "iteration" not in v.name]
    assert slots and all(np.any(v.numpy() != 0) for v in slots)


@pytest.mark.parametrize("teacher", ["uniform", "unigram"])
def test_label_smoothing_baselines_train_without_peers(tmp_path, teacher):
    config = _config(tmp_path, train_steps=10)
    config = dataclasses.replace(config, codistill=dataclasses.replace(
        config.codistill, teacher=teacher))
    metrics = train_lib.run(config)
    assert metrics["distill_loss"] > 0 and metrics["teacher_reloads"] == 0


def test_a_model_dir_of_another_architecture_is_refused_and_kept(tmp_path):
    train_lib.run(_config(tmp_path, train_steps=10))
    saved = (tmp_path / "group_0" / "config.json").read_text()
    other = dataclasses.replace(_config(tmp_path, train_steps=10),
                                model=ClustersModelSection(hidden_units=(64,), num_classes=8))
    with pytest.raises(config_lib.ConfigError, match="holds a run with a different architecture"):
        train_lib.run(other)
    assert (tmp_path / "group_0" / "config.json").read_text() == saved


@pytest.mark.slow
@pytest.mark.parametrize("flags, message", [
    (["--num_groups=2", "--group=5"], "--group=5 is out of range"),
    (["--task=speech"], "--task=speech: value should be one of"),
    (["--topology=pair", "--num_groups=3", "--group=0"], "even num_groups"),
    (["--temperature=0"], "--temperature=0.0 is out of range; pass a value > 0"),
    (["--distill_weight=-1"], "--distill_weight=-1.0 is out of range"),
    (["--validation_fraction=1.5"], "--validation_fraction=1.5 is out of range"),
    (["--weight_decay_schedule=step_with_lr", "--lr_decay_boundaries=100"],
     "needs two --lr_decay_boundaries, got 1"),
])
def test_bad_flags_print_one_clear_line(tmp_path, flags, message):
    code, output = runs.run([*CLUSTERS, f"--model_dir={tmp_path}", *flags], timeout=120)
    assert code != 0
    assert message in output
    assert "Traceback" not in output


@pytest.mark.slow
def test_two_groups_run_as_two_processes_and_exchange_weights(tmp_path):
    code, output = runs.run([*CLUSTERS, f"--model_dir={tmp_path}", "--num_groups=2",
                             "--train_steps=200", "--steps_per_loop=50",
                             "--reload_interval=10", "--baseline",
                             "--weight_decay_schedule=step_with_lr",
                             "--lr_decay_boundaries=100,150", "--keep_checkpoints=0",
                             "--plot_curves"], timeout=300)
    assert code == 0, output[-3000:]
    curves = json.loads((tmp_path / "curves.json").read_text())
    assert sorted(curves) == ["baseline (no distillation)", "group 0 (codistilled)",
                              "group 1 (codistilled)"]
    assert all([p["step"] for p in c] == [50, 100, 150, 200] for c in curves.values())
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")
    assert f"held-out curves: {tmp_path / 'curves.png'}" in output
    assert output.rstrip().endswith(f"TensorBoard: tensorboard --logdir {tmp_path}")
    assert f"  {tmp_path / 'baseline' / 'group_0' / 'metrics.json'}" in output
    assert "[group 0] TensorBoard" not in output  # one closing summary: the launcher's
    assert any(line.startswith("baseline ") for line in output.splitlines())
    baseline = runs.metrics(tmp_path / "baseline", 0)
    assert baseline["global_step"] == 200 and baseline["teacher_reloads"] == 0
    assert baseline["distill_loss"] == 0
    baseline_config = json.loads((tmp_path / "baseline" / "group_0" / "config.json").read_text())
    assert baseline_config["trainer"]["weight_decay_schedule"] == "constant"  # the paper's
    metrics = [runs.metrics(tmp_path, group) for group in (0, 1)]
    for group, m in enumerate(metrics):
        assert m["global_step"] == 200 and m["peer_bytes_read"] > 0
        assert max(runs.checkpoint_steps(tmp_path, group, "published")) == 200
        scalars = tensorboard_scalars(tmp_path / f"group_{group}" / "logs" / "codistill")
        assert {"teacher_reloads", "teacher_age_steps", "teacher_age_mean_steps",
                "examples_per_second", "noise_scale", "grad_norm_sq"} <= scalars
        assert m["noise_scale"] > 0 and m["grad_trace_cov"] > 0  # one replica: half batches
        if m["teacher_reloads"]:  # ages are counted from the first loaded teacher on; a
            # group that starts late loads copies from ahead of it (negative ages)
            assert (m["teacher_age_max_steps"] >= m["teacher_age_mean_steps"]
                    >= m["teacher_age_min_steps"])
    # Groups never wait for each other: a group that starts late may finish before
    # its peer has published, but the late one always finds the early one's weights.
    assert max(m["teacher_reloads"] for m in metrics) >= 1
    assert max(m["distill_loss"] for m in metrics) > 0


CURVES = {"group 0 (codistilled)": [{"step": 50, "loss": 2.0}, {"step": 100, "loss": 1.5}],
          "baseline (no distillation)": [{"step": 50, "loss": 2.1}, {"step": 100, "loss": 1.7}]}


def test_the_curves_png_is_written_through_tf_io_gfile_to_a_bucket_like_path():
    from tf_codistill.runner import curves
    path = f"ram://curves-{os.getpid()}/run/curves.png"  # not a local path: open() fails
    tf.io.gfile.makedirs(os.path.dirname(path))
    curves.plot(CURVES, path, "held-out loss")
    with tf.io.gfile.GFile(path, "rb") as f:
        assert f.read().startswith(b"\x89PNG")


def test_a_curves_png_interrupted_mid_render_leaves_the_old_one_whole(tmp_path, monkeypatch):
    from matplotlib import figure
    from tf_codistill.runner import curves
    path = tmp_path / "curves.png"
    path.write_bytes(b"the previous picture")

    def killed_mid_write(self, target, **kwargs):
        target.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(figure.Figure, "savefig", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        curves.plot(CURVES, str(path), "held-out loss")
    assert path.read_bytes() == b"the previous picture"
    assert os.listdir(tmp_path) == ["curves.png"]


def tensorboard_scalars(directory):
    names = set()
    for path in directory.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            names.update(value.tag for value in event.summary.value)
    return names


@pytest.mark.slow
def test_kill_9_then_the_same_command_resumes_while_the_peer_trains_on(tmp_path):
    flags = [*CLUSTERS, f"--model_dir={tmp_path}", "--num_groups=2", "--train_steps=3000",
             "--steps_per_loop=20", "--reload_interval=20"]
    peer = runs.start([*flags, "--group=0"])
    victim = runs.start([*flags, "--group=1"])
    try:
        # Both groups have published (they start at different speeds) and the victim
        # has checkpoints to resume from.
        assert runs.wait_for(lambda: runs.checkpoint_steps(tmp_path, 0, "published") and
                             any(s >= 60 for s in runs.checkpoint_steps(tmp_path, 1)),
                             timeout=180)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        killed_at = int(tf.train.latest_checkpoint(
            str(tmp_path / "group_1" / "checkpoints")).rsplit("-", 1)[1])
        peer_published = max(runs.checkpoint_steps(tmp_path, 0, "published"))
        assert runs.wait_for(
            lambda: max(runs.checkpoint_steps(tmp_path, 0, "published")) > peer_published + 40,
            timeout=120), "the peer stopped training while its teacher was down"
        code, output = runs.run([*flags, "--group=1"], timeout=300)
        assert code == 0, output[-3000:]
        resumed_at = int(output.split("resuming from step ")[1].split()[0])
        assert f"metrics: {tmp_path / 'group_1' / 'metrics.json'}" in output
        assert output.rstrip().endswith(f"TensorBoard: tensorboard --logdir {tmp_path}")
        assert resumed_at == killed_at
        assert runs.metrics(tmp_path, 1)["global_step"] == 3000
        peer_output, _ = peer.communicate(timeout=300)
        assert peer.returncode == 0, peer_output[-3000:]
        assert runs.metrics(tmp_path, 0)["teacher_reloads"] >= 2
    finally:
        for process in (peer, victim):
            if process.poll() is None:
                process.kill()
