"""Geometric scores (TWO-NN, SS, RSA, NC, kNN) against independent float64 NumPy/SciPy code."""

import gzip

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

import jtransfer.scores as scores
from jtransfer.scores import shared as shared_lib

RTOL = 1e-4


# -- independent references (written the way the public code does it) ------------------------
def ref_two_nn(x, fraction=0.9):
  """Ansuini et al.'s estimate(): full sorted distance matrix, cleaning, fit through 0."""
  y = np.sort(squareform(pdist(x)), axis=1)
  k1, k2 = y[:, 1], y[:, 2]
  good = np.setdiff1d(np.arange(len(x)), np.nonzero(k1 == 0)[0])
  good = np.setdiff1d(good, np.nonzero(k1 == k2)[0])
  n = good.size
  npoints = int(np.floor(n * fraction))
  mu = np.sort(k2[good] / k1[good])
  femp = np.arange(1, n + 1, dtype=np.float64) / n
  xs, ys = np.log(mu[:-2])[:npoints], -np.log(1 - femp[:-2])[:npoints]
  return np.linalg.lstsq(xs[:, None], ys, rcond=None)[0][0]


def ref_sum_of_squares(x, y):
  ssw = sum(((x[y == c] - x[y == c].mean(0)) ** 2).sum() for c in np.unique(y))
  tss = ((x - x.mean(0)) ** 2).sum()
  return ssw / tss


def ref_rsa(x, y):
  rdm = 1 - np.corrcoef(x)
  off = ~np.eye(len(y), dtype=bool)
  same = (y[:, None] == y[None, :]) & off
  diff = y[:, None] != y[None, :]
  return rdm[diff].mean() - rdm[same].mean()


def ref_nc(x, y):
  classes = np.unique(y)
  means = {c: x[y == c].mean(0) for c in classes}
  within = np.mean([np.linalg.norm(x[i] - means[y[i]]) for i in range(len(x))])
  between = [np.linalg.norm(means[a] - means[b]) for a in classes for b in classes if a != b]
  return within / np.mean(between)


def ref_nc_eq2(x, y):
  classes = np.unique(y)
  means = {c: x[y == c].mean(0) for c in classes}
  num = sum(np.linalg.norm(x[y == c] - means[c], axis=1).mean() for c in classes)
  den = sum(np.linalg.norm(means[a] - means[b]) for a in classes for b in classes if a < b)
  return num / den


def ref_knn(x, y, k):
  dist = squareform(pdist(x))
  np.fill_diagonal(dist, np.inf)
  correct = 0
  for i in range(len(x)):
    nn = np.argsort(dist[i], kind="stable")[:k]
    votes = {}
    for rank, j in enumerate(nn):
      count, first = votes.get(y[j], (0, rank))
      votes[y[j]] = (count + 1, first)
    pred = max(votes, key=lambda c: (votes[c][0], -votes[c][1]))
    correct += pred == y[i]
  return correct / len(x)


# -- data ---------------------------------------------------------------------------------------
def _unequal(rng, n_per=(7, 19, 4, 12), d=30, shift=1.0):
  y = np.concatenate([np.full(n, c) for c, n in enumerate(n_per)])
  rng.shuffle(y)
  x = rng.normal(size=(len(y), d)) + shift * rng.normal(size=(len(n_per), d))[y] + 3.0
  return x, y


def _cases():
  rng = np.random.default_rng(0)
  x1, y1 = _unequal(rng)  # N = 42 > D = 30, unequal and shuffled classes
  x2, y2 = _unequal(rng, n_per=(5, 9, 6), d=200)  # N < D
  x3, y3 = _unequal(rng, n_per=(10, 8, 9), d=12)
  x3[[3, 17]] = x3[5]  # a triplicate and a duplicate pair
  x3[20] = x3[21]
  return {"n_gt_d": (x1, y1), "n_lt_d": (x2, y2), "duplicates": (x3, y3)}


CASES = _cases()


def _load_mnist_probe(data_dir, per_class=50):
  with gzip.open(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz") as f:
    images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
  with gzip.open(data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz") as f:
    labels = np.frombuffer(f.read(), np.uint8, offset=8)
  idx = np.concatenate([np.nonzero(labels == c)[0][:per_class] for c in range(10)])
  return images[idx].astype(np.float64), labels[idx].astype(np.int32)


# -- tests --------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(CASES))
def test_labelled_scores_match_numpy(x64, case):
  x, y = CASES[case]
  c = int(y.max()) + 1
  np.testing.assert_allclose(scores.sum_of_squares(x, y, num_classes=c), ref_sum_of_squares(x, y),
                             rtol=RTOL)  # fmt: skip
  np.testing.assert_allclose(scores.rsa(x, y, num_classes=c), ref_rsa(x, y), rtol=RTOL)
  np.testing.assert_allclose(scores.nc_score(x, y, num_classes=c), ref_nc(x, y), rtol=RTOL)
  np.testing.assert_allclose(scores.nc_score_eq2(x, y, num_classes=c), ref_nc_eq2(x, y), rtol=RTOL)
  for k in (1, 5):
    np.testing.assert_allclose(scores.knn_accuracy(x, y, num_classes=c, k=k), ref_knn(x, y, k),
                               rtol=RTOL)  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_two_nn_matches_ansuini(x64, case):
  x, _ = CASES[case]
  np.testing.assert_allclose(scores.two_nn(x), ref_two_nn(x), rtol=RTOL)


def test_two_nn_drops_both_duplicates(x64):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(40, 5))
  x[7] = x[8]  # bit-identical pair: r1 = 0 for both, exactly
  dist, idx = shared_lib.Shared(jnp.asarray(x), None, None).neighbours(2)
  assert float(dist[7, 0]) == 0.0 and float(dist[8, 0]) == 0.0
  assert int(idx[7, 0]) == 8 and int(idx[8, 0]) == 7
  # Same as the reference on the cleaned set, and different from ignoring the duplicates.
  np.testing.assert_allclose(scores.two_nn(x), ref_two_nn(x), rtol=RTOL)


def test_blocked_neighbour_search_equals_full(x64, monkeypatch):
  """Streaming row blocks (what N = 20,000 uses) gives the same scores as the full Gram."""
  x, y = CASES["duplicates"]
  full = (scores.two_nn(x), scores.knn_accuracy(x, y, num_classes=3))
  monkeypatch.setattr(shared_lib, "FULL_GRAM_MAX_N", 4)
  monkeypatch.setattr(shared_lib, "BLOCK_ELEMENTS", 5 * len(x))  # 5 rows per block
  blocked = (scores.two_nn(x[:, :].copy()), scores.knn_accuracy(x, y, num_classes=3))
  np.testing.assert_allclose(blocked, full, rtol=1e-12)
  np.testing.assert_allclose(blocked[0], ref_two_nn(x), rtol=RTOL)


@pytest.mark.parametrize("d", [1, 2, 3, 4, 5])
def test_two_nn_uniform_cube(x64, d):
  """TWO-NN ≈ d on a uniform d-cube (Facco et al.); boundary effects bias it down as d grows
  (REFERENCE.md: ≈ 4.7 at d = 5, N = 2000), so d = 5 gets 7%, d ≤ 4 get 5%."""
  x = np.random.default_rng(d).uniform(size=(2000, d))
  value = float(scores.two_nn(x))
  assert abs(value - d) <= (0.07 if d == 5 else 0.05) * d, value
  np.testing.assert_allclose(value, ref_two_nn(x), rtol=RTOL)


def test_mnist_pixels(x64, data_dir):
  x, y = _load_mnist_probe(data_dir)
  assert x.shape == (500, 784)
  value = float(scores.two_nn(x))
  np.testing.assert_allclose(value, ref_two_nn(x), rtol=RTOL)
  assert 9 < value < 16, value  # ≈ 12 (REFERENCE.md)
  np.testing.assert_allclose(scores.sum_of_squares(x, y, num_classes=10),
                             ref_sum_of_squares(x, y), rtol=RTOL)  # fmt: skip
  np.testing.assert_allclose(scores.rsa(x, y, num_classes=10), ref_rsa(x, y), rtol=RTOL)
  np.testing.assert_allclose(scores.nc_score(x, y, num_classes=10), ref_nc(x, y), rtol=RTOL)
  np.testing.assert_allclose(scores.nc_score_eq2(x, y, num_classes=10), ref_nc_eq2(x, y),
                             rtol=RTOL)  # fmt: skip
  np.testing.assert_allclose(scores.knn_accuracy(x, y, num_classes=10), ref_knn(x, y, 5),
                             rtol=RTOL)  # fmt: skip


def test_closed_forms(x64):
  rng = np.random.default_rng(3)
  y = np.repeat(np.arange(4), 6)
  # Perfect collapse: every sample at its class mean -> SS = 0, NC = 0, kNN = 1.
  centres = rng.normal(size=(4, 9))
  x = centres[y]
  assert abs(float(scores.sum_of_squares(x, y, num_classes=4))) < 1e-12
  assert abs(float(scores.nc_score(x, y, num_classes=4))) < 1e-12
  assert float(scores.knn_accuracy(x, y, num_classes=4)) == 1.0
  # All samples identical: TSS = 0 -> SS defined as 0.
  assert float(scores.sum_of_squares(np.ones((24, 3)), y, num_classes=4)) == 0.0
  # Balanced classes: eq. 2 = 2 / (C - 1) times the authors' score.
  x = rng.normal(size=(24, 9))
  np.testing.assert_allclose(scores.nc_score_eq2(x, y, num_classes=4),
                             2 / 3 * scores.nc_score(x, y, num_classes=4), rtol=1e-10)  # fmt: skip


def test_float32_close_to_float64():
  """Without x64 the kernels run in float32; check the error stays small on offset data."""
  x, y = CASES["n_lt_d"]
  for name, ref in [("sum_of_squares", ref_sum_of_squares), ("rsa", ref_rsa), ("nc_score", ref_nc)]:
    value = float(getattr(scores, name)(x.astype(np.float32), y, num_classes=3))
    np.testing.assert_allclose(value, ref(x.astype(np.float32).astype(np.float64), y), rtol=1e-4)
  np.testing.assert_allclose(scores.two_nn(x.astype(np.float32)), ref_two_nn(x.astype(np.float32)
                             .astype(np.float64)), rtol=1e-4)  # fmt: skip
