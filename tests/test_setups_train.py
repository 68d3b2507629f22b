"""The Criteo and ImageNet set-ups train end to end through `python -m tf_codistill.train`."""

from pathlib import Path

import pytest

from data_pipelines.criteo import write_synthetic_criteo
from data_pipelines.imagenet import write_synthetic_imagenet_tfrecords
from tests.helpers import runs

pytestmark = pytest.mark.slow  # starts training processes

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_criteo_two_groups_train_through_the_command(tmp_path):
    train, evaluation = tmp_path / "train.tsv", tmp_path / "eval.tsv"
    write_synthetic_criteo(str(train), 512, seed=0)
    write_synthetic_criteo(str(evaluation), 128, seed=1)
    code, output = runs.run([f"--flagfile={CONFIGS / 'criteo_tiny.flags'}",
                             f"--model_dir={tmp_path / 'run'}", f"--train_files={train}",
                             f"--eval_files={evaluation}", "--train_steps=8",
                             "--steps_per_loop=4", "--eval_steps=2"], timeout=300)
    assert code == 0, output[-3000:]
    for group in (0, 1):
        metrics = runs.metrics(tmp_path / "run", group)
        assert metrics["global_step"] == 8
        assert 0 <= metrics["eval_auc"] <= 1 and metrics["eval_loss"] > 0


def test_imagenet_two_groups_train_through_the_command(tmp_path):
    data = tmp_path / "imagenet"
    for split in ("train", "validation"):
        write_synthetic_imagenet_tfrecords(str(data), 16, 4, 32, split=split)
    code, output = runs.run([f"--flagfile={CONFIGS / 'imagenet_tiny.flags'}",
                             f"--model_dir={tmp_path / 'run'}", f"--data_dir={data}",
                             "--steps_per_loop=2", "--eval_steps=2"], timeout=300)
    assert code == 0, output[-3000:]
    for group in (0, 1):
        metrics = runs.metrics(tmp_path / "run", group)
        assert metrics["global_step"] == 4 and 0 <= metrics["eval_top1"] <= 1


def test_a_missing_imagenet_directory_says_what_to_download(tmp_path):
    code, output = runs.run([f"--flagfile={CONFIGS / 'imagenet_tiny.flags'}",
                             f"--model_dir={tmp_path / 'run'}",
                             f"--data_dir={tmp_path / 'nowhere'}", "--group=0"], timeout=120)
    assert code == 2 and "image-net.org" in output and "Traceback" not in output
    assert not (tmp_path / "run").exists()
