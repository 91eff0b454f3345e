r"""The thesis' MNIST-family zoo: the CNN pre-trained on six source tasks (thesis section 2.3.1).

  python launch/pretrain.py --config configs/mnist_zoo.py:quick --workdir runs/mnist_zoo_quick
  python launch/pretrain.py --config configs/mnist_zoo.py --workdir runs/mnist_zoo

Full: 10 seeds per source, Adam 1e-4, batch 64 (32 for the 5-class splits), cross-entropy,
100 epochs, checkpoints at 0, 1, 3, 10, 30, 100, 300 batches and 1, 3, 10, 30, 100 epochs: 12
checkpoints x 10 seeds x 6 sources = 720 checkpoints (a GPU job). Expect test accuracy
near 99% (MNIST), 92% (Fashion-MNIST), above 99% (the splits), 100% on the structured noise
(its labels are written into the pixels) and chance (10%) on pure noise.

`quick`: 2 seeds, 400 steps (0.4 epochs; 8 checkpoints per seed: 0 ... 300 batches and the
final step), evaluated on 2,000 train / 2,000 test images: minutes per source on a 2-core CPU.
`tiny`: tests and smoke runs (cnn_tiny, 512 images, 12 steps).
"""

import ml_collections
from ml_collections.config_dict import placeholder

# (source, batch size): the thesis uses batch 32 for the two 5-class MNIST halves.
SOURCES = (
  ("mnist", 64),
  ("fashion_mnist", 64),
  ("mnist_split_0_4", 32),
  ("mnist_split_5_9", 32),
  ("mnist_noise_struct", 64),
  ("mnist_noise", 64),
)


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg not in ("full", "quick", "tiny"):
    raise ValueError(f"unknown variant {arg!r}; valid: full, quick, tiny")
  c = ml_collections.ConfigDict()
  c.sources = [{"name": name, "batch_size": bs} for name, bs in SOURCES]
  c.arch = "cnn"
  c.model_kwargs = {}
  c.num_seeds = 10
  c.seed_offset = 0
  c.duration = {"epochs": 100}
  c.optimizer = "adam"
  c.optimizer_kwargs = {"learning_rate": 1e-4}
  c.eval_batch_size = 1000
  c.eval_train_examples = 10_000  # a fixed subset of the training set
  c.eval_test_examples = placeholder(int)  # None: the whole test set
  c.train_examples = placeholder(int)  # None: the whole training set
  c.seed_parallel = "auto"  # vmap on GPU/TPU; seeds over (fake) devices on CPU
  c.num_devices = placeholder(int)  # None: all local devices
  c.cpu_devices = 0  # >0: split the host CPU into this many XLA devices (launch sets XLA_FLAGS)
  c.save_every_steps = 5_000  # also save the train state this often (bounds work lost)
  c.log_every_steps = 50

  if arg == "quick":
    c.num_seeds = 2
    c.duration = {"steps": 400}
    c.eval_train_examples = 2_000
    c.eval_test_examples = 2_000
    c.cpu_devices = 2
  elif arg == "tiny":
    c.sources = [{"name": "mnist", "batch_size": 16}, {"name": "mnist_noise", "batch_size": 16}]
    c.arch = "cnn_tiny"
    c.num_seeds = 2
    c.duration = {"steps": 12}
    c.train_examples = 512
    c.eval_batch_size = 256
    c.eval_train_examples = 256
    c.eval_test_examples = 256
    c.save_every_steps = None
  return c
