"""Encode/decode throughput: this tokenizer vs raw sentencepiece vs SubwordTextEncoder.

One run, the same documents, the same vocabulary size for all three. The single-core part pins
the process to one CPU. The tf.data part compares the in-graph encoder (tensorflow-text op)
with the Python tokenizer in tf.py_function, at 1 and at all-cores parallel map calls.
Rounds are interleaved so load from other processes hits every candidate alike.

    python benchmarks/tokenizer_speed.py [--input=files] [--vocab_size=8000]
"""
import os
import statistics
import time

from absl import app, flags, logging

flags.DEFINE_list("input", None, "Text or WET files; default: Python standard library "
                  "docstrings (offline English prose).")
flags.DEFINE_integer("max_chars", 1_200_000, "Characters of text to use.")
flags.DEFINE_integer("vocab_size", 8000, "Vocabulary size for every tokenizer.")
flags.DEFINE_integer("repeats", 10, "Timed rounds; the best one counts.")
FLAGS = flags.FLAGS


def load_documents():
    from tokenizer import sample_text, sources
    if not FLAGS.input:
        return list(sample_text.stdlib_docstrings(max_chars=FLAGS.max_chars))
    documents, total = [], 0
    for document in sources.documents_from_files(sources.expand_inputs(FLAGS.input)):
        documents.append(document)
        total += len(document)
        if total >= FLAGS.max_chars:
            break
    return documents


def timed_rounds(candidates):
    """Seconds per round of each candidate {name: (fn, items)}, rounds interleaved."""
    times = {name: [] for name in candidates}
    for _ in range(FLAGS.repeats):
        for name, (fn, items) in candidates.items():
            start = time.perf_counter()
            for item in items:
                fn(item)
            times[name].append(time.perf_counter() - start)
    return times


def print_rates(megabytes, times):
    """Best round of each candidate, in MB/s."""
    for name, seconds in times.items():
        print(f"  {name:50s} {megabytes / min(seconds):8.2f} MB/s")


def print_ratio(times, label, numerator, denominator, goal=""):
    """Speed ratio: the median over rounds of the paired ratio, which shrugs off load spikes
    that a best-of comparison would credit to one side."""
    paired = [b / a for a, b in zip(times[numerator], times[denominator])]
    print(f"  ratio {label:52s} {statistics.median(paired):6.2f}x {goal}")


def single_core(documents, megabytes, tok, subword):
    raw = tok.sentencepiece
    ids = {"ours": [tok.encode(d) for d in documents],
           "document": [tok.encode_document(d) for d in documents],
           "raw": [raw.encode(d) for d in documents],
           "subword": [subword.encode(d) for d in documents]}
    lossy = {name: sum(decode(i) != d for i, d in zip(ids[key], documents))
             for name, decode, key in [("this tokenizer", tok.decode, "document"),
                                       ("raw sentencepiece", raw.decode, "raw"),
                                       ("SubwordTextEncoder", subword.decode, "subword")]}
    print("documents not restored exactly by decode(encode(.)): "
          + ", ".join(f"{name} {count}/{len(documents)}" for name, count in lossy.items()))
    print(f"tokens: this tokenizer {sum(map(len, ids['ours']))}, raw sentencepiece "
          f"{sum(map(len, ids['raw']))}, SubwordTextEncoder {sum(map(len, ids['subword']))}")

    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    print(f"\none core (CPU {cpu}), best of {FLAGS.repeats}:")
    times = timed_rounds({
        "encode: this tokenizer (encode)": (tok.encode, documents),
        "encode: this tokenizer (encode_document)": (tok.encode_document, documents),
        "encode: raw sentencepiece": (raw.encode, documents),
        "encode: SubwordTextEncoder": (subword.encode, documents),
        "decode: this tokenizer (plain ids)": (tok.decode, ids["ours"]),
        "decode: this tokenizer (document ids)": (tok.decode, ids["document"]),
        "decode: raw sentencepiece": (raw.decode, ids["raw"]),
        "decode: SubwordTextEncoder": (subword.decode, ids["subword"]),
    })
    print_rates(megabytes, times)
    print("  (ratios: median over rounds of paired times)")
    ours = "encode: this tokenizer (encode)"
    print_ratio(times, "encode this tokenizer / raw sentencepiece", ours,
                "encode: raw sentencepiece", "(goal >= 0.8)")
    print_ratio(times, "encode this tokenizer / SubwordTextEncoder", ours,
                "encode: SubwordTextEncoder", "(goal >= 5)")
    print_ratio(times, "encode_document / raw sentencepiece encode",
                "encode: this tokenizer (encode_document)", "encode: raw sentencepiece")
    print_ratio(times, "decode this tokenizer / raw sentencepiece",
                "decode: this tokenizer (plain ids)", "decode: raw sentencepiece")
    print_ratio(times, "decode this tokenizer / SubwordTextEncoder",
                "decode: this tokenizer (plain ids)", "decode: SubwordTextEncoder")


def tf_data(documents, megabytes, tok, cores):
    import tensorflow as tf
    from tokenizer.tf_ops import TFTokenizer

    print(f"\ntf.data encode_document, batches of 32, {len(cores)} cores (python engine: "
          f"sentencepiece on {len(cores)} C++ threads per call), best of {FLAGS.repeats}:")
    pipelines = {}
    for engine in ("tensorflow_text", "python"):
        encoder = TFTokenizer(tok, engine=engine, python_threads=len(cores))
        for parallel in (1, len(cores)):
            pipelines[f"{engine}, num_parallel_calls={parallel}"] = (
                tf.data.Dataset.from_tensor_slices(documents).batch(32)
                .map(encoder.encode_document, num_parallel_calls=parallel))
    for dataset in pipelines.values():  # warm up: trace and build the ops
        for _ in dataset:
            pass
    times = timed_rounds(
        {name: (lambda d: [None for _ in d], [dataset]) for name, dataset in pipelines.items()})
    print_rates(megabytes, times)
    n = len(cores)
    for engine in ("tensorflow_text", "python"):
        print_ratio(times, f"{engine}: {n} parallel calls / 1",
                    f"{engine}, num_parallel_calls={n}", f"{engine}, num_parallel_calls=1")
    print_ratio(times, f"tensorflow_text / python at {n} parallel calls",
                f"tensorflow_text, num_parallel_calls={n}", f"python, num_parallel_calls={n}")


def main(argv):
    del argv
    import tensorflow_datasets as tfds
    import tokenizer

    logging.set_verbosity(logging.WARNING)
    cores = os.sched_getaffinity(0)
    documents = load_documents()
    megabytes = sum(len(d.encode("utf-8")) for d in documents) / 1e6
    print(f"text: {len(documents)} documents, {megabytes:.2f} MB UTF-8; "
          f"target vocabulary {FLAGS.vocab_size}")
    start = time.perf_counter()
    tok = tokenizer.Tokenizer(tokenizer.train_model_proto(documents, FLAGS.vocab_size))
    print(f"train this tokenizer (sentencepiece unigram): {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    subword = tfds.deprecated.text.SubwordTextEncoder.build_from_corpus(
        documents, target_vocab_size=FLAGS.vocab_size)
    print(f"train SubwordTextEncoder: {time.perf_counter() - start:.1f} s, "
          f"vocab {subword.vocab_size}")
    single_core(documents, megabytes, tok, subword)
    os.sched_setaffinity(0, cores)
    tf_data(documents, megabytes, tok, cores)


if __name__ == "__main__":
    app.run(main)
