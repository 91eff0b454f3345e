r"""Fine-tuning thesis-CNN checkpoints in plain PyTorch, member after member: the loop a
researcher writes today for the thesis' transfer step (conv weights kept, new dense layers).

Standalone (torch + NumPy only), run by `benchmarks/finetune_throughput.py` under a Python
that has torch:

  .venv-torch/bin/python benchmarks/torch_finetune_loop.py --data /tmp/d.npz --weights /tmp/w.npz

`--weights` is an .npz with `conv1_kernel` [M, 3, 3, 1, 32], `conv1_bias` [M, 32],
`conv2_kernel` [M, 3, 3, 32, 64], `conv2_bias` [M, 64] (jtransfer's HWIO layout, M members);
each member loads its two convolutions, gets a freshly initialised fc1 / logits head (PyTorch's
default init, seed 0 as jtransfer's ft_seed 0), and trains every weight with Adam, batch
`--batch_size`. Only the optimiser steps are timed (after 2 warm-up steps), median of
`--repeats` windows of `--steps` steps per member. Prints one JSON line:
{"images_per_second": ..., "torch": ..., "threads": ...}.
"""

import argparse
import json

import numpy as np
import torch
from torch import nn
from torch_cnn_loop import thesis_cnn, timed_training  # the same directory


def load_member(weights, m: int, num_classes: int) -> nn.Module:
  torch.manual_seed(0)  # one fine-tune seed: every member gets the same new head
  model = thesis_cnn()
  model[-1] = nn.Linear(128, num_classes)
  with torch.no_grad():
    for name, conv in (("conv1", model[0]), ("conv2", model[3])):
      kernel = np.asarray(weights[f"{name}_kernel"][m]).transpose(3, 2, 0, 1)  # HWIO -> OIHW
      conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel)))
      conv.bias.copy_(torch.from_numpy(np.asarray(weights[f"{name}_bias"][m])))
  return model


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data", required=True, help=".npz with x [N, 28, 28, 1] float32, y [N]")
  p.add_argument("--weights", required=True)
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--lr", type=float, default=1e-4)
  a = p.parse_args()
  with np.load(a.data) as f:
    x = torch.from_numpy(np.ascontiguousarray(f["x"].transpose(0, 3, 1, 2)))
    y = torch.from_numpy(f["y"].astype(np.int64))
  num_classes = int(y.max()) + 1
  with np.load(a.weights) as w:
    weights = {k: w[k] for k in w.files}
  members = len(weights["conv1_kernel"])
  total = 0.0
  for m in range(members):
    model = load_member(weights, m, num_classes)
    total += timed_training(
      model, x, y, lr=a.lr, steps=a.steps, repeats=a.repeats, batch_size=a.batch_size, seed=m
    )
  rate = members * a.steps * a.batch_size / total
  out = {"images_per_second": rate, "torch": torch.__version__, "threads": torch.get_num_threads()}
  print(json.dumps(out))


if __name__ == "__main__":
  main()
