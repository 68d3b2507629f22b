"""The LM experiments end to end on a tiny model, sharing one root as users would."""

import json
import os

import pytest

from experiments.harness import experiment_lib
from experiments.harness import lm_experiments

pytestmark = pytest.mark.slow  # starts training processes

# The harness is under test, not the model: one plain LSTM layer halves each arm's
# start-up (tracing and export); the layer-normalized 2-layer LM is tests/helpers/lm.py's.
TINY = ["--vocab_size=400", "--units=16", "--embedding_dim=8", "--seq_len=8",
        "--num_layers=1", "--nolayer_norm", "--batch_size=4", "--steps_per_loop=3",
        "--min_paragraph_words=5", "--validation_fraction=0.2"]


@pytest.fixture(scope="module")
def one_file(corpus):
    """The session's tiny corpus (tests/conftest.py) as one WET file and its vocabulary."""
    files, vocab = corpus
    return files[0], vocab


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory):
    """One root for the experiments of this module, as a user's runs/experiments: an arm one
    experiment trained (the baseline, 2-way codistillation) is found finished by the next."""
    return tmp_path_factory.mktemp("experiments")


def test_steps_to_target_and_staleness_share_their_arms(shared_root, one_file):
    tmp_path = shared_root
    root, results = str(tmp_path / "runs"), tmp_path / "results"
    steps_to_target = lm_experiments.steps_to_target(
        root, str(results), train_steps=6, burn_in_steps=3, extra_flags=TINY,
        corpus=one_file)  # two-phase distillation is tested in test_evaluation
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

    staleness = lm_experiments.staleness(root, str(results), 6, 3, [2, 50], TINY, one_file)
    assert "codistillation, reload every 2 steps (mean of groups)" in staleness["summary"]["arms"]
    reload_2 = str(tmp_path / "runs" / "codistill_reload2_disjoint" / "group_0")
    assert staleness["group_configs"][reload_2]["codistill"]["reload_interval"] == 2
    # The baseline and the 50-step arm were trained by the first experiment: only the
    # new arm trained, the others were found finished.
    assert [w["arms"] for w in staleness["training_waves"]] == [
        ["baseline"], ["codistill_reload2_disjoint"], ["codistill_reload50_disjoint"]]
    assert staleness["curves"]["baseline"] == curves["baseline"]
    assert "already finished" in (tmp_path / "runs" / "baseline.log").read_text()


def test_partitioning_compares_disjoint_and_same_data_codistillation(monkeypatch):
    compared = {}
    monkeypatch.setattr(lm_experiments, "_compare_codistillation",
                        lambda name, arms, *args: compared.update(name=name, arms=arms))
    lm_experiments.partitioning("root", "results", 6, 3, corpus=("a.wet", "vocab"))
    assert compared["name"] == "partitioning"
    assert {label: arm.name for label, arm in compared["arms"].items()} == {
        "disjoint data": "codistill_reload50_disjoint", "same data": "codistill_reload50_same"}
    assert "--partition=same" in compared["arms"]["same data"].flags


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


def _curve(*losses, every=10):
    return [{"step": every * (i + 1), "loss": loss} for i, loss in enumerate(losses)]


def test_time_to_target_summary_picks_the_best_sync_arm_and_charges_each_machine():
    arms = {"sync 1x": {"kind": "sync", "machines": 1, "in_scan": True},
            "sync 2x": {"kind": "sync", "machines": 2, "in_scan": True},
            "sync 4x": {"kind": "sync", "machines": 4, "in_scan": True},
            "codistill": {"kind": "codistill", "machines": 2, "in_scan": False}}
    curves = {"sync 1x": {0: _curve(5, 4, 3.5, 3.2), 1: _curve(5, 4, 3.6, 3.3)},
              "sync 2x": {0: _curve(4.5, 3.5, 3.0, 2.9), 1: _curve(4.5, 3.5, 3.1, 3.0)},
              "sync 4x": {0: _curve(4.2, 3.3, 2.9, 2.8), 1: _curve(4.2, 3.3, 2.9, 2.8)},
              "codistill": {0: _curve(4.0, 3.0, 2.5, 2.4), 1: _curve(4.4, 3.0, 2.6, 2.5)}}
    step_times = {"plain": {"median_s": 0.1}, "codistill": {"median_s": 0.125}}
    summary = lm_experiments.summarize_time_to_target(arms, curves, step_times, num_groups=2)
    # The lowest loss every seed of a sync arm on <= 2 machines reaches: sync 2x's 3.0.
    assert summary["reference"] == "sync 2x" and summary["target_loss"] == 3.0
    rows = summary["arms"]
    assert rows["sync 2x"]["steps_per_seed"] == {0: 30.0, 1: 40.0}
    assert rows["sync 2x"]["steps_mean"] == 35.0 and rows["sync 2x"]["steps_half_range"] == 5
    assert rows["sync 1x"]["steps_mean"] is None and rows["sync 1x"]["seeds_reaching"] == 0
    # Codistillation reaches 3.0 at step 20 in both seeds: 20 / 35 of the steps, and each
    # of its steps costs 1.25 of a plain one.
    assert rows["codistill"]["steps_mean"] == 20.0
    assert rows["codistill"]["steps_ratio"] == pytest.approx(20 / 35)
    assert rows["codistill"]["time_s_mean"] == pytest.approx(20 * 0.125)
    assert rows["codistill"]["time_s_ratio"] == pytest.approx(20 * 0.125 / (35 * 0.1))
    # Interpolated between checkpoints: sync 4x crosses 3.0 between 3.3 (20) and 2.9 (30).
    assert rows["sync 4x"]["steps_mean"] == pytest.approx(20 + 10 * 0.3 / 0.4)
    # The scan's target is the loss every seed of every scan arm reaches: sync 1x's 3.3.
    scan = summary["scan"]
    assert scan["target_loss"] == 3.3 and list(scan["arms"]) == ["sync 1x", "sync 2x",
                                                                 "sync 4x"]
    assert all(row["steps_mean"] is not None for row in scan["arms"].values())
    assert "never" in lm_experiments.format_time_table(summary)
    assert "vs half the batch" in lm_experiments.format_scan_table(scan)
    # An all-reduce at 1 Gb/s of 1 MB: 2 x (k-1)/k x 8e6 bits / 1e9 per step for k machines.
    slow = lm_experiments.summarize_time_to_target(arms, curves, step_times, 2,
                                                   allreduce_gbps=1.0, parameter_bytes=10**6)
    assert slow["arms"]["sync 2x"]["step_time_s"] == pytest.approx(0.1 + 0.008)
    assert slow["arms"]["sync 4x"]["step_time_s"] == pytest.approx(0.1 + 2 * 0.75 * 0.008)
    assert slow["arms"]["codistill"]["step_time_s"] == 0.125
    assert lm_experiments.summarize_time_to_target(
        arms, curves, step_times, 2, target_loss=3.4)["arms"]["sync 1x"]["seeds_reaching"] == 2


def test_sync_arms_scale_the_batch_and_the_learning_rate():
    arm = lm_experiments.sync_arm(4, 1, 32, 0.002, "sqrt")
    assert arm.name == "sync_batch4x_sqrt_seed1"
    assert arm.flags == ("--batch_size=128", "--learning_rate=0.004", "--seed=1")
    assert lm_experiments.sync_arm(2, 0, 32, 0.002, "linear").flags[1] == "--learning_rate=0.004"
    assert lm_experiments.sync_arm(1, 0, 32, 0.002) == lm_experiments.BASELINE
    assert lm_experiments.sync_arm(1, 1, 32, 0.002) == lm_experiments.BASELINE_SEED_1
    assert lm_experiments.codistill_arm(0) == lm_experiments.codistill()
    assert lm_experiments.codistill_arm(2).flags[-1] == "--seed=2"
    flags = lm_experiments.common_flags("unused", 10, 0, ["--batch_size=8"], ("a.wet", "v"))
    assert lm_experiments.flag_value(flags, "batch_size") == "8"
    assert lm_experiments.flag_value(flags, "learning_rate") == "0.002"  # from the flagfile


def test_arms_on_the_generated_language_read_no_corpus(tmp_path):
    flagfile = os.path.join(lm_experiments.REPO, "configs", "experiment_hmm.flags")
    flags = lm_experiments.common_flags(str(tmp_path), 10, 0, flagfile=flagfile)
    assert lm_experiments.flag_value(flags, "task") == "hmm_lm"
    assert not any(f.startswith(("--train_files", "--vocab=")) for f in flags)
    assert not list(tmp_path.iterdir())  # nothing prepared


@pytest.mark.slow  # 3 arms and 2 timing runs as processes: ~2 min on 2 idle cores, 8 busy
def test_time_to_target_end_to_end_on_a_tiny_lm(shared_root, one_file):
    """Reuses the baseline and codistillation arms of the first test when it ran."""
    tmp_path = shared_root
    root, results = str(tmp_path / "runs"), tmp_path / "results"
    result = lm_experiments.time_to_target(
        root, str(results), train_steps=6, burn_in_steps=3, seeds=(0,), batch_scan=(1, 2),
        timing_steps=8, timing_repeats=1, time_whole_batches=False, extra_flags=TINY,
        corpus=one_file)
    summary = result["summary"]
    timed = json.loads((tmp_path / "runs" / "timing" / "codistill_rep0" / "group_0"
                        / "metrics.json").read_text())
    assert timed["teacher_reloads"] >= 1  # the timed codistilled steps ran a teacher
    assert set(summary["arms"]) == {"sync SGD, batch 1x (baseline)",
                                    "sync SGD, batch 2x (lr x sqrt 2)", "2-way codistillation"}
    assert summary["reference"] in ("sync SGD, batch 1x (baseline)",
                                    "sync SGD, batch 2x (lr x sqrt 2)")
    assert summary["arms"][summary["reference"]]["steps_ratio"] == 1.0
    assert set(result["step_times"]) == {"source", "plain", "codistill"}
    assert all(result["step_times"][v]["median_s"] > 0 for v in ("plain", "codistill"))
    configs = result["group_configs"]
    wide = configs[str(tmp_path / "runs" / "sync_batch2x_sqrt" / "group_0")]
    assert wide["trainer"]["batch_size"] == 8
    assert wide["trainer"]["learning_rate"] == pytest.approx(0.002 * 2 ** 0.5, rel=1e-5)
    codistilled = result["measured"]["2-way codistillation"][0]
    assert len(codistilled) == 2 and all("teacher_reloads" in g for g in codistilled)
    saved = json.loads((results / "time_to_target.json").read_text())
    assert saved["summary"]["target_loss"] == summary["target_loss"]
    assert (results / "time_to_target.png").stat().st_size > 10_000
