"""The stacked train step for streamed batches: `engine.build_fns`'s train step, fed the batch.

    train_fn = stream_step.build_train_fn(graphdef, optimizer_spec, mesh, mode, backend)
    x, y = next(pipeline.device_prefetch(batches_iter, place.batch_index))  # [members, B, ...]
    state, metrics = train_fn(state, dropout_seeds, x, y, jnp.int32(step))

`engine.build_fns`' step takes `[members, batch]` indices and gathers the rows from a training
set resident on the devices; this one takes the rows themselves (from
`jtransfer.data.pipeline.train_batches`), so the training set never has to fit on a device.
Everything else is the same: the same per-member step (`step.make_train_step`), the same
dropout keys (member seed, `engine._DROPOUT_STREAM`, step), the same `seed_parallel` modes and
shardings, so a member trained from the stream equals the member trained from indices.
Kept apart from `engine` while that module is refactored; it belongs in `engine.build_fns` as an
`inputs="indices" | "batch"` option.
"""

from __future__ import annotations

import functools

import jax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jtransfer.train import engine, optim
from jtransfer.train import step as step_lib


@functools.lru_cache(maxsize=16)
def build_train_fn(graphdef, optimizer_spec: tuple, mesh: Mesh, mode: str, backend: str):
  """train_fn(state, dropout_seeds, x, y, step) -> (state, metrics); `state` donated.

  x [members, B, ...] and y [members, B] are placed like `engine.placement(...).batch_index`:
  members over the `model` axis in mode "devices", else the batch over `data`.
  """
  name, kwargs = optimizer_spec
  one_step = step_lib.make_train_step(graphdef, optim.make_optimizer(name, **dict(kwargs)))

  def member_train(params, rest, opt_state, seed, x, y, step):
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), engine._DROPOUT_STREAM), step)
    return one_step(params, rest, opt_state, x, y, key)

  def local_train(loop, state, dropout_seeds, x, y, step):
    params, rest, opt_state, metrics = step_lib.over_seeds(
      lambda p, r, o, s, xx, yy: member_train(p, r, o, s, xx, yy, step), loop
    )(state["params"], state["rest"], state["opt_state"], dropout_seeds, x, y)
    return {"params": params, "rest": rest, "opt_state": opt_state}, metrics

  if mode == "devices":
    loop = "unroll" if backend == "cpu" else "vmap"
    train = jax.shard_map(
      lambda *a: local_train(loop, *a),
      mesh=mesh,
      in_specs=(P("model"), P("model"), P("model"), P("model"), P()),
      out_specs=(P("model"), P("model")),
      check_vma=False,  # every value is per-device; no collectives to check
    )
    return jax.jit(train, donate_argnums=0)
  loop = "vmap" if mode == "vmap" else "unroll"
  replicated = NamedSharding(mesh, P())
  return jax.jit(
    lambda *a: local_train(loop, *a), donate_argnums=0, out_shardings=(replicated, replicated)
  )
