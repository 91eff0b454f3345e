"""LogME, H-score (+ shrinkage), TransRate and GBC against float64 NumPy references.

The references are written the straightforward way, independently of the kernels: D×D
covariances and np.linalg.pinv, direct log-determinants, per-class loops, PCA by SVD, and LogME
as a 2-D numerical maximisation of the evidence.
"""

import gzip

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from jtransfer.scores.gbc import gbc, gbc_kernel
from jtransfer.scores.h_score import (
  h_score,
  h_score_kernel,
  h_score_shrinkage,
  h_score_shrinkage_kernel,
)
from jtransfer.scores.logme import logme, logme_kernel
from jtransfer.scores.shared import Shared
from jtransfer.scores.transrate import transrate, transrate_kernel

RTOL = 1e-4


# -- data --------------------------------------------------------------------------------------
def _clustered(n, d, sizes, seed, spread=2.0):
  """Class-structured features with unequal scales per dimension and a common offset."""
  rng = np.random.default_rng(seed)
  labels = np.concatenate([np.full(s, c) for c, s in enumerate(sizes)])
  assert labels.size == n
  rng.shuffle(labels)
  centres = rng.normal(size=(len(sizes), d)) * spread
  scales = np.exp(rng.normal(size=d) * 0.5)
  feats = (centres[labels] + rng.normal(size=(n, d))) * scales + 0.5
  return feats, labels


def _case(name):
  if name == "n_lt_d":
    return (*_clustered(40, 90, [10, 10, 10, 10], 1), 4)
  if name == "unequal":
    return (*_clustered(70, 30, [5, 10, 20, 35], 2), 4)
  if name == "unequal_n_lt_d":
    return (*_clustered(45, 80, [4, 9, 12, 20], 3), 4)
  if name == "duplicates":
    feats, labels = _clustered(60, 100, [20, 20, 20], 4)
    order = np.argsort(labels, kind="stable")
    feats, labels = feats[order], labels[order]
    feats[10:16] = feats[0:6]  # exact duplicate rows inside class 0
    return feats, labels, 3
  if name == "duplicates_n_gt_d":
    feats, labels = _clustered(80, 20, [30, 25, 25], 5)
    feats[40:50] = feats[0:10]  # duplicates, some with equal and some with different labels
    return feats, labels, 3
  raise ValueError(name)


# "unequal" and "duplicates_n_gt_d" have N > D, the others N < D.
CASES = ["n_lt_d", "unequal", "unequal_n_lt_d", "duplicates", "duplicates_n_gt_d"]
# With N ≤ D, exact duplicates with equal labels make the evidence unbounded (see logme.py).
WELL_POSED_LOGME = [c for c in CASES if c != "duplicates"]


def _read_idx(path):
  with gzip.open(path, "rb") as f:
    raw = f.read()
  ndim = raw[3]
  dims = np.frombuffer(raw, ">i4", count=ndim, offset=4)
  return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


@pytest.fixture(scope="module")
def mnist(data_dir):
  """500 MNIST test images (the first 50 of each digit), pixels scaled to [0, 1]."""
  images = _read_idx(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz")
  labels = _read_idx(data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz")
  idx = np.concatenate([np.nonzero(labels == c)[0][:50] for c in range(10)])
  return images[idx].reshape(500, -1).astype(np.float64) / 255.0, labels[idx].astype(np.int32), 10


# -- references ---------------------------------------------------------------------------------
def ref_logme_dxd(feats, labels, num_classes):
  """Evidence written with D×D matrices, maximised over (log α, log β) numerically."""
  n, d = feats.shape
  ftf = feats.T @ feats

  def evidence(params, y):
    alpha, beta = np.exp(params)
    a = alpha * np.eye(d) + beta * ftf
    m = beta * np.linalg.solve(a, feats.T @ y)
    _, logdet = np.linalg.slogdet(a)
    res = y - feats @ m
    return (
      d / 2 * np.log(alpha) + n / 2 * np.log(beta) - logdet / 2 - beta / 2 * res @ res
      - alpha / 2 * m @ m - n / 2 * np.log(2 * np.pi)
    ) / n  # fmt: skip

  columns = np.eye(num_classes)[labels].T
  return np.mean([_maximise(lambda p, y=y: evidence(p, y)) for y in columns])


def ref_logme_svd(feats, labels, num_classes):
  """Evidence in the thin-SVD basis (log-det padded to D terms), maximised numerically."""
  n, d = feats.shape
  u, s, _ = np.linalg.svd(feats, full_matrices=False)
  sigma = s**2

  def evidence(params, x, rest):
    alpha, beta = np.exp(np.clip(params, -300, 300))
    m2 = np.sum(beta**2 * sigma * x**2 / (alpha + beta * sigma) ** 2)
    res2 = np.sum(x**2 * alpha**2 / (alpha + beta * sigma) ** 2) + rest
    logdet = np.sum(np.log(alpha + beta * sigma)) + (d - sigma.size) * np.log(alpha)
    return (
      d / 2 * np.log(alpha) + n / 2 * np.log(beta) - logdet / 2 - beta / 2 * res2
      - alpha / 2 * m2 - n / 2 * np.log(2 * np.pi)
    ) / n  # fmt: skip

  out = []
  for y in np.eye(num_classes)[labels].T:
    x = u.T @ y
    rest = max(y @ y - x @ x, 0.0)  # 0 up to round-off when N ≤ D
    out.append(_maximise(lambda p, x=x, rest=rest: evidence(p, x, rest)))
  return np.mean(out)


def _maximise(fn):
  """Max of fn over (log α, log β) from several starts (covers α → ∞, where w = 0 is best)."""

  def loss(p):
    value = fn(p)
    return -value if np.isfinite(value) else np.inf

  best = -np.inf
  with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
    for start in [(0.0, 0.0), (-5.0, 0.0), (8.0, 0.0), (40.0, 0.0)]:
      res = scipy.optimize.minimize(
        loss, start, method="Nelder-Mead",
        options={"xatol": 1e-8, "fatol": 1e-12, "maxfev": 4000},
      )  # fmt: skip
      best = max(best, -res.fun)
  return best


def ref_logme_thuml(feats, labels, num_classes):
  """The published fixed-point loop, transcribed, with the log-det over all D eigenvalues."""
  n, d = feats.shape
  u, s, _ = np.linalg.svd(feats, full_matrices=False)
  sigma = s**2
  evidences = []
  for y in np.eye(num_classes)[labels].T:
    x = u.T @ y
    x2 = x**2
    res_x2 = y @ y - x2.sum()
    alpha, beta = 1.0, 1.0
    for _ in range(11):
      t = alpha / beta
      gamma = (sigma / (sigma + t)).sum()
      m2 = (sigma * x2 / ((t + sigma) ** 2)).sum()
      res2 = (x2 / ((1 + sigma / t) ** 2)).sum() + res_x2
      alpha = gamma / (m2 + 1e-5)
      beta = (n - gamma) / (res2 + 1e-5)
      t_ = alpha / beta
      if abs(t_ - t) / t <= 1e-3:
        break
    logdet = np.sum(np.log(alpha + beta * sigma)) + (d - sigma.size) * np.log(alpha)
    evidence = (
      d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * logdet - beta / 2 * res2
      - alpha / 2 * m2 - n / 2 * np.log(2 * np.pi)
    )  # fmt: skip
    evidences.append(evidence / n)
  return np.mean(evidences)


def _class_mean_rows(feats, labels):
  g = np.zeros_like(feats)
  for c in np.unique(labels):
    g[labels == c] = feats[labels == c].mean(axis=0)
  return g


def ref_h_score(feats, labels):
  covf = np.cov(feats, rowvar=False)
  covg = np.cov(_class_mean_rows(feats, labels), rowvar=False)
  return np.trace(np.linalg.pinv(covf, rcond=1e-15) @ covg)


def ref_h_score_shrinkage(feats, labels):
  z = feats - feats.mean(axis=0)
  n, d = z.shape
  # Ledoit–Wolf as sklearn's ledoit_wolf_shrinkage writes it (D×D sums, 1/N normalisation).
  z2 = z**2
  emp_cov_trace = z2.sum(axis=0) / n
  mu = emp_cov_trace.sum() / d
  delta_ = np.sum((z.T @ z) ** 2) / n**2
  beta_ = np.sum(z2.T @ z2)
  beta = (beta_ / n - delta_) / (d * n)
  delta = (delta_ - 2 * mu * emp_cov_trace.sum() + d * mu**2) / d
  beta = min(beta, delta)
  a = 0.0 if beta == 0 else beta / delta
  sigma = (1 - a) * (z.T @ z / n) + a * mu * np.eye(d)
  covg = np.cov(_class_mean_rows(z, labels), rowvar=False)
  return np.trace(np.linalg.pinv(sigma, rcond=1e-15, hermitian=True) @ ((1 - a) * covg))


def ref_transrate(feats, labels, eps=1e-4):
  def rate(a):
    n, d = a.shape
    return 0.5 * np.linalg.slogdet(np.eye(d) + a.T @ a / (n * eps))[1]

  z = feats - feats.mean(axis=0)
  classes = np.unique(labels)
  return rate(z) - sum(rate(z[labels == c]) for c in classes) / len(classes)


def ref_gbc(feats, labels, gaussian="diagonal", pca_dim=64):
  z = feats - feats.mean(axis=0)
  _, _, vt = np.linalg.svd(z, full_matrices=False)
  x = z @ vt[: min(pca_dim, *z.shape)].T
  classes = np.unique(labels)
  means = {c: x[labels == c].mean(axis=0) for c in classes}
  var = {c: np.maximum(x[labels == c].var(axis=0), 1e-4) for c in classes}
  if gaussian == "spherical":
    var = {c: v.mean() for c, v in var.items()}
  total = 0.0
  for c1 in classes:
    for c2 in classes:
      if c1 == c2:
        continue
      avg = (var[c1] + var[c2]) / 2
      dist = np.sum((means[c1] - means[c2]) ** 2 / avg) / 8 + 0.5 * (
        np.sum(np.log(avg)) - 0.5 * np.sum(np.log(var[c1])) - 0.5 * np.sum(np.log(var[c2]))
      )
      total += np.exp(-dist)
  return -total


def _close(got, want, rtol=RTOL):
  got = float(got)
  np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-12)


# -- values vs references -----------------------------------------------------------------------
@pytest.mark.parametrize("case", WELL_POSED_LOGME)
def test_logme_converged_vs_reference(x64, case):
  feats, labels, c = _case(case)
  _close(logme(feats, labels, num_classes=c), ref_logme_svd(feats, labels, c))


@pytest.mark.parametrize("case", CASES)
def test_logme_thuml_vs_transcription(x64, case):
  feats, labels, c = _case(case)
  got = logme(feats, labels, num_classes=c, schedule="thuml")
  _close(got, ref_logme_thuml(feats, labels, c))


@pytest.mark.parametrize("case", ["unequal", "n_lt_d"])
@pytest.mark.parametrize("offset", [30.0, 1e4])
def test_logme_mean_dominated_vs_reference(x64, case, offset):
  """A common offset far above the spread: the mean dominates F Fᵀ (σ_max/σ_2 ≈ 1e3..1e9), which
  LogME adds back to the centred Gram's eigendecomposition as a rank-two update."""
  feats, labels, c = _case(case)
  feats = feats + offset * np.std(feats) * np.linspace(0.5, 1.5, feats.shape[1])
  _close(logme(feats, labels, num_classes=c), ref_logme_svd(feats, labels, c))
  _close(logme(feats, labels, num_classes=c, schedule="thuml"), ref_logme_thuml(feats, labels, c))


def test_logme_n_lt_d_equals_direct_dxd_formula(x64):
  feats, labels = _clustered(20, 45, [5, 7, 8], 5)
  c = 3
  _close(logme(feats, labels, num_classes=c), ref_logme_dxd(feats, labels, c))


@pytest.mark.parametrize("case", ["unequal", "n_lt_d", "duplicates_n_gt_d", "duplicates"])
def test_logme_scale_invariant(x64, case):
  feats, labels, c = _case(case)
  base = float(logme(feats, labels, num_classes=c))
  # The degenerate case ("duplicates", N < D) sits on the t floor where round-off eigenvalues
  # enter at ~1e-3·ε relative; well-posed cases are invariant to round-off.
  rtol = 1e-6 if case == "duplicates" else 1e-9
  for scale in [1e-3, 7.0, 1e4]:
    _close(logme(feats * scale, labels, num_classes=c), base, rtol=rtol)


@pytest.mark.parametrize("case", ["unequal", "duplicates_n_gt_d"])
def test_h_score_vs_reference(x64, case):
  feats, labels, c = _case(case)
  _close(h_score(feats, labels, num_classes=c), ref_h_score(feats, labels))


@pytest.mark.parametrize("case", ["n_lt_d", "unequal_n_lt_d", "duplicates"])
def test_h_score_is_c_minus_1_when_n_minus_1_le_d(x64, case):
  feats, labels, c = _case(case)
  assert float(h_score(feats, labels, num_classes=c)) == c - 1
  # Boundary N − 1 = D: the D×D reference agrees (it is well defined, just uninformative).
  feats, labels = _clustered(31, 30, [10, 10, 11], 6)
  assert float(h_score(feats, labels, num_classes=3)) == 2
  np.testing.assert_allclose(ref_h_score(feats, labels), 2, rtol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_h_score_shrinkage_vs_reference(x64, case):
  feats, labels, c = _case(case)
  _close(h_score_shrinkage(feats, labels, num_classes=c), ref_h_score_shrinkage(feats, labels))


@pytest.mark.parametrize("case", CASES)
def test_transrate_vs_reference(x64, case):
  feats, labels, c = _case(case)
  _close(transrate(feats, labels, num_classes=c), ref_transrate(feats, labels))


def test_transrate_eps_and_not_scale_invariant(x64):
  feats, labels, c = _case("unequal")
  _close(transrate(feats, labels, num_classes=c, eps=0.3), ref_transrate(feats, labels, 0.3))
  assert abs(float(transrate(feats * 10, labels, num_classes=c)) - ref_transrate(feats, labels)) > 1


@pytest.mark.parametrize("gaussian", ["diagonal", "spherical"])
@pytest.mark.parametrize("case", CASES)
def test_gbc_vs_reference(x64, case, gaussian):
  feats, labels, c = _case(case)
  got = gbc(feats, labels, num_classes=c, gaussian=gaussian)
  _close(got, ref_gbc(feats, labels, gaussian))
  assert -c * (c - 1) <= float(got) <= 0


def test_gbc_pca_dim_and_bounds(x64):
  feats, labels, c = _case("duplicates_n_gt_d")  # D = 20 < 64: all directions kept
  for pca_dim, gaussian in [(5, "diagonal"), (5, "spherical"), (64, "spherical")]:
    got = gbc(feats, labels, num_classes=c, gaussian=gaussian, pca_dim=pca_dim)
    _close(got, ref_gbc(feats, labels, gaussian, pca_dim))
  # Identical classes: every coefficient is 1, the lower bound −C(C−1).
  rng = np.random.default_rng(7)
  same = np.tile(rng.normal(size=(10, 6)), (3, 1))
  _close(gbc(same, np.repeat(np.arange(3), 10), num_classes=3), -6.0, rtol=1e-9)
  # Far-apart classes: the upper bound 0.
  far = np.concatenate([rng.normal(size=(10, 6)) + 1e3 * k for k in range(3)])
  assert -1e-12 < float(gbc(far, np.repeat(np.arange(3), 10), num_classes=3)) <= 0


# -- real MNIST pixels --------------------------------------------------------------------------
@pytest.mark.slow  # D×D references at D = 784 (~20 s on 2 cores)
def test_mnist_pixels(x64, mnist):
  feats, labels, c = mnist
  _close(logme(feats, labels, num_classes=c), ref_logme_svd(feats, labels, c))
  _close(logme(feats, labels, num_classes=c, schedule="thuml"), ref_logme_thuml(feats, labels, c))
  assert float(h_score(feats, labels, num_classes=c)) == c - 1  # N − 1 = 499 ≤ D = 784
  _close(h_score_shrinkage(feats, labels, num_classes=c), ref_h_score_shrinkage(feats, labels))
  _close(transrate(feats, labels, num_classes=c), ref_transrate(feats, labels))
  for gaussian in ["diagonal", "spherical"]:
    _close(gbc(feats, labels, num_classes=c, gaussian=gaussian), ref_gbc(feats, labels, gaussian))


# -- kernels vmap over models (as compute_batched uses them) -----------------------------------
def test_kernels_vmap_over_models(x64):
  feats, labels, c = _case("unequal_n_lt_d")
  stack = np.stack([feats, feats * 2 + 1, np.sqrt(np.abs(feats))])
  kernels = {
    "logme": (logme_kernel, ref_logme_svd),
    "h_score_shrinkage": (h_score_shrinkage_kernel, lambda f, y, c: ref_h_score_shrinkage(f, y)),
    "transrate": (transrate_kernel, lambda f, y, c: ref_transrate(f, y)),
    "gbc": (gbc_kernel, lambda f, y, c: ref_gbc(f, y)),
    "h_score": (h_score_kernel, lambda f, y, c: c - 1),
  }
  for name, (kernel, ref) in kernels.items():
    got = jax.jit(jax.vmap(lambda f, k=kernel: k(Shared(f, jnp.asarray(labels), c))))(stack)
    want = [ref(f, labels, c) for f in stack]
    np.testing.assert_allclose(np.asarray(got), want, rtol=RTOL, err_msg=name)


# -- bad input ----------------------------------------------------------------------------------
FUNCS = [logme, h_score, h_score_shrinkage, transrate, gbc]


@pytest.mark.parametrize("fn", FUNCS)
def test_bad_inputs_raise(fn):
  feats, labels, c = _case("unequal")
  bad = feats.copy()
  bad[3, 4] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    fn(bad, labels, num_classes=c)
  with pytest.raises(ValueError, match="labels"):
    fn(feats, labels[:-1], num_classes=c)
  with pytest.raises(ValueError, match="shape"):
    fn(feats[0], labels, num_classes=c)
  with pytest.raises(ValueError, match="out of range"):
    fn(feats, np.where(labels == 0, c, labels), num_classes=c)
  with pytest.raises(ValueError, match="num_classes"):
    fn(feats, labels, num_classes=c + 1)


def test_gbc_needs_two_samples_per_class():
  feats, labels, c = _case("unequal")
  labels = labels.copy()
  labels[np.nonzero(labels == 0)[0][1:]] = 1  # class 0 keeps a single sample
  with pytest.raises(ValueError, match="at least 2 samples per class"):
    gbc(feats, labels, num_classes=c)
  with pytest.raises(ValueError, match="gaussian"):
    gbc(feats, labels, num_classes=c, gaussian="full")


def test_bad_options_raise():
  feats, labels, c = _case("unequal")
  with pytest.raises(ValueError, match="schedule"):
    logme(feats, labels, num_classes=c, schedule="fast")
  with pytest.raises(ValueError, match="eps"):
    transrate(feats, labels, num_classes=c, eps=0.0)
