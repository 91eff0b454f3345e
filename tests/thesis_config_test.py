"""The thesis-deciding variant of configs/thesis_cnn.py: the sizes its docstring's cost uses."""

import pathlib

from jtransfer.cli import overrides as config_cli
from jtransfer.data import batches
from jtransfer.train import schedule

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
thesis_cnn = config_cli.load_module(CONFIGS / "thesis_cnn.py")

TRAIN_SIZES = {  # train split sizes of the six sources
  "mnist": 60_000,
  "fashion_mnist": 60_000,
  "mnist_split_0_4": 30_596,
  "mnist_split_5_9": 29_404,
  "mnist_noise_struct": 60_000,
  "mnist_noise": 60_000,
}


def test_thesis_variant_sizes():
  c = thesis_cnn.get_config("thesis").to_dict()
  assert c["pretrain"]["num_seeds"] == 10 and c["pretrain"]["duration"] == {"epochs": 3}
  images, checkpoints = 0, 0
  for src in c["sources"]:
    spe = batches.steps_per_epoch(TRAIN_SIZES[src["name"]], src["batch_size"])
    steps = schedule.to_steps(
      c["pretrain"]["duration"], steps_per_epoch=spe, batch_size=src["batch_size"]
    )
    ckpts = schedule.log_checkpoint_steps(spe, steps, include_final=True)
    assert len(ckpts) == 9, (src["name"], ckpts)  # 0 .. 300 batches, 1 and 3 epochs
    checkpoints += len(ckpts) * c["pretrain"]["num_seeds"]
    images += steps * src["batch_size"] * c["pretrain"]["num_seeds"]
  # The docstring's units: 540 checkpoints, 9.0 M pre-training images, 6.9 M fine-tune images.
  assert checkpoints == 540
  assert round(images / 1e6, 1) == 9.0
  members = 2 * (checkpoints + 2)  # + random_init and scratch, on each of the two targets
  ft = c["finetune"]
  assert round(members * ft["duration"]["steps"] * ft["batch_size"] / 1e6, 1) == 6.9
  ft_evals = schedule.log_checkpoint_steps(1, ft["duration"]["steps"], include_final=True)
  assert ft_evals == [0, 1, 3, 10, 30, 100]
  assert ft["eval_examples"] == 2_000 and c["cpu_devices"] == 2
