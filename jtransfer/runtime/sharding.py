"""Device mesh helpers: data parallelism with `jax.jit` over a `Mesh` and `NamedSharding`s.

  maybe_initialize_distributed(...)          # multi-host: before any other JAX call
  mesh = make_mesh()                         # 1-D ("data",) over every device
  params = jax.device_put(params, replicated(mesh))
  batch = shard_batch({"image": x, "label": y}, mesh)   # leading axis split over "data"
  step = jax.jit(step_fn)                    # shardings flow from the arguments

On several hosts each process passes its own slice of the global batch to `shard_batch`
(its `process_local` rows); the global batch is that times `jax.process_count()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


def maybe_initialize_distributed(
  coordinator: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
  *,
  auto: bool = False,
  timeout_s: int | None = None,
) -> bool:
  """Calls `jax.distributed.initialize` when configured; returns whether it did.

  Configured means: all three of `coordinator` ("host:port"), `num_processes`, `process_id`
  given, or `auto=True` (let JAX detect TPU pods / SLURM / Open MPI). Nothing given -> single
  process, no call. Calling it again after initialisation is a no-op. `timeout_s`: how long a
  process waits for the others to join and for a silent one's heartbeat before JAX stops it
  (None: JAX's 300 s to join, 100 s for heartbeats).
  """
  given = [v is not None for v in (coordinator, num_processes, process_id)]
  if any(given) and not all(given):
    raise ValueError(
      "give all of coordinator, num_processes and process_id (or none, or auto=True); got "
      f"coordinator={coordinator!r}, num_processes={num_processes!r}, process_id={process_id!r}"
    )
  if not any(given) and not auto:
    return False
  if jax.distributed.is_initialized():
    return False
  timeouts = {}
  if timeout_s is not None:
    if timeout_s < 1:
      raise ValueError(f"the distributed timeout must be >= 1 s, got {timeout_s}")
    timeouts = dict(initialization_timeout=int(timeout_s), heartbeat_timeout_seconds=int(timeout_s))
  if all(given):
    jax.distributed.initialize(
      coordinator_address=coordinator, num_processes=num_processes, process_id=process_id,
      **timeouts,
    )  # fmt: skip
  else:
    jax.distributed.initialize(**timeouts)
  return True


def make_mesh(
  axis_names: Sequence[str] = ("data",),
  devices: Sequence[jax.Device] | None = None,
  *,
  shape: Sequence[int] | None = None,
) -> Mesh:
  """A mesh over `devices` (default: all devices of all processes).

  With one axis name the mesh is 1-D over every device. With several, give `shape` (one `-1`
  allowed, filled in), e.g. `make_mesh(("data", "model"), shape=(-1, 2))`.
  """
  axis_names = tuple(axis_names)
  devices = list(jax.devices() if devices is None else devices)
  if not devices:
    raise ValueError("make_mesh needs at least one device")
  if len(set(axis_names)) != len(axis_names) or not axis_names:
    raise ValueError(f"axis_names must be non-empty and unique, got {axis_names}")
  if shape is None:
    if len(axis_names) != 1:
      raise ValueError(f"give shape= for a {len(axis_names)}-axis mesh {axis_names}")
    shape = (len(devices),)
  shape = list(shape)
  if len(shape) != len(axis_names) or shape.count(-1) > 1:
    raise ValueError(f"shape {shape} does not fit axis_names {axis_names} (at most one -1)")
  if -1 in shape:
    known = int(np.prod([s for s in shape if s != -1]))
    if known < 1 or len(devices) % known:
      raise ValueError(f"{len(devices)} devices cannot be split into mesh shape {shape}")
    shape[shape.index(-1)] = len(devices) // known
  if int(np.prod(shape)) != len(devices):
    raise ValueError(
      f"mesh shape {tuple(shape)} needs {int(np.prod(shape))} devices, got {len(devices)}"
    )
  return Mesh(np.asarray(devices, dtype=object).reshape(shape), axis_names)


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array (params, optimiser state)."""
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh, axis: str = "data") -> NamedSharding:
  """The leading axis split over mesh axis `axis`; other axes whole."""
  if axis not in mesh.axis_names:
    raise ValueError(f"mesh has no axis {axis!r}; axes: {mesh.axis_names}")
  return NamedSharding(mesh, P(axis))


def shard_batch(batch: Any, mesh: Mesh, axis: str = "data") -> Any:
  """Host arrays (a pytree; this process's rows) -> global arrays split on the leading axis.

  The leading size must be divisible by the number of this process's devices along `axis`.
  """
  sharding = batch_sharded(mesh, axis)
  local_parts = mesh.local_mesh.shape[axis]

  def put(x):
    x = np.asarray(x)
    if x.ndim == 0:
      raise ValueError("shard_batch needs arrays with a leading batch axis, got a scalar")
    if x.shape[0] % local_parts:
      raise ValueError(
        f"batch size {x.shape[0]} is not divisible by the {local_parts} local devices on mesh "
        f"axis {axis!r}; pick a batch size that is a multiple of {local_parts}"
      )
    return jax.make_array_from_process_local_data(sharding, x)

  return jax.tree.map(put, batch)
