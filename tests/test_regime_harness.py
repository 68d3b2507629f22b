"""The regime and churn harness of experiments/: noise scale next to the scan, churn tables."""

import pytest

from experiments.harness import lm_churn, noise_scale_scan


def test_a_doubling_at_the_noise_scale_saves_a_quarter_and_far_below_it_half():
    assert noise_scale_scan.predicted_doubling_ratio(32, 32) == pytest.approx(0.75)
    assert noise_scale_scan.predicted_doubling_ratio(3200, 32) == pytest.approx(0.505, abs=1e-3)
    assert noise_scale_scan.predicted_doubling_ratio(0, 32) == 1.0


def test_each_measurement_stands_beside_its_loss_and_the_scan():
    one = [{"step": 0, "loss": 3.0}, {"step": 100, "loss": 2.0}, {"step": 200, "loss": 1.5}]
    two = [{"step": 0, "loss": 3.0}, {"step": 50, "loss": 2.0}, {"step": 100, "loss": 1.4}]
    curves = {"sync SGD, batch 1x (baseline)": {"0": one},
              "sync SGD, batch 2x (lr x sqrt 2)": {"0": two}}
    measured = {100: {"noise_scale": 96.0, "grad_norm_sq": 1.0, "grad_trace_cov": 96.0}}
    [row] = noise_scale_scan.next_to_scan(measured, curves, batch_rows=32, tokens_per_row=32)
    assert row["held_out_loss"] == 2.0 and row["noise_scale_tokens"] == 96 * 32
    assert row["scan_2x_over_1x_steps"] == pytest.approx(0.5)  # 50 of 100 steps to 2.0
    assert row["predicted_2x_over_1x_steps"] == pytest.approx((1 + 1.5) / (1 + 3))
    assert "96" in noise_scale_scan.format_table([row])


def test_a_resumed_copy_holds_only_the_chosen_checkpoint(tmp_path):
    source = tmp_path / "run" / "group_0" / "checkpoints"
    source.mkdir(parents=True)
    for step in (200, 400):
        for suffix in ("index", "data-00000-of-00001"):
            (source / f"ckpt-{step}.{suffix}").write_text(str(step))
    noise_scale_scan.resume_copy(str(tmp_path / "run" / "group_0"), 200, str(tmp_path / "copy"))
    copied = tmp_path / "copy" / "group_0" / "checkpoints"
    assert sorted(p.name for p in copied.iterdir()) == [
        "checkpoint", "ckpt-200.data-00000-of-00001", "ckpt-200.index"]
    assert 'model_checkpoint_path: "ckpt-200"' in (copied / "checkpoint").read_text()


def test_the_churn_table_names_arms_without_two_seeds():
    result = {"sync SGD, batch 1x": {"seeds": [0, 1], "pairs": {"0-1": {}},
                                     "mean_abs_diff": (0.003, 0.0),
                                     "top1_disagreement": (0.49, 0.0)},
              "sync SGD, batch 2x": {"seeds": [0], "pairs": {}}}
    table = lm_churn.format_table(result)
    assert "0.00300" in table and "0.4900" in table and "(needs 2 seeds)" in table
