r"""The thesis CNN study: 6 MNIST-family sources → targets MNIST and Fashion-MNIST.

Quick variant (the README's main job; offline, real data, a 2-core CPU in under 30 minutes):

  python launch/sweep.py --config configs/thesis_cnn.py:quick --workdir runs/thesis_cnn_quick

Full thesis setup (10 seeds, 100 epochs, 12 log-spaced checkpoints; a GPU job):

  python launch/sweep.py --config configs/thesis_cnn.py --workdir runs/thesis_cnn

What to expect (thesis, full setup, MNIST target, seeds averaged, 72 models): RSA at pool2 has
Spearman ≈ 0.9 with the fine-tune log-AUC; ID at pool2 ranges from 10.9 (MNIST 0-4) to 16.1
(noise); the two noise sources transfer worst by every measure. The quick variant trains each
source for a fraction of an epoch on a subset, so it has 8 checkpoints per seed instead of 12 and
its correlations are noisier: it checks the pipeline, it does not reproduce the numbers.
"""

import ml_collections
from ml_collections.config_dict import placeholder

SOURCES = (
  ("mnist", 64),
  ("fashion_mnist", 64),
  ("mnist_split_0_4", 32),  # thesis: batch 32 for the 5-class splits
  ("mnist_split_5_9", 32),
  ("mnist_noise_struct", 64),
  ("mnist_noise", 64),
)
TARGETS = ("mnist", "fashion_mnist")


def _set(section: ml_collections.ConfigDict, **fields) -> None:
  for name, value in fields.items():
    section[name] = value


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg not in ("full", "quick", "tiny"):
    raise ValueError(f"unknown variant {arg!r}; valid: full, quick, tiny")
  c = ml_collections.ConfigDict()
  # >0: on a CPU-only host, split the CPU into this many XLA devices so that seeds and
  # fine-tune groups run side by side (launch/sweep.py sets XLA_FLAGS; ignored on GPU/TPU).
  c.cpu_devices = 0
  c.sources = [{"name": name, "batch_size": bs} for name, bs in SOURCES]

  c.pretrain = dict(
    arch="cnn",
    num_seeds=10,
    batch_size=64,
    duration={"epochs": 100},
    optimizer="adam",
    optimizer_kwargs={"learning_rate": 1e-4},
    eval_train_examples=10_000,
  )
  c.score = dict(
    targets=list(TARGETS),
    probe_per_class=50,  # thesis: 500 probe images, 50 per class
    heldout_probe=True,  # NC paper's "ideal measure": also score a disjoint probe
    layers=placeholder(tuple),  # None: every tap of the architecture
    scores=placeholder(tuple),  # None: every score (registry + checkpoint_index, param_count)
  )
  c.finetune = dict(
    targets=list(TARGETS),
    modes=["full"],  # thesis CNN: all weights train, new dense layers
    ft_seeds=[0],
    duration={"epochs": 100},
    batch_size=64,
    optimizer="adam",
    optimizer_kwargs={"learning_rate": 1e-4},
  )
  c.evaluate = dict(keep_seeds=False, n_boot=1000, focus_layer="pool2")

  # Variants replace whole fields: ConfigDict.update would merge nested dicts such as duration.
  if arg == "quick":
    c.cpu_devices = 4
    _set(
      c.pretrain,
      num_seeds=2,
      duration={"steps": 400},
      train_examples=None,
      eval_train_examples=2_000,
      eval_test_examples=2_000,
    )
    _set(c.score, heldout_probe=False)  # halves the scoring time; the full variant has it
    _set(c.finetune, duration={"steps": 100}, eval_examples=1_000)
    _set(c.evaluate, n_boot=200)
  elif arg == "tiny":
    c.sources = [{"name": "mnist", "batch_size": 16}, {"name": "mnist_noise", "batch_size": 16}]
    _set(
      c.pretrain,
      num_seeds=2,
      duration={"steps": 12},
      batch_size=16,
      train_examples=512,
      eval_train_examples=256,
      eval_test_examples=256,
    )
    _set(c.score, targets=["mnist"], probe_per_class=5)
    _set(c.finetune, targets=["mnist"], duration={"steps": 10}, batch_size=16, eval_examples=200)
    _set(c.evaluate, n_boot=50)
  return c
