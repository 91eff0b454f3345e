"""Many scores in one jitted pass, sharing every expensive intermediate.

The BLAS pool is held to one thread while a pass runs (`threads.blas_threads`).

`compute` validates once, then runs ONE jitted function in which a single `Shared` serves all
requested kernels: one Gram matrix, one eigendecomposition (of the centred Gram: H-score,
TransRate, GBC, and LogME through a rank-two update), one neighbour search (TWO-NN, kNN), one set
of class statistics. `compute_batched` runs the same function over a leading model axis in
fixed-size chunks: one compiled program per chunk (vmap over `chunk_size` models and, with several
devices, the model axis sharded over a 1-D mesh via `jax.shard_map`), called once per chunk. The
chunk width does not depend on M (the last chunk is padded by repeating model 0, the padding is
dropped), so a model's scores are bit-identical whatever else is in its batch.
`compute_isolated` is `compute_batched` for jobs: a (model, score) that fails becomes NaN with
its error instead of stopping the batch.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from jtransfer.scores import registry, threads, validation
from jtransfer.scores.shared import Shared
from jtransfer.scores.shared import route as shared_route

# Rough per-model working set of the batched kernels, in elements: Gram, centred Gram, two sets
# of eigenvectors and temporaries (≈ 6 M², M = N on the Gram route, D on the covariance route)
# plus features and their derived copies (≈ 3 N·D).
_DEFAULT_BATCH_BYTES = 2 << 30


def _select(names, *, features: bool, labels: bool, source_probs: bool) -> list[registry.ScoreSpec]:
  names = validation.check_names(names)
  if names is None:
    names = registry.names(features=features, labels=labels, source_probs=source_probs)
    if not names:
      raise ValueError("no score applies: pass features (and labels) or source_probs")
  specs = [registry.get(n) for n in dict.fromkeys(names)]
  have = {registry.FEATURES: features, registry.LABELS: labels, registry.SOURCE_PROBS: source_probs}
  for spec in specs:
    missing = [i for i in spec.inputs if not have[i]]
    if missing:
      raise ValueError(f"score {spec.name!r} needs {' and '.join(missing)}, which were not given")
  return specs


def _resolve_options(specs, options: Mapping[str, Mapping[str, Any]] | None):
  options = dict(options or {})
  unknown = sorted(set(options) - {s.name for s in specs})
  if unknown:
    raise ValueError(f"options given for scores not requested: {unknown}")
  return tuple(tuple(sorted(s.resolve_options(options.get(s.name)).items())) for s in specs)


def _validate(specs, options, features, labels, num_classes, source_probs, *, batched: bool):
  """Eager checks for every requested score; returns numpy arrays ready for the kernel.

  The one checker of inputs and options: `compute`, `compute_batched`, every single score
  function (through `score_one`) and the score_features CLI all come through here.
  """
  feats = probs = labs = None
  if features is not None and any(s.needs_features for s in specs):
    feats = validation.check_features(features, batched=batched)
  if source_probs is not None and any(s.needs_source_probs for s in specs):
    probs = validation.check_features(source_probs, name="source_probs", batched=batched)
    n = feats.shape[-2] if feats is not None else probs.shape[-2]
    probs = validation.check_source_probs(probs, n, batched=batched)
    if batched and feats is not None and probs.shape[0] != feats.shape[0]:
      raise ValueError(
        f"source_probs has {probs.shape[0]} models but features has {feats.shape[0]}"
      )
  n = (feats if feats is not None else probs).shape[-2]
  for spec, opts in zip(specs, options, strict=True):
    validation.check_options(spec.name, dict(opts), n)
  if any(s.needs_labels for s in specs):
    labs = validation.check_labels(labels, n, num_classes)
    validation.check_classes_present(labs, validation.check_num_classes(num_classes))
  for spec, opts in zip(specs, options, strict=True):
    validation.check_min_samples(n, spec.min_samples, spec.name)
    if spec.needs_labels:
      validation.check_min_per_class(labs, int(num_classes), spec.min_per_class, spec.name)
      validation.check_class_options(spec.name, dict(opts), n, int(num_classes))
    if spec.nonconstant_rows:
      validation.check_nonconstant_rows(feats, spec.name)
  return feats, labs, probs


def _kernels(names: tuple[str, ...], options, num_classes):
  """The pure function computing all `names` from one Shared: (features, labels, probs) → dict."""

  def fn(features, labels, source_probs):
    shared = None
    if features is not None:
      by_name = {name: dict(opts) for name, opts in zip(names, options, strict=True)}
      route = shared_route(*features.shape, names, by_name)
      shared = Shared(features, labels, num_classes, route)
    dtype = (features if features is not None else source_probs).dtype
    out = {}
    for name, opts in zip(names, options, strict=True):
      spec = registry.REGISTRY[name]
      if spec.needs_source_probs:
        value = spec.kernel(source_probs, labels, num_classes, **dict(opts))
      else:
        value = spec.kernel(shared, **dict(opts))
      out[name] = jnp.asarray(value, dtype)
    return out

  return fn


@functools.lru_cache(maxsize=128)
def _jitted_single(names, options, num_classes):
  return jax.jit(_kernels(names, options, num_classes))


def compute(
  features,
  labels,
  *,
  num_classes: int | None,
  names: Sequence[str] | None = None,
  source_probs=None,
  options: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, jax.Array]:
  """Scores of one feature set: {name: scalar array}, all in one jitted pass.

  Args:
    features: [N, D] (may be None if only source-prediction scores are requested).
    labels: [N] ints in [0, num_classes) (None if only `two_nn` is requested).
      Features of any real dtype; integers, float16 and bfloat16 are computed in float32.
    num_classes: number of target classes; every class must have samples.
    names: registry names; default every score the given inputs allow (LEEP / NCE only with
      `source_probs`, only `two_nn` without labels).
    source_probs: [N, C_s] the source model's softmax on the same samples.
    options: per-score option overrides, e.g. {"logme": {"schedule": "thuml"}}.
  """
  specs = _select(
    names, features=features is not None, labels=labels is not None,
    source_probs=source_probs is not None,
  )  # fmt: skip
  opts = _resolve_options(specs, options)
  feats, labs, probs = _validate(specs, opts, features, labels, num_classes, source_probs,
                                 batched=False)  # fmt: skip
  fn = _jitted_single(
    tuple(s.name for s in specs), opts, _int_or_none(num_classes) if labs is not None else None
  )
  with threads.blas_threads():
    out = fn(*(None if a is None else jnp.asarray(a) for a in (feats, labs, probs)))
    out = jax.block_until_ready(out)
  for name, value in out.items():
    validation.check_finite_result(value, name)
  return out


def _int_or_none(num_classes):
  return None if num_classes is None else validation.check_num_classes(num_classes)


def score_one(
  name: str, features=None, labels=None, *, num_classes=None, source_probs=None, **options
) -> jax.Array:
  """One score through `compute` (same checks, same jitted kernels): the single functions."""
  out = compute(
    features,
    labels,
    num_classes=num_classes,
    names=[name],
    source_probs=source_probs,
    options={name: options} if options else None,
  )
  return out[name]


def default_chunk_size(
  n: int, d: int, itemsize: int, budget_bytes: int = _DEFAULT_BATCH_BYTES, platform: str = "gpu"
) -> int:
  """Models per vmapped chunk so that a chunk's working set stays within `budget_bytes`.

  On CPU it is 1: the models then run one after another through the same compiled
  program, which measured faster than vmapping them (CPU eigh and matmuls gain nothing from a
  batch axis, XLA's CPU gather is slow with one, and vmapped while-loops run in lock step).
  """
  if platform == "cpu":
    return 1
  m = d if shared_route(n, d) == "covariance" else n  # the side of the one eigh (at most)
  per_model = itemsize * (6 * m * m + 3 * n * d)
  return max(1, budget_bytes // per_model)


@functools.lru_cache(maxsize=128)
def _jitted_batched(names, options, num_classes, chunk_size, devices):
  """One compiled program for one chunk: `chunk_size` models per device, vmapped."""
  single = _kernels(names, options, num_classes)

  def run(batch, labels):
    f = lambda b: single(b.get("features"), labels, b.get("source_probs"))
    return jax.vmap(f)(batch)

  if len(devices) > 1:
    mesh = Mesh(np.array(devices), ("model",))
    spec = PartitionSpec("model")
    # check_vma=False: kernels' loop carries start replicated and become per-model; every
    # model's computation is independent, so no collective is needed or inserted.
    run = jax.shard_map(
      run, mesh=mesh, in_specs=(spec, PartitionSpec()), out_specs=spec, check_vma=False
    )
  return jax.jit(run)


def compute_batched(
  features,
  labels,
  *,
  num_classes: int | None,
  names: Sequence[str] | None = None,
  source_probs=None,
  chunk_size: int | None = None,
  options: Mapping[str, Mapping[str, Any]] | None = None,
  devices: Sequence[jax.Device] | None = None,
) -> dict[str, jax.Array]:
  """Scores of M feature sets sharing one label vector: {name: [M] array}.

  Args:
    features: [M, N, D], e.g. one layer of M checkpoints on the same probe.
    labels: [N].
    source_probs: [M, N, C_s] or None.
    chunk_size: models per vmapped chunk (per device); default 1 on CPU, else from a 2 GiB
      working-set budget (`default_chunk_size`). Fixed whatever M: the results of a model
      depend only on it, its labels, the options and this chunk size.
    devices: devices to shard the model axis over; default all local devices (one: no sharding).
    num_classes, names, options: as in `compute`.
  """
  specs = _select(
    names, features=features is not None, labels=labels is not None,
    source_probs=source_probs is not None,
  )  # fmt: skip
  opts = _resolve_options(specs, options)
  feats, labs, probs = _validate(specs, opts, features, labels, num_classes, source_probs,
                                 batched=True)  # fmt: skip
  batch = {k: v for k, v in (("features", feats), ("source_probs", probs)) if v is not None}
  m, n = next(iter(batch.values())).shape[:2]
  devices = tuple(jax.local_devices() if devices is None else devices)
  if chunk_size is None:
    d = feats.shape[-1] if feats is not None else probs.shape[-1]
    itemsize = jnp.asarray(next(iter(batch.values()))[:1, :1, :1]).dtype.itemsize
    chunk_size = default_chunk_size(n, d, itemsize, platform=devices[0].platform)
  if int(chunk_size) < 1:
    raise ValueError(f"chunk_size must be ≥ 1, got {chunk_size}")
  # Batch invariance: every chunk runs the same compiled program (chunk_size models on each
  # device), so a model's scores do not depend on M or on the other models. The last chunk is
  # padded by repeating model 0.
  width = int(chunk_size) * len(devices)
  pad = -m % width
  if pad:
    batch = {k: np.concatenate([v, np.repeat(v[:1], pad, axis=0)]) for k, v in batch.items()}
  classes = _int_or_none(num_classes) if labs is not None else None
  fn = _jitted_batched(tuple(s.name for s in specs), opts, classes, int(chunk_size), devices)
  labs = None if labs is None else jnp.asarray(labs)
  with threads.blas_threads(devices[0].platform):
    chunks = [
      fn({k: jnp.asarray(v[i : i + width]) for k, v in batch.items()}, labs)
      for i in range(0, m + pad, width)
    ]
    chunks = jax.block_until_ready(chunks)
  out = {k: jnp.concatenate([c[k] for c in chunks]) for k in chunks[0]}
  out = {k: v[:m] for k, v in out.items()}
  for name, value in out.items():
    validation.check_finite_result(value, name)
  return out


def compute_isolated(
  features,
  labels,
  *,
  num_classes: int | None,
  names: Sequence[str],
  source_probs=None,
  chunk_size: int | None = None,
  options: Mapping[str, Mapping[str, Any]] | None = None,
  devices: Sequence[jax.Device] | None = None,
) -> dict[str, tuple[np.ndarray, list[str | None]]]:
  """`compute_batched` that isolates failures: {name: ([M] float64 values, [M] errors)}.

  Where a score cannot be computed for a model (a check refuses its inputs, e.g. RSA on a layer
  with a constant sample, or its value is not finite), its value is NaN and its error the
  one-line message; every other (model, score) gets the value `compute_batched` gives it.

  One rule isolates a failure: a call that raises is split, first into its models, then (for
  one model) into its scores, until the failure is pinned on one (model, score). Every call
  runs the same fixed-width chunk program, so a good model's values do not depend on a failing
  batch-mate; the first call is the whole batch, so with no failure this is one call.
  """
  names = list(dict.fromkeys(names))
  m = (features if features is not None else source_probs).shape[0]
  options = dict(options or {})
  values = {n: np.full(m, np.nan) for n in names}
  errors: dict[str, list[str | None]] = {n: [None] * m for n in names}

  def attempt(lo: int, hi: int, which: list[str]) -> None:
    try:
      out = compute_batched(
        None if features is None else features[lo:hi], labels, num_classes=num_classes,
        names=which, source_probs=None if source_probs is None else source_probs[lo:hi],
        chunk_size=chunk_size, options={n: options[n] for n in which if n in options},
        devices=devices,
      )  # fmt: skip
    except ValueError as e:
      if hi - lo > 1:
        for i in range(lo, hi):
          attempt(i, i + 1, which)
      elif len(which) > 1:
        for name in which:
          attempt(lo, hi, [name])
      else:
        errors[which[0]][lo] = str(e)
      return
    for name, value in out.items():
      values[name][lo:hi] = np.asarray(value, np.float64)

  attempt(0, m, names)
  return {n: (values[n], errors[n]) for n in names}
