"""ResNet-18: published parameter count, stems, a float64 NumPy forward in eval mode, batch norm."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jtransfer import models
from jtransfer.models import functional as F


def test_resnet18_param_count():
  _, params, rest = F.abstract_init("resnet18", num_classes=1000)  # shapes only
  assert models.count_params(params) == 11_689_512  # torchvision's documented count
  # Running mean and var for every BN: 2 x (each BN's channels) = 2 x (half the BN params).
  bn_params = sum(
    x.size
    for p, x in jax.tree_util.tree_leaves_with_path(params)
    if p[-1].key in ("scale",) or (p[-1].key == "bias" and "bn" in str(p[-2].key))
  )
  assert models.count_params(rest) == bn_params


def test_layout_and_imagenet_stem_shapes():
  model = models.get_model("resnet_tiny", num_classes=4, rngs=nnx.Rngs(0), image_size=64)
  assert model.taps == ("stem", "stage1", "stage2", "stage3", "stage4", "pool", "logits")
  assert model.layers == ("stem", *[f"stage{s}_block1" for s in range(1, 5)], "logits")
  assert model.head_layers == ("logits",)
  acts = model(jnp.zeros((2, 64, 64, 3)), taps=model.taps)
  # 7x7/2 conv then 3x3/2 pool: 64 -> 16; stages 2-4 halve again.
  assert {k: v.shape for k, v in acts.items()} == {
    "stem": (2, 16, 16, 8),
    "stage1": (2, 16, 16, 8),
    "stage2": (2, 8, 8, 16),
    "stage3": (2, 4, 4, 32),
    "stage4": (2, 2, 2, 64),
    "pool": (2, 64),
    "logits": (2, 4),
  }
  full = nnx.eval_shape(lambda: models.get_model("resnet18", num_classes=10, rngs=nnx.Rngs(0)))
  assert full.layers[:3] == ("stem", "stage1_block1", "stage1_block2")
  assert len(full.layers) == 1 + 8 + 1


def np_conv(x, w, stride, pad):
  x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  kh, kw = w.shape[:2]
  h = (x.shape[1] - kh) // stride + 1
  wd = (x.shape[2] - kw) // stride + 1
  out = np.zeros((x.shape[0], h, wd, w.shape[3]))
  for i in range(kh):
    for j in range(kw):
      out += x[:, i : i + stride * h : stride, j : j + stride * wd : stride, :] @ w[i, j]
  return out


def np_bn(x, p, s):
  return (x - s["mean"]) / np.sqrt(s["var"] + 1e-5) * p["scale"] + p["bias"]


def np_resnet_cifar(params, rest, x):
  """Eval-mode float64 ResNet with one basic block per stage and the CIFAR stem."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)["backbone"]
  r = jax.tree.map(lambda a: np.asarray(a, np.float64), rest)["backbone"]
  x = np.asarray(x, np.float64)
  out = {}
  x = np.maximum(
    np_bn(np_conv(x, p["stem"]["conv"]["kernel"], 1, 1), p["stem"]["bn"], r["stem"]["bn"]), 0
  )
  out["stem"] = x
  for s in range(1, 5):
    name = f"stage{s}_block1"
    bp, br = p[name], r[name]
    stride = 1 if s == 1 else 2
    y = np.maximum(np_bn(np_conv(x, bp["conv1"]["kernel"], stride, 1), bp["bn1"], br["bn1"]), 0)
    y = np_bn(np_conv(y, bp["conv2"]["kernel"], 1, 1), bp["bn2"], br["bn2"])
    if "down_conv" in bp:
      x = np_bn(np_conv(x, bp["down_conv"]["kernel"], stride, 0), bp["down_bn"], br["down_bn"])
    x = np.maximum(x + y, 0)
    out[f"stage{s}"] = x
  out["pool"] = x.mean(axis=(1, 2))
  lg = jax.tree.map(lambda a: np.asarray(a, np.float64), params)["head"]["logits"]
  out["logits"] = out["pool"] @ lg["kernel"] + lg["bias"]
  return out


@pytest.fixture(scope="module")
def tiny():
  graphdef, params, rest = F.init("resnet_tiny", num_classes=5, seed=0)
  # Non-trivial BN parameters and statistics, so eval-mode normalisation is really tested.
  leaves, treedef = jax.tree.flatten(rest)
  keys = jax.random.split(jax.random.key(9), len(leaves))
  rest = treedef.unflatten(
    [0.5 + jax.random.uniform(k, x.shape) for k, x in zip(keys, leaves, strict=True)]
  )
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  keys = jax.random.split(jax.random.key(10), len(leaves))
  params = treedef.unflatten(
    [
      x + 0.1 * jax.random.normal(k, x.shape) if "bn" in str(p) else x
      for k, (p, x) in zip(keys, leaves, strict=True)
    ]
  )
  x = jax.random.normal(jax.random.key(4), (2, 32, 32, 3))
  return graphdef, params, rest, x


def test_tiny_eval_forward_matches_numpy(tiny):
  graphdef, params, rest, x = tiny
  model = F.merge(graphdef, params, rest)
  acts = model(x, taps=model.taps)
  ref = np_resnet_cifar(params, rest, x)
  assert acts["stem"].shape == (2, 32, 32, 8)  # CIFAR stem keeps 32x32
  for tap in model.taps:
    scale = np.abs(ref[tap]).max()
    np.testing.assert_allclose(acts[tap], ref[tap], rtol=1e-4, atol=1e-5 * scale, err_msg=tap)
  np.testing.assert_array_equal(model(x, taps=("stage2",))["stage2"], acts["stage2"])


def test_train_mode_uses_batch_statistics(tiny):
  graphdef, params, rest, x = tiny
  eval_out, eval_rest = F.apply(graphdef, params, rest, x, taps=("stem",))
  train_out, train_rest = F.apply(graphdef, params, rest, x, taps=("stem",), train=True)
  # Train mode normalises with the batch's own statistics: per channel, the pre-ReLU output
  # has mean = BN bias; so after ReLU it differs from eval mode; eval leaves rest unchanged.
  assert not np.allclose(train_out["stem"], eval_out["stem"])
  for a, b in zip(jax.tree.leaves(eval_rest), jax.tree.leaves(rest), strict=True):
    np.testing.assert_array_equal(a, b)
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)["backbone"]["stem"]
  pre = np_conv(np.asarray(x, np.float64), p["conv"]["kernel"], 1, 1)
  r = jax.tree.map(lambda a: np.asarray(a, np.float64), rest)["backbone"]["stem"]["bn"]
  new = train_rest["backbone"]["stem"]["bn"]
  np.testing.assert_allclose(new["mean"], 0.9 * r["mean"] + 0.1 * pre.mean((0, 1, 2)), rtol=1e-4)
  np.testing.assert_allclose(new["var"], 0.9 * r["var"] + 0.1 * pre.var((0, 1, 2)), rtol=1e-4)
  expected = np.maximum(
    (pre - pre.mean((0, 1, 2))) / np.sqrt(pre.var((0, 1, 2)) + 1e-5) * p["bn"]["scale"]
    + p["bn"]["bias"],
    0,
  )
  np.testing.assert_allclose(train_out["stem"], expected, rtol=1e-3, atol=1e-4)


def test_bad_inputs_raise(tiny):
  graphdef, params, rest, _ = tiny
  with pytest.raises(ValueError, match="3 channels"):
    F.apply(graphdef, params, rest, jnp.zeros((2, 32, 32, 1)))
  with pytest.raises(ValueError, match="stem"):
    models.get_model("resnet18", num_classes=10, stem="tiny", rngs=nnx.Rngs(0))
