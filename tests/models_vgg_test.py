"""VGG-16/19/16-BN: published parameter counts (no allocation), layout, a float64 NumPy forward."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from references import np_conv_same3

from jtransfer import models
from jtransfer.models import functional as F

VGG16 = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
VGG19 = ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4)


def closed_form_count(blocks, flat, width, classes, bn=False):
  """Conv 3x3 weights + biases (+ BN scale and bias), then three dense layers."""
  n, cin = 0, 3
  for block in blocks:
    for c in block:
      n += 9 * cin * c + c + (2 * c if bn else 0)
      cin = c
  return n + flat * width + width + width * width + width + width * classes + classes


@pytest.mark.parametrize(
  "name, published",
  # torchvision's documented counts for the ImageNet models (224x224, 1000 classes).
  [("vgg16", 138_357_544), ("vgg19", 143_667_240), ("vgg16_bn", 138_365_992)],
)
def test_imagenet_param_counts(name, published):
  _, params, rest = F.abstract_init(name, num_classes=1000)  # shapes only, nothing allocated
  assert models.count_params(params) == published
  blocks = VGG19 if name == "vgg19" else VGG16
  expected = closed_form_count(blocks, 7 * 7 * 512, 4096, 1000, bn=name.endswith("_bn"))
  assert models.count_params(params) == expected
  # BN running mean and var: 2 per channel of each of the 13 convs.
  assert models.count_params(rest) == (2 * sum(map(sum, VGG16)) if name == "vgg16_bn" else 0)


def test_cifar_variant_has_512_wide_classifier():
  _, params, _ = F.abstract_init("vgg16", num_classes=10, image_size=32)
  head = params["head"]
  assert head["fc6"]["kernel"].shape == (512, 512)  # 1x1x512 map after five pools
  assert head["fc7"]["kernel"].shape == (512, 512)
  assert head["logits"]["kernel"].shape == (512, 10)
  assert models.count_params(params) == closed_form_count(VGG16, 512, 512, 10)
  _, params19, _ = F.abstract_init("vgg19", num_classes=10, image_size=32)
  assert models.count_params(params19) == closed_form_count(VGG19, 512, 512, 10)


def test_layout_names():
  _, params, _ = F.abstract_init("vgg19", num_classes=10, image_size=32)
  model = nnx.eval_shape(lambda: models.get_model("vgg19", num_classes=10, rngs=nnx.Rngs(0)))
  assert model.taps == ("pool1", "pool2", "pool3", "pool4", "pool5", "fc6", "fc7", "logits")
  convs = [f"conv{b}_{i}" for b, n in enumerate((2, 2, 4, 4, 4), 1) for i in range(1, n + 1)]
  assert model.layers == (*convs, "fc6", "fc7", "logits")
  assert model.backbone_layers == tuple(convs)
  assert model.head_layers == ("fc6", "fc7", "logits")
  assert set(params["backbone"]) == set(convs)
  # Thesis fine-tuning ("last conv + classifier"): freezing all but the last 4 layers.
  mask = F.freeze_mask(params, len(model.layers) - 4, model.layers)
  assert not any(jax.tree.leaves(mask["backbone"]["conv5_4"]))
  assert all(jax.tree.leaves(mask["backbone"]["conv5_3"]))


def np_vgg(params, x):
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  x = np.asarray(x, np.float64)
  out = {}
  for b, n in enumerate((2, 2, 3, 3, 3), start=1):
    for i in range(1, n + 1):
      layer = p["backbone"][f"conv{b}_{i}"]
      x = np.maximum(np_conv_same3(x, layer["conv"]["kernel"], layer["conv"]["bias"]), 0)
    bsz, h, w, c = x.shape
    x = x.reshape(bsz, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
    out[f"pool{b}"] = x
  x = x.reshape(x.shape[0], -1)
  for name in ("fc6", "fc7"):
    x = np.maximum(x @ p["head"][name]["kernel"] + p["head"][name]["bias"], 0)
    out[name] = x
  out["logits"] = x @ p["head"]["logits"]["kernel"] + p["head"]["logits"]["bias"]
  return out


@pytest.fixture(scope="module")
def tiny():
  model = models.get_model("vgg_tiny", num_classes=6, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(3), (2, 32, 32, 3))
  return model, x, model(x, taps=model.taps)


def test_tiny_shapes(tiny):
  model, x, acts = tiny
  assert {k: v.shape for k, v in acts.items()} == {
    "pool1": (2, 16, 16, 4),
    "pool2": (2, 8, 8, 8),
    "pool3": (2, 4, 4, 16),
    "pool4": (2, 2, 2, 32),
    "pool5": (2, 1, 1, 32),
    "fc6": (2, 32),
    "fc7": (2, 32),
    "logits": (2, 6),
  }


def test_tiny_forward_matches_numpy(tiny):
  model, x, acts = tiny
  _, params, _ = F.split(model)  # each conv layer is {"conv": ...} (plus "bn" in vgg16_bn)
  ref = np_vgg(params, x)
  for tap in model.taps:
    scale = np.abs(ref[tap]).max()
    assert scale > 0, tap  # torchvision init keeps the signal alive through 13 convs
    np.testing.assert_allclose(acts[tap], ref[tap], rtol=1e-4, atol=1e-5 * scale, err_msg=tap)


def test_tiny_taps_equal_separate_passes(tiny):
  model, x, acts = tiny
  for tap in ("pool2", "fc6"):
    np.testing.assert_array_equal(model(x, taps=(tap,))[tap], acts[tap])
  np.testing.assert_array_equal(model(x), acts["logits"])


def test_dropout_in_classifier_only_in_train(tiny):
  model, x, acts = tiny
  a = model(x, taps=("pool5", "logits"), train=True, dropout_key=jax.random.key(0))
  b = model(x, taps=("logits",), train=True, dropout_key=jax.random.key(1))
  np.testing.assert_array_equal(a["pool5"], acts["pool5"])  # no dropout in the features
  assert not np.allclose(a["logits"], acts["logits"])
  assert not np.allclose(a["logits"], b["logits"])


def test_torchvision_init():
  model = models.get_model("vgg_tiny", num_classes=6, rngs=nnx.Rngs(1))
  for name in model.backbone_layers:
    conv = model.backbone[name].conv
    np.testing.assert_array_equal(conv.bias[...], 0.0)
  k = np.asarray(model.backbone["conv5_3"].conv.kernel[...])  # 3*3*32*32 draws
  np.testing.assert_allclose(k.std(), np.sqrt(2 / (9 * 32)), rtol=0.05)  # kaiming fan_out
  fc = np.asarray(model.head["fc6"].kernel[...])
  np.testing.assert_allclose(fc.std(), 0.01, rtol=0.2)


def test_bad_sizes_raise(tiny):
  model, _, _ = tiny
  with pytest.raises(ValueError, match="multiple of 32"):
    models.get_model("vgg16", num_classes=10, image_size=40, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="32, 32, 3"):
    model(jnp.zeros((1, 64, 64, 3)))
