"""LEEP and NCE against float64 NumPy references written with per-sample / per-class loops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtransfer.scores.source_probs import leep, leep_kernel, nce, nce_kernel

RTOL = 1e-4


def ref_leep(probs, labels, num_classes):
  n, cs = probs.shape
  joint = np.zeros((num_classes, cs))
  for i in range(n):
    joint[labels[i]] += probs[i] / n
  total = 0.0
  for i in range(n):
    eep = 0.0
    for z in range(cs):
      pz = joint[:, z].sum()
      if pz > 0:
        eep += probs[i, z] * joint[labels[i], z] / pz
    total += np.log(eep)
  return total / n


def ref_nce(probs, labels, num_classes):
  n, cs = probs.shape
  joint = np.zeros((num_classes, cs))
  for i in range(n):
    joint[labels[i], int(np.argmax(probs[i]))] += 1 / n
  h = 0.0
  for z in range(cs):
    pz = joint[:, z].sum()
    if pz == 0:
      continue
    for y in range(num_classes):
      if joint[y, z] > 0:
        h -= joint[y, z] * np.log(joint[y, z] / pz)
  return -h


def _probs(n, cs, seed, concentration=0.3):
  rng = np.random.default_rng(seed)
  return rng.dirichlet(np.full(cs, concentration), size=n)


def _labels(n, c, seed):
  labels = np.arange(n) % c
  np.random.default_rng(seed).shuffle(labels)
  return labels


@pytest.mark.parametrize("n,c,cs", [(60, 4, 7), (45, 5, 3), (100, 10, 10)])
def test_vs_reference(x64, n, c, cs):
  probs, labels = _probs(n, cs, n), _labels(n, c, n + 1)
  np.testing.assert_allclose(float(leep(probs, labels, num_classes=c)), ref_leep(probs, labels, c),
                             rtol=RTOL)  # fmt: skip
  np.testing.assert_allclose(float(nce(probs, labels, num_classes=c)), ref_nce(probs, labels, c),
                             rtol=RTOL)  # fmt: skip


def test_empty_source_classes_and_unequal_sizes(x64):
  # Source classes 2 and 5 never get any mass (0/0 in P(y|z)); target classes of sizes 3..20.
  probs = _probs(40, 6, 3)
  probs[:, [2, 5]] = 0
  probs /= probs.sum(axis=1, keepdims=True)
  labels = np.repeat(np.arange(4), [3, 7, 10, 20])
  got = float(leep(probs, labels, num_classes=4))
  assert np.isfinite(got)
  np.testing.assert_allclose(got, ref_leep(probs, labels, 4), rtol=RTOL)
  np.testing.assert_allclose(float(nce(probs, labels, num_classes=4)), ref_nce(probs, labels, 4),
                             rtol=RTOL)  # fmt: skip


def test_perfect_one_hot_sources_give_zero(x64):
  labels = _labels(50, 5, 0)
  probs = np.eye(5)[labels]  # source class = target class
  assert float(leep(probs, labels, num_classes=5)) == 0
  assert float(nce(probs, labels, num_classes=5)) == 0
  # A relabelled source (a permutation of classes) is just as good.
  perm = np.eye(5)[(labels + 2) % 5]
  assert abs(float(leep(perm, labels, num_classes=5))) < 1e-12
  # Uninformative source: NCE = −H(Y), LEEP = −H(Y) too (P(y|z) = P(y)).
  flat = np.full((50, 3), 1 / 3)
  np.testing.assert_allclose(float(nce(flat, labels, num_classes=5)), -np.log(5), rtol=1e-12)
  np.testing.assert_allclose(float(leep(flat, labels, num_classes=5)), -np.log(5), rtol=1e-12)


def test_bounds_and_argmax_ties(x64):
  probs, labels = _probs(80, 6, 9), _labels(80, 4, 10)
  assert float(leep(probs, labels, num_classes=4)) <= 0
  assert float(nce(probs, labels, num_classes=4)) <= 0
  # Ties go to the first maximum, as np.argmax.
  tied = np.array([[0.4, 0.4, 0.2], [0.5, 0.5, 0.0], [0.2, 0.4, 0.4], [0.1, 0.45, 0.45]])
  tied_labels = np.array([0, 1, 0, 1])
  np.testing.assert_allclose(float(nce(tied, tied_labels, num_classes=2)),
                             ref_nce(tied, tied_labels, 2), rtol=1e-12)  # fmt: skip


def test_kernels_vmap_over_models(x64):
  labels = _labels(30, 3, 1)
  stack = np.stack([_probs(30, 4, s) for s in range(3)])
  for kernel, ref in [(leep_kernel, ref_leep), (nce_kernel, ref_nce)]:
    got = jax.vmap(lambda p, k=kernel: k(p, jnp.asarray(labels), 3))(stack)
    np.testing.assert_allclose(np.asarray(got), [ref(p, labels, 3) for p in stack], rtol=RTOL)


def test_float32_close_to_float64():
  probs, labels = _probs(500, 10, 4), _labels(500, 10, 5)
  for fn, ref in [(leep, ref_leep), (nce, ref_nce)]:
    got = fn(probs.astype(np.float32), labels, num_classes=10)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(float(got), ref(probs, labels, 10), rtol=1e-5)


@pytest.mark.parametrize("fn", [leep, nce])
def test_bad_inputs_raise(fn):
  probs, labels = _probs(20, 4, 0), _labels(20, 3, 0)
  with pytest.raises(ValueError, match="sum to 1"):
    fn(probs * 1.1, labels, num_classes=3)
  with pytest.raises(ValueError, match="negative"):
    fn(probs - 0.3, labels, num_classes=3)
  bad = probs.copy()
  bad[2, 1] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    fn(bad, labels, num_classes=3)
  with pytest.raises(ValueError, match="shape"):
    fn(probs[0], labels, num_classes=3)
  with pytest.raises(ValueError, match="labels"):
    fn(probs, labels[:-1], num_classes=3)
  with pytest.raises(ValueError, match="out of range"):
    fn(probs, labels + 1, num_classes=3)
  with pytest.raises(ValueError, match="num_classes"):
    fn(probs, labels, num_classes=4)
