"""The LM experiments end to end on a tiny model, sharing one root as users would."""

import json

import pytest

from tests.helpers import lm
from experiments.harness import experiment_lib
from experiments.harness import lm_experiments

pytestmark = pytest.mark.slow  # starts training processes

TINY = ["--vocab_size=400", "--units=16", "--embedding_dim=8", "--seq_len=8",
        "--batch_size=4", "--steps_per_loop=3", "--min_paragraph_words=5",
        "--validation_fraction=0.2"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    files, vocab = lm.make_corpus(tmp_path_factory.mktemp("lm"))
    return files[0], vocab


def test_steps_to_target_staleness_and_partitioning_share_their_arms(tmp_path, corpus):
    root, results = str(tmp_path / "runs"), tmp_path / "results"
    steps_to_target = lm_experiments.steps_to_target(
        root, str(results), train_steps=6, burn_in_steps=3, extra_flags=TINY,
        corpus=corpus)  # two-phase distillation is tested in test_evaluation
    curves = steps_to_target["curves"]
    assert set(curves) >= {"baseline", "label smoothing (uniform)", "label smoothing (unigram)",
                           "2-way codistillation, group 0", "2-way codistillation, group 1",
                           "ensemble of 2 baselines"}
    assert all([p["step"] for p in curve] == [3, 6] for curve in curves.values())
    summary = steps_to_target["summary"]
    assert summary["target_loss"] == min(p["loss"] for p in curves["baseline"])
    assert summary["arms"]["baseline"]["ratio_to_reference"] == 1.0
    assert json.loads((results / "steps_to_target.json").read_text())["summary"] == summary
    assert (results / "steps_to_target.png").stat().st_size > 10_000
    # Six steps are too few for reliable reloads (tests/test_train.py covers them): check
    # that each arm trained what it says.
    configs = steps_to_target["group_configs"]
    codistilled = configs[str(tmp_path / "runs" / "codistill_reload50_disjoint" / "group_1")]
    assert codistilled["num_groups"] == 2 and codistilled["group"] == 1
    assert codistilled["codistill"]["reload_interval"] == 50
    assert codistilled["codistill"]["partition"] == "disjoint"
    assert codistilled["codistill"]["burn_in_steps"] == 3
    uniform = configs[str(tmp_path / "runs" / "label_smoothing_uniform" / "group_0")]
    assert uniform["codistill"]["teacher"] == "uniform"

    staleness = lm_experiments.staleness(root, str(results), 6, 3, [2, 50], TINY, corpus)
    assert "codistillation, reload every 2 steps (mean of groups)" in staleness["summary"]["arms"]
    reload_2 = str(tmp_path / "runs" / "codistill_reload2_disjoint" / "group_0")
    assert staleness["group_configs"][reload_2]["codistill"]["reload_interval"] == 2
    # The baseline and the 50-step arm were trained by the first experiment: only the
    # new arm trained, the others were found finished.
    assert [w["arms"] for w in staleness["training_waves"]] == [
        ["baseline"], ["codistill_reload2_disjoint"], ["codistill_reload50_disjoint"]]
    assert staleness["curves"]["baseline"] == curves["baseline"]
    assert "already finished" in (tmp_path / "runs" / "baseline.log").read_text()

    partitioning = lm_experiments.partitioning(root, str(results), 6, 3, TINY, corpus)
    arms = partitioning["summary"]["arms"]
    assert {"codistillation, disjoint data (mean of groups)",
            "codistillation, same data (mean of groups)"} <= set(arms)
    same = str(tmp_path / "runs" / "codistill_reload50_same" / "group_0")
    assert partitioning["group_configs"][same]["codistill"]["partition"] == "same"
    assert (results / "partitioning.png").exists() and (results / "staleness.png").exists()


def test_mean_curve_and_steps_to_target():
    a = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.0}]
    b = [{"step": 1, "loss": 5.0}, {"step": 2, "loss": 1.0}, {"step": 3, "loss": 0.5}]
    assert experiment_lib.mean_curve([a, b]) == [{"step": 1, "loss": 4.0},
                                                {"step": 2, "loss": 1.5}]
    summary = experiment_lib.steps_to_target({"baseline": a, "other": b}, "baseline")
    assert summary["target_loss"] == 2.0
    assert summary["arms"]["other"] == {"steps": 2, "best_loss": 0.5, "final_loss": 0.5,
                                        "ratio_to_reference": 1.0}
    worse = experiment_lib.steps_to_target(
        {"baseline": a, "worse": [{"step": 2, "loss": 9.0}]}, "baseline")
    assert worse["arms"]["worse"]["steps"] is None
    assert "never" in experiment_lib.format_table(worse)


def test_a_failing_arm_names_its_log(tmp_path):
    arm = experiment_lib.Arm("broken", ("--task=lm",))  # no data: the train command refuses
    with pytest.raises(RuntimeError, match=r"broken \(see .*broken.log\)"):
        experiment_lib.train_waves([[arm]], [], str(tmp_path))
    assert "--task=lm needs" in (tmp_path / "broken.log").read_text()
