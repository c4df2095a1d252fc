"""Peak memory of a MapEM fit on n=1e7, d=10, k=10 float64 data, relative to the data's size.

Each case runs in a fresh subprocess.  The data are written once to a ``.npy`` file on disk;
the child opens it either in memory (``np.load``) or as a ``numpy.memmap`` (``mmap_mode="r"``)
and fits a few EM iterations (the default k-means initialisation included).  Reported:

- ``rss_extra``: peak resident set size (``ru_maxrss``) minus the RSS after the imports, over
  the data's size (with a memmap, the data's pages that were read count in the RSS);
- ``numpy_peak``: the peak of NumPy allocations traced by ``tracemalloc`` during the fit, over
  the data's size (the data of the in-memory case excluded: it is loaded before tracing).

The goal of issue 6: the whole fit peaks under 1.3x the data, i.e. ``rss_extra < 1.3``.

    .venv/bin/python benchmarks/bench_memory.py [--n 10000000] [--iters 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time, tracemalloc, warnings
import numpy as np
from threadpoolctl import threadpool_info
import bayes_gmm
from bayes_gmm import MapEM

path, mode, iters = sys.argv[1], sys.argv[2], int(sys.argv[3])

def rss_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
base = rss_mb()
X = np.load(path, mmap_mode="r" if mode == "memmap" else None)
data_mb = X.nbytes / 2**20
tracemalloc.start()
t0 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    est = MapEM(10, max_iter=iters, tol=0.0, random_state=0).fit(X)
elapsed = time.perf_counter() - t0
_, traced_peak = tracemalloc.get_traced_memory()
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
blas = ",".join(f"{i['internal_api']}:{i['num_threads']}:{i.get('architecture')}" for i in threadpool_info())
print(json.dumps(dict(mode=mode, data_mb=data_mb, base_mb=base, peak_mb=peak_mb,
                      traced_mb=traced_peak / 2**20, seconds=elapsed, n_iter=int(est.n_iter_), blas=blas)))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--iters", type=int, default=3)
    args = parser.parse_args()
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "X.npy")
        rng = np.random.default_rng(0)
        X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(args.n, args.d))
        step = 1_000_000
        centers = rng.normal(scale=5.0, size=(10, args.d))
        for start in range(0, args.n, step):
            stop = min(start + step, args.n)
            X[start:stop] = centers[rng.integers(0, 10, stop - start)] + rng.normal(size=(stop - start, args.d))
        X.flush()
        del X
        print(f"# bench_memory  {datetime.date.today()}  {platform.node()}  {platform.processor() or platform.machine()}"
              f"  cores={os.cpu_count()}  n={args.n} d={args.d} k=10 float64, {args.iters} EM iterations + the default k-means init")
        print(f"{'input':8s} {'data MB':>9s} {'peak RSS-base MB':>17s} {'rss_extra':>10s} {'numpy peak MB':>14s} {'numpy_peak':>11s} {'seconds':>8s}  blas")
        for mode in ("memory", "memmap"):
            out = subprocess.run([sys.executable, "-c", CHILD, path, mode, str(args.iters)],
                                 check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            extra = r["peak_mb"] - r["base_mb"]
            print(f"{mode:8s} {r['data_mb']:9.0f} {extra:17.0f} {extra / r['data_mb']:10.3f} "
                  f"{r['traced_mb']:14.1f} {r['traced_mb'] / r['data_mb']:11.3f} {r['seconds']:8.1f}  {r['blas']}")


if __name__ == "__main__":
    main()
