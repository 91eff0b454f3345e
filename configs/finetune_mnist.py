r"""Fine-tunes a zoo's checkpoints on MNIST and Fashion-MNIST (thesis section 2.3.3).

  python launch/finetune.py --config configs/finetune_mnist.py:quick --workdir runs/mnist_zoo_quick
  python launch/finetune.py --config configs/finetune_mnist.py --workdir runs/mnist_zoo

Run it on a workdir the pre-training job filled (`configs/mnist_zoo.py`); every checkpoint of its
`checkpoints` table gets a new head (the same init for all of them) and is fine-tuned.

Full (thesis CNN): all weights train (mode "full"), Adam 1e-4, batch 64, 100 epochs, test
accuracy on the whole test split at 0, 1, 3, 10, 30, 100, 300 batches and 1, 3, 10, 30, 100
epochs, plus the scratch and random-init baselines: 720 checkpoints x 2 targets (a GPU job).
Expect final accuracies near 99% (MNIST) / 90% (Fashion-MNIST) from useful sources, lower
early-epoch accuracy from the noise sources.

`quick`: 100 steps (evaluated at 0, 1, 3, 10, 30, 100), modes full and head, 1,000 test
images, the last checkpoint of each seed only: minutes on a 2-core CPU.
`tiny`: smoke runs on a `mnist_zoo.py:tiny` workdir (cnn_tiny, 12 steps, 256 images).
"""

import ml_collections


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg not in ("full", "quick", "tiny"):
    raise ValueError(f"unknown variant {arg!r}; valid: full, quick, tiny")
  c = ml_collections.ConfigDict()
  c.targets = ["mnist", "fashion_mnist"]
  c.modes = ["full"]  # also: "head", "last_block", "frozen=<l>", "frozen=all"
  c.ft_seeds = [0]
  c.duration = {"epochs": 100}
  c.batch_size = 64
  c.optimizer = "adam"
  c.optimizer_kwargs = {"learning_rate": 1e-4}
  # Which checkpoints (None: every row of the workdir's checkpoints table).
  c.sources = ml_collections.FieldReference(None, field_type=list)
  c.steps = ml_collections.FieldReference(None, field_type=list)
  c.model_kwargs = ml_collections.FieldReference(None, field_type=dict)  # None: pre-training's
  c.baselines = True  # scratch and random_init rows
  c.eval_examples = ml_collections.FieldReference(None, field_type=int)  # None: the whole test
  c.eval_train_examples = ml_collections.FieldReference(None, field_type=int)
  c.eval_batch_size = 1000
  c.train_examples = ml_collections.FieldReference(None, field_type=int)  # None: all
  c.group_size = 16  # checkpoints per jitted step
  c.seed_parallel = "auto"
  c.num_devices = ml_collections.FieldReference(None, field_type=int)
  c.cpu_devices = 0  # >0: split the host CPU into this many XLA devices (launch sets XLA_FLAGS)

  if arg == "quick":
    c.modes = ["full", "head"]
    c.duration = {"steps": 100}
    c.eval_examples = 1_000
    c.steps = [400]  # the final checkpoint of mnist_zoo.py:quick
    c.cpu_devices = 2
  elif arg == "tiny":
    c.targets = ["mnist"]
    c.modes = ["full", "head"]
    c.duration = {"steps": 12}
    c.batch_size = 16
    c.train_examples = 512
    c.eval_examples = 256
    c.eval_batch_size = 256
  return c
