"""Transfer modes and optax freezing: frozen leaves keep every bit, the rest follow optax."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtransfer.models import functional
from jtransfer.train import freezing, optim

CNN_LAYERS = ("conv1", "conv2", "fc1", "logits")
CNN_BACKBONE = ("conv1", "conv2")
VGG_LAYERS = tuple(
  f"conv{b}_{i}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for i in range(1, n + 1)
)
VGG_LAYERS += ("fc6", "fc7", "logits")


def _bits(x):
  x = np.asarray(x)
  return x.view(np.uint32 if x.dtype == np.float32 else np.uint64)


def test_mode_counts_for_the_thesis_models():
  parse = lambda specs, layers, bb: freezing.parse_modes(specs, layers=layers, backbone_layers=bb)
  assert parse(("full", "head", "last_block"), CNN_LAYERS, CNN_BACKBONE) == [
    ("full", 0),
    ("head", 2),
    ("last_block", 1),
  ]
  # Gradual transfer: l = 0 .. L-1, in order; duplicates dropped.
  assert parse(("frozen=all", "frozen=2"), CNN_LAYERS, CNN_BACKBONE) == [
    ("frozen", 0),
    ("frozen", 1),
    ("frozen", 2),
    ("frozen", 3),
  ]
  # VGG-16 (thesis): the last conv layer and the three classifier layers train (13 - 1 = 12).
  vgg = parse(("last_block", "head"), VGG_LAYERS, VGG_LAYERS[:13])
  assert vgg == [("last_block", 12), ("head", 13)]
  assert len(VGG_LAYERS) - vgg[0][1] == 4


@pytest.mark.parametrize(
  "spec, match",
  [
    ("frozen", "needs a count"),
    ("frozen=4", r"in \[0, 3\]"),
    ("frozen=x", "integer"),
    ("full=1", "takes no argument"),
    ("probe", "unknown transfer mode"),
  ],
)
def test_bad_modes_are_named(spec, match):
  with pytest.raises(ValueError, match=match):
    freezing.parse_modes((spec,), layers=CNN_LAYERS, backbone_layers=CNN_BACKBONE)


def _tree(rng):
  f = lambda *s: rng.normal(size=s).astype(np.float32)
  return {
    "backbone": {"conv1": {"kernel": f(3, 3, 1, 2), "bias": f(2)}, "conv2": {"kernel": f(2, 2)}},
    "head": {"fc1": {"kernel": f(2, 3), "bias": f(3)}, "logits": {"kernel": f(3, 2)}},
  }


@pytest.mark.parametrize("frozen", [1, 2, 3])
def test_sgd_momentum_freezes_exactly_and_matches_numpy_on_the_rest(frozen):
  rng = np.random.default_rng(0)
  params = _tree(rng)
  params["backbone"]["conv1"]["bias"][0] = -0.0  # a signed zero must survive too
  lr, mu, steps = 0.1, 0.9, 4
  tx = freezing.freeze(
    optim.make_optimizer("sgd", learning_rate=lr, momentum=mu), params, frozen, CNN_LAYERS
  )
  grads = [_tree(rng) for _ in range(steps)]

  @jax.jit
  def step(p, s, g):
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  p, s = params, tx.init(params)
  for g in grads:
    p, s = step(p, s, g)

  frozen_names = set(CNN_LAYERS[:frozen])
  for part in params:
    for layer in params[part]:
      for leaf, start in params[part][layer].items():
        got = np.asarray(p[part][layer][leaf])
        if layer in frozen_names:
          np.testing.assert_array_equal(_bits(got), _bits(start))
        else:
          # PyTorch-style heavy-ball SGD in float64: v <- g + mu v ; p <- p - lr v.
          ref, v = start.astype(np.float64), np.zeros(start.shape)
          for g in grads:
            v = g[part][layer][leaf] + mu * v
            ref = ref - lr * v
          np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
  # No optimiser state at all for frozen leaves: nothing that could leak into them.
  trace = s.inner_states["trainable"].inner_state[0].trace
  assert isinstance(trace["backbone"]["conv1"]["kernel"], optax.MaskedNode)


def test_adamw_weight_decay_does_not_touch_frozen_leaves():
  params = _tree(np.random.default_rng(1))
  tx = freezing.freeze(optax.adamw(1e-2, weight_decay=0.5), params, 2, CNN_LAYERS)
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  p, s = params, tx.init(params)
  for _ in range(3):
    u, s = tx.update(zero_grads, s, p)
    p = optax.apply_updates(p, u)
  for layer in CNN_BACKBONE:
    for leaf, start in params["backbone"][layer].items():
      np.testing.assert_array_equal(_bits(p["backbone"][layer][leaf]), _bits(start))
  # Weight decay alone shrinks trainable weights: p <- p (1 - lr wd) each step (zero grads).
  got = np.asarray(p["head"]["fc1"]["kernel"], np.float64)
  np.testing.assert_allclose(
    got, params["head"]["fc1"]["kernel"] * (1 - 1e-2 * 0.5) ** 3, rtol=1e-6
  )


def test_freezing_everything_is_an_error():
  params = _tree(np.random.default_rng(2))
  with pytest.raises(ValueError, match="nothing to train"):
    freezing.freeze(optax.sgd(0.1), params, 4, CNN_LAYERS)


def test_frozen_rest_mask_follows_the_layers():
  _, _, rest = functional.abstract_init("resnet_tiny", num_classes=3)  # structure only
  mask = freezing.frozen_rest_mask(rest, 2, ("stem", "stage1_block1", "stage2_block1"))
  flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(mask)[0]}
  assert flat and all(v == ("'stem'" in k or "'stage1_block1'" in k) for k, v in flat.items())
  assert any(flat.values()) and not all(flat.values())
  assert freezing.frozen_rest_mask({}, 2, CNN_LAYERS) == {}
