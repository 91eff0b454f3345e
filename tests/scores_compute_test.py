"""`compute` = the individual functions; `compute_batched` = a loop of `compute`; sharded = one
device; the registry is complete and shares the expensive intermediates."""

import jax
import numpy as np
import pytest

import jtransfer.scores as scores
from jtransfer.scores import registry
from jtransfer.scores.compute import (
  _kernels,
  _resolve_options,
  compute_isolated,
  default_chunk_size,
)

NAMES = (
  "two_nn", "sum_of_squares", "rsa", "nc_score", "nc_score_eq2", "logme", "h_score",
  "h_score_shrinkage", "transrate", "gbc", "sfda", "parc", "nleep", "ncti_seli", "ncti_ncc",
  "ncti_vc", "etran_energy", "etran_lda", "pactran", "knn_accuracy", "leep", "nce",
)  # fmt: skip
AVAILABLE = [n for n in NAMES if registry.REGISTRY[n].available()]
BY_NAME_ONLY = ("nleep",)  # costly: not in the default set (asked for by name)
DEFAULT = [n for n in AVAILABLE if n not in BY_NAME_ONLY]
FEATURE_SCORES = [n for n in AVAILABLE if not registry.REGISTRY[n].needs_source_probs]


def _data(rng, m=None, n=36, d=50, c=4, cs=6):
  lead = () if m is None else (m,)
  y = np.arange(n) % c
  x = rng.normal(size=(*lead, n, d)) + 2.0 * rng.normal(size=(*lead, c, d))[..., y, :]
  logits = rng.normal(size=(*lead, n, cs)) * 2
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  return x, y, probs


def test_registry_names_and_signs():
  assert tuple(registry.REGISTRY) == NAMES
  lower = {"two_nn", "sum_of_squares", "nc_score", "nc_score_eq2", "ncti_vc", "pactran"}
  for name, spec in registry.REGISTRY.items():
    assert spec.higher_is_better == (name not in lower), name
  assert registry.REGISTRY["leep"].inputs == ("source_probs", "labels")
  assert registry.REGISTRY["two_nn"].inputs == ("features",)
  with pytest.raises(ValueError, match="valid scores: two_nn, sum_of_squares"):
    registry.get("logmee")


def test_registry_matches_modules():
  """The registry's per-class minimum is the one each public function enforces."""
  for name in AVAILABLE:
    spec = registry.REGISTRY[name]
    module = spec._module()
    assert callable(spec.fn) and callable(spec.kernel)
    assert getattr(scores, name) is spec.fn
    if hasattr(module, "MIN_PER_CLASS"):
      assert module.MIN_PER_CLASS == spec.min_per_class, name


@pytest.mark.parametrize(
  "shape", [(36, 50), pytest.param((60, 12), marks=pytest.mark.slow)], ids=["n_lt_d", "n_gt_d"]
)
def test_compute_equals_individual_functions(x64, shape):
  rng = np.random.default_rng(0)
  x, y, probs = _data(rng, n=shape[0], d=shape[1])
  out = scores.compute(x, y, num_classes=4, source_probs=probs if "leep" in AVAILABLE else None)
  assert sorted(out) == sorted(DEFAULT)
  out |= scores.compute(x, y, num_classes=4, names=list(BY_NAME_ONLY))
  for name in AVAILABLE:
    spec = registry.REGISTRY[name]
    if not spec.needs_labels:  # two_nn, etran_energy
      want = spec.fn(x)
    elif spec.needs_source_probs:
      want = spec.fn(probs, y, num_classes=4)
    else:
      want = spec.fn(x, y, num_classes=4)
    np.testing.assert_allclose(out[name], want, rtol=1e-9, atol=1e-12, err_msg=name)


def test_compute_defaults_and_options(x64):
  rng = np.random.default_rng(0)
  x, y, probs = _data(rng)
  assert sorted(scores.compute(x, None, num_classes=None)) == ["etran_energy", "two_nn"]
  # Defaults: every score the inputs allow but those asked for by name (compute uses
  # registry.names when names is None); every=True lists them all.
  without = ("leep", "nce", *BY_NAME_ONLY)
  assert registry.names(labels=True, source_probs=False) == [n for n in NAMES if n not in without]
  assert registry.names(labels=True, source_probs=True, every=True) == list(NAMES)
  assert registry.names(labels=True, source_probs=True) == [
    n for n in NAMES if n not in BY_NAME_ONLY
  ]
  assert registry.names(features=False, source_probs=True) == ["leep", "nce"]
  out = scores.compute(
    x, y, num_classes=4, names=["knn_accuracy"], options={"knn_accuracy": {"k": 1}}
  )
  np.testing.assert_allclose(out["knn_accuracy"], scores.knn_accuracy(x, y, num_classes=4, k=1))
  with pytest.raises(ValueError, match="needs source_probs"):
    scores.compute(x, y, num_classes=4, names=["leep"])
  with pytest.raises(ValueError, match="unknown options"):
    scores.compute(x, y, num_classes=4, names=["rsa"], options={"rsa": {"k": 1}})


GEOMETRIC_AND_PROBS = ["two_nn", "sum_of_squares", "rsa", "nc_score", "nc_score_eq2",
                      "knn_accuracy", "leep", "nce"]  # fmt: skip


@pytest.mark.parametrize(
  "names",
  [GEOMETRIC_AND_PROBS, pytest.param(AVAILABLE, marks=pytest.mark.slow)],
  ids=["geometric", "all"],
)
def test_batched_equals_loop_of_compute_and_sharded_equals_single(x64, names):
  assert jax.device_count() == 8
  rng = np.random.default_rng(2)
  m = 5
  x, y, probs = _data(rng, m=m)
  kw = {"source_probs": probs, "names": names}
  # chunk_size 2 with M = 5: two full chunks and a remainder, on a single device.
  single = scores.compute_batched(x, y, num_classes=4, chunk_size=2, devices=jax.devices()[:1],
                                  **kw)  # fmt: skip
  assert sorted(single) == sorted(names)
  for i in range(m):
    one = scores.compute(x[i], y, num_classes=4, source_probs=probs[i], names=names)
    for name in names:
      assert single[name].shape == (m,)
      np.testing.assert_allclose(single[name][i], one[name], rtol=1e-9, atol=1e-12, err_msg=name)
  # All 8 devices: M = 5 is padded to 8, one model per device; the padding is dropped.
  sharded = scores.compute_batched(x, y, num_classes=4, **kw)
  for name in single:
    assert sharded[name].shape == (m,)
    np.testing.assert_allclose(sharded[name], single[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_one_gram_and_one_eigh():
  """All feature scores share one N×N Gram matmul and one eigendecomposition (LogME's uncentred
  Gram is a rank-two update of the centred one's). SFDA adds only the eigendecompositions of its
  two k×k within-class scatters (k = N − 1 PCA coordinates here: one jitted eigh, called twice)."""
  rng = np.random.default_rng(4)
  x, y, _ = _data(rng, n=30, d=40)
  names = tuple(FEATURE_SCORES)
  opts = _resolve_options([registry.get(n) for n in names], None)
  fn = _kernels(names, opts, 4)
  jaxpr = str(jax.make_jaxpr(fn)(x.astype(np.float32), y.astype(np.int32), None))
  assert jaxpr.count("f32[30] = eigh[") == 1, jaxpr.count("f32[30] = eigh[")
  assert jaxpr.count("eigh[") == 2 and jaxpr.count("f32[29] = eigh[") == 1
  assert jaxpr.count("= jit[name=eigh") == 2  # SFDA's two passes
  # The only [N, D] × [D, N] contraction is the Gram (the neighbour search reads its rows); the
  # other N×N product is PARC's Pearson between samples over its ≤ 32 components ([N, k] × [k, N]).
  assert jaxpr.count("f32[30,30] = dot_general") == 2


def test_default_chunk_size_bounds_memory():
  # 500 × 1600 float32: 6 N² + 3 N D elements = 15.6 MB per model -> 137 models in 2 GiB.
  assert default_chunk_size(500, 1600, 4, budget_bytes=2 << 30) == (2 << 30) // 15_600_000
  assert default_chunk_size(20000, 4096, 4, budget_bytes=2 << 30) == 1
  assert default_chunk_size(500, 1600, 4, platform="cpu") == 1


def test_isolated_failures_are_pinned_on_one_model_and_score():
  # Model 1's features are constant per sample, so RSA (which needs non-constant rows) cannot
  # be computed for it; every other (model, score) is computed as if nothing had failed.
  rng = np.random.default_rng(3)
  labels = np.repeat(np.arange(3), 8)
  feats = rng.normal(size=(3, 24, 6)).astype(np.float32) + labels[None, :, None]
  feats[1] = np.repeat(rng.normal(size=(24, 1)), 6, axis=1)
  names = ["rsa", "sum_of_squares", "h_score"]
  got = compute_isolated(feats, labels, num_classes=3, names=names, chunk_size=1)
  values, errors = got["rsa"]
  assert np.isnan(values[1]) and "constant" in errors[1]
  assert errors[0] is None and errors[2] is None
  good = scores.compute_batched(feats[[0, 2]], labels, num_classes=3, names=names, chunk_size=1)
  for name in names:
    # batch-invariant: the good models' values are those they get without the bad one
    np.testing.assert_array_equal(got[name][0][[0, 2]], np.asarray(good[name], np.float64))
  for name in ("sum_of_squares", "h_score"):
    alone = scores.compute_batched(feats[1:2], labels, num_classes=3, names=[name], chunk_size=1)
    assert got[name][1][1] is None
    np.testing.assert_array_equal(got[name][0][1], np.asarray(alone[name], np.float64)[0])
  # Independent check of one isolated value: SS = within-class / total sum of squares.
  f = feats[1].astype(np.float64)
  ssw = sum(((f[labels == c] - f[labels == c].mean(0)) ** 2).sum() for c in range(3))
  np.testing.assert_allclose(got["sum_of_squares"][0][1], ssw / ((f - f.mean(0)) ** 2).sum(),
                             rtol=1e-4)  # fmt: skip
  # Nothing fails: one call, the values of `compute_batched`.
  clean = compute_isolated(feats[[0, 2]], labels, num_classes=3, names=names, chunk_size=1)
  for name in names:
    np.testing.assert_array_equal(clean[name][0], np.asarray(good[name], np.float64))
    assert clean[name][1] == [None, None]
