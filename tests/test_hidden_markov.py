"""The generated language (data_pipelines.hidden_markov) and --task=hmm_lm."""

import dataclasses
import itertools

import numpy as np
import pytest
import tensorflow as tf

from data_pipelines import hidden_markov
from experiments.harness import experiment_lib
from tf_codistill import config as config_lib
from tf_codistill.config import layout
from tf_codistill.runner import train_lib
from tf_codistill.tasks import get_task
from tf_codistill.tasks.hidden_markov import HiddenMarkovData, HiddenMarkovModelSection

TINY_SOURCE = hidden_markov.SourceSpec(num_states=3, vocab_size=4, successors=2, emissions=2,
                                       seed=5)


def _brute_force_loss(source, tokens):
    """Mean -log p(x_t | x_<t) by summing over every hidden path: the floor's definition."""
    def prefix_probability(prefix):
        total = 0.0
        for path in itertools.product(range(source.spec.num_states), repeat=len(prefix)):
            p = source.start[path[0]] * source.emission[path[0], prefix[0]]
            for (a, b), token in zip(zip(path, path[1:]), prefix[1:]):
                p *= source.transitions[a, b] * source.emission[b, token]
            total += p
        return total

    losses = [-np.log(prefix_probability(row[:t + 1]) / prefix_probability(row[:t]))
              for row in tokens for t in range(1, len(row))]
    return float(np.mean(losses))


def test_the_entropy_floor_is_the_bayes_optimal_loss():
    source = hidden_markov.HiddenMarkovSource(TINY_SOURCE)
    tokens = next(source.windows(hidden_markov.stream_rng(1), rows=3, length=5))
    assert source.entropy_floor(tokens) == pytest.approx(_brute_force_loss(source, tokens),
                                                         rel=1e-9)


def test_samples_follow_the_source():
    source = hidden_markov.HiddenMarkovSource(hidden_markov.SourceSpec())
    windows = source.windows(hidden_markov.stream_rng(2), rows=64, length=100)
    tokens = np.concatenate([next(windows)[:, 1:] for _ in range(10)], axis=1)
    frequencies = np.bincount(tokens.ravel(), minlength=128) / tokens.size
    unigram = source.start @ source.emission
    np.testing.assert_allclose(frequencies, unigram, atol=0.01)
    seen = unigram > 0  # the context is worth something: the floor is below the unigram's
    assert source.entropy_floor(tokens) < -np.sum(unigram[seen] * np.log(unigram[seen])) - 0.1


def test_batches_continue_their_streams_per_replica():
    source = hidden_markov.HiddenMarkovSource(TINY_SOURCE)
    rngs = [hidden_markov.stream_rng(0, r) for r in range(2)]
    batches = list(hidden_markov.lm_batches(source, rngs, rows=4, length=6).take(6))
    for replica in range(2):
        mine = batches[replica::2]
        for (x, y), (next_x, _) in zip(mine, mine[1:]):
            np.testing.assert_array_equal(x.numpy()[:, 1:], y.numpy()[:, :-1])
            np.testing.assert_array_equal(y.numpy()[:, -1], next_x.numpy()[:, 0])
    assert not np.array_equal(batches[0][0].numpy(), batches[1][0].numpy())


def _config(model_dir="", group=0, num_groups=1, seed=0, held_out="test", **model):
    return config_lib.RunConfig(
        task="hmm_lm", model_dir=str(model_dir), group=group, num_groups=num_groups,
        trainer=config_lib.TrainerConfig(batch_size=4, train_steps=6, steps_per_loop=3,
                                         eval_steps=3, learning_rate=0.01, seed=seed),
        data=HiddenMarkovData(seq_len=8, held_out=held_out),
        model=HiddenMarkovModelSection(**{"vocab_size": 16, "embedding_dim": 8, "units": 16,
                                          "source_states": 8, **model}))


def _first_inputs(config, context=tf.distribute.InputContext()):
    return next(iter(get_task(config).train_dataset(context)))[0].numpy()


def test_groups_and_seeds_read_their_own_streams_and_the_same_data_when_asked():
    base = _first_inputs(_config())
    assert np.array_equal(base, _first_inputs(_config()))
    assert not np.array_equal(base, _first_inputs(_config(group=1, num_groups=2)))
    assert not np.array_equal(base, _first_inputs(_config(seed=1)))
    same = dataclasses.replace(_config(group=1, num_groups=2),
                               codistill=config_lib.CodistillConfig(partition="same"))
    zero = dataclasses.replace(same, group=0)
    assert np.array_equal(_first_inputs(same), _first_inputs(zero))


def test_held_out_rows_are_the_same_whatever_the_replica_layout():
    task = get_task(_config())
    whole = np.concatenate([x.numpy() for x, _ in task.eval_dataset(
        tf.distribute.InputContext())], axis=1)
    halves = list(task.eval_dataset(tf.distribute.InputContext(num_replicas_in_sync=2)))
    rows = [np.concatenate([x.numpy() for x, _ in halves[r::2]], axis=1) for r in range(2)]
    np.testing.assert_array_equal(whole, np.concatenate(rows, axis=0))
    assert whole.shape == (4, 3 * 8)


def test_validation_streams_are_kept_apart_from_the_test_and_training_streams():
    test, validation = (np.concatenate([x.numpy() for x, _ in get_task(
        _config(held_out=split)).eval_dataset(tf.distribute.InputContext())], axis=1)
        for split in ("test", "validation"))
    assert test.shape == validation.shape
    assert np.mean(test == validation) < 0.5  # 8 tokens: chance agreement is ~1/8 a token
    assert not np.array_equal(_first_inputs(_config()), validation[:, :8])


def test_a_held_out_split_that_does_not_exist_names_the_choices():
    with pytest.raises(config_lib.ConfigError, match="--held_out=.dev. is not valid.*validation"):
        config_lib.check(_config(held_out="dev"))


def test_evaluations_report_the_floor_and_the_excess():
    task = get_task(_config())
    summary = task.summarize_eval({"loss": 2.5})
    assert summary["entropy_floor"] == task.source.entropy_floor(task._held_out)
    assert summary["excess_loss"] == pytest.approx(2.5 - summary["entropy_floor"])


@pytest.mark.slow
def test_a_run_reports_the_floor_and_the_excess_and_scores_on_either_held_out_set(tmp_path):
    metrics = train_lib.run(_config(tmp_path))
    assert metrics["global_step"] == 6
    assert 0 < metrics["eval_entropy_floor"] < np.log(16)
    assert metrics["eval_excess_loss"] == pytest.approx(
        metrics["eval_loss"] - metrics["eval_entropy_floor"])
    group_dir = layout.group_dir(str(tmp_path), 0)
    test, validation = (experiment_lib.score_curves(
        {"run": [group_dir]}, group_dir, eval_steps=3,
        data_overrides={"held_out": split})["run"] for split in ("test", "validation"))
    assert [p["step"] for p in test] == [p["step"] for p in validation] == [3, 6]
    assert test[-1]["loss"] == pytest.approx(metrics["eval_loss"], rel=1e-5)
    assert validation[-1]["loss"] != pytest.approx(test[-1]["loss"], rel=1e-4)


def test_a_source_that_cannot_exist_is_a_config_error():
    with pytest.raises(config_lib.ConfigError, match="--source_emissions=20"):
        get_task(_config(source_emissions=20))


@pytest.mark.slow
def test_a_group_distilling_half_its_streams_loads_the_peer_and_scores_agreement(tmp_path):
    """--distill_fraction through the train command: k-row teacher copies of the stateful LM."""
    def config(group):
        base = _config(tmp_path, group=group, num_groups=2)
        return dataclasses.replace(base, codistill=dataclasses.replace(
            base.codistill, distill_fraction=0.5, reload_interval=3))

    first = train_lib.run(config(0))  # publishes its final weights; no peer to read yet
    second = train_lib.run(config(1))
    assert first["teacher_reloads"] == 0
    assert second["teacher_reloads"] >= 1 and second["distill_loss"] > 0
    assert 0 <= second["teacher_top1_agreement"] <= 1
