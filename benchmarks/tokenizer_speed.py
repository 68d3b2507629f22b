"""Encode/decode throughput: this tokenizer vs raw sentencepiece vs SubwordTextEncoder.

One run, the same documents, the same vocabulary size for all three. The single-core part pins
the process to one CPU. The tf.data part compares the in-graph encoder (tensorflow-text op)
with the Python tokenizer wrapped in tf.py_function, both under a parallel map on all cores.

    python benchmarks/tokenizer_speed.py [--input=files] [--vocab_size=8000]
"""
import os
import time

from absl import app, flags, logging

flags.DEFINE_list("input", None, "Text or WET files; default: Python standard library "
                  "docstrings (offline English prose).")
flags.DEFINE_integer("max_chars", 1_200_000, "Characters of text to use.")
flags.DEFINE_integer("vocab_size", 8000, "Vocabulary size for every tokenizer.")
flags.DEFINE_integer("repeats", 10, "Timed passes; the best one counts.")
FLAGS = flags.FLAGS


def load_documents():
    from tokenizer import sample_text, sources
    if FLAGS.input:
        documents, total = [], 0
        for document in sources.documents_from_files(sources.expand_inputs(FLAGS.input)):
            documents.append(document)
            total += len(document)
            if total >= FLAGS.max_chars:
                break
        return documents
    return list(sample_text.stdlib_docstrings(max_chars=FLAGS.max_chars))


def best_seconds(candidates):
    """Best time of each candidate over interleaved rounds, so load from other processes on
    the machine hits all of them alike."""
    best = {name: float("inf") for name in candidates}
    for _ in range(FLAGS.repeats):
        for name, (fn, items) in candidates.items():
            start = time.perf_counter()
            for item in items:
                fn(item)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main(argv):
    del argv
    import tensorflow as tf
    import tensorflow_datasets as tfds
    import tokenizer
    from tokenizer.tf_ops import TFTokenizer

    logging.set_verbosity(logging.WARNING)
    documents = load_documents()
    megabytes = sum(len(d.encode("utf-8")) for d in documents) / 1e6
    print(f"text: {len(documents)} documents, {megabytes:.2f} MB UTF-8; "
          f"target vocabulary {FLAGS.vocab_size}")

    start = time.perf_counter()
    tok = tokenizer.Tokenizer(tokenizer.train_model_proto(documents, FLAGS.vocab_size))
    print(f"train sentencepiece (this tokenizer's model): {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    subword = tfds.deprecated.text.SubwordTextEncoder.build_from_corpus(
        documents, target_vocab_size=FLAGS.vocab_size)
    print(f"train SubwordTextEncoder: {time.perf_counter() - start:.1f} s, "
          f"vocab {subword.vocab_size}")
    raw = tok.sentencepiece

    # -- one core ---------------------------------------------------------------------------
    all_cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(all_cpus)})
    ours_ids = [tok.encode(d) for d in documents]
    doc_ids = [tok.encode_document(d) for d in documents]
    raw_ids = [raw.encode(d) for d in documents]
    subword_ids = [subword.encode(d) for d in documents]
    lossy = {name: sum(decode(i) != d for i, d in zip(ids, documents)) for name, decode, ids in
             [("this tokenizer", tok.decode, doc_ids), ("raw sentencepiece", raw.decode, raw_ids),
              ("SubwordTextEncoder", subword.decode, subword_ids)]}
    print("documents not restored exactly by decode(encode(.)): "
          + ", ".join(f"{name} {count}/{len(documents)}" for name, count in lossy.items()))
    tokens = {name: sum(map(len, ids)) for name, ids in
              [("ours", ours_ids), ("raw", raw_ids), ("subword", subword_ids)]}

    rates = best_seconds({
        "encode: this tokenizer (encode)": (tok.encode, documents),
        "encode: this tokenizer (encode_document)": (tok.encode_document, documents),
        "encode: raw sentencepiece": (raw.encode, documents),
        "encode: SubwordTextEncoder": (subword.encode, documents),
        "decode: this tokenizer (plain ids)": (tok.decode, ours_ids),
        "decode: this tokenizer (document ids)": (tok.decode, doc_ids),
        "decode: raw sentencepiece": (raw.decode, raw_ids),
        "decode: SubwordTextEncoder": (subword.decode, subword_ids),
    })
    print(f"\none core (CPU {min(all_cpus)}), best of {FLAGS.repeats}:")
    for name, seconds in rates.items():
        print(f"  {name:45s} {megabytes / seconds:8.2f} MB/s")
    mbps = {name: megabytes / seconds for name, seconds in rates.items()}
    ours, raw_rate = mbps["encode: this tokenizer (encode)"], mbps["encode: raw sentencepiece"]
    print(f"  ratio encode ours/raw sentencepiece:       {ours / raw_rate:6.2f}x (goal >= 0.8)")
    print(f"  ratio encode ours/SubwordTextEncoder:      "
          f"{ours / mbps['encode: SubwordTextEncoder']:6.2f}x (goal >= 5)")
    print(f"  ratio encode_document/raw sentencepiece:   "
          f"{mbps['encode: this tokenizer (encode_document)'] / raw_rate:6.2f}x")
    print(f"  ratio decode ours/raw sentencepiece:       "
          f"{mbps['decode: this tokenizer (plain ids)'] / mbps['decode: raw sentencepiece']:6.2f}x")
    print(f"  ratio decode ours/SubwordTextEncoder:      "
          f"{mbps['decode: this tokenizer (plain ids)'] / mbps['decode: SubwordTextEncoder']:6.2f}x")
    print(f"  tokens: ours {tokens['ours']}, raw sentencepiece {tokens['raw']}, "
          f"SubwordTextEncoder {tokens['subword']}")

    # -- tf.data, all cores -----------------------------------------------------------------
    os.sched_setaffinity(0, all_cpus)
    print(f"\ntf.data encode_document, batches of 32, {len(all_cpus)} cores available "
          f"(python engine: sentencepiece on {len(all_cpus)} C++ threads per call):")
    pipelines = {}
    for engine in ("tensorflow_text", "python"):
        graph = TFTokenizer(tok, engine=engine, python_threads=len(all_cpus))
        for parallel in (1, len(all_cpus)):
            pipelines[f"{engine}, num_parallel_calls={parallel}"] = (
                tf.data.Dataset.from_tensor_slices(documents).batch(32)
                .map(graph.encode_document, num_parallel_calls=parallel))
    for dataset in pipelines.values():  # warm up: trace and build the ops
        for _ in dataset:
            pass
    seconds = best_seconds({name: (lambda d: [None for _ in d], [dataset])
                            for name, dataset in pipelines.items()})
    rate = {name: megabytes / s for name, s in seconds.items()}
    for name in pipelines:
        print(f"  {name:45s} {rate[name]:8.2f} MB/s")
    for engine in ("tensorflow_text", "python"):
        scaling = rate[f"{engine}, num_parallel_calls={len(all_cpus)}"] / rate[
            f"{engine}, num_parallel_calls=1"]
        print(f"  {engine} speed-up from {len(all_cpus)} parallel calls: {scaling:.2f}x")
    n = len(all_cpus)
    print(f"  ratio tensorflow_text/python at {n} parallel calls: "
          f"{rate[f'tensorflow_text, num_parallel_calls={n}'] / rate[f'python, num_parallel_calls={n}']:.2f}x")


if __name__ == "__main__":
    app.run(main)
