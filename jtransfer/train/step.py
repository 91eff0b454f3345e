"""The training and evaluation steps shared by pre-training and fine-tuning.

One model, one batch, pure functions of arrays (the NNX model is split once into a static
`graphdef` and pure-dict `params` / `rest`):

  train_step = make_train_step(graphdef, optimizer)
  params, rest, opt_state, metrics = train_step(params, rest, opt_state, x, y, dropout_key)
  sums = make_eval_step(graphdef)(params, rest, x, y)   # {"loss_sum", "correct", "count"}

`over_seeds(fn, "vmap" | "unroll" | "map")` lifts either to a leading seed axis on every
argument and output: `vmap` batches the seeds into one computation (fast on GPU/TPU);
`unroll` traces one copy of the step per seed into the same program, so every convolution stays
un-batched (XLA:CPU lowers vmapped convolutions to slow grouped convolutions); `map` runs them
in a `lax.map` loop (one copy of the code, but XLA:CPU runs loop bodies far slower: measured
~20x on the thesis CNN), for many seeds where compile time matters more.

Freezing, weight decay and schedules belong to the optax `optimizer`, not to the step.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jtransfer.models import functional

SEED_LOOPS = ("vmap", "unroll", "map")


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example softmax cross-entropy with integer labels (float32 even for low-precision)."""
  return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)


def make_loss_fn(graphdef) -> Callable:
  """`loss_fn(params, rest, x, y, dropout_key) -> (mean loss, (new_rest, accuracy))`."""

  def loss_fn(params, rest, x, y, dropout_key):
    logits, new_rest = functional.apply(
      graphdef, params, rest, x, train=True, dropout_key=dropout_key
    )
    loss = jnp.mean(cross_entropy(logits, y))
    accuracy = jnp.mean((jnp.argmax(logits, axis=-1) == y).astype(jnp.float32))
    return loss, (new_rest, accuracy)

  return loss_fn


def make_train_step(graphdef, optimizer: optax.GradientTransformation) -> Callable:
  """One optimiser step of one model; metrics are the batch's loss and accuracy (pre-update)."""
  grad_fn = jax.value_and_grad(make_loss_fn(graphdef), has_aux=True)

  def train_step(params, rest, opt_state, x, y, dropout_key):
    (loss, (rest, accuracy)), grads = grad_fn(params, rest, x, y, dropout_key)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, rest, opt_state, {"loss": loss, "accuracy": accuracy}

  return train_step


def make_eval_step(graphdef, *, margins: bool = False) -> Callable:
  """Sums over one batch (inference mode): `{"loss_sum", "correct", "count"}`.

  `mask` (optional, bool `[B]`) drops padded rows so the last, short batch can be padded to
  the fixed eval batch shape without a recompile. `margins` (two-class models) adds the
  per-example `"margin"` z1 - z0 `[B]` (padded rows included), for the host's AUROC.
  """

  def eval_step(params, rest, x, y, mask=None):
    logits, _ = functional.apply(graphdef, params, rest, x, train=False)
    losses = cross_entropy(logits, y)
    correct = (jnp.argmax(logits, axis=-1) == y).astype(jnp.float32)
    if mask is None:
      mask = jnp.ones(y.shape, jnp.bool_)
    m = mask.astype(jnp.float32)
    out = {"loss_sum": jnp.sum(losses * m), "correct": jnp.sum(correct * m), "count": jnp.sum(m)}
    if margins:
      out["margin"] = (logits[:, 1] - logits[:, 0]).astype(jnp.float32)
    return out

  return eval_step


def mean_loss_and_accuracy(parts) -> tuple[np.ndarray, np.ndarray]:
  """(mean loss, accuracy) in float64 from the host outputs of `make_eval_step` over batches
  (each `{"loss_sum", "correct", "count"}`, any leading seed axis kept)."""
  sums = {
    k: np.sum([np.asarray(p[k], np.float64) for p in parts], axis=0)
    for k in ("loss_sum", "correct", "count")
  }
  return sums["loss_sum"] / sums["count"], sums["correct"] / sums["count"]


def over_seeds(fn: Callable, how: str = "vmap") -> Callable:
  """Lifts `fn` to a leading seed axis on all (array) arguments and outputs."""
  if how == "vmap":
    return jax.vmap(fn)
  if how == "unroll":

    def unrolled(*args):
      n = jax.tree.leaves(args)[0].shape[0]
      outs = [fn(*jax.tree.map(lambda a, i=i: a[i], args)) for i in range(n)]
      return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

    return unrolled
  if how == "map":

    def mapped(*args):
      return jax.lax.map(lambda a: fn(*a), args)

    return mapped
  raise ValueError(f"unknown seed loop {how!r}; valid: {', '.join(SEED_LOOPS)}")
