"""WET input pipeline: throughput on one core against training's appetite, and flat memory.

One run generates a synthetic Common Crawl-framed corpus (--input_mb of gzipped WET, one
gzip member per record), then in child processes pinned to one core runs read -> filter ->
tokenize -> stateful batches (the tf.data dataset training uses) over a tenth of it and over
all of it, and prints side by side: MB/s of WET, tokens/s, the ratio to the tokens/s the
CPU-sized LM consumes (--train_tokens_per_s, DESIGN.md: ~4,000), and peak / sampled RSS.

    python benchmarks/wet_pipeline.py [--input_mb=1024] [--vocab=PATH]

Without --vocab, a word-hashing stand-in encoder is used (the project tokenizer is built
separately); pass --vocab to measure with `tokenizer.load(PATH)`.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import resource
import subprocess
import sys
import time
import zlib

from absl import app, flags

_INPUT_MB = flags.DEFINE_integer("input_mb", 1024, "Compressed WET to generate and read.")
_FILE_MB = flags.DEFINE_integer("file_mb", 64, "Size of each generated file.")
_WORK_DIR = flags.DEFINE_string("work_dir", "/tmp/wet_pipeline_bench", "Generated files.")
_TRAIN_TOKENS = flags.DEFINE_float("train_tokens_per_s", 4000.0,
                                   "Tokens/s the CPU-sized LM consumes in training.")
_VOCAB = flags.DEFINE_string("vocab", None, "Tokenizer file; default: stand-in encoder.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Rows (document streams) per batch.")
_CHILD = flags.DEFINE_string("child", None, "Internal: JSON list of files to measure.")


class HashingEncoder:
    """Stand-in for the word-piece tokenizer: one id per whitespace word, 24k ids."""
    eod_id = 1

    def encode_document(self, text):
        return [2 + zlib.crc32(w.encode()) % 24000 for w in text.split()]


def _generate(args):
    path, seed, target_bytes = args
    from data_pipelines import synthetic_wet
    if os.path.exists(path) and os.path.getsize(path) >= target_bytes:
        return path
    tmp = path + ".part"
    with open(tmp, "wb") as out:
        synthetic_wet.write_members(out, [synthetic_wet.warcinfo_record(path)], True)
        doc_iter = synthetic_wet.synthetic_documents(seed, 10**9)
        while out.tell() < target_bytes:
            batch = [synthetic_wet.frame_record(**next(doc_iter)) for _ in range(200)]
            synthetic_wet.write_members(out, batch, True)
    os.replace(tmp, path)
    return path


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _measure(files: list[str]) -> dict:
    """Runs in a child pinned to one core: the training dataset over `files`, once."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import tensorflow as tf
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    from data_pipelines import training_data, wet
    if _VOCAB.value:
        import tokenizer
        encoder = tokenizer.load(_VOCAB.value)
    else:
        encoder = HashingEncoder()
    stats = wet.ReadStats()
    ds = training_data.build_training_dataset(files, encoder, per_replica_batch_size=_BATCH.value,
                                              validation_fraction=0.0, num_epochs=1,
                                              stats=stats)
    samples, batches = [], 0
    start = time.perf_counter()
    for _ in ds:
        batches += 1
        if batches % 2000 == 0:
            samples.append(round(_rss_mb(), 1))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "batches": batches, "tokens": stats.tokens,
            "documents_kept": stats.documents_kept, "records_read": stats.records_read,
            "rss_samples_mb": samples,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_child(files: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, f"--child={json.dumps(files)}",
                          f"--batch_size={_BATCH.value}"]
                         + ([f"--vocab={_VOCAB.value}"] if _VOCAB.value else []),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _uncompressed_mb(files: list[str]) -> float:
    total = 0
    for path in files:
        with open(path, "rb") as f:
            inflater = zlib.decompressobj(wbits=31)
            while chunk := f.read(1 << 22):
                while chunk:
                    total += len(inflater.decompress(chunk))
                    chunk = inflater.unused_data
                    if inflater.eof:
                        inflater = zlib.decompressobj(wbits=31)
    return total / 2**20


def main(argv):
    del argv
    if _CHILD.value:
        print(json.dumps(_measure(json.loads(_CHILD.value))))
        return
    os.makedirs(_WORK_DIR.value, exist_ok=True)
    count = max(1, _INPUT_MB.value // _FILE_MB.value)
    jobs = [(os.path.join(_WORK_DIR.value, f"CC-SYNTH-{i:05d}.warc.wet.gz"), i,
             _FILE_MB.value * 2**20) for i in range(count)]
    start = time.perf_counter()
    with multiprocessing.Pool(os.cpu_count()) as pool:
        files = pool.map(_generate, jobs)
    print(f"corpus: {count} files, {sum(map(os.path.getsize, files)) / 2**20:.0f} MB gzipped "
          f"WET ({time.perf_counter() - start:.0f} s to generate or reuse)")
    encoder = (f"tokenizer.load({_VOCAB.value})" if _VOCAB.value
               else "stand-in word hashing (pass --vocab for the real tokenizer)")
    print(f"encoder: {encoder}")
    rows = []
    for subset in (files[: max(1, count // 10)], files):
        result = _run_child(subset)
        gz_mb = sum(map(os.path.getsize, subset)) / 2**20
        text_mb = _uncompressed_mb(subset)
        tokens_per_s = result["tokens"] / result["seconds"]
        rows.append((gz_mb, text_mb, result, tokens_per_s))
        print(f"\ninput {gz_mb:7.0f} MB gz ({text_mb:.0f} MB WET) on one core: "
              f"{result['seconds']:.1f} s, {result['records_read']} records, "
              f"{result['documents_kept']} documents kept, {result['batches']} batches")
        print(f"  throughput: {gz_mb / result['seconds']:.1f} MB/s gzipped WET, "
              f"{text_mb / result['seconds']:.1f} MB/s uncompressed WET, "
              f"{tokens_per_s:,.0f} tokens/s")
        print(f"  pipeline tokens/s / training tokens/s ({_TRAIN_TOKENS.value:,.0f}): "
              f"{tokens_per_s / _TRAIN_TOKENS.value:.1f}x")
        samples = result["rss_samples_mb"] or [result["peak_rss_mb"]]
        print(f"  memory: peak RSS {result['peak_rss_mb']:.0f} MB; RSS sampled every 2000 "
              f"batches ({len(samples)} samples): first {samples[0]} MB, "
              f"min {min(samples)} MB, max {max(samples)} MB, last {samples[-1]} MB")
    (small_mb, _, small, _), (big_mb, _, big, _) = rows
    print(f"\ninput grew {big_mb / small_mb:.1f}x; peak RSS grew "
          f"{big['peak_rss_mb'] / small['peak_rss_mb']:.2f}x "
          f"({small['peak_rss_mb']:.0f} MB -> {big['peak_rss_mb']:.0f} MB)")


if __name__ == "__main__":
    app.run(main)
