"""The thesis CNN: shapes, parameter count, a float64 NumPy forward pass, init, dropout."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jtransfer import models
from jtransfer.models import base
from jtransfer.models import functional as F


def np_conv_valid(x, w, b):
  """NHWC x HWIO 'VALID' convolution, stride 1, in float64."""
  kh, kw = w.shape[:2]
  h, wd = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  out = np.zeros((x.shape[0], h, wd, w.shape[3]))
  for i in range(kh):
    for j in range(kw):
      out += x[:, i : i + h, j : j + wd, :] @ w[i, j]
  return out + b


def np_pool2(x):
  b, h, w, c = x.shape
  h2, w2 = h // 2, w // 2
  return x[:, : 2 * h2, : 2 * w2].reshape(b, h2, 2, w2, 2, c).max(axis=(2, 4))


def np_cnn(params, x):
  """Independent float64 forward pass of the thesis CNN (eval mode), all taps."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  x = np.asarray(x, np.float64)
  out = {}
  out["conv1"] = np_conv_valid(x, p["backbone"]["conv1"]["kernel"], p["backbone"]["conv1"]["bias"])
  out["pool1"] = np.maximum(np_pool2(out["conv1"]), 0)
  c2 = p["backbone"]["conv2"]
  out["conv2"] = np_conv_valid(out["pool1"], c2["kernel"], c2["bias"])
  out["pool2"] = np.maximum(np_pool2(out["conv2"]), 0)
  flat = out["pool2"].reshape(x.shape[0], -1)
  fc1 = p["head"]["fc1"]
  out["fc1"] = np.maximum(flat @ fc1["kernel"] + fc1["bias"], 0)
  out["logits"] = out["fc1"] @ p["head"]["logits"]["kernel"] + p["head"]["logits"]["bias"]
  return out


@pytest.fixture(scope="module")
def cnn10():
  return models.get_model("cnn", num_classes=10, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def images():
  return jax.random.uniform(jax.random.key(42), (3, 28, 28, 1))


def test_tap_shapes_and_fc1_inputs(cnn10, images):
  assert cnn10.taps == ("conv1", "pool1", "conv2", "pool2", "fc1", "logits")
  acts = cnn10(images, taps=cnn10.taps)
  shapes = {k: v.shape for k, v in acts.items()}
  assert shapes == {
    "conv1": (3, 26, 26, 32),
    "pool1": (3, 13, 13, 32),
    "conv2": (3, 11, 11, 64),
    "pool2": (3, 5, 5, 64),
    "fc1": (3, 128),
    "logits": (3, 10),
  }
  assert cnn10.head["fc1"].kernel.shape == (1600, 128)
  assert math.prod(shapes["pool2"][1:]) == 1600
  assert cnn10(images).shape == (3, 10)


def test_layers_backbone_head(cnn10):
  assert cnn10.layers == ("conv1", "conv2", "fc1", "logits")
  # Thesis 2.3.3: convolutional weights are transferred, the dense layers are new.
  assert cnn10.backbone_layers == ("conv1", "conv2")
  assert cnn10.head_layers == ("fc1", "logits")
  _, params, rest = F.split(cnn10)
  assert set(params) == {"backbone", "head"}
  assert set(params["backbone"]) == {"conv1", "conv2"}
  assert set(params["head"]) == {"fc1", "logits"}
  assert rest == {}


@pytest.mark.parametrize("num_classes", [10, 5, 2])
def test_param_count_by_hand(num_classes):
  _, params, _ = F.abstract_init("cnn", num_classes=num_classes)
  c = num_classes
  expected = 32 * 9 + 32 + 64 * 32 * 9 + 64 + 1600 * 128 + 128 + 128 * c + c
  assert models.count_params(params) == expected


def test_forward_matches_numpy_float64(cnn10, images):
  _, params, _ = F.split(cnn10)
  ref = np_cnn(params, images)
  acts = cnn10(images, taps=cnn10.taps)
  for tap in cnn10.taps:
    scale = np.abs(ref[tap]).max()
    np.testing.assert_allclose(acts[tap], ref[tap], rtol=1e-4, atol=1e-5 * scale, err_msg=tap)


def test_taps_equal_separate_passes(cnn10, images):
  together = cnn10(images, taps=cnn10.taps)
  for tap in cnn10.taps:
    alone = cnn10(images, taps=(tap,))
    assert list(alone) == [tap]
    np.testing.assert_array_equal(alone[tap], together[tap])
  # Requested order is kept; a bare string is one tap.
  assert list(cnn10(images, taps=("fc1", "conv1"))) == ["fc1", "conv1"]
  np.testing.assert_array_equal(cnn10(images, taps="pool2")["pool2"], together["pool2"])
  np.testing.assert_array_equal(cnn10(images), together["logits"])


def test_pytorch_default_init_distribution(cnn10):
  # PyTorch nn.Linear / nn.Conv2d: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  fan_ins = {"conv1": 9, "conv2": 32 * 9, "fc1": 1600, "logits": 128}
  parts = {**cnn10.backbone, **cnn10.head}
  for name, fan_in in fan_ins.items():
    bound = 1 / math.sqrt(fan_in)
    for leaf in (parts[name].kernel[...], parts[name].bias[...]):
      assert float(jnp.abs(leaf).max()) <= bound
  k = np.asarray(cnn10.head["fc1"].kernel[...])  # 204,800 draws: std of U(-b, b) is b/sqrt(3)
  np.testing.assert_allclose(k.std(), 1 / math.sqrt(1600) / math.sqrt(3), rtol=0.01)
  assert abs(k.mean()) < 5 * k.std() / math.sqrt(k.size)  # 5 standard errors


def test_init_deterministic_from_seed():
  p = [F.split(models.get_model("cnn", num_classes=10, rngs=nnx.Rngs(s)))[1] for s in (3, 3, 4)]
  for a, b, c in zip(
    jax.tree.leaves(p[0]), jax.tree.leaves(p[1]), jax.tree.leaves(p[2]), strict=True
  ):
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
  # Typed keys give the same model as the integer seed.
  q = F.split(models.get_model("cnn", num_classes=10, rngs=nnx.Rngs(jax.random.key(3))))[1]
  for a, b in zip(jax.tree.leaves(p[0]), jax.tree.leaves(q), strict=True):
    np.testing.assert_array_equal(a, b)


def test_dropout_only_in_train_and_keyed(cnn10, images):
  eval_out = cnn10(images)
  np.testing.assert_array_equal(cnn10(images, train=False, dropout_key=jax.random.key(1)), eval_out)
  a = cnn10(images, train=True, dropout_key=jax.random.key(1))
  b = cnn10(images, train=True, dropout_key=jax.random.key(1))
  c = cnn10(images, train=True, dropout_key=jax.random.key(2))
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, eval_out)
  assert not np.allclose(a, c)
  # Taps before the first dropout are the same in train mode.
  np.testing.assert_array_equal(
    cnn10(images, taps=("pool2",), train=True, dropout_key=jax.random.key(1))["pool2"],
    cnn10(images, taps=("pool2",))["pool2"],
  )
  with pytest.raises(ValueError, match="dropout_key"):
    cnn10(images, train=True)


@pytest.mark.parametrize("bdims", [(), (1, 2)])
def test_dropout_statistics(bdims):
  x = jnp.ones((8, 10, 10, 64))
  y = np.asarray(
    base.dropout(x, 0.25, train=True, key=jax.random.key(0), index=0, broadcast_dims=bdims)
  )
  kept = y != 0
  # Inverted dropout: kept values are scaled by 1/(1-rate); about a quarter is dropped.
  np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
  assert abs(kept.mean() - 0.75) < 0.03
  if bdims:  # channel-wise (PyTorch Dropout2d): one decision per (sample, channel)
    assert np.all(kept == kept[:, :1, :1, :])
  else:
    assert not np.all(kept == kept[:, :1, :1, :])
  other = np.asarray(base.dropout(x, 0.25, train=True, key=jax.random.key(0), index=1))
  assert not np.array_equal(other != 0, kept if not bdims else np.broadcast_to(kept, x.shape))


def test_width_and_image_size_variants(images):
  tiny = models.get_model("cnn_tiny", num_classes=3, rngs=nnx.Rngs(0))
  acts = tiny(images, taps=tiny.taps)
  assert acts["pool2"].shape == (3, 5, 5, 8) and acts["fc1"].shape == (3, 16)
  rgb = models.get_model("cnn_tiny", num_classes=10, rngs=nnx.Rngs(0), image_size=32, in_channels=3)
  assert rgb.head["fc1"].kernel.shape == (6 * 6 * 8, 16)  # ((32 - 2) // 2 - 2) // 2 = 6
  assert rgb(jnp.zeros((2, 32, 32, 3))).shape == (2, 10)


def test_bad_inputs_raise(cnn10, images):
  with pytest.raises(ValueError, match="28, 28, 1"):
    cnn10(jnp.zeros((2, 32, 32, 1)))
  with pytest.raises(ValueError, match="28, 28, 1"):
    cnn10(jnp.zeros((28, 28, 1)))
  with pytest.raises(ValueError, match="unknown taps"):
    cnn10(images, taps=("pool3",))
  with pytest.raises(ValueError, match="empty"):
    cnn10(images, taps=())
  with pytest.raises(ValueError, match="valid names: .*cnn"):
    models.get_model("cnn2", num_classes=10, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="num_classes"):
    models.get_model("cnn", num_classes=0, rngs=nnx.Rngs(0))
