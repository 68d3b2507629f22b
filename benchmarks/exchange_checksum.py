"""Cost of the checkpoint checksum: CRC32C (google-crc32c) vs SHA-256 vs zlib's CRC32.

Every publish checksums the files it wrote and every reload checksums the files it read, so the
checksum runs over the whole model twice per exchange. Prints throughput and the time each takes
for one float32 checkpoint of the paper's LM (44.4M parameters, 178 MB), best of 5 runs.

  python benchmarks/exchange_checksum.py [--megabytes=178]
"""
import hashlib
import os
import time
import zlib

from absl import app, flags
import google_crc32c

_MEGABYTES = flags.DEFINE_integer("megabytes", 178, "Size of the checksummed buffer.")

CHECKSUMS = {
    "crc32c (google-crc32c)": google_crc32c.value,
    "sha256 (hashlib)": lambda data: hashlib.sha256(data).digest(),
    "crc32 (zlib)": zlib.crc32,
}


def best_seconds(function, data: bytes, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function(data)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv):
    del argv
    data = os.urandom(_MEGABYTES.value * 10**6)
    seconds = {name: best_seconds(fn, data) for name, fn in CHECKSUMS.items()}
    baseline = seconds["crc32c (google-crc32c)"]
    print(f"{_MEGABYTES.value} MB buffer (google-crc32c implementation: "
          f"{google_crc32c.implementation})")
    print(f"{'checksum':>24} {'GB/s':>6} {'seconds':>8} {'x crc32c time':>14}")
    for name, s in seconds.items():
        print(f"{name:>24} {len(data) / s / 1e9:6.2f} {s:8.3f} {s / baseline:14.2f}")


if __name__ == "__main__":
    app.run(main)
