"""Extraction: stacked (vmap / map) = one model at a time = a float64 NumPy forward pass."""

import jax
import numpy as np
import pytest

from jtransfer.models import functional
from jtransfer.runtime import extract

TAPS = ("conv1", "pool1", "conv2", "pool2", "fc1", "logits")


@pytest.fixture(scope="module")
def zoo():
  graphdef, params, rest = functional.init_stacked("cnn_tiny", num_classes=5, seeds=[3, 7, 11])
  x = np.random.default_rng(0).normal(size=(37, 28, 28, 1)).astype(np.float32)
  return graphdef, jax.device_get(params), rest, x


def _numpy_conv1_pool1(params, x):
  """conv 3x3 VALID + bias, then 2x2 max-pool and ReLU, in float64 NumPy (NHWC)."""
  w = np.asarray(params["backbone"]["conv1"]["kernel"], np.float64)  # [3, 3, cin, cout]
  b = np.asarray(params["backbone"]["conv1"]["bias"], np.float64)
  x = x.astype(np.float64)
  n, h, wd, _ = x.shape
  out = np.zeros((n, h - 2, wd - 2, w.shape[-1])) + b
  for i in range(3):
    for j in range(3):
      out += x[:, i : i + h - 2, j : j + wd - 2, :] @ w[i, j]
  s = out.shape[1] // 2
  pooled = out[:, : 2 * s, : 2 * s].reshape(n, s, 2, s, 2, -1).max(axis=(2, 4))
  return out.reshape(n, -1), np.maximum(pooled, 0).reshape(n, -1)


@pytest.mark.parametrize("parallel", ["vmap", "loop", "map"])  # "map": the old name of "loop"
def test_stacked_equals_one_by_one(zoo, parallel):
  graphdef, params, rest, x = zoo
  acts = extract.extract(graphdef, params, rest, x, taps=TAPS, batch_size=16, parallel=parallel)
  for i in range(3):
    ref = extract.extract_one(graphdef, functional.unstack(params, i), {}, x, taps=TAPS)
    for t in TAPS:
      assert acts[t].shape == (3, 37, ref[t].shape[1])
      assert acts[t].dtype == np.float32
      np.testing.assert_allclose(acts[t][i], ref[t], rtol=1e-5, atol=1e-6)


def test_one_model_vmap_is_the_loop_forward_pass(zoo):
  # "auto" stacks one model with "vmap" and several with "loop" on CPU
  # (`jtransfer.runtime.stacking`); one model vmapped runs the very convolutions the loop runs, so
  # the values are identical.
  graphdef, params, rest, x = zoo
  one = jax.tree.map(lambda a: a[1:2], params)
  assert extract.resolve_parallel("auto", "cpu", members=1) == "vmap"
  vmapped = extract.extract(graphdef, one, rest, x, taps=TAPS, batch_size=16, parallel="vmap")
  looped = extract.extract(graphdef, one, rest, x, taps=TAPS, batch_size=16, parallel="loop")
  for t in TAPS:
    np.testing.assert_array_equal(vmapped[t], looped[t])


def test_taps_match_numpy_forward_and_batching(zoo):
  graphdef, params, rest, x = zoo
  one = functional.unstack(params, 1)
  # batch 10 does not divide 37: the padded last batch must not leak into the result.
  acts = extract.extract_one(graphdef, one, {}, x, taps=("conv1", "pool1", "pool2"), batch_size=10)
  conv1, pool1 = _numpy_conv1_pool1(one, x)
  np.testing.assert_allclose(acts["conv1"], conv1, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(acts["pool1"], pool1, rtol=1e-4, atol=1e-5)
  assert acts["pool2"].shape == (37, 5 * 5 * 8)  # thesis layout at 1/8 width: 5x5x8


def test_tap_dims_and_bytes(zoo):
  graphdef, params, rest, _ = zoo
  dims = extract.tap_dims(graphdef, functional.unstack(params, 0), {}, (28, 28, 1), TAPS)
  assert dims == {
    "conv1": 26 * 26 * 4,
    "pool1": 13 * 13 * 4,
    "conv2": 11 * 11 * 8,
    "pool2": 5 * 5 * 8,
    "fc1": 16,
    "logits": 5,
  }
  assert extract.activation_bytes(dims, 10) == 4 * 10 * sum(dims.values())


def test_bad_input(zoo):
  graphdef, params, rest, x = zoo
  with pytest.raises(ValueError, match="unknown taps"):
    extract.extract(graphdef, params, rest, x, taps=("pool9",))
  with pytest.raises(ValueError, match="NaN"):
    extract.extract(graphdef, params, rest, np.full_like(x, np.nan), taps=("pool2",))
  with pytest.raises(ValueError, match="parallel"):
    extract.extract(graphdef, params, rest, x, taps=("pool2",), parallel="pmap")
  with pytest.raises(ValueError, match="taps is empty"):
    extract.extract(graphdef, params, rest, x, taps=())
