"""Prediction churn: the function, the Keras metric, and the Table 1 experiment."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tf_codistill.core import churn


def test_churn_is_the_mean_absolute_difference_of_probabilities():
    value = churn.prediction_churn([0.1, 0.5, 0.9], [0.2, 0.5, 0.6])
    assert float(value) == pytest.approx(0.4 / 3)


def test_sample_weights_weigh_examples():
    value = churn.prediction_churn([[0.1], [0.5]], [[0.3], [0.5]], sample_weight=[3.0, 1.0])
    assert float(value) == pytest.approx(0.2 * 3 / 4)


def test_logits_are_turned_into_probabilities_first():
    sigmoid = churn.prediction_churn([[0.0], [np.log(3.0)]], [[0.0], [0.0]],
                                     output_kind="sigmoid")
    assert float(sigmoid) == pytest.approx(0.125)
    softmax = churn.prediction_churn([[np.log(3.0), 0.0]], [[0.0, 0.0]],
                                     output_kind="softmax")
    assert float(softmax) == pytest.approx(0.25)  # [0.75, 0.25] vs [0.5, 0.5]


def test_the_metric_accumulates_over_batches_and_resets():
    metric = churn.PredictionChurn()
    metric.update_state([0.0, 1.0], [0.5, 1.0])
    metric.update_state([0.2, 0.2], [0.2, 0.6])
    assert float(metric.result()) == pytest.approx((0.5 + 0.4) / 4)
    metric.reset_state()
    assert float(metric.result()) == 0.0
    assert keras.metrics.deserialize(
        keras.metrics.serialize(churn.PredictionChurn(output_kind="sigmoid")),
        custom_objects={"PredictionChurn": churn.PredictionChurn}).output_kind == "sigmoid"


def test_the_metric_sums_over_replicas(mirrored_strategy):
    with mirrored_strategy.scope():
        metric = churn.PredictionChurn()

    @tf.function
    def update(a, b):
        mirrored_strategy.run(metric.update_state, args=(a, b))

    data = tf.data.Dataset.from_tensor_slices(([0.0, 1.0, 0.5, 0.5], [1.0, 1.0, 0.0, 0.5]))
    for a, b in mirrored_strategy.experimental_distribute_dataset(data.batch(4)):
        update(a, b)
    assert float(metric.result()) == pytest.approx(1.5 / 4)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="same shape"):
        churn.prediction_churn([0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="output_kind"):
        churn.PredictionChurn(output_kind="relu")
    with pytest.raises(ValueError, match="No values"):
        churn.mean_and_half_range([])


def _constant_model(logit):
    model = keras.Sequential([keras.layers.Dense(1, input_shape=(2,), kernel_initializer="zeros",
                                                 bias_initializer=keras.initializers.Constant(logit))])
    return model


def test_churn_between_two_models_over_a_dataset():
    data = tf.data.Dataset.from_tensor_slices((np.ones((6, 2), "float32"),
                                               np.zeros((6, 1), "float32"))).batch(4)
    value = churn.model_churn(_constant_model(0.0), _constant_model(np.log(3.0)), data)
    assert value == pytest.approx(0.25)
    assert churn.model_churn(_constant_model(1.0), _constant_model(1.0), data) == 0.0


def test_ensembles_average_probabilities_and_repeats_are_mean_and_half_range():
    np.testing.assert_allclose(churn.ensemble_probabilities([[0.2, 0.4], [0.4, 1.0]]),
                               [0.3, 0.7])
    np.testing.assert_allclose(churn.ensemble_probabilities([[0.0], [np.log(3.0)]], "sigmoid"),
                               [0.625])
    assert churn.mean_and_half_range([0.02, 0.03, 0.01]) == pytest.approx((0.02, 0.01))


@pytest.mark.slow
def test_the_table_1_experiment_runs_end_to_end_on_tiny_data(tmp_path):
    from experiments import criteo_churn
    config = criteo_churn.ChurnConfig(
        train_rows=600, eval_rows=200, repeats=1, hidden_units=(4,), hash_buckets=16,
        embedding_dim=2, batch_size=200, burn_in_steps=1, data_dir=str(tmp_path))
    results = criteo_churn.run(config, log=lambda _: None)
    assert set(results["summary"]) == set(criteo_churn.METHODS)
    repeat = results["repeats"][0]
    for method in criteo_churn.METHODS:
        assert 0.0 < repeat[method]["churn"] < 1.0 and 0.0 < repeat[method]["log_loss"] < 5.0
    singles = repeat["single DNN log losses"]
    assert repeat["single DNN"]["log_loss"] == pytest.approx((singles[0] + singles[2]) / 2)
    ensemble = results["repeats"][0]["ensemble of two DNNs"]["churn"]
    assert results["summary"]["ensemble of two DNNs"]["churn"] == (ensemble, 0.0)
    table = criteo_churn.format_table(results)
    assert "two-way codistilled DNN" in table and "instead of the paper's 2560-1024-256" in table
    json.dumps(results)


def test_pairwise_churn_of_models_on_the_same_held_out_batches():
    from types import SimpleNamespace

    from tf_codistill.runner import evaluation

    features = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]], np.float32)

    def eval_dataset(context):
        del context
        return tf.data.Dataset.from_tensor_slices((features, np.zeros(4, np.int64))).batch(2)

    def logits_model(kernel):
        model = keras.Sequential([keras.layers.Dense(2, use_bias=False)])
        model.build((None, 2))
        model.set_weights([np.array(kernel, np.float32)])
        return model

    same = [[1.0, 0.0], [0.0, 1.0]]
    members = [logits_model(same), logits_model(same), logits_model([[0.0, 1.0], [1.0, 0.0]])]
    task = SimpleNamespace(output_kind="softmax", eval_dataset=eval_dataset)
    pairs = evaluation.pairwise_churn(task, tf.distribute.get_strategy(), members)
    assert sorted(pairs) == [(0, 1), (0, 2), (1, 2)]
    assert pairs[0, 1] == {"mean_abs_diff": 0.0, "top1_disagreement": 0.0}
    p = tf.nn.softmax(features).numpy()  # member 2 swaps the two logits
    expected = np.abs(p - p[:, ::-1]).mean()
    assert pairs[0, 2]["mean_abs_diff"] == pytest.approx(expected, rel=1e-5)
    # rows 1, 2 and 4 have distinct logits, so the swapped model's arg-max differs there;
    # row 3 ties (both pick class 0)
    assert pairs[0, 2]["top1_disagreement"] == pytest.approx(0.75)
