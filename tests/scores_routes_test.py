"""The score core's routes and shared pieces: the covariance route (D×D forms) equals the Gram
route (N×N forms), the blocked neighbour re-measurement equals brute force, PARC's integer-key
ranks equal SciPy's Spearman."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.stats import spearmanr

import jtransfer.scores as scores
from jtransfer.scores import registry
from jtransfer.scores import shared as shared_lib
from jtransfer.scores.parc import rank_biserial
from jtransfer.scores.shared import Shared

FEATURE_SCORES = [
  n for n, s in registry.REGISTRY.items() if s.needs_features and s.by_default
]  # fmt: skip
# float32 on the covariance route against float64 on the same (rounded) input: the worst over
# the default scores on the probes below is ≈ 3e-6 (TransRate; LogME, GBC ≈ 1e-6).
FLOAT32_RTOL = 5e-5


def _probe(n, d, c, seed=0, dtype=np.float64):
  """Post-ReLU features with class structure and a large common mean."""
  rng = np.random.default_rng(seed)
  y = np.arange(n) % c
  x = np.maximum(rng.normal(size=(n, d)) + 0.7 * rng.normal(size=(c, d))[y] + 0.5, 0)
  return x.astype(dtype), y.astype(np.int32)


def _all_kernels(x, y, c, route):
  fn = lambda f, labels: {
    nm: registry.REGISTRY[nm].kernel(Shared(f, labels, c, route)) for nm in FEATURE_SCORES
  }  # fmt: skip
  return {k: float(v) for k, v in jax.jit(fn)(jnp.asarray(x), jnp.asarray(y)).items()}


def test_route_is_chosen_from_the_shape():
  small = shared_lib.COVARIANCE_MIN_N - 1
  assert shared_lib.route(small, 8) == "gram"
  assert shared_lib.route(shared_lib.COVARIANCE_MIN_N, 8) == "covariance"
  big = 4 * shared_lib.COVARIANCE_MIN_N
  assert shared_lib.route(big, big // shared_lib.COVARIANCE_RATIO) == "covariance"
  assert shared_lib.route(big, big // shared_lib.COVARIANCE_RATIO + 1) == "gram"
  assert scores.route(big, 512) == "covariance"
  with pytest.raises(ValueError, match="unknown route 'dense'"):
    Shared(jnp.zeros((4, 2)), None, None, "dense")


@pytest.mark.parametrize("rank_deficient", [False, True])
def test_covariance_route_equals_gram_route_float64(x64, rank_deficient):
  """Every default feature score, both routes on the same data: equal to round-off."""
  x, y = _probe(600, 40, 10)
  if rank_deficient:  # rank 30 < D: covariance eigenvalues at round-off must not leak
    x[:, 30:] = x[:, :10] * 2.0
  gram = _all_kernels(x, y, 10, "gram")
  cov = _all_kernels(x, y, 10, "covariance")
  for name in FEATURE_SCORES:
    np.testing.assert_allclose(cov[name], gram[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_compute_takes_the_covariance_route_for_many_samples():
  """`compute` at N ≥ COVARIANCE_MIN_N, D ≪ N (float32): the covariance route, within
  FLOAT32_RTOL of float64 on the same input, and equal to the Gram route there."""
  n, d = shared_lib.COVARIANCE_MIN_N + 52, 24
  x, y = _probe(n, d, 10, seed=1, dtype=np.float32)
  assert scores.route(n, d) == "covariance"
  got = {k: float(v) for k, v in scores.compute(x, y, num_classes=10).items()}
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  try:
    want = _all_kernels(x.astype(np.float64), y, 10, "gram")
  finally:
    jax.config.update("jax_enable_x64", previous)
  for name in FEATURE_SCORES:
    np.testing.assert_allclose(got[name], want[name], rtol=FLOAT32_RTOL, atol=1e-7, err_msg=name)


def test_blocked_exact_neighbours_equal_brute_force(x64, monkeypatch):
  """The re-measurement in blocks of a few rows (the last padded) = distances by brute force,
  sorted by (distance, index); duplicates at exactly 0."""
  rng = np.random.default_rng(3)
  x = rng.normal(size=(37, 6))
  x[5] = x[11]
  x[20] = x[2]
  monkeypatch.setattr(shared_lib, "EXACT_BLOCK_ELEMENTS", 3 * 16 * 6)  # 3 rows per step

  def search(f):
    shared = Shared(f, None, None)
    dist, idx = shared.neighbours(5)
    return dist * shared.scale, idx  # the search runs in units of `scale`

  dist, idx = jax.jit(search)(jnp.asarray(x))
  full = cdist(x, x)
  np.fill_diagonal(full, np.inf)
  order = np.lexsort((np.broadcast_to(np.arange(37), full.shape), full), axis=1)[:, :5]
  np.testing.assert_array_equal(np.asarray(idx), order)
  np.testing.assert_allclose(np.asarray(dist), np.take_along_axis(full, order, 1), rtol=1e-14)
  assert float(dist[5, 0]) == 0.0 and float(dist[2, 0]) == 0.0


def _numpy_rsa_ss_nc(x, y):
  """RSA (mean 1 − Pearson between samples, different − same class pairs), SS and NC score by
  their definitions in float64 NumPy, N×N."""
  r = np.corrcoef(x)
  off = ~np.eye(len(y), dtype=bool)
  same = (y[:, None] == y[None, :]) & off
  diff = y[:, None] != y[None, :]
  rsa = (1 - r)[diff].mean() - (1 - r)[same].mean()
  classes = np.unique(y)
  means = np.stack([x[y == c].mean(0) for c in classes])
  resid = np.linalg.norm(x - means[np.searchsorted(classes, y)], axis=1)
  ss = (resid**2).sum() / ((x - x.mean(0)) ** 2).sum()
  between = cdist(means, means)[~np.eye(len(classes), dtype=bool)].mean()
  return {"rsa": rsa, "sum_of_squares": ss, "nc_score": resid.mean() / between}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_blocks_of_a_few_rows_give_the_same_scores(dtype, x64, monkeypatch):
  """The per-row passes (RSA's deviations, the within-class residuals) in blocks of 7 rows, the
  last one padded (N = 150), equal one block and the float64 NumPy definitions; float32 with a
  large common offset too."""
  x, y = _probe(150, 40, 5, seed=7)
  x = (x + 300.0).astype(dtype)
  one_block = _all_kernels(x, y, 5, "gram")
  monkeypatch.setattr(shared_lib, "ROW_BLOCK_ELEMENTS", 7 * 40)
  blocks = _all_kernels(x, y, 5, "gram")
  rtol = 1e-12 if dtype == np.float64 else 1e-6
  for name in FEATURE_SCORES:
    np.testing.assert_allclose(blocks[name], one_block[name], rtol=rtol, err_msg=name)
  want = _numpy_rsa_ss_nc(x.astype(np.float64), y)
  for name, value in want.items():
    tol = 1e-10 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(blocks[name], value, rtol=tol, err_msg=name)


def test_parc_pairs_cover_every_pair_once():
  """The iota-built pair rectangle holds every i < j exactly once, for even and odd N."""
  from jtransfer.scores.parc import pairs

  for n in (2, 3, 4, 9, 10):
    i, j = map(np.asarray, pairs(n))
    got = sorted(zip(i.ravel().tolist(), j.ravel().tolist(), strict=True))
    assert got == [(int(a), int(b)) for a, b in zip(*np.triu_indices(n, 1), strict=True)], n


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rank_biserial_near_zero_correlation_equals_scipy(dtype):
  """A correlation near 0 (its numerator cancels) over 2·10⁵ values with ties: the exact
  integer rank sum keeps float32 at its rounding of the value."""
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", dtype == np.float64)
  try:
    rng = np.random.default_rng(4)
    values = rng.normal(size=200_000).astype(dtype)
    values[::7] = values[3]  # a large tie group
    values[1::50] = -0.0  # and zeros of both signs
    values[2::50] = 0.0
    flags = rng.random(200_000) < 0.1
    got = float(rank_biserial(jnp.asarray(values), jnp.asarray(flags)))
  finally:
    jax.config.update("jax_enable_x64", previous)
  want = spearmanr(values.astype(np.float64), flags).statistic
  assert abs(want) < 1e-2
  np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-10)


def test_chunk_size_budgets_the_covariance_route_by_its_d_by_d_eigh():
  from jtransfer.scores.compute import default_chunk_size

  per_model = 4 * (6 * 512**2 + 3 * 32000 * 512)  # no N×N matrix on the covariance route
  assert default_chunk_size(32000, 512, 4, budget_bytes=2 << 30) == (2 << 30) // per_model
  per_model = 4 * (6 * 1000**2 + 3 * 1000 * 4096)  # the Gram route's N×N forms
  assert default_chunk_size(1000, 4096, 4, budget_bytes=2 << 30) == (2 << 30) // per_model


def test_parc_refuses_more_pairs_than_int32_positions_hold():
  """N = 65,537 has 2^31 + 32,768 pairs: a one-line error naming N, before any work."""
  from jtransfer.scores.parc import parc_kernel

  n = 65_537
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", False)  # int64 positions under x64 have room
  try:
    shared = Shared(jnp.zeros((n, 2), jnp.float32), jnp.zeros((n,), jnp.int32), 2)
    with pytest.raises(ValueError, match="N = 65537"):
      parc_kernel(shared)
  finally:
    jax.config.update("jax_enable_x64", previous)
