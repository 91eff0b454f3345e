"""The BLAS thread pool during jitted score passes: one thread by default.

On CPU, XLA runs its own thread pool and calls the LAPACK behind NumPy/SciPy (OpenBLAS) for
eigh and Cholesky; OpenBLAS then starts one thread per core of its own, and the two pools fight
over the cores (BENCHMARKS.md, "Numbers from the docstrings"). `blas_threads()` limits every loaded
BLAS to `JTRANSFER_BLAS_THREADS` threads (default 1; 0 leaves them alone) while a pass runs and
waits for its results, then restores the previous setting.
"""

from __future__ import annotations

import contextlib
import os

import jax
from threadpoolctl import threadpool_limits


def _limit() -> int:
  value = os.environ.get("JTRANSFER_BLAS_THREADS", "1")
  try:
    limit = int(value)
  except ValueError:
    raise ValueError(f"JTRANSFER_BLAS_THREADS must be an integer ≥ 0, got {value!r}") from None
  if limit < 0:
    raise ValueError(f"JTRANSFER_BLAS_THREADS must be an integer ≥ 0, got {value!r}")
  return limit


@contextlib.contextmanager
def blas_threads(platform: str | None = None):
  """Limit the BLAS pool on CPU around a jitted pass (block on its results inside)."""
  limit = _limit()
  if limit == 0 or (platform or jax.default_backend()) != "cpu":
    yield
    return
  with threadpool_limits(limits=limit, user_api="blas"):
    yield
