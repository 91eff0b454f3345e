"""float32 that holds: every feature score in float32 (and bfloat16 input, computed in float32)
agrees with float64 on realistic probes under large common offsets and global scales 1e-8..1e8.

The float64 reference scores the very same numbers (the low-precision input cast to float64);
for a shift-invariant score it is computed on that input centred in float64, for the others on
the input as is. A score blind to a transform must also agree with its float64 value on the
untransformed probe (where the input's own rounding allows).
"""

import jax
import numpy as np
import pytest
import scores_probes

import jtransfer.scores as scores
from jtransfer.scores import registry

NAMES = [n for n, s in registry.REGISTRY.items() if not s.needs_source_probs]
OFFSETS = (0.0, 1e2, 1e4)
SCALES = (1e-8, 1.0, 1e8)
RTOL = 1e-3
# Absolute tolerances where the value itself can be ~0: TransRate → 0 as features shrink
# (first-order terms cancel, what is left is ~scale⁴); RSA on features dominated by one pattern;
# N-LEEP = mean log 1 = 0 where every mixture component is pure (the pixel probe), float32's
# log of a rounded 1 is ~1e-7.
ATOL = {"transrate": 1e-9, "rsa": 1e-7, "nleep": 1e-6}


def _compute(x, labels):
  out = scores.compute(x, labels, num_classes=int(labels.max()) + 1, names=NAMES)
  for name, value in out.items():  # float32 in, float32 out, whatever jax_enable_x64 says
    want = np.float64 if np.asarray(x).dtype == np.float64 else np.float32
    assert np.asarray(value).dtype == want, (name, np.asarray(value).dtype)
  return {k: float(v) for k, v in out.items()}


def _float64(x, labels, centre):
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  try:
    x = np.asarray(x, np.float64)
    return _compute(x - x.mean(axis=0) if centre else x, labels)
  finally:
    jax.config.update("jax_enable_x64", previous)


@pytest.fixture(params=[False, True], ids=["x64_off", "x64_on"])
def x64_setting(request):
  """Runs the float32 computations with jax_enable_x64 off, then on (users run both)."""
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", request.param)
  try:
    yield request.param
  finally:
    jax.config.update("jax_enable_x64", previous)


def _close(value, ref, name):
  return abs(value - ref) <= RTOL * abs(ref) + ATOL.get(name, 1e-9)


@pytest.mark.parametrize("probe", sorted(scores_probes.PROBES))
def test_float32_matches_float64_under_offsets_and_scales(probe, x64_setting):
  feats, labels = scores_probes.PROBES[probe]()
  orig_centred, orig = _float64(feats, labels, centre=True), _float64(feats, labels, centre=False)
  failures = set()
  for offset in OFFSETS:
    for scale in SCALES:
      x = scores_probes.transform(feats, offset, scale)
      # bfloat16 keeps 8 bits: an offset of 100× the spread wipes the features out entirely
      for dtype in (np.float32, jax.numpy.bfloat16) if offset == 0 else (np.float32,):
        low = np.asarray(x, dtype)
        got = _compute(low, labels)
        same_centred = _float64(low, labels, centre=True)
        same = _float64(low, labels, centre=False)
        for name in NAMES:
          inv = scores_probes.INVARIANCES[name]
          ref = same_centred[name] if "shift" in inv else same[name]
          if not _close(got[name], ref, name):
            failures.add((probe, name, offset, scale, dtype.__name__, got[name], ref))
          blind = (offset == 0 or "shift" in inv) and (scale == 1 or "scale" in inv)
          if blind and dtype == np.float32 and offset <= 1e2 and name != "knn_accuracy":
            # input rounding at offset o moves features by ≈ eps·o·spread: allow for it
            tol = 1e-3 if offset == 0 else 2e-2
            want = orig_centred[name] if "shift" in inv else orig[name]
            if abs(got[name] - want) > tol * abs(want) + ATOL.get(name, 1e-9):
              failures.add((probe, name, offset, scale, "vs untransformed", got[name], want))
  assert not failures, sorted(failures)
