"""The Beam pipeline (DirectRunner) writes the same documents tf.data would train on."""
import sys

from data_pipelines import partition, shards, synthetic_wet, training_data, wet
from data_pipelines.documents import kept_documents
from data_pipelines.filters import FilterConfig

EOD = 1
CONFIG = FilterConfig(min_paragraph_words=20)


class ByteEncoder:
    eod_id = EOD

    def encode_document(self, text):
        return [b + 2 for b in text.encode("utf-8")]


def test_beam_pipeline_writes_partitioned_token_shards(tmp_path):
    from data_pipelines import beam_pipeline

    files = []
    for i in range(3):
        path = str(tmp_path / f"in-{i}.wet.gz")
        synthetic_wet.write_wet_file(path, seed=200 + i, count=25)
        files.append(path)
    bad = tmp_path / "in-bad.wet"
    bad.write_bytes(b"not a WARC file\n" * 20)
    files.append(str(bad))
    prefix = str(tmp_path / "out" / "cc")

    result = beam_pipeline.run(files, prefix, ByteEncoder, ["--runner=DirectRunner"],
                               num_groups=2, partition_mode="disjoint",
                               validation_fraction=0.2, filter_config=CONFIG, num_shards=2)

    written = {}
    for name in ["group-0-of-2", "group-1-of-2", "validation"]:
        found = shards.shard_files(prefix, name)
        assert len(found) == 2
        written[name] = dict((rid, tokens) for tokens, rid in shards.read_token_documents(found))
    ids = [set(w) for w in written.values()]
    assert all(ids) and not ids[0] & ids[1] and not (ids[0] | ids[1]) & ids[2]

    for k, name in enumerate(["group-0-of-2", "group-1-of-2"]):
        split = partition.Partition(k, 2, "disjoint", 0.2)
        expected = {d.record_id: ByteEncoder().encode_document(d.text) + [EOD]
                    for d in kept_documents(files, split, CONFIG, wet.ReadStats())}
        assert written[name] == expected

    stats = wet.ReadStats()
    list(kept_documents(files, None, CONFIG, stats))
    counts = beam_pipeline.counters(result)
    assert counts["records_read"] == stats.records_read == 78
    assert counts["documents_kept"] == stats.documents_kept
    assert counts["malformed/not_warc"] == 1
    assert counts["dropped/language_header"] == stats.dropped["language_header"]
    assert counts["tokens"] == sum(len(t) for w in written.values() for t in w.values())

    ds = training_data.build_dataset_from_shards(shards.shard_files(prefix, "group-0-of-2"),
                                                 EOD, per_replica_batch_size=2,
                                                 sequence_length=32, num_epochs=1)
    assert sum(1 for _ in ds) > 10


def test_package_imports_without_beam(monkeypatch):
    # Importing the pipeline modules must not pull in Beam; only building a pipeline does.
    monkeypatch.setitem(sys.modules, "apache_beam", None)
    import importlib

    from data_pipelines import beam_pipeline
    importlib.reload(beam_pipeline)
    assert beam_pipeline.partition_names(2, "same") == ["train", "validation"]
    try:
        beam_pipeline.build_pipeline(None, ["x"], "p", ByteEncoder)
    except ImportError as e:
        assert "tf_codistill[beam]" in str(e)
    else:
        raise AssertionError("expected an ImportError naming the beam extra")
