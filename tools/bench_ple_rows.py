"""What reading the per-layer-embedding (PLE) rows of a prompt's tokens costs, and what it keeps resident.

After loading, the engine drops the PLE table from the page cache and marks it MADV_RANDOM
(model_io.memory_usage.ModelFootprint), so a token's row costs a few small pages instead of a
large read-ahead folio.  Each new token's row must then come from disk; the engine asks for a
batch's rows all at once (MADV_WILLNEED) before llama.cpp reads them.  This script measures the
three ways of reading N random distinct rows of a GGUF's PLE table through a shared mapping:

* evicted, faulted one by one (what llama.cpp's get_rows would do without the prefetch);
* evicted, prefetched with MADV_WILLNEED, then read (what the engine does);
* page cache hot (the table cached, as before the eviction);

and, for the prefetched case, the bytes of the table mapped into this process afterwards.

    python tools/bench_ple_rows.py MODEL.gguf [--rows 512]
"""

from __future__ import annotations

import argparse
import mmap
import os
import random
import sys
import time
from pathlib import Path


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from model_io.gguf_check import validate_gguf
    from model_io.memory_usage import PLE_TENSOR, evict_from_page_cache, file_mappings, resident_in_file_range

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path)
    parser.add_argument("--rows", type=int, default=512)
    args = parser.parse_args()
    table = next(t for t in validate_gguf(args.model, expect="text").tensors if t.name == PLE_TENSOR)
    row = table.n_bytes // table.shape[1]
    tokens = random.Random(0).sample(range(table.shape[1]), args.rows)
    starts = [table.offset + token * row for token in tokens]
    page = mmap.PAGESIZE
    with open(args.model, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        view.madvise(mmap.MADV_RANDOM, table.offset // page * page, table.n_bytes)

        def read_rows() -> float:
            started = time.perf_counter()
            for start in starts:
                _ = view[start : start + row : page], view[start + row - 1]
            return time.perf_counter() - started

        def prefetch() -> None:
            for start in starts:
                aligned = start // page * page
                view.madvise(mmap.MADV_WILLNEED, aligned, start + row - aligned)

        evict_from_page_cache(args.model, table.offset, table.offset + table.n_bytes)
        one_by_one = read_rows()
        view.madvise(mmap.MADV_DONTNEED, 0, len(view))
        evict_from_page_cache(args.model, table.offset, table.offset + table.n_bytes)
        started = time.perf_counter()
        prefetch()
        prefetched = time.perf_counter() - started + read_rows()
        resident = resident_in_file_range(
            file_mappings(args.model), table.offset, table.offset + table.n_bytes
        )
        hot = read_rows()
    n, load = args.rows, os.getloadavg()[0]
    mapped = (resident or 0) / 1024
    print(f"{args.model.name}: {n} random distinct PLE rows of {row:,} bytes; load average {load:.2f}")
    print(f"  evicted, one by one:        {one_by_one * 1000:8.1f} ms ({one_by_one / n * 1e6:6.0f} us/row)")
    print(f"  evicted, prefetched:        {prefetched * 1000:8.1f} ms ({prefetched / n * 1e6:6.0f} us/row)")
    print(f"  page cache hot:             {hot * 1000:8.1f} ms ({hot / n * 1e6:6.0f} us/row)")
    print(f"  mapped in afterwards:       {mapped:8.0f} KiB ({mapped / n:.1f} KiB/row)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
