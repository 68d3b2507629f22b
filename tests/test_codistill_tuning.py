"""Choosing codistillation's settings on validation streams (experiments/harness/codistill_tuning)."""

import pytest

from experiments.harness import lm_experiments
from experiments.harness.codistill_tuning import Candidate, choose, tune


def test_a_candidate_reads_weight_interval_and_burn_in_and_names_a_bad_one():
    assert Candidate.parse("0.25:100:300") == Candidate(0.25, 100, 300)
    with pytest.raises(ValueError, match="'0.5:50' is not weight:interval:burn_in"):
        Candidate.parse("0.5:50")


@pytest.mark.parametrize("seed", [0, 2])
def test_the_common_setting_is_the_arm_time_to_target_trains(seed):
    assert Candidate(0.5, 50, 150).arm(seed, 0.5, 150) == lm_experiments.codistill_arm(seed)


def test_other_settings_train_apart_and_their_flags_win():
    arm = Candidate(0.25, 25, 300).arm(1, 0.5, 150)
    assert arm.name == "codistill_reload25_disjoint_w0.25_burnin300_seed1"
    assert arm.num_groups == 2
    command = arm.command(["--distill_weight=0.5", "--burn_in_steps=150"], "root")
    assert lm_experiments.flag_value(command, "distill_weight") == "0.25"
    assert lm_experiments.flag_value(command, "burn_in_steps") == "300"
    assert lm_experiments.flag_value(command, "reload_interval") == "25"
    assert lm_experiments.flag_value(command, "seed") == "1"


def _curve(*losses):
    return [{"step": 100 * (i + 1), "loss": loss} for i, loss in enumerate(losses)]


def test_the_fewest_steps_to_the_baselines_best_win_then_the_final_loss():
    summary = choose(_curve(3.0, 2.0, 1.5, 1.6), {
        "late": _curve(3.0, 2.0, 1.6, 1.5),           # reaches 1.5 at step 400
        "early": _curve(2.5, 1.5, 1.7, 1.8),          # at step 200
        "never, low end": _curve(3.0, 2.0, 1.6, 1.55),
        "never, high end": _curve(3.0, 1.9, 1.7, 1.8)})
    assert summary["target_loss"] == 1.5
    assert summary["ranking"] == ["early", "late", "never, low end", "never, high end"]
    assert summary["chosen"] == "early"
    assert summary["candidates"]["late"]["steps_to_target"] == 400
    assert summary["candidates"]["never, low end"]["steps_to_target"] is None
    assert summary["candidates"]["never, low end"]["final_window_loss"] == pytest.approx(
        (2.0 + 1.6 + 1.55) / 3)


def test_only_the_generated_language_can_be_tuned(tmp_path):
    flagfile = tmp_path / "clusters.flags"
    flagfile.write_text("--task=clusters\n")
    with pytest.raises(ValueError, match="does not train --task=hmm_lm"):
        tune(str(tmp_path / "runs"), str(tmp_path / "out"), 10, 0, [Candidate(1, 50, 0)],
             flagfile=str(flagfile))
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ValueError, match="does not train --task=hmm_lm"):  # no corpus written
        tune(str(tmp_path / "runs"), str(tmp_path / "out"), 10, 0, [Candidate(1, 50, 0)],
             flagfile=lm_experiments.FLAGFILE)
    assert not (tmp_path / "runs").exists()
