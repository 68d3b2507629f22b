"""Prints how many malloc arenas 8 threads end up using, after capping them or not.

    python tests/helpers/arena_count.py cap|none
"""

import ctypes
import os
import sys
import tempfile
import threading

from tf_codistill.utils.allocator import cap_malloc_arenas

THREADS = 8


def arenas_in_use() -> int:
    """Threads that each allocate while all are alive, then glibc's malloc_info heap count."""
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = libc.fopen.restype = ctypes.c_void_p
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    all_allocated, report_written = threading.Barrier(THREADS + 1), threading.Barrier(THREADS + 1)

    def allocate():
        libc.malloc(1000)
        all_allocated.wait()
        report_written.wait()

    threads = [threading.Thread(target=allocate) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    all_allocated.wait()
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "malloc_info.xml")
        report = libc.fopen(path.encode(), b"w")
        libc.malloc_info(0, report)
        libc.fclose(report)
        report_written.wait()
        for thread in threads:
            thread.join()
        with open(path) as f:
            return f.read().count("<heap nr=")


if __name__ == "__main__":
    cap = cap_malloc_arenas(2) if sys.argv[1] == "cap" else None
    print(f"cap={cap} env={os.environ.get('MALLOC_ARENA_MAX')} arenas={arenas_in_use()}")
