"""The stacked train step for streamed batches: `engine.build_fns(..., inputs="batch")`'s step.

    train_fn = stream_step.build_train_fn(graphdef, optimizer_spec, mesh, mode, backend)
    x, y = next(pipeline.device_prefetch(batches_iter, place.batch_index))  # [members, B, ...]
    state, metrics = train_fn(state, dropout_seeds, x, y, jnp.int32(step))

Kept as a name for callers that only want the train step (benchmarks, tests); the jobs call
`engine.build_fns(..., inputs="batch")`, which also gives them the eval step. The step is the
one `engine.build_fns` builds for indices without the on-device gather: the same per-member
step, the same dropout keys, the same `seed_parallel` modes and shardings, so a member trained
from the stream equals the member trained from indices.
"""

from __future__ import annotations

from jax.sharding import Mesh

from jtransfer.train import engine


def build_train_fn(graphdef, optimizer_spec: tuple, mesh: Mesh, mode: str, backend: str):
  """train_fn(state, dropout_seeds, x, y, step) -> (state, metrics); `state` donated.

  x [members, B, ...] and y [members, B] are placed like `engine.placement(...).batch_index`:
  members over the `model` axis in mode "devices", else the batch over `data`.
  """
  return engine.build_fns(graphdef, optimizer_spec, mesh, mode, backend, inputs="batch")[0]
