"""Activations of many checkpoints of one architecture on one probe, in one jitted pass.

  graphdef, params, rest = ...                 # params / rest stacked on a leading model axis
  acts = extract(graphdef, params, rest, probe_x, taps=("pool2", "fc1"), batch_size=250)
  acts["pool2"]                                # [M, N, 1600] float32 (NumPy), flattened per sample

Each probe mini-batch goes through ONE jitted function that runs the M stacked models and
returns every requested tap at once (flattened to [N, D] per model, in the model's NHWC order;
every score is invariant to a fixed permutation of feature columns). The last mini-batch is
padded to the batch size so the function compiles once per (graphdef, taps, batch shape).

How the M models share the device (`parallel`, the modes of `jtransfer.runtime.stacking`):
- "vmap": the model axis is vmapped (one batched forward pass). Fastest on GPU/TPU.
- "loop" (old name "map", still accepted): the models run one after another inside the same
  jitted call (`jax.lax.map`), so every convolution stays un-batched. XLA:CPU lowers vmapped
  convolutions over stacked kernels to slow grouped convolutions; on CPU this is the faster
  choice (see BENCHMARKS.md).
- "auto": `stacking.resolve` on one device: "vmap" on GPU/TPU, on CPU "loop" for several
  models and "vmap" for one (with one model the two are the same forward pass).
Extraction runs on one device, so "devices" is not available. Every mode gives the same
numbers as running each model alone (`extract_one`), up to float rounding.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jtransfer.models import functional
from jtransfer.runtime import stacking

PARALLEL = ("auto", "vmap", "loop", "map")  # "map": the old name of "loop"
_SUPPORTED = ("vmap", "loop")


def resolve_parallel(parallel: str, backend: str | None = None, members: int = 2) -> str:
  """ "vmap" or "loop" for `parallel` on one device (`stacking.resolve`)."""
  return stacking.resolve(
    parallel,
    backend=backend or jax.default_backend(),
    members=members,
    supported=_SUPPORTED,
    name="parallel",
  )


def _one_model(graphdef, taps: tuple[str, ...]):
  """(params, rest, x) -> {tap: [B, D] float32} for one model (eval mode: no dropout)."""

  def fn(params, rest, x):
    out, _ = functional.apply(graphdef, params, rest, x, taps=taps)
    return {t: jnp.reshape(out[t], (x.shape[0], -1)).astype(jnp.float32) for t in taps}

  return fn


@functools.lru_cache(maxsize=64)
def _jitted(graphdef, taps: tuple[str, ...], parallel: str | None):
  one = _one_model(graphdef, taps)
  if parallel is None:
    return jax.jit(one)
  if parallel == "vmap":
    return jax.jit(jax.vmap(one, in_axes=(0, 0, None)))

  def mapped(params, rest, x):
    return jax.lax.map(lambda pr: one(pr[0], pr[1], x), (params, rest))

  return jax.jit(mapped)


def _check_taps(taps) -> tuple[str, ...]:
  if isinstance(taps, str):
    taps = (taps,)
  taps = tuple(dict.fromkeys(taps))
  if not taps:
    raise ValueError("taps is empty; name at least one tap")
  return taps


def _num_models(stacked_params) -> int:
  sizes = {np.shape(x)[0] if np.ndim(x) else None for x in jax.tree.leaves(stacked_params)}
  if len(sizes) != 1 or None in sizes:
    raise ValueError(f"stacked params need one common leading model axis, got sizes {sizes}")
  (m,) = sizes
  if m < 1:
    raise ValueError("stacked params hold no model (leading axis of size 0)")
  return m


def _check_inputs(inputs, batch_size: int) -> np.ndarray:
  x = np.asarray(inputs)
  if x.ndim < 2 or x.shape[0] == 0:
    raise ValueError(f"inputs must be a non-empty batch [N, ...], got shape {x.shape}")
  if not np.issubdtype(x.dtype, np.floating):
    raise ValueError(f"inputs must be floating point (normalised), got {x.dtype}")
  if not np.all(np.isfinite(x)):
    raise ValueError("inputs contain NaN or Inf values")
  if int(batch_size) != batch_size or batch_size < 1:
    raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
  return x


def _batches(x: np.ndarray, batch_size: int):
  """(start, size, padded batch) over x; the last batch is padded with copies of row 0."""
  bs = min(int(batch_size), x.shape[0])
  for start in range(0, x.shape[0], bs):
    chunk = x[start : start + bs]
    size = chunk.shape[0]
    if size < bs:
      chunk = np.concatenate([chunk, np.repeat(x[:1], bs - size, axis=0)])
    yield start, size, chunk


def tap_dims(graphdef, params, rest, input_shape: Sequence[int], taps) -> dict[str, int]:
  """{tap: flattened size D} of ONE model (unstacked params) for inputs of `input_shape`."""
  taps = _check_taps(taps)
  x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
  shapes = jax.eval_shape(_one_model(graphdef, taps), params, rest, x)
  return {t: int(math.prod(s.shape[1:])) for t, s in shapes.items()}


def extract(
  graphdef,
  stacked_params,
  stacked_rest,
  inputs,
  *,
  taps: Sequence[str],
  batch_size: int = 250,
  parallel: str = "auto",
) -> dict[str, np.ndarray]:
  """{tap: [M, N, D_tap] float32} for the M models stacked in `stacked_params` / `stacked_rest`.

  Args:
    graphdef: from `functional.split` / `abstract_init` (the architecture).
    stacked_params, stacked_rest: pure dicts with a leading model axis (rest may be `{}`).
    inputs: [N, ...] the probe, already normalised.
    taps: tap names of the architecture; all are read in the same forward pass.
    batch_size: probe samples per forward pass (bounds the activation memory on the device).
    parallel: "auto", "vmap" or "loop" ("map" = "loop"; see the module docstring).
  """
  taps = _check_taps(taps)
  x = _check_inputs(inputs, batch_size)
  m = _num_models(stacked_params)
  fn = _jitted(graphdef, taps, resolve_parallel(parallel, members=m))
  params = jax.tree.map(jnp.asarray, stacked_params)
  rest = jax.tree.map(jnp.asarray, stacked_rest)
  # Dispatch every batch before reading any back: the host copies overlap device work.
  pending = [
    (start, size, fn(params, rest, jnp.asarray(b))) for start, size, b in _batches(x, batch_size)
  ]
  return {
    t: np.concatenate([np.asarray(out[t][:, :size]) for _, size, out in pending], axis=1)
    for t in taps
  }


def extract_one(
  graphdef, params, rest, inputs, *, taps: Sequence[str], batch_size: int = 250
) -> dict[str, np.ndarray]:
  """{tap: [N, D_tap] float32} for ONE model (unstacked params): the reference for `extract`."""
  taps = _check_taps(taps)
  x = _check_inputs(inputs, batch_size)
  fn = _jitted(graphdef, taps, None)
  params = jax.tree.map(jnp.asarray, params)
  rest = jax.tree.map(jnp.asarray, rest)
  outs = [(size, fn(params, rest, jnp.asarray(b))) for _, size, b in _batches(x, batch_size)]
  return {t: np.concatenate([np.asarray(o[t][:size]) for size, o in outs]) for t in taps}


def activation_bytes(dims: Mapping[str, int], num_samples: int) -> int:
  """Host bytes of one model's float32 activations at `dims` for `num_samples` samples."""
  return 4 * int(num_samples) * sum(int(d) for d in dims.values())
