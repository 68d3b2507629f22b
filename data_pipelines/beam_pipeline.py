"""The read -> filter -> tokenize -> partition steps as an Apache Beam pipeline.

For corpora that outgrow one machine: the same code runs on the DirectRunner (tests), and on
Dataflow, Flink or Spark with the matching pipeline options. Output is one set of TFRecord
shards per partition (see `shards`), which `training_data.build_dataset_from_shards` reads.
Apache Beam is an optional extra (`pip install 'tf_codistill[beam]'`); it is imported only
when a pipeline is built, so the rest of data_pipelines works without it.

    python -m data_pipelines.beam_pipeline --vocab=V --output_prefix=gs://b/cc \
        --num_groups=2 --beam_options="--runner=DataflowRunner --project=P ..." FILES...
"""
from __future__ import annotations

import functools
import shlex
from typing import Callable, Sequence

from data_pipelines import documents, partition, wet
from data_pipelines.filters import FilterConfig

METRICS_NAMESPACE = "wet_pipeline"


def _import_beam():
    try:
        import apache_beam as beam
    except ImportError as e:
        raise ImportError("the Beam pipeline needs Apache Beam: pip install "
                          "'tf_codistill[beam]' (or apache-beam==2.77.*)") from e
    return beam


class ReadFilterTokenize:
    """One WET file -> (partition name, serialized tf.train.Example) per kept document.

    The encoder is built on the worker from `encoder_factory` (tokenizers need not pickle);
    counts go to Beam metrics, named like the `wet_stats` keys.
    """

    def __init__(self, encoder_factory: Callable[[], documents.DocumentEncoder],
                 split: partition.Partition, filter_config: FilterConfig,
                 max_record_bytes: int = wet.DEFAULT_MAX_RECORD_BYTES):
        self._encoder_factory = encoder_factory
        self._split = split
        self._filter_config = filter_config
        self._max_record_bytes = max_record_bytes
        self._encoder = None

    def __getstate__(self):
        return {**self.__dict__, "_encoder": None}

    def __call__(self, path: str):
        from data_pipelines import shards  # TensorFlow, on the worker only.
        if self._encoder is None:
            self._encoder = documents.as_document_encoder(self._encoder_factory())
        stats = wet.ReadStats()
        try:
            for doc in documents.kept_documents([path], None, self._filter_config, stats,
                                                max_record_bytes=self._max_record_bytes):
                ids = documents.encode_counted(self._encoder, doc.text, stats)
                yield self._split.name_for(doc.record_id), shards.encode_example(
                    ids, doc.record_id)
        finally:
            _report(stats)


def _report(stats: wet.ReadStats) -> None:
    metrics = _import_beam().metrics.Metrics
    for name, value in (("records_read", stats.records_read),
                        ("documents_kept", stats.documents_kept), ("tokens", stats.tokens)):
        metrics.counter(METRICS_NAMESPACE, name).inc(value)
    for reason, value in stats.dropped.items():
        metrics.counter(METRICS_NAMESPACE, f"dropped/{reason}").inc(value)
    for reason, value in stats.malformed.items():
        metrics.counter(METRICS_NAMESPACE, f"malformed/{reason}").inc(value)


def partition_names(num_groups: int, partition_mode: str) -> list[str]:
    """The partitions a run writes: training share(s) first, then validation."""
    if partition_mode == "same":
        return ["train", "validation"]
    if partition_mode == "disjoint":
        return [partition.group_name(k, num_groups) for k in range(num_groups)] + ["validation"]
    raise ValueError(f"partition_mode must be 'disjoint' or 'same' for preprocessing, "
                     f"got {partition_mode!r}")


def build_pipeline(pipeline, files: Sequence[str], output_prefix: str,
                   encoder_factory: Callable[[], documents.DocumentEncoder], *,
                   num_groups: int = 1, partition_mode: str = "disjoint",
                   validation_fraction: float = partition.DEFAULT_VALIDATION_FRACTION,
                   filter_config: FilterConfig | None = None, num_shards: int = 0,
                   max_record_bytes: int = wet.DEFAULT_MAX_RECORD_BYTES) -> None:
    """Adds the steps to `pipeline`; num_shards=0 lets the runner choose per partition."""
    beam = _import_beam()
    from data_pipelines import shards
    if not files:
        raise ValueError("no input files given")
    names = partition_names(num_groups, partition_mode)
    split = partition.Partition(0, num_groups, partition_mode, validation_fraction)
    tagged = (pipeline
              | "Files" >> beam.Create(sorted(files))
              | "SpreadFiles" >> beam.Reshuffle()
              | "ReadFilterTokenize" >> beam.FlatMap(
                  ReadFilterTokenize(encoder_factory, split, filter_config or FilterConfig(),
                                     max_record_bytes)))
    parts = tagged | "ByPartition" >> beam.Partition(
        lambda item, _: names.index(item[0]), len(names))
    for name, part in zip(names, parts):
        (part
         | f"Serialized[{name}]" >> beam.Values()
         | f"Write[{name}]" >> beam.io.WriteToTFRecord(
             shards.shard_prefix(output_prefix, name), num_shards=num_shards))


def run(files: Sequence[str], output_prefix: str,
        encoder_factory: Callable[[], documents.DocumentEncoder],
        beam_args: Sequence[str] = (), **kwargs):
    """Builds and runs the pipeline; returns the finished PipelineResult (for metrics)."""
    beam = _import_beam()
    from apache_beam.options.pipeline_options import PipelineOptions
    with beam.Pipeline(options=PipelineOptions(list(beam_args))) as pipeline:
        build_pipeline(pipeline, files, output_prefix, encoder_factory, **kwargs)
    return pipeline.result


def counters(result) -> dict[str, int]:
    """The pipeline's counters by name (records_read, dropped/<reason>, ...)."""
    found = result.metrics().query()["counters"]
    return {c.key.metric.name: c.committed for c in found
            if c.key.metric.namespace == METRICS_NAMESPACE}


def _load_encoder(path: str) -> documents.DocumentEncoder:
    import tokenizer  # The project tokenizer package.
    return tokenizer.load(path)


def main(argv: Sequence[str]) -> None:
    from absl import app
    files = list(argv[1:])
    if not files:
        raise app.UsageError("give one or more WET files (.wet.gz or .wet)")
    f = _FLAGS
    result = run(files, f.output_prefix.value, functools.partial(_load_encoder, f.vocab.value),
                 shlex.split(f.beam_options.value), num_groups=f.num_groups.value,
                 partition_mode=f.partition_mode.value,
                 validation_fraction=f.validation_fraction.value,
                 filter_config=FilterConfig(min_paragraph_words=f.min_paragraph_words.value,
                                            c4_line_rules=f.c4_line_rules.value),
                 num_shards=f.num_shards.value)
    for name, value in sorted(counters(result).items()):
        print(f"{name}: {value}")


class _Flags:
    def __init__(self):
        from absl import flags
        from data_pipelines.filters import DEFAULT_MIN_PARAGRAPH_WORDS
        self.vocab = flags.DEFINE_string("vocab", None, "Tokenizer file for tokenizer.load.",
                                         required=True)
        self.output_prefix = flags.DEFINE_string("output_prefix", None, "Shard path prefix.",
                                                 required=True)
        self.num_groups = flags.DEFINE_integer("num_groups", 1, "Codistillation groups.")
        self.partition_mode = flags.DEFINE_enum("partition_mode", "disjoint",
                                                ["disjoint", "same"], "Group data split.")
        self.validation_fraction = flags.DEFINE_float(
            "validation_fraction", partition.DEFAULT_VALIDATION_FRACTION,
            "Share of documents held out for validation.")
        self.min_paragraph_words = flags.DEFINE_integer(
            "min_paragraph_words", DEFAULT_MIN_PARAGRAPH_WORDS, "Shorter paragraphs dropped.")
        self.c4_line_rules = flags.DEFINE_bool("c4_line_rules", False, "C4 line rules.")
        self.num_shards = flags.DEFINE_integer("num_shards", 0, "Shards per partition; 0=auto.")
        self.beam_options = flags.DEFINE_string("beam_options", "",
                                                "Beam pipeline options, e.g. --runner=...")


if __name__ == "__main__":
    from absl import app as _app
    _FLAGS = _Flags()
    _app.run(main)
