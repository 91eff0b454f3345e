r"""The thesis CNN trained seed after seed in plain PyTorch: the loop a researcher writes today.

Standalone (torch + NumPy only, no jtransfer), so it runs under any Python that has torch; the
zoo benchmark calls it as a subprocess when its own Python has no CPU torch:

  .venv-torch/bin/python benchmarks/torch_cnn_loop.py --data /tmp/mnist.npz --seeds 4

Prints one line of JSON: {"images_per_second": ..., "torch": ..., "threads": ...}. Only the
optimiser steps are timed (after 2 warm-up steps), median of `--repeats` windows per seed.
`--data` is an .npz with `x` [N, 28, 28, 1] float32 (normalised) and `y` [N] int labels.
"""

import argparse
import json

import numpy as np
import torch
from step_timing import median_seconds  # the same directory
from torch import nn

LR = 1e-4


def thesis_cnn() -> nn.Module:
  # Conv 32 3x3, pool, ReLU, conv 64 3x3, pool, ReLU, spatial dropout, fc 128, dropout, fc 10.
  return nn.Sequential(
    nn.Conv2d(1, 32, 3), nn.MaxPool2d(2), nn.ReLU(),
    nn.Conv2d(32, 64, 3), nn.MaxPool2d(2), nn.ReLU(), nn.Dropout2d(0.25),
    nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10),
  )  # fmt: skip


def seconds_per_window(x, y, seed, *, steps, repeats, batch_size) -> float:
  torch.manual_seed(seed)
  return timed_training(
    thesis_cnn(), x, y, lr=LR, steps=steps, repeats=repeats, batch_size=batch_size, seed=seed
  )


def timed_training(model, x, y, *, lr, steps, repeats, batch_size, seed) -> float:
  """Median seconds of `repeats` windows of `steps` Adam steps on random batches (after 2
  warm-up steps); also the fine-tune loop's timer (`torch_finetune_loop.py`)."""
  opt = torch.optim.Adam(model.parameters(), lr=lr)
  rng = np.random.default_rng(seed)
  model.train()

  def run(n):
    for _ in range(n):
      idx = torch.from_numpy(rng.integers(0, len(x), batch_size))
      opt.zero_grad(set_to_none=True)
      nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
      opt.step()

  return median_seconds(run, steps=steps, repeats=repeats)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data", required=True)
  p.add_argument("--seeds", type=int, default=1)
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--batch_size", type=int, default=64)
  a = p.parse_args()
  with np.load(a.data) as f:
    x = torch.from_numpy(np.ascontiguousarray(f["x"].transpose(0, 3, 1, 2)))
    y = torch.from_numpy(f["y"].astype(np.int64))
  total = sum(
    seconds_per_window(x, y, s, steps=a.steps, repeats=a.repeats, batch_size=a.batch_size)
    for s in range(a.seeds)
  )
  rate = a.seeds * a.steps * a.batch_size / total
  out = {"images_per_second": rate, "torch": torch.__version__, "threads": torch.get_num_threads()}
  print(json.dumps(out))


if __name__ == "__main__":
  main()
