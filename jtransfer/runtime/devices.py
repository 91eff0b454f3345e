"""Splits the host CPU into several XLA devices, so stacked seeds and fine-tune groups run at once.

  devices.request_cpu_devices(4)   # before any JAX computation; a no-op for n = 0

Used by every launcher (a study config's `cpu_devices`) and the benchmarks. It sets JAX's
`jax_num_cpu_devices`, which only changes the CPU backend (a GPU/TPU host keeps its devices).
A count the user already chose with `XLA_FLAGS=--xla_force_host_platform_device_count=N` wins.
"""

from __future__ import annotations

import os

_XLA_FLAG = "xla_force_host_platform_device_count"


def request_cpu_devices(n: int | None) -> bool:
  """Asks JAX for `n` CPU devices; returns whether this call set the count.

  n = 0 or None: nothing (JAX's default, one CPU device). Raises ValueError for a negative or
  non-integer n, and RuntimeError (JAX's) when a backend already started with another count.
  """
  if n is None or n == 0:
    return False
  if isinstance(n, bool) or not isinstance(n, int) or n < 0:
    raise ValueError(f"cpu_devices must be a non-negative int, got {n!r}")
  if _XLA_FLAG in os.environ.get("XLA_FLAGS", ""):
    return False  # the user's (or the test harness's) explicit choice
  import jax  # noqa: PLC0415

  jax.config.update("jax_num_cpu_devices", n)
  return True
