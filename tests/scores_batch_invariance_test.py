"""Batch invariance: a checkpoint's scores are bit-identical whatever else is in its batch or
group (issue 11 item 3): compute_batched on 4 vs 20 models, and the score job uninterrupted vs
one checkpoint per group vs resumed after part of the zoo was scored."""

import numpy as np
import pytest
import score_job_test as sjt
from stage_calls import run_job

from jtransfer import scores
from jtransfer.jobs import score as score_job
from jtransfer.store import checkpointing, results

FEATURE_SCORES = [n for n, s in scores.REGISTRY.items() if s.needs_features]


def _models(m=20, n=30, d=12, c=3, seed=0):
  rng = np.random.default_rng(seed)
  y = np.arange(n) % c
  base = rng.normal(size=(c, d))[y]
  feats = base + rng.normal(size=(m, n, d)) * rng.uniform(0.3, 2, size=(m, 1, 1)) + 5
  logits = rng.normal(size=(m, n, 4))
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  return feats.astype(np.float32), y, probs.astype(np.float32)


@pytest.mark.parametrize("chunk_size", [None, 3])
def test_compute_batched_4_vs_20(chunk_size):
  feats, y, probs = _models()
  kw = dict(num_classes=3, chunk_size=chunk_size, names=list(scores.REGISTRY))  # N-LEEP too
  every = scores.compute_batched(feats, y, source_probs=probs, **kw)
  assert set(every) == set(scores.REGISTRY)
  for pick in ([0, 1, 2, 3], [7, 19, 3, 12], [5]):
    some = scores.compute_batched(feats[pick], y, source_probs=probs[pick], **kw)
    for name, values in every.items():
      np.testing.assert_array_equal(np.asarray(some[name]), np.asarray(values)[pick], name)


def test_kernels_alone_vs_vmapped_over_8_models_at_a_larger_probe():
  """N = 100, D = 300, C = 10 (row blocks, several classes): each model's kernel value alone
  equals its value vmapped over 8 models, bit for bit. RSA's total scatter as within + between
  came out 1 ulp apart here, which tied its values between a one- and a two-process sweep."""
  import jax
  import jax.numpy as jnp

  from jtransfer.scores.shared import Shared

  rng = np.random.default_rng(0)
  y = jnp.asarray(np.arange(100) % 10, jnp.int32)
  feats = jnp.asarray(np.maximum(rng.normal(size=(8, 100, 300)) + 0.5, 0), jnp.float32)
  for name in ["rsa", "sum_of_squares", "h_score", "two_nn"]:
    kernel = scores.REGISTRY[name].kernel
    fn = jax.jit(jax.vmap(lambda f, kernel=kernel: kernel(Shared(f, y, 10))))
    every = np.asarray(fn(feats))
    alone = np.concatenate([np.asarray(fn(feats[i : i + 1])) for i in range(8)])
    np.testing.assert_array_equal(alone, every, name)


ZOO = [("mnist", 0, step) for step in (0, 1, 3, 10, 30, 100)]


def _stored(workdir):
  df = results.load(workdir, "scores")
  df = df[df.layer != score_job.NO_LAYER].sort_values(["step", "layer", "score"])
  return {(r.step, r.layer, r.score): r.value for r in df.itertuples()}


def test_score_job_values_do_not_depend_on_group(tmp_path):
  sjt.register_synth()
  kw = dict(target=sjt.SYNTH, probe_per_class=sjt.PER_CLASS, layers=("pool2", "fc1"),
            scores=FEATURE_SCORES, show_progress=False)  # fmt: skip
  runs = {}
  for name, budget in (("one_group", 1 << 34), ("one_per_group", 1)):
    workdir = tmp_path / name
    sjt.make_zoo(workdir, ZOO)
    run_job(score_job, workdir=workdir, memory_budget_bytes=budget, **kw)
    runs[name] = _stored(workdir)
  # resumed: two checkpoints first (as if the job was stopped), then the whole zoo again
  workdir = tmp_path / "resumed"
  sjt.make_zoo(workdir, ZOO)
  first = [checkpointing.checkpoint_path(workdir, s, "cnn_tiny", seed, step)
           for s, seed, step in ZOO[2:4]]  # fmt: skip
  run_job(score_job, workdir=workdir, memory_budget_bytes=1 << 34, checkpoints=first, **kw)
  summary = run_job(score_job, workdir=workdir, memory_budget_bytes=1 << 34, **kw)
  assert summary["scored"] == len(ZOO) - 2
  runs["resumed"] = _stored(workdir)
  ref = runs["one_group"]
  assert len(ref) == len(ZOO) * 2 * len(FEATURE_SCORES)
  for name, got in runs.items():
    assert got.keys() == ref.keys(), name
    same = lambda a, b: a == b or (np.isnan(a) and np.isnan(b))  # noqa: E731
    diff = {k: (got[k], ref[k]) for k in ref if not same(got[k], ref[k])}
    assert not diff, (name, diff)
