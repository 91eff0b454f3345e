"""Checkpoint I/O for the thesis CNN (225,034 params): orbax via jtransfer vs a bare np.savez.

  .venv/bin/python benchmarks/checkpoint_io.py [--n 20]

Prints median milliseconds per checkpoint for save, restore, restore_backbone and
restore_stacked (per checkpoint), and the ratio to np.savez / np.load of the same arrays
(no atomicity, no partial restore) measured in the same run.
"""

import argparse
import pathlib
import tempfile
import time

import numpy as np

from jtransfer.store import checkpointing as ckpt


def thesis_cnn_params(seed: int) -> dict:
  rng = np.random.default_rng(seed)
  f = lambda *s: rng.standard_normal(s, np.float32)
  return {
    "backbone": {
      "conv1": {"kernel": f(3, 3, 1, 32), "bias": f(32)},
      "conv2": {"kernel": f(3, 3, 32, 64), "bias": f(64)},
      "fc1": {"kernel": f(1600, 128), "bias": f(128)},
    },
    "head": {"logits": {"kernel": f(128, 10), "bias": f(10)}},
  }


def _flat(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[prefix + k] = v
  return out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--n", type=int, default=20)
  n = parser.parse_args().n
  params = thesis_cnn_params(0)
  size = sum(v.size for v in _flat(params).values())
  root = pathlib.Path(tempfile.mkdtemp())
  times = {k: [] for k in ("save", "restore", "restore_backbone", "npz_save", "npz_load")}
  paths = []
  for i in range(n):
    path = root / "orbax" / str(i)
    t = time.perf_counter()
    ckpt.save(path, params, extra={"step": i})
    times["save"].append(time.perf_counter() - t)
    t = time.perf_counter()
    ckpt.restore(path)
    times["restore"].append(time.perf_counter() - t)
    t = time.perf_counter()
    ckpt.restore_backbone(path)
    times["restore_backbone"].append(time.perf_counter() - t)
    npz = root / f"{i}.npz"
    t = time.perf_counter()
    np.savez(npz, **_flat(params))
    times["npz_save"].append(time.perf_counter() - t)
    t = time.perf_counter()
    with np.load(npz) as z:
      {k: z[k] for k in z.files}
    times["npz_load"].append(time.perf_counter() - t)
    paths.append(path)
  t = time.perf_counter()
  ckpt.restore_stacked(paths)
  stacked = (time.perf_counter() - t) / n
  med = {k: 1e3 * float(np.median(v[1:] if len(v) > 1 else v)) for k, v in times.items()}
  print(f"thesis CNN: {size:,} params, {n} checkpoints, median ms per checkpoint")
  print(f"  save             {med['save']:8.1f}   ({med['save'] / med['npz_save']:.0f}x np.savez)")
  print(
    f"  restore          {med['restore']:8.1f}   ({med['restore'] / med['npz_load']:.0f}x np.load)"
  )
  print(f"  restore_backbone {med['restore_backbone']:8.1f}")
  print(f"  restore_stacked  {1e3 * stacked:8.1f}   (per checkpoint, {n} at once)")
  print(f"  np.savez {med['npz_save']:.2f}  np.load {med['npz_load']:.2f}")


if __name__ == "__main__":
  main()
