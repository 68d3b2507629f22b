"""The LM task end to end: WET files + a trained vocabulary -> stateful LSTM LM groups."""

import dataclasses
import functools
import gzip
import json
import os

import numpy as np
import pytest

import tokenizer
from data_pipelines import wet
from data_pipelines.filters import FilterConfig, filter_document
from tests.helpers import lm
from tf_codistill import config as config_lib
from tf_codistill.tasks import demo_corpus
from tf_codistill.runner import train_lib


_config = lm.lm_config


@pytest.mark.slow
def test_an_lm_group_trains_evaluates_and_reports_perplexity(finished_lm):
    _, metrics = finished_lm  # tests/conftest.py
    assert metrics["global_step"] == 6
    assert metrics["eval_perplexity"] == pytest.approx(2.718281828 ** metrics["eval_loss"],
                                                       rel=1e-4)
    assert metrics["eval_perplexity"] < 400  # better than uniform over the vocabulary


@pytest.mark.slow
def test_metrics_json_keeps_the_wet_read_counters(finished_lm):
    config, metrics = finished_lm
    counters = metrics["input"]
    assert counters["records_read"] > 0 and counters["documents_kept"] > 0
    assert counters["tokens"] > 0
    assert counters["records_read"] >= (counters["documents_kept"]
                                        + counters["documents_dropped_total"])
    with open(config.layout.metrics) as f:
        assert json.load(f)["input"] == counters


@pytest.mark.slow
def test_an_lm_group_trains_on_the_beam_pipelines_shards(tmp_path, corpus):
    """--train_shards: the Beam output is a training input, not a dead end."""
    from data_pipelines import beam_pipeline
    files, vocab = corpus
    prefix = str(tmp_path / "shards" / "cc")
    beam_pipeline.run(files, prefix, functools.partial(beam_pipeline._load_encoder, vocab),
                      ["--runner=DirectRunner"], num_groups=2, partition_mode="disjoint",
                      validation_fraction=0.2, filter_config=FilterConfig(min_paragraph_words=5))
    config = _config(tmp_path / "run", (), vocab, num_groups=2, group=1)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data,
                                                                  train_shards=prefix))
    metrics = train_lib.run(dataclasses.replace(
        config, codistill=dataclasses.replace(config.codistill, teacher="uniform")))
    assert metrics["global_step"] == 6 and np.isfinite(metrics["eval_loss"])
    missing = dataclasses.replace(config, num_groups=3, group=2)
    with pytest.raises(config_lib.ConfigError, match="--num_groups=3 and --partition=disjoint "
                                                     "must match the pipeline's"):
        train_lib.run(missing)


def test_unigram_prior_counts_the_groups_training_targets(tmp_path, corpus):
    from tf_codistill.tasks.lm import UNIGRAM_BATCHES, LanguageModelTask
    files, vocab = corpus
    task = LanguageModelTask(_config(tmp_path, files, vocab))
    task.check_inputs()
    counts = task.label_prior("unigram")
    assert counts.sum() == UNIGRAM_BATCHES * 4 * 8
    assert counts[tokenizer.EOD_ID] > 0 and counts.argmax() != tokenizer.PAD_ID
    assert np.all(task.label_prior("uniform") == 1)


@pytest.mark.parametrize("data, message", [
    (dict(train_files=()), "--task=lm needs Common Crawl WET files"),
    (dict(vocab=""), "--task=lm needs --vocab"),
    (dict(train_files=("/nonexistent/*.wet.gz",)), "matches no file"),
    (dict(vocab="/nonexistent/vocab.model"), "--vocab=/nonexistent/vocab.model"),
])
def test_missing_inputs_say_what_to_pass(tmp_path, corpus, data, message):
    files, vocab = corpus
    config = _config(tmp_path, files, vocab)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, **data))
    with pytest.raises(config_lib.ConfigError, match=message):
        train_lib.run(config)
    assert not (tmp_path / "group_0").exists()


def test_python_docs_become_real_english_wet_records(tmp_path):
    path = str(tmp_path / "docs.wet.gz")
    written = demo_corpus.write_python_docs_wet(path)
    stats = wet.ReadStats()
    records = list(wet.read_wet_file(path, stats))
    assert written == len(records) > 100
    assert not stats.as_dict().get("malformed")
    kept = [r for r in records
            if filter_document(r, FilterConfig(min_paragraph_words=10))[1] is None]
    assert len(kept) > 0.5 * len(records)
    with gzip.open(path, "rb") as f:
        assert f.read(10) == b"WARC/1.0\r\n"


def test_library_docstrings_join_the_corpus_in_a_mixed_order(tmp_path):
    path = str(tmp_path / "docs.wet.gz")
    demo_corpus.write_python_docs_wet(path, libraries=("absl",))
    uris = [r.target_uri for r in wet.read_wet_file(path, wet.ReadStats())]
    from_absl = [i for i, uri in enumerate(uris) if "/site-packages/absl/" in uri]
    assert len(from_absl) >= 5
    # Not a curriculum: the library's documents are spread over the whole file.
    assert from_absl[0] < len(uris) / 3 and from_absl[-1] > 2 * len(uris) / 3
    again = str(tmp_path / "again.wet.gz")
    demo_corpus.write_python_docs_wet(again, libraries=("absl",))
    assert [r.target_uri for r in wet.read_wet_file(again, wet.ReadStats())] == uris
    with pytest.raises(ValueError, match="not installed"):
        list(demo_corpus.library_documents(["no_such_package_here"]))


def test_prose_paragraphs_join_wrapped_lines_and_drop_code():
    text = "A wrapped\nsentence here.\n\n   indented code\n\n>>> print(1)\n\nLast one."
    assert demo_corpus.prose_paragraphs(text) == ["A wrapped sentence here.", "Last one."]


def _losses_and_first_weights(config, metrics):
    """Train and eval losses of a 6-step run, and its embedding at step 3 (a checkpoint)."""
    import tensorflow as tf
    reader = tf.train.load_checkpoint(os.path.join(config.group_dir, "checkpoints", "ckpt-3"))
    embedding = [reader.get_tensor(k) for k in sorted(reader.get_variable_to_shape_map())
                 if "embedding" in k and "OPTIMIZER" not in k]
    return (metrics["train_loss"], metrics["train_total_loss"], metrics["eval_loss"]), embedding


def _trained_again(config, model_dir, seed):
    config = lm.reseeded(config, model_dir, seed)
    return _losses_and_first_weights(config, train_lib.run(config))


@pytest.mark.slow  # two trainings beside the session's run at seed 0
def test_the_same_seed_repeats_a_run_and_another_seed_does_not(tmp_path, finished_lm):
    config, _ = finished_lm  # tests/conftest.py
    assert config.trainer.seed == 0
    losses, weights = _losses_and_first_weights(*finished_lm)
    again, weights_again = _trained_again(config, tmp_path / "again", seed=0)
    other, weights_other = _trained_again(config, tmp_path / "other", seed=4)
    assert weights and len(weights) == len(weights_again)
    assert losses == again  # bit for bit on CPU under the default strategy
    for w, w_again in zip(weights, weights_again):
        np.testing.assert_array_equal(w, w_again)
    assert all(a != b for a, b in zip(losses, other))
    assert not np.array_equal(weights[0], weights_other[0])


def test_seeds_fix_the_initialization_and_groups_read_their_own_order(tmp_path, corpus):
    from tf_codistill.tasks.lm import LanguageModelTask
    import tensorflow as tf
    files, vocab = corpus

    def task(seed, group=0, partition="same"):
        config = _config(tmp_path, files, vocab, num_groups=2, group=group)
        config = dataclasses.replace(
            config, trainer=dataclasses.replace(config.trainer, seed=seed),
            codistill=dataclasses.replace(config.codistill, partition=partition))
        lm_task = LanguageModelTask(config)
        lm_task.check_inputs()
        return lm_task

    def initial_weights(lm_task):
        tf.random.uniform([7])  # whatever the process drew before must not matter
        model = lm_task.build_model(4)
        model(tf.zeros([4, 8], tf.int32))
        return [w.numpy() for w in model.trainable_weights]

    def first_batches(lm_task, n=5):
        dataset = lm_task.train_dataset(tf.distribute.InputContext())
        return np.concatenate([x.numpy() for x, _ in dataset.take(n)])

    same = [initial_weights(task(1)), initial_weights(task(1))]
    for a, b in zip(*same):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(same[0][0], initial_weights(task(2))[0])
    assert not np.array_equal(same[0][0], initial_weights(task(1, group=1))[0])
    # On the same data, the two groups of one seed still read different orders.
    np.testing.assert_array_equal(first_batches(task(1)), first_batches(task(1)))
    assert not np.array_equal(first_batches(task(1)), first_batches(task(1, group=1)))
    assert not np.array_equal(first_batches(task(1)), first_batches(task(2)))
