"""Score job at the thesis CNN study scale: vs its floor, and vs scoring one checkpoint at a time.

  python benchmarks/score_job.py --num_checkpoints 48      # scaled down, extrapolated to 720
  python benchmarks/score_job.py --num_checkpoints 720     # the full study (long on a CPU)

Setup (thesis CNN study): the thesis CNN, probe of 500 samples (50 per class, 10 classes), all 6
taps (conv1 21,632 ... logits 10 features), the job's default scores (every default feature
score, LEEP and NCE). Checkpoints are random-init CNN params held in memory (a score's cost does
not depend on training); orbax I/O is measured separately. Measured side by side in one run:

1. job: `score_job.score_stacked` (the job's compute path: one jitted forward pass over the
   group's stacked models for all taps, then `compute_batched` per layer) on groups of the size
   the job picks from its memory budget. The first group includes compilation and is reported
   separately; the rate is taken over the other groups.
2. floor: per (checkpoint, layer) one N x N Gram matmul F Fᵀ and one N x N `eigh`, in JAX
   (jit + lax.map over the group), on the same activations. Extraction is not in the floor.
3. loop: a Python loop over checkpoints, one at a time: `extract.extract_one` + one
   `scores.compute` per layer (+ LEEP/NCE), after one warm-up checkpoint.
4. I/O: orbax save and restore of a few checkpoints (`jtransfer.store.checkpointing`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from jtransfer import scores
from jtransfer.jobs import score as score_job
from jtransfer.models import functional
from jtransfer.runtime import extract
from jtransfer.store import checkpointing

TAPS = ("conv1", "pool1", "conv2", "pool2", "fc1", "logits")
# The job's default set (N-LEEP, a by-name-only score, is not in it).
FEATURE, PROBS, _ = score_job.select_scores(None)


@jax.jit
def _floor(feats):
  """[M, N, D] -> eigenvalues of every model's N x N Gram matrix."""

  def one(f):
    return jnp.linalg.eigh(jnp.matmul(f, f.T, precision=jax.lax.Precision.HIGHEST))[0]

  return jax.lax.map(one, feats)


def _timed(fn, *args, **kw):
  t = time.perf_counter()
  out = jax.block_until_ready(fn(*args, **kw))
  return out, time.perf_counter() - t


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  ap.add_argument("--num_checkpoints", type=int, default=48)
  ap.add_argument("--per_class", type=int, default=50)
  ap.add_argument("--memory_budget_gb", type=float, default=2.0)
  ap.add_argument("--loop_checkpoints", type=int, default=3, help="timed after one warm-up")
  ap.add_argument("--io_checkpoints", type=int, default=8)
  ap.add_argument("--parallel", default="auto", choices=extract.PARALLEL)
  args = ap.parse_args()

  m_total = args.num_checkpoints
  rng = np.random.default_rng(0)
  y = np.repeat(np.arange(10), args.per_class).astype(np.int32)
  x = rng.normal(size=(len(y), 28, 28, 1)).astype(np.float32)
  graphdef, params, rest = functional.init_stacked("cnn", num_classes=10, seeds=range(m_total))
  params = jax.device_get(params)
  one = functional.unstack(params, 0)
  dims = extract.tap_dims(graphdef, one, {}, x.shape[1:], TAPS)
  per_model = extract.activation_bytes(dims, len(y))
  cap = max(1, int(args.memory_budget_gb * 2**30) // per_model)
  size = -(-m_total // -(-m_total // cap))  # the job's balanced group size
  print(
    f"{jax.devices()[0].platform} x{jax.device_count()}, {m_total} checkpoints, N={len(y)}, "
    f"taps {dims} ({per_model / 1e6:.0f} MB activations / checkpoint), group size {size}, "
    f"parallel={extract.resolve_parallel(args.parallel)}"
  )
  kw = dict(
    num_classes=10, layers=TAPS, feature_names=FEATURE, prob_names=PROBS,
    memory_budget_bytes=int(args.memory_budget_gb * 2**30), parallel=args.parallel,
  )  # fmt: skip

  # 1-2. Job and floor, group by group (first group: compile).
  job_t, ext_t, floor_t, steady = [], [], [], 0
  for g, start in enumerate(range(0, m_total, size)):
    p = jax.tree.map(lambda a, s=start: a[s : s + size], params)
    r = {}
    _, tj = _timed(score_job.score_stacked, graphdef, p, r, x, [y], **kw)
    acts, te = _timed(
      extract.extract, graphdef, p, r, x, taps=TAPS, batch_size=250, parallel=args.parallel
    )
    tf = 0.0
    for t in TAPS:
      feats = jnp.asarray(acts[t])
      if g == 0:
        _timed(_floor, feats)  # compile
      tf += _timed(_floor, feats)[1]
    del acts
    m = len(jax.tree.leaves(p)[0])
    print(
      f"group {g} ({m} ckpts): job {tj:.2f}s  extract {te:.2f}s  floor {tf:.2f}s"
      + ("  (includes compilation)" if g == 0 else "")
    )
    if g > 0 or m_total <= size:
      job_t.append(tj)
      ext_t.append(te)
      floor_t.append(tf)
      steady += m
  job, ext, floor = (sum(v) / steady for v in (job_t, ext_t, floor_t))

  # 3. The one-by-one loop.
  def loop_one(i):
    pi = functional.unstack(params, i)
    acts = extract.extract_one(graphdef, pi, {}, x, taps=TAPS)
    out = [scores.compute(acts[t], y, num_classes=10, names=FEATURE) for t in TAPS]
    logits = acts["logits"].astype(np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs = (probs / probs.sum(1, keepdims=True)).astype(np.float32)
    out.append(scores.compute(None, y, num_classes=10, names=PROBS, source_probs=probs))
    return out

  _, t_warm = _timed(loop_one, 0)
  k = max(1, min(args.loop_checkpoints, m_total - 1))
  t0 = time.perf_counter()
  for i in range(1, k + 1):
    jax.block_until_ready(loop_one(i))
  loop = (time.perf_counter() - t0) / k

  # 4. Orbax I/O.
  n_io = min(args.io_checkpoints, m_total)
  with tempfile.TemporaryDirectory() as tmp:
    paths = [os.path.join(tmp, str(i)) for i in range(n_io)]
    t0 = time.perf_counter()
    for i, path in enumerate(paths):
      checkpointing.save(path, functional.unstack(params, i))
    save = (time.perf_counter() - t0) / n_io
    t0 = time.perf_counter()
    checkpointing.restore_stacked(paths)
    restore = (time.perf_counter() - t0) / n_io

  print(f"\nper checkpoint (steady state, all {len(TAPS)} taps, {len(FEATURE) + 2} scores):")
  print(f"  job (extract + score)  {job:8.3f} s   (extraction alone {ext:.3f} s)")
  print(f"  floor (Gram + eigh)    {floor:8.3f} s")
  print(f"  loop over compute      {loop:8.3f} s   (warm-up checkpoint {t_warm:.1f} s)")
  print(f"  orbax restore          {restore:8.3f} s   (save {save:.3f} s)")
  print(f"job / floor            = {job / floor:.2f}x   (goal <= 2x)")
  print(f"(job - extract) / floor = {(job - ext) / floor:.2f}x   (scoring only)")
  print(f"loop / job             = {loop / job:.2f}x")
  print(
    f"extrapolated to 720 checkpoints: job {720 * job / 60:.1f} min (+ restore "
    f"{720 * restore / 60:.1f} min), floor {720 * floor / 60:.1f} min, "
    f"loop {720 * loop / 60:.1f} min"
  )


if __name__ == "__main__":
  main()
