"""Criteo: the TSV reader, its bad-line accounting and hashing, the generator, the DNN, export."""

import gzip
import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import tf_codistill as tc
from data_pipelines import criteo
from tf_codistill.models.criteo_dnn import build_criteo_dnn, criteo_metrics, serving_model
from tf_codistill import config as config_lib
from tf_codistill.runner import evaluation, train_lib
from tf_codistill.tasks.base import InputFiles
from tf_codistill.tasks.criteo import CriteoModelSection

GOOD_LINE = "\t".join(["1", "0", "-3", "", "9"] + ["2"] * 9
                      + ["68fd1e64", ""] + ["80e26c9b"] * 24)


@pytest.fixture(scope="module")
def criteo_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("criteo")
    train = str(directory / "train.tsv")
    valid = str(directory / "valid.tsv")
    info = criteo.write_synthetic_criteo(train, 4000, seed=1)
    criteo.write_synthetic_criteo(valid, 1000, seed=2)
    return train, valid, info


def _write(path, lines):
    text = "".join(line + "\n" for line in lines).encode("ascii")
    path.write_bytes(gzip.compress(text) if path.suffix == ".gz" else text)
    return str(path)


def _rows(dataset):
    features, labels = zip(*[(f, y) for f, y in dataset])
    return ({key: np.concatenate([f[key].numpy() for f in features]) for key in features[0]},
            np.concatenate([y.numpy() for y in labels]))


@pytest.mark.parametrize("name", ["one.tsv", "one.tsv.gz"])
def test_a_line_becomes_log_transformed_integers_and_raw_categoricals(tmp_path, name):
    path = _write(tmp_path / name, [GOOD_LINE])
    features, labels = _rows(criteo.criteo_dataset(path, 4))
    np.testing.assert_allclose(features["integers"][0, :4],
                               [0.0, 0.0, 0.0, math.log(10.0)], rtol=1e-6)
    np.testing.assert_allclose(features["integers"][0, 4:], math.log(3.0), rtol=1e-6)
    assert features["categorical"][0, :3].tolist() == [b"68fd1e64", b"", b"80e26c9b"]
    assert features["categorical"].shape == (1, 26)
    np.testing.assert_array_equal(labels, [[1.0]])


def test_malformed_lines_are_skipped_counted_by_reason_and_logged(tmp_path, capfd):
    lines = [GOOD_LINE, "1\t2\t3", GOOD_LINE.replace("\t9\t", "\tnine\t", 1),
             "2" + GOOD_LINE[1:], GOOD_LINE + "\textra", GOOD_LINE]
    path = _write(tmp_path / "bad.tsv", lines)
    stats = criteo.CriteoStats()
    _, labels = _rows(criteo.criteo_dataset(path, 2, stats=stats))
    assert len(labels) == 2
    assert stats.as_dict() == {"ok": 2, "wrong_field_count": 2, "bad_label": 1,
                               "non_numeric_integer": 1}
    assert stats.skipped == 4
    logged = capfd.readouterr().err
    assert f"{path}:2: wrong field count" in logged
    assert f"{path}:3: an integer feature is not an integer" in logged
    assert f"{path}:4: label is not 0 or 1" in logged


def test_only_the_first_skipped_lines_are_logged(tmp_path, capfd):
    path = _write(tmp_path / "bad.tsv", ["1\t2", "3", GOOD_LINE])
    stats = criteo.CriteoStats(log_first_n=1)
    list(criteo.criteo_dataset(path, 2, stats=stats))
    logged = capfd.readouterr().err
    assert f"{path}:1:" in logged and f"{path}:2:" not in logged
    assert stats.as_dict()["wrong_field_count"] == 2


def test_strict_mode_fails_on_the_first_malformed_line_naming_it(tmp_path):
    path = _write(tmp_path / "bad.tsv", [GOOD_LINE, GOOD_LINE.replace("\t9\t", "\t9x\t", 1)])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"strict mode.*bad.tsv:2: an integer feature is not"):
        list(criteo.criteo_dataset(path, 2, strict=True))


def test_missing_files_name_the_pattern_and_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing-\*\.tsv.*Display Ad Challenge"):
        criteo.criteo_dataset(str(tmp_path / "nothing-*.tsv"), 8)


@pytest.mark.parametrize("num_files", [1, 2])
def test_input_pipelines_read_disjoint_shares_of_the_lines(tmp_path, num_files):
    paths = []
    for index in range(num_files):
        lines = [GOOD_LINE.replace("68fd1e64", f"{index:04d}{row:04d}") for row in range(6)]
        paths.append(_write(tmp_path / f"part-{index}.tsv", lines))
    shares = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(2, pipeline, num_replicas_in_sync=2)
        patterns = ",".join(paths)  # a comma list, as a flag gives it
        features, _ = _rows(criteo.criteo_dataset(patterns, 4, input_context=context))
        shares.append(set(features["categorical"][:, 0].tolist()))
    assert not shares[0] & shares[1]
    assert len(shares[0] | shares[1]) == 6 * num_files


def test_generator_is_reproducible_and_its_labels_follow_a_shared_rule(tmp_path, criteo_files):
    again = criteo.write_synthetic_criteo(str(tmp_path / "again.tsv"), 4000, seed=1)
    train, _, info = criteo_files
    assert again == info
    assert (tmp_path / "again.tsv").read_text() == open(train).read()
    assert 0.2 < info["click_rate"] < 0.3
    rate = info["click_rate"]
    entropy = -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))
    assert info["bayes_log_loss"] < entropy - 0.1  # the features explain clicks


def test_the_pipeline_hashes_categoricals_as_keras_hashing_into_ids_in_range(tmp_path):
    path = _write(tmp_path / "one.tsv", [GOOD_LINE, GOOD_LINE.replace("68fd1e64", "x")])
    raw, _ = _rows(criteo.criteo_dataset(path, 2))
    hashed, labels = _rows(criteo.criteo_dataset(path, 2, hash_buckets=16))
    assert set(hashed) == {"integers", "categorical_ids"}
    assert hashed["categorical_ids"].dtype == np.int64
    expected = keras.layers.Hashing(num_bins=16)(raw["categorical"]).numpy()
    np.testing.assert_array_equal(hashed["categorical_ids"], expected)
    assert hashed["categorical_ids"][0, 0] != hashed["categorical_ids"][1, 0]
    assert ((0 <= hashed["categorical_ids"]) & (hashed["categorical_ids"] < 16)).all()
    np.testing.assert_array_equal(hashed["integers"], raw["integers"])
    np.testing.assert_array_equal(labels, [[1.0], [1.0]])
    with pytest.raises(ValueError, match="hash_buckets"):
        criteo.criteo_dataset(path, 2, hash_buckets=0)


def test_dnn_outputs_one_logit_and_seeds_decide_the_initial_weights():
    make = lambda seed: build_criteo_dnn((8, 4), hash_buckets=16, embedding_dim=2, seed=seed)
    a, b, c = make(1), make(1), make(2)
    features = criteo.hashed(criteo.parse_lines(tf.constant([GOOD_LINE] * 3))[0], 16)
    assert a(features).shape == (3, 1)
    assert [d.units for d in a.layers if isinstance(d, keras.layers.Dense)] == [8, 4, 1]
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.allclose(a.get_weights()[0], c.get_weights()[0])


def test_equal_strings_in_different_columns_get_different_embeddings():
    layer = build_criteo_dnn((4,), hash_buckets=8, embedding_dim=3, seed=0).get_layer(
        "categorical_embeddings")
    ids = criteo.hash_categoricals(tf.constant([["same"] * 26]), 8)
    vectors = layer(ids).numpy().reshape(26, 3)
    assert not np.allclose(vectors[0], vectors[1])


def test_the_serving_model_takes_raw_strings_and_gives_the_trained_models_logits():
    trained = build_criteo_dnn((4,), hash_buckets=8, embedding_dim=3, seed=0)
    raw = criteo.parse_lines(tf.constant([GOOD_LINE, GOOD_LINE.replace("68fd1e64", "x")]))[0]
    served = serving_model(trained)
    assert served.input["categorical"].dtype == tf.string
    np.testing.assert_allclose(served(raw), trained(criteo.hashed(raw, 8)), rtol=1e-6)


def test_bad_model_sizes_are_refused():
    with pytest.raises(ValueError, match="hidden_units"):
        build_criteo_dnn((8, 0))
    with pytest.raises(ValueError, match="hash_buckets"):
        build_criteo_dnn((8,), hash_buckets=0)


def test_the_dnn_learns_the_generated_structure(criteo_files):
    train, valid, _ = criteo_files
    model = build_criteo_dnn((32, 16), hash_buckets=1000, embedding_dim=4, seed=3)
    model.compile(keras.optimizers.Adam(0.003), keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.AUC(from_logits=True, name="auc")])
    model.fit(criteo.criteo_dataset(train, 128, shuffle=True, seed=0, hash_buckets=1000),
              epochs=2, verbose=0)
    logs = model.evaluate(criteo.criteo_dataset(valid, 500, hash_buckets=1000),
                          return_dict=True, verbose=0)
    assert logs["auc"] > 0.6  # 0.5 is chance


@pytest.mark.slow
def test_two_way_codistillation_trains_under_mirrored_strategy(criteo_files, mirrored_strategy):
    train, valid, _ = criteo_files
    make = lambda seed: build_criteo_dnn((16, 8), hash_buckets=64, embedding_dim=2, seed=seed)

    def dataset_fn(input_context):
        return criteo.criteo_dataset(train, 64, shuffle=True, seed=0, num_epochs=None,
                                     input_context=input_context, drop_remainder=True,
                                     hash_buckets=64)

    with mirrored_strategy.scope():
        model = tc.CodistillModel(make(1), tc.InProcessPeers([make(2)]),
                                  output_kind="sigmoid", burn_in_steps=2)
        model.compile(keras.optimizers.Adagrad(0.05), metrics=criteo_metrics())
    before = [w.copy() for w in model.student.get_weights()]
    history = model.fit(keras.utils.experimental.DatasetCreator(dataset_fn), epochs=1,
                        steps_per_epoch=4, verbose=0)
    assert history.history["distill_loss"][0] > 0
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.allclose(a, b) for a, b in zip(before, model.student.get_weights()))
    logs = model.evaluate(criteo.criteo_dataset(valid, 250, hash_buckets=64), return_dict=True,
                          verbose=0)
    assert 0.0 <= logs["auc"] <= 1.0
    assert logs["log_loss"] == pytest.approx(logs["loss"], rel=1e-4)


def _tiny_run_config(model_dir, train, valid, **trainer):
    return config_lib.RunConfig(
        task="criteo", model_dir=str(model_dir),
        trainer=config_lib.TrainerConfig(**{"train_steps": 2, "batch_size": 32,
                                            "steps_per_loop": 2, "eval_steps": 1, **trainer}),
        data=InputFiles(train_files=(train,), eval_files=(valid,)),
        model=CriteoModelSection(hidden_units=(8,), hash_buckets=64, embedding_dim=2))


def test_the_export_serves_raw_features_as_the_trained_model_scores_hashed_ones(
        criteo_files, tmp_path):
    train, valid, _ = criteo_files
    config = _tiny_run_config(tmp_path, train, valid)
    train_lib.run(config)
    served = tf.saved_model.load(str(tmp_path / "group_0" / "export"))
    raw, _ = next(iter(criteo.criteo_dataset(valid, 16)))
    trained = build_criteo_dnn((8,), hash_buckets=64, embedding_dim=2, seed=99)
    evaluation.restore_student(trained, evaluation.latest_checkpoint(str(tmp_path / "group_0")))
    hashed, _ = next(iter(criteo.criteo_dataset(valid, 16, hash_buckets=64)))
    np.testing.assert_allclose(served.signatures["serving_default"](**raw)["criteo_dnn"],
                               trained(hashed), rtol=1e-5, atol=1e-6)


class _StringHashingEmbeddings(keras.layers.Layer):
    """The embedding layer of the model before the hashing moved into the input: it hashed
    its own strings. Kept here to check that such a model's checkpoints still restore."""

    def __init__(self, hash_buckets, embedding_dim, **kwargs):
        super().__init__(**kwargs)
        self.hash_buckets, self.embedding_dim = hash_buckets, embedding_dim
        self.hashing = keras.layers.Hashing(num_bins=hash_buckets)
        self.embedding = keras.layers.Embedding(26 * hash_buckets, embedding_dim)

    def call(self, strings):
        ids = self.hashing(strings) + tf.range(26, dtype=tf.int64) * self.hash_buckets
        return tf.reshape(self.embedding(ids), [-1, 26 * self.embedding_dim])


def _string_hashing_dnn(hidden_units, hash_buckets, embedding_dim):
    integers = keras.Input(shape=(13,), name="integers")
    categorical = keras.Input(shape=(26,), name="categorical", dtype=tf.string)
    x = keras.layers.Concatenate()(
        [integers, _StringHashingEmbeddings(hash_buckets, embedding_dim)(categorical)])
    for units in hidden_units:
        x = keras.layers.Dense(units, activation="relu")(x)
    return keras.Model({"integers": integers, "categorical": categorical},
                       keras.layers.Dense(1)(x))


def test_checkpoints_of_the_string_hashing_model_restore_and_predict_the_same(tmp_path):
    old = _string_hashing_dnn((8,), hash_buckets=16, embedding_dim=2)
    path = tf.train.Checkpoint(model=tf.train.Checkpoint(student=old)).save(
        str(tmp_path / "ckpt"))
    new = build_criteo_dnn((8,), hash_buckets=16, embedding_dim=2, seed=5)
    evaluation.restore_student(new, path)
    raw = criteo.parse_lines(tf.constant([GOOD_LINE, GOOD_LINE.replace("68fd1e64", "x")]))[0]
    np.testing.assert_allclose(new(criteo.hashed(raw, 16)), old(raw), rtol=1e-6)
    with pytest.raises(config_lib.ConfigError, match=r"Cannot restore .*ckpt-1.*shape.*another "
                       "architecture"):
        evaluation.restore_student(build_criteo_dnn((8,), hash_buckets=32, embedding_dim=2),
                                   path)
