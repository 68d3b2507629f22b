"""The closing summary's scaling advice: numbers to sentences, and the all-reduce it times."""

import pytest
import tensorflow as tf
import tf_keras as keras

from tests.helpers import tiny_models
from tf_codistill.core.model import CodistillModel
from tf_codistill.core import noise_scale
from tf_codistill.core.noise_scale import GradientNoiseScale
from tf_codistill.runner import scaling
from tf_codistill.runner.callbacks import AllReduceTimer
from tf_codistill.runner.summary import GROUP_NOTES, GroupResult


def test_a_doubled_batch_saves_half_the_steps_far_below_the_noise_scale_and_none_far_past():
    assert scaling.doubled_batch_steps(noise_scale=32, batch=32) == pytest.approx(0.75)
    assert scaling.doubled_batch_steps(noise_scale=1e6, batch=32) == pytest.approx(0.5, abs=1e-4)
    assert scaling.doubled_batch_steps(noise_scale=1e-3, batch=32) == pytest.approx(1, abs=1e-4)


def test_a_ring_all_reduce_grows_its_traffic_toward_nothing_with_workers():
    assert scaling.ring_traffic_growth(1) is None
    assert scaling.ring_traffic_growth(2) == pytest.approx(1.5)
    assert scaling.ring_traffic_growth(4) == pytest.approx(7 / 6)


def test_the_measurements_in_the_averages_are_counted():
    # one replica, every 50th step from step 50 on: steps 50, 100, ..., 750 of 800
    assert noise_scale.measurement_count(800, 50, replicas=1, warmup_steps=50, rows=32) == 15
    assert noise_scale.measurement_count(801, 50, replicas=1, warmup_steps=50, rows=32) == 16
    every_30th = noise_scale.measurement_count(800, 30, replicas=1, warmup_steps=50, rows=32)
    assert every_30th == 25  # 60 ... 780
    assert noise_scale.measurement_count(40, 50, replicas=1, warmup_steps=50, rows=32) == 0
    assert noise_scale.measurement_count(800, 50, replicas=2, warmup_steps=50, rows=32) == 750
    assert noise_scale.measurement_count(800, None, replicas=1, warmup_steps=50, rows=32) is None
    # one replica never splits an odd batch (or one row) into halves
    assert noise_scale.measurement_count(800, 50, replicas=1, warmup_steps=50, rows=33) == 0
    assert noise_scale.measurement_count(800, 50, replicas=1, warmup_steps=50, rows=1) == 0
    assert noise_scale.measurement_count(800, 50, replicas=2, warmup_steps=50, rows=33) == 750


def test_the_summary_says_how_many_measurements_and_calls_few_rough():
    metrics = {"noise_scale": 500.0, "batch_rows": 32, "global_step": 400,
               "noise_scale_interval": 50, "noise_scale_warmup_steps": 50}
    text = "\n".join(scaling.from_metrics(metrics)["lines"])
    assert "(7 measurements: few, so a rough figure)" in text
    text = "\n".join(scaling.from_metrics({**metrics, "global_step": 3000})["lines"])
    assert "(59 measurements)" in text
    del metrics["noise_scale_warmup_steps"]  # a metrics.json from before the count
    assert "measurements" not in "\n".join(scaling.from_metrics(metrics)["lines"])


def test_far_below_the_noise_scale_one_worker_is_told_to_add_workers():
    advice = scaling.advise(noise_scale=1234.0, batch_rows=32, units_per_row=32, unit="tokens",
                            interval=50, averaging_steps=500)
    assert advice["adding_workers"] == "likely" and advice["try_codistillation"] is False
    text = "\n".join(advice["lines"])
    assert "~1,234 rows (39,488 tokens) against a global batch of 32 rows (1,024 tokens)" in text
    assert "would need 0.51x the steps to the same loss (saving 49%)" in text
    assert "pays in time if the all-reduce between machines takes under 49%" in text
    assert "Adding workers is likely to pay" in text
    assert "codistillation group is unlikely to do better" in text
    assert "An estimate" in text and "every 50th batch" in text and "last 500 steps" in text
    assert "no link between machines was measured" in text


@pytest.mark.parametrize("interval, words", [
    (1, "every batch"), (2, "every 2nd batch"), (3, "every 3rd batch"), (11, "every 11th batch"),
    (21, "every 21st batch"), (112, "every 112th batch"), (None, "every K-th batch")])
def test_the_measured_batches_are_named_in_plain_english(interval, words):
    advice = scaling.advise(noise_scale=100.0, batch_rows=32, interval=interval)
    assert f"from the two halves of {words};" in "\n".join(advice["lines"])


def test_past_the_noise_scale_with_a_costly_all_reduce_codistillation_is_worth_trying():
    advice = scaling.advise(noise_scale=20.0, batch_rows=64, workers=2, replicas=2,
                            allreduce_share=0.25, allreduce_seconds=0.013, step_seconds=0.052)
    steps = scaling.doubled_batch_steps(20, 64)
    assert advice["doubled_workers_time"] == pytest.approx(steps * (0.75 + 0.25 * 1.5))
    assert advice["adding_workers"] == "unlikely" and advice["try_codistillation"] is True
    text = "\n".join(advice["lines"])
    assert "The all-reduce between the 2 workers takes 25% of a step" in text
    assert "13.0 ms against a median step of 52.0 ms" in text
    assert "Adding workers is unlikely to pay" in text and "--num_groups=2" in text
    assert "before and after the all-reduce" in text and "ring all-reduce" in text


def test_in_between_adding_workers_pays_in_part():
    advice = scaling.advise(noise_scale=40.0, batch_rows=32)  # 0.72x the steps
    assert advice["adding_workers"] == "partly"
    assert "would pay only in part" in advice["lines"][2]


def test_without_a_measurement_the_run_says_so():
    advice = scaling.advise(noise_scale=None, batch_rows=32, name=3)
    assert advice["adding_workers"] is None
    assert advice["lines"] == [
        "group 3: the gradient noise scale was not measured (--noise_scale_interval=0, no step "
        "past its warm-up, or too few to estimate |G|^2 > 0): no scaling advice."]


def test_the_closing_summary_note_recomputes_from_metrics_json_under_the_groups_name():
    metrics = {"group": 0, "noise_scale": 100.0, "batch_rows": 32, "units_per_row": 1,
               "throughput_unit": "examples", "replicas": 1, "workers": 1}
    group = GroupResult("baseline", None, metrics)
    assert scaling.note in GROUP_NOTES
    assert scaling.note(group)[0].startswith("group baseline: gradient noise scale ~100")
    assert scaling.note(GroupResult(0, None, {"group": 0})) == []  # an older metrics.json


def test_the_timer_times_the_steps_gradients_sparse_ones_sparse(mirrored_strategy):
    x, y, _ = tiny_models.sequence_data()
    with mirrored_strategy.scope():
        model = CodistillModel(tiny_models.token_tagger(0), noise_scale_interval=1)
        model.noise_scale = GradientNoiseScale(1, warmup_steps=0)  # its 6 steps all measured
        model.compile(keras.optimizers.SGD(0.1))
    timer = AllReduceTimer(mirrored_strategy, model.noise_scale)
    model.fit(x, y, batch_size=8, epochs=3, steps_per_epoch=2, callbacks=[timer], verbose=0)
    assert [kind for kind, _, _ in model.noise_scale.payload] == ["sparse", "dense", "dense"]
    assert len(timer.seconds) == 3 and all(s > 0 for s in timer.seconds)
    summary = timer.summary(step_seconds=1.0)
    assert summary["allreduce_share"] == pytest.approx(summary["allreduce_seconds_median"])
    assert tf.math.is_finite(model.noise_scale.result()["grad_norm_sq"])
