"""The package's one threading policy: how many BLAS threads and elementwise workers to use.

Two kinds of parallel work run during training and evaluation:

* **BLAS** (the GEMMs).  On the minibatch-sized products of this package, multi-threaded
  OpenBLAS is 5-70x *slower* than one thread when the cores are already taken by other processes
  (measured on a 2-core machine at load 3-10) and at most about 2x faster on idle cores.
  :func:`blas_threads` caps the BLAS pool: ``"auto"`` (training) uses one thread while the
  machine is busy and leaves BLAS alone otherwise; an integer (AIS, the demo) caps it always.
* **Elementwise updates** of the optimisers, split into cache-sized chunks over a small thread
  pool (numpy releases the GIL inside ufunc loops): :func:`chunked`.  Waking a worker on a busy
  machine costs more than it saves (~2 ms per step under a load of 9 on 2 cores), so workers are
  used only while a core is free.  Every element sees the same operations, so results never
  depend on the chunking or on the thread count.

"Busy" means the 1-minute load average leaves no core free; it is read at most every 2 s.
Environment overrides, which win over every call site: ``VPF_BLAS_THREADS=n`` (BLAS threads)
and ``VPF_THREADS=n`` (elementwise workers, at most 4).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ..errors import ConfigError

BLAS_ENV = "VPF_BLAS_THREADS"
ELEMENTWISE_ENV = "VPF_THREADS"
MAX_ELEMENTWISE = 4  # more workers than this only add wake-up cost on these array sizes
CHUNK = 1 << 16  # elements per piece: several passes over one piece stay in L2

_busy_cache = [-1e9, False]  # [time of the last load reading, busy?]
_pool = None
_pool_size = 0
_pool_lock = threading.Lock()


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def machine_busy() -> bool:
    """Whether the 1-minute load average leaves no core free (cached for 2 s)."""
    now = time.monotonic()
    if now - _busy_cache[0] > 2.0:
        try:
            _busy_cache[1] = os.getloadavg()[0] + 1 > cores()
        except (AttributeError, OSError):  # pragma: no cover - no load average here
            _busy_cache[1] = False
        _busy_cache[0] = now
    return _busy_cache[1]


def _env_count(name):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return max(1, int(raw))
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


def blas_threads(limit="auto"):
    """Context manager capping the BLAS thread pool while numerical work runs.

    Parameters
    ----------
    limit : "auto", int or None
        ``"auto"``: one thread while the machine is busy (:func:`machine_busy`), no cap
        otherwise; an int: at most that many threads; None: no cap.  ``VPF_BLAS_THREADS``
        overrides all three.  Without threadpoolctl nothing changes.
    """
    env = _env_count(BLAS_ENV)
    if env is not None:
        limit = env
    elif limit == "auto":
        limit = 1 if cores() > 1 and machine_busy() else None
    elif limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"BLAS thread limit must be 'auto', None or an integer >= 1, got {limit!r}")
    if limit is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=limit, user_api="blas")


def elementwise_threads() -> int:
    """Threads for :func:`chunked`: ``VPF_THREADS`` if set, else the free cores (at most 4), else 1."""
    env = _env_count(ELEMENTWISE_ENV)
    if env is not None:
        return min(MAX_ELEMENTWISE, env)
    return 1 if machine_busy() else min(MAX_ELEMENTWISE, cores())


def _get_pool(workers):
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vpf-elementwise")
            _pool_size = workers
        return _pool


def chunked(fn, *arrays) -> None:
    """Call ``fn(*pieces)`` on matching :data:`CHUNK`-sized pieces of same-shape arrays, in parallel.

    Arrays that are not C-contiguous (no flat view) or are small are processed whole.
    """
    n = arrays[0].size
    if n <= CHUNK or not all(a.flags.c_contiguous for a in arrays):
        fn(*arrays)
        return
    flat = [a.reshape(-1) for a in arrays]
    starts = list(range(0, n, CHUNK))

    def run(part):
        for i in part:
            fn(*(f[i:i + CHUNK] for f in flat))

    k = min(elementwise_threads(), len(starts))
    if k <= 1:
        run(starts)
        return
    parts = [starts[j::k] for j in range(k)]
    pool = _get_pool(k - 1)
    futures = [pool.submit(run, part) for part in parts[1:]]
    run(parts[0])
    for f in futures:
        f.result()


__all__ = ["blas_threads", "chunked", "cores", "elementwise_threads", "machine_busy", "BLAS_ENV",
           "ELEMENTWISE_ENV", "CHUNK"]
