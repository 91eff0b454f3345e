"""Eager input checks, run on concrete arrays before any jitted score kernel.

Each check raises a `ValueError` that names the problem, so a bad probe never turns into a
silent NaN deep inside a kernel.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def check_features(features, *, name: str = "features", batched: bool = False) -> np.ndarray:
  """Features must be a finite real array [N, D] (or [M, N, D] when `batched`) with N ≥ 1.

  Integers and low-precision floats (float16, bfloat16) are converted to float32: scores are
  computed in float32 at least (float16's range and 11-bit mantissa do not survive a Gram form).
  """
  arr = np.asarray(features)
  if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)
          or arr.dtype == bool):  # fmt: skip
    raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
  want = 3 if batched else 2
  if arr.ndim != want:
    shape = "[M, N, D]" if batched else "[N, D]"
    raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
  if arr.shape[-2] == 0 or arr.shape[-1] == 0:
    raise ValueError(f"{name} is empty (shape {arr.shape})")
  if not jnp.issubdtype(arr.dtype, jnp.floating) or arr.dtype.itemsize < 4:
    arr = arr.astype(np.float32)
  bad = ~np.isfinite(arr)
  if bad.any():
    rows = np.unique(np.nonzero(bad)[-2])
    kind = "NaN" if np.isnan(arr).any() else "Inf"
    raise ValueError(
      f"{name} contain {kind} values ({int(bad.sum())} entries, in samples {rows[:10].tolist()}"
      f"{' ...' if rows.size > 10 else ''})"
    )
  # float64 input with jax_enable_x64 off is computed in float32: a value beyond float32's range
  # would turn into Inf there, after this check, and into a silent 0 or NaN score.
  kernel_dtype = jax.dtypes.canonicalize_dtype(arr.dtype)
  if kernel_dtype != arr.dtype:
    top = float(np.abs(arr).max())
    if top > float(np.finfo(kernel_dtype).max):
      raise ValueError(
        f"{name} hold values up to {top:.3g}, beyond {kernel_dtype}'s range, the dtype they are "
        f"computed in (jax_enable_x64 is off); rescale them or turn jax_enable_x64 on"
      )
  return arr


def check_num_classes(num_classes) -> int:
  """A positive integer (an integral float such as 4.0 is accepted; 4.7 or True are not)."""
  ok = isinstance(num_classes, (int, np.integer, float, np.floating)) and not isinstance(
    num_classes, (bool, np.bool_)
  )
  if not ok or not float(num_classes).is_integer() or num_classes < 1:
    raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
  return int(num_classes)


def check_labels(labels, num_samples: int, num_classes) -> np.ndarray:
  """Labels must be integers [N] in [0, num_classes)."""
  if num_classes is None:
    raise ValueError("num_classes must be a positive integer, got None")
  num_classes = check_num_classes(num_classes)
  arr = _integer_labels(labels)
  if arr.ndim != 1 or arr.shape[0] != num_samples:
    raise ValueError(f"labels must have shape [{num_samples}], got {arr.shape}")
  if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
    raise ValueError(
      f"labels out of range: found [{arr.min()}, {arr.max()}], expected [0, {num_classes - 1}]"
      f" for num_classes={num_classes}"
    )
  return arr


def _integer_labels(labels) -> np.ndarray:
  arr = np.asarray(labels)
  if arr.dtype == bool or jnp.issubdtype(arr.dtype, jnp.integer):
    return arr.astype(np.int32)
  if not jnp.issubdtype(arr.dtype, jnp.floating):
    raise ValueError(f"labels must be integers (class indices), got dtype {arr.dtype}")
  if arr.size and not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
    raise ValueError("labels must be integers (class indices), got non-integral values")
  return arr.astype(np.int32)


def infer_num_classes(labels) -> int:
  """max label + 1 of integer labels (for callers that do not pass num_classes)."""
  arr = _integer_labels(labels)
  if arr.size == 0:
    raise ValueError("labels are empty: cannot infer num_classes")
  return int(arr.max()) + 1


def check_names(names) -> list[str] | None:
  """None (every applicable score), one name, or a non-empty sequence of names."""
  if names is None:
    return None
  if isinstance(names, str):
    return [names]
  names = list(names)
  if not names:
    raise ValueError("names is empty: pass None for every applicable score")
  bad = [n for n in names if not isinstance(n, str)]
  if bad:
    raise ValueError(f"score names must be strings, got {bad}")
  return names


def check_options(score: str, options: dict, num_samples: int) -> None:
  """The per-score option checks, shared by the single functions, compute and the CLI."""
  checks = {
    "two_nn": lambda fraction: _number(score, "fraction", fraction, lo=0, hi=1, lo_open=True),
    "transrate": lambda eps: _number(score, "eps", eps, lo=0, lo_open=True),
    "knn_accuracy": lambda k: _count(score, "k", k, 1, num_samples - 1, "N − 1"),
    "gbc": lambda gaussian, pca_dim: (
      _choice(score, "gaussian", gaussian, ("diagonal", "spherical")),
      _count(score, "pca_dim", pca_dim, 1, None, None),
    ),
    "logme": lambda schedule: _choice(score, "schedule", schedule, ("converged", "thuml")),
    "nleep": lambda components_per_class, variance, seed: (
      _count(score, "components_per_class", components_per_class, 1, None, None),
      _number(score, "variance", variance, lo=0, hi=1, lo_open=True, hi_open=True),
      _count(score, "seed", seed, 0, 2**31 - 1, "2³¹ − 1"),
    ),
    "parc": lambda pca_dim: _count(score, "pca_dim", pca_dim, 3, None, None),
    **{
      name: (lambda pca_dim: _count(score, "pca_dim", pca_dim, 1, None, None))
      for name in ("ncti_seli", "ncti_ncc", "ncti_vc")
    },
    "etran_energy": lambda percent: _number(score, "percent", percent, lo=0, hi=100, lo_open=True),
    "etran_lda": lambda covariance: _choice(
      score, "covariance", covariance, ("identity", "shrunk")
    ),
    "pactran": lambda lda_factor, s2_factor: (
      _number(score, "lda_factor", lda_factor, lo=0, lo_open=True),
      _number(score, "s2_factor", s2_factor, lo=0, lo_open=True),
    ),
    "sfda": lambda largest_eigenvalue: _choice(
      score, "largest_eigenvalue", largest_eigenvalue, ("exact", "power")
    ),
  }
  if score in checks:
    checks[score](**options)


def _number(score, option, value, *, lo=None, hi=None, lo_open=False, hi_open=False):
  ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
  ok = ok and np.isfinite(value)
  ok = ok and (lo is None or (value > lo if lo_open else value >= lo))
  ok = ok and (hi is None or (value < hi if hi_open else value <= hi))
  if not ok:
    close = ")" if hi_open or hi is None else "]"
    want = f"{'(' if lo_open else '['}{lo}, {hi if hi is not None else '∞'}{close}"
    raise ValueError(f"{score} option {option} must be a finite number in {want}, got {value!r}")


def _count(score, option, value, lo, hi, hi_name):
  ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
  if not ok or value < lo or (hi is not None and value > hi):
    bound = f"{lo} ≤ {option} ≤ {hi_name} = {hi}" if hi is not None else f"{option} ≥ {lo}"
    raise ValueError(f"{score} option {option} must be an integer {bound}, got {value!r}")


def _choice(score, option, value, valid):
  if value not in valid:
    raise ValueError(f"unknown {score} option {option}={value!r}; valid: {list(valid)}")


def check_class_options(score: str, options: dict, num_samples: int, num_classes: int) -> None:
  """Option checks that need the number of classes (after the labels are checked)."""
  if score == "nleep":
    k = options["components_per_class"] * num_classes
    if k > num_samples:
      raise ValueError(
        f"nleep needs at least components_per_class × C = {k} samples (one per mixture "
        f"component), got N = {num_samples}; lower components_per_class"
      )


def check_min_per_class(labels: np.ndarray, num_classes: int, min_count: int, score: str) -> None:
  """Every class that is present needs `min_count` samples; at least 2 classes present."""
  counts = np.bincount(labels, minlength=num_classes)
  present = counts > 0
  if present.sum() < 2:
    raise ValueError(f"{score} needs at least 2 classes with samples, got {int(present.sum())}")
  small = np.nonzero(present & (counts < min_count))[0]
  if small.size:
    raise ValueError(
      f"{score} needs at least {min_count} samples per class; classes {small.tolist()} have "
      f"{counts[small].tolist()}"
    )


def check_source_probs(source_probs, num_samples: int, *, batched: bool = False) -> np.ndarray:
  """Source-model softmax outputs [N, C_s] (or [M, N, C_s]): finite, ≥ 0, rows sum to 1."""
  arr = check_features(source_probs, name="source_probs", batched=batched)
  if arr.shape[-2] != num_samples:
    raise ValueError(f"source_probs has {arr.shape[-2]} rows but there are {num_samples} labels")
  if (arr < 0).any():
    raise ValueError("source_probs has negative entries: pass softmax probabilities, not logits")
  sums = arr.sum(axis=-1)
  if not np.allclose(sums, 1.0, atol=1e-3):
    worst = float(np.abs(sums - 1).max())
    raise ValueError(f"source_probs rows must sum to 1 (softmax); max deviation {worst:.3g}")
  return arr


def check_min_samples(num_samples: int, min_samples: int, score: str) -> None:
  """A score that needs `min_samples` points (TWO-NN: 3) gets at least that many."""
  if num_samples < min_samples:
    raise ValueError(f"{score} needs at least {min_samples} samples, got {num_samples}")


def check_classes_present(labels: np.ndarray, num_classes: int) -> None:
  """Every class in [0, num_classes) has a sample: num_classes must match the labels."""
  counts = np.bincount(labels, minlength=num_classes)
  empty = np.nonzero(counts == 0)[0]
  if empty.size:
    raise ValueError(
      f"num_classes={num_classes} does not match the labels: classes {empty[:10].tolist()}"
      f"{' ...' if empty.size > 10 else ''} have no samples"
    )


def check_nonconstant_rows(features: np.ndarray, score: str) -> None:
  """Rows (samples) with zero variance across features make a between-sample Pearson undefined."""
  constant = np.all(features == features[..., :1], axis=-1)
  if constant.any():
    where = np.argwhere(constant)
    raise ValueError(
      f"{score}: {len(where)} constant feature rows (zero variance, Pearson undefined), e.g. "
      f"sample{'s' if len(where) > 1 else ''} {where[:5].tolist()} (index as [model, sample] "
      "when batched)"
    )


_NONFINITE_CAUSES = {
  "two_nn": ": fewer than 3 points left after dropping exact duplicates and r1 = r2 ties",
  "nc_score": ": all class means coincide (zero between-class distance)",
  "nc_score_eq2": ": all class means coincide (zero between-class distance)",
  "transrate": ": (scale of the features)²/(N·eps) overflows; rescale the features or raise eps",
  "gbc": ": the PCA coordinates overflow; rescale the features",
  "logme": ": the evidence overflowed (all-zero or extreme features)",
  "nleep": ": all samples are equal (no variance for the PCA), or the features overflow",
  "parc": ": no class has 2 samples, or a sample's PCA coordinates are constant (fewer than 2"
  " components above round-off?)",
  "sfda": ": zero within-class scatter (every sample equals its class mean)",
  **{
    name: ": zero within-class scatter (every sample equals its class mean, or N = C)"
    for name in ("ncti_seli", "ncti_ncc", "ncti_vc")
  },
  "etran_lda": ": the features overflow (rescale them), or zero within-class scatter"
  " (covariance='shrunk')",
  "pactran": ": the features overflow; rescale them",
}


def check_finite_result(values, score: str) -> None:
  """A kernel whose data-dependent preconditions failed (e.g. TWO-NN with < 3 points left after
  dropping duplicates and ties) returns NaN; surface that as an error, never as a value."""
  arr = np.asarray(values)
  if not np.all(np.isfinite(arr)):
    bad = np.nonzero(~np.isfinite(arr.reshape(-1)))[0]
    where = f" for models {bad[:10].tolist()}" if arr.ndim else ""
    hint = _NONFINITE_CAUSES.get(score, ": a non-finite intermediate (features out of range?)")
    raise ValueError(f"{score} is not finite{where}{hint}")
