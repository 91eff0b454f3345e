"""functional.py: split/apply, stacked inits under vmap, batch-norm state, labels, freezing."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from references import np_conv_same3

from jtransfer import models
from jtransfer.models import functional as F

SEEDS = (0, 1, 7)


def assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def mnist_like():
  return jax.random.uniform(jax.random.key(0), (4, 28, 28, 1))


@pytest.fixture(scope="module")
def cifar_like():
  return jax.random.normal(jax.random.key(1), (4, 32, 32, 3))


@pytest.fixture(scope="module")
def resnet_stacked():
  return F.init_stacked("resnet_tiny", num_classes=5, seeds=SEEDS)


@pytest.mark.parametrize("name", ["cnn_tiny", "resnet_tiny"])
def test_init_stacked_equals_separate_inits(name, resnet_stacked):
  if name == "resnet_tiny":
    graphdef, params, rest = resnet_stacked
  else:
    graphdef, params, rest = F.init_stacked(name, num_classes=5, seeds=SEEDS)
  for i, s in enumerate(SEEDS):
    _, p, r = F.split(models.get_model(name, num_classes=5, rngs=nnx.Rngs(s)))
    assert_trees_equal(F.unstack(params, i), p)
    assert_trees_equal(F.unstack(rest, i), r)
  # Independent: different seeds give different random leaves (every kernel).
  kernels = [x for p, x in jax.tree_util.tree_leaves_with_path(params) if p[-1].key == "kernel"]
  assert kernels
  for leaf in kernels:
    assert not np.array_equal(leaf[0], leaf[1])
  assert graphdef == F.split(models.get_model(name, num_classes=5, rngs=nnx.Rngs(0)))[0]


def test_vmapped_apply_equals_per_seed_cnn(mnist_like):
  graphdef, params, rest = F.init_stacked("cnn_tiny", num_classes=10, seeds=SEEDS)
  taps = ("pool1", "fc1", "logits")
  keys = jax.random.split(jax.random.key(5), len(SEEDS))

  @jax.jit
  def run(p, r, k):
    return F.apply(graphdef, p, r, mnist_like, taps=taps, train=True, dropout_key=k)

  @jax.jit
  def run_eval(p, r):
    return F.apply(graphdef, p, r, mnist_like)[0]

  batched, _ = jax.vmap(run)(params, rest, keys)
  batched_eval = jax.vmap(run_eval)(params, rest)
  assert batched_eval.shape == (len(SEEDS), 4, 10)
  for i in range(len(SEEDS)):
    p, r = F.unstack(params, i), F.unstack(rest, i)
    single, _ = run(p, r, keys[i])
    assert_trees_close(F.unstack(batched, i), single)
    model = F.merge(graphdef, p, r)  # the stateful model gives the same numbers
    np.testing.assert_allclose(batched_eval[i], model(mnist_like), rtol=1e-5, atol=1e-6)


def test_vmapped_apply_equals_per_seed_batchnorm(cifar_like, resnet_stacked):
  graphdef, params, rest = resnet_stacked

  @jax.jit
  def run(p, r):  # train mode, stopping after stage2 (later statistics stay as they were)
    return F.apply(graphdef, p, r, cifar_like, taps=("stem", "stage2"), train=True)

  out, new_rest = jax.vmap(run)(params, rest)
  for i in range(len(SEEDS)):
    o, nr = run(F.unstack(params, i), F.unstack(rest, i))
    assert_trees_close(F.unstack(out, i), o, rtol=1e-4, atol=1e-5)
    assert_trees_close(F.unstack(new_rest, i), nr, rtol=1e-4, atol=1e-6)
  stem_before, stem_after = rest["backbone"]["stem"], new_rest["backbone"]["stem"]
  assert not np.allclose(stem_after["bn"]["mean"], stem_before["bn"]["mean"])
  assert_trees_equal(new_rest["backbone"]["stage4_block1"], rest["backbone"]["stage4_block1"])


def test_batchnorm_stats_update_only_in_train(cifar_like):
  graphdef, params, rest = F.init("vgg16_bn", num_classes=4, seed=0, image_size=32, width=1 / 16)
  # Evaluation leaves the statistics alone, bit for bit.
  _, same = F.apply(graphdef, params, rest, cifar_like, taps=("pool2",))
  assert_trees_equal(same, rest)
  # Training: running = 0.9 running + 0.1 batch (PyTorch momentum 0.1), batch statistics of the
  # first conv's output over (B, H, W) with the biased variance, computed here in float64.
  _, new = F.apply(graphdef, params, rest, cifar_like, taps=("pool1",), train=True)
  conv = params["backbone"]["conv1_1"]["conv"]
  pre = np_conv_same3(
    np.asarray(cifar_like, np.float64), np.asarray(conv["kernel"]), np.asarray(conv["bias"])
  )
  stats = new["backbone"]["conv1_1"]["bn"]
  np.testing.assert_allclose(stats["mean"], 0.1 * pre.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * pre.var(axis=(0, 1, 2)), rtol=1e-4)
  # Only layers the pass reached are updated (it stopped after pool1).
  assert_trees_equal(new["backbone"]["conv2_1"], rest["backbone"]["conv2_1"])


def test_grad_through_apply_matches_closed_form(mnist_like):
  graphdef, params, rest = F.init("cnn_tiny", num_classes=10, seed=3)
  labels = jnp.array([0, 3, 9, 3])

  def loss(p):
    logits, _ = F.apply(graphdef, p, rest, mnist_like)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  grads = jax.jit(jax.grad(loss))(params)
  logits = np.asarray(F.apply(graphdef, params, rest, mnist_like)[0], np.float64)
  probs = np.exp(logits - logits.max(1, keepdims=True))
  probs /= probs.sum(1, keepdims=True)
  expected = (probs - np.eye(10)[labels]).mean(0)  # d CE / d bias of the last layer
  np.testing.assert_allclose(grads["head"]["logits"]["bias"], expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["cnn_tiny", "vgg_tiny", "resnet_tiny"])
def test_layer_labels_and_freeze_mask(name):
  model = models.get_model(name, num_classes=3, rngs=nnx.Rngs(0))
  _, params, _ = F.split(model)
  labels = F.layer_labels(params)
  for path, label in jax.tree_util.tree_flatten_with_path(labels)[0]:
    assert label == path[1].key  # {"backbone"|"head": {layer: ...}}
  assert set(jax.tree.leaves(labels)) == set(model.layers)
  for n in range(len(model.layers) + 1):
    mask = F.freeze_mask(params, n, model.layers)
    frozen = {
      lab for lab, m in zip(jax.tree.leaves(labels), jax.tree.leaves(mask), strict=True) if m
    }
    trainable = {
      lab for lab, m in zip(jax.tree.leaves(labels), jax.tree.leaves(mask), strict=True) if not m
    }
    assert frozen == set(model.layers[:n])
    assert trainable == set(model.layers[n:])
  by_name = F.freeze_mask(params, model.layers[1:2], model.layers)
  assert by_name == jax.tree.map(lambda lab: lab == model.layers[1], labels)
  with pytest.raises(ValueError, match="frozen_layers"):
    F.freeze_mask(params, len(model.layers) + 1, model.layers)
  with pytest.raises(ValueError, match="unknown layers"):
    F.freeze_mask(params, ("nope",), model.layers)
  with pytest.raises(ValueError, match="pure dict"):
    F.layer_labels({"encoder": {}})


def test_freeze_with_optax_keeps_frozen_bits(mnist_like):
  graphdef, params, rest = F.init("cnn_tiny", num_classes=10, seed=0)
  layers = models.get_model("cnn_tiny", num_classes=10, rngs=nnx.Rngs(0)).layers
  labels = jnp.array([1, 2, 3, 4])
  tx = optax.multi_transform(
    {"trainable": optax.adam(1e-2), "frozen": optax.set_to_zero()},
    F.freeze_labels(params, 1, layers),
  )
  state = tx.init(params)

  def loss(p):
    logits, _ = F.apply(graphdef, p, rest, mnist_like, train=True, dropout_key=jax.random.key(0))
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  new = params
  for _ in range(2):
    updates, state = tx.update(jax.grad(loss)(new), state, new)
    new = optax.apply_updates(new, updates)
  assert_trees_equal(new["backbone"]["conv1"], params["backbone"]["conv1"])
  for layer in ("conv2",):
    assert not np.array_equal(new["backbone"][layer]["kernel"], params["backbone"][layer]["kernel"])
  for layer in ("fc1", "logits"):
    assert not np.array_equal(new["head"][layer]["kernel"], params["head"][layer]["kernel"])


def test_abstract_init_allocates_nothing_and_matches():
  graphdef, shapes, rest_shapes = F.abstract_init("resnet_tiny", num_classes=7)
  g2, params, rest = F.init("resnet_tiny", num_classes=7, seed=0)
  assert graphdef == g2
  for s, p in zip(
    jax.tree.leaves((shapes, rest_shapes)), jax.tree.leaves((params, rest)), strict=True
  ):
    assert isinstance(s, jax.ShapeDtypeStruct)
    assert (s.shape, s.dtype) == (p.shape, p.dtype)
  assert models.count_params(shapes) == models.count_params(params)


def test_stack_unstack_and_errors():
  trees = [F.init("cnn_tiny", num_classes=2, seed=s)[1] for s in (0, 1)]
  stacked = F.stack(trees)
  assert_trees_equal(F.unstack(stacked, 1), trees[1])
  with pytest.raises(ValueError, match="seeds"):
    F.init_stacked("cnn_tiny", num_classes=2, seeds=[])
  with pytest.raises(ValueError, match="nothing to stack"):
    F.stack([])
