r"""The score job against its own floor (issue 27, item 3), at the thesis CNN study's scale.

  PYTHONPATH=$PWD JTRANSFER_DATA_DIR=../shared/datasets \
    .venv/bin/python benchmarks/score_job_floor.py --num_checkpoints 48

Setup: a workdir of `--num_checkpoints` thesis-CNN checkpoints (random inits, perturbed so no two
are equal) written as pre-training writes them, probe of 500 MNIST train images (50 per class),
all 6 taps, the job's default score set (every default feature score, LEEP, NCE and the two
baselines). A warm-up job on another workdir with one group's worth of checkpoints compiles
every program first, so the timed job is steady state.

Measured side by side in one process, checkpoint for checkpoint:
- job: `score_job.run` on the workdir: restore, extract, score, store (the sqlite rows and done
  markers), with its validation and failure isolation;
- floor: the same checkpoints' restores (`checkpointing.restore`), plus the job's own jitted
  forward pass and fused score programs, warmed up, called on device arrays (no host copies,
  no input checks, no store): what the job cannot avoid doing.
Prints `uptime` before and after.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from jtransfer.jobs import score as score_job
from jtransfer.models import functional
from jtransfer.runtime import extract
from jtransfer.store import checkpointing, results
from jtransfer.store import zoo as zoo_lib

# The module: `jtransfer.scores.compute` as an attribute is the function of that name.
score_compute = importlib.import_module("jtransfer.scores.compute")
ARCH = "cnn"
TAPS = ("conv1", "pool1", "conv2", "pool2", "fc1", "logits")  # every tap, as the job scores


def _uptime() -> str:
  return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _make_zoo(workdir: str, seeds: range) -> list[str]:
  """Checkpoints written as pre-training writes them (params + the store's checkpoint rows)."""
  store = results.Store(workdir)
  rng = np.random.default_rng(0)
  paths = []
  for seed in seeds:
    _, params, _ = functional.init(ARCH, num_classes=10, seed=seed)
    params = jax.tree.map(lambda a: np.asarray(a) + 0.01 * rng.normal(size=a.shape), params)
    params = jax.tree.map(lambda a: a.astype(np.float32), params)
    entry = zoo_lib.Entry(source="mnist", arch=ARCH, seed=seed, step=0, num_classes=10,
                          model_kwargs={}, index=0, epoch=0.0)  # fmt: skip
    entry = zoo_lib.write_entry(workdir, entry, params)
    store.add_checkpoint(**entry.index_row(workdir))
    paths.append(entry.path)
  store.close()
  return paths


def _timed(fn, *args, **kw):
  t = time.perf_counter()
  out = jax.block_until_ready(fn(*args, **kw))
  return out, time.perf_counter() - t


def _floor(paths, probe, config, devices, repeats: int) -> tuple[float, float]:
  """(restores + the warmed jitted forward pass + fused score programs, restores), seconds."""
  feature, probs, _ = config.score_names()
  taps = score_job._taps(TAPS, bool(probs))
  t0 = time.perf_counter()
  trees = [checkpointing.restore(p) for p in paths]
  restore = time.perf_counter() - t0
  params, rest = checkpointing.split_rest(checkpointing.stack(trees))
  graphdef = functional.abstract_init(ARCH, num_classes=10)[0]
  forward = extract._jitted(graphdef, taps, extract.resolve_parallel("auto", members=len(paths)))
  dev_params = jax.tree.map(jnp.asarray, params)
  dev_rest = jax.tree.map(jnp.asarray, rest)
  x = jnp.asarray(probe.inputs)
  labels = jnp.asarray(probe.labels)

  specs = score_compute._select(feature, features=True, labels=True, source_probs=False)
  opts = score_compute._resolve_options(specs, config.score_options)
  width = len(devices)  # chunk 1 per device: the job's CPU program
  fused = score_compute._jitted_batched(tuple(feature), opts, 10, 1, tuple(devices))
  pspecs = score_compute._select(probs, features=False, labels=True, source_probs=True)
  popts = score_compute._resolve_options(pspecs, None)
  prob_fn = score_compute._jitted_batched(tuple(probs), popts, 10, 1, tuple(devices))

  m = len(paths)
  pad = -m % width  # the job pads its last chunk with copies of model 0; so does the floor

  def chunks(a):
    a = jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)]) if pad else a
    return [a[i : i + width] for i in range(0, m + pad, width)]

  def once():
    acts = forward(dev_params, dev_rest, x)
    out = [fused({"features": f}, labels) for layer in TAPS for f in chunks(acts[layer])]
    probs_all = jax.nn.softmax(acts["logits"], axis=-1)
    out += [prob_fn({"source_probs": p}, labels) for p in chunks(probs_all)]
    return out

  _timed(once)  # compile
  best = min(_timed(once)[1] for _ in range(repeats))
  return restore + best, restore


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  ap.add_argument("--num_checkpoints", type=int, default=48)
  ap.add_argument("--repeats", type=int, default=2, help="floor: best of this many warm runs")
  args = ap.parse_args()
  print("uptime before:", _uptime())
  m = args.num_checkpoints
  config = score_job.ScoreConfig(target="mnist", probe_per_class=50)
  devices = jax.local_devices()
  with tempfile.TemporaryDirectory() as tmp:
    warm_dir, timed_dir = f"{tmp}/warm", f"{tmp}/timed"
    # The warm-up zoo has the timed job's group size, so every program is compiled once.
    probe = score_job.build_probe("mnist", "train", 50)
    per_model = extract.activation_bytes(
      extract.tap_dims(*functional.init(ARCH, num_classes=10, seed=0), (28, 28, 1), TAPS),
      len(probe.labels),
    )
    cap = max(1, config.memory_budget_bytes // per_model)
    group = -(-m // -(-m // cap))
    _make_zoo(warm_dir, range(1000, 1000 + group))
    paths = _make_zoo(timed_dir, range(m))
    _, warm = _timed(score_job.run, config, warm_dir)
    summary, job = _timed(score_job.run, config, timed_dir)
    floor, restore = _floor(paths, probe, config, devices, args.repeats)
  print(
    f"{jax.devices()[0].platform} x{len(devices)}, {m} checkpoints in groups of {group}, "
    f"N={len(probe.labels)}, 6 taps, {len(config.requested)} scores; warm-up job {warm:.1f} s"
  )
  print(f"  job (restore, extract, score, store)  {job / m:7.3f} s per checkpoint")
  print(f"  floor (restores + forward + fused)    {floor / m:7.3f} s per checkpoint")
  print(f"    of which restores                   {restore / m:7.3f} s per checkpoint")
  print(f"job / floor = {job / floor:.2f}x   (goal <= 1.5x); rows written {summary['rows']}")
  print("uptime after:", _uptime())


if __name__ == "__main__":
  main()
