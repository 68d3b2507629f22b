"""The quickstart trains a baseline and a codistilled pair end to end."""

import pytest

from tf_codistill import quickstart
from tf_codistill.tasks.clusters import ClustersData, make_data


@pytest.mark.slow
def test_quickstart_trains_both_models_and_prints_a_table():
    config = quickstart.QuickstartConfig(
        data=ClustersData(train_examples=256, eval_examples=128), hidden_units=16, epochs=2,
        burn_in_steps=2)
    results = quickstart.run(config)
    assert set(results) == {"baseline", "codistilled"}
    for metrics in results.values():
        assert 0 < metrics["loss"] < 10 and 0 <= metrics["accuracy"] <= 1
    table = quickstart.format_results(results)
    assert "baseline" in table and "codistilled" in table


def test_noisy_labels_are_flipped_only_in_training_data():
    (x, y), _ = make_data(ClustersData(train_examples=2000, eval_examples=10,
                                       label_noise=0.5))
    (_, y_clean), _ = make_data(ClustersData(train_examples=2000, eval_examples=10,
                                             label_noise=0.0))
    assert x.shape == (2000, 16)
    # Same seed, so the same draws; about half the labels are redrawn (7/8 change).
    assert 0.35 < (y != y_clean).mean() < 0.55
