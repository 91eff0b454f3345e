r"""The deciding CNN study: enough sources, converged fine-tuning and fine-tune seeds to decide.

  python launch/sweep.py --config configs/decide_cnn.py --workdir ~/jtransfer-runs/decide_cnn
  python launch/sweep.py --config configs/decide_cnn.py:pilot --workdir runs/decide_pilot

Why this design (the thesis replication, `configs/thesis_cnn.py:thesis`, keeps the thesis'
protocol; this study is built to answer its questions):
- Clusters. A rank correlation over checkpoints is only as independent as the pre-training runs
  behind it: 16 source tasks (`jtransfer.data.variants` and the thesis' six: domains, class
  subsets, sample scale, label and pixel noise, inversion), 4 of them also with a second
  architecture (`cnn_half`), one pre-training seed each: 20 source clusters plus the shared
  initialisations (a second seed adds replicates inside a cluster, not clusters, and would
  double the cost).
- One schedule for every source: checkpoints at the same steps (0, 30, 100, 300, 1000, 3000 at
  batch 64) whatever the source's size, so a schedule position means the same training for
  every source and within-position comparisons are meaningful. The thesis' 1-, 3- and 10-step
  checkpoints are left out: they are the initialisation in all but name (step 10 of MNIST: test
  accuracy 0.24).
- Ground truth that has converged: each checkpoint fine-tuned (all layers, new dense head) on a
  6,000-image part of the target's train split (the low-data regime where the choice of source
  matters) for 5 epochs at Adam 1e-3, evaluated on the thesis' log schedule on 2,000 test
  images; log-AUC and final accuracy both. The pilot (docs/results/decide_cnn/README.md) chose
  them: at Adam 1e-4 the Fashion curves still rise at 30 epochs (0.80 at 10, 0.85 at 30); at
  1e-3 they reach that level by epoch 10 and gain 0.03 from epoch 3 to 10.
- 3 fine-tune seeds for every checkpoint and for the baselines alike; B = 2,000 resamples.
- Cost: 57 min measured on this 2-core CPU (docs/results/decide_cnn/README.md: pre-training 20
  runs x 3,000 steps; 62 fine-tuned models per target: the positions FT_STEPS, step 0 shared by
  the sources of one architecture), so the study finishes inside one working session of a
  machine that does not outlive it.

Variants: "full" (the study), "pilot" (two sources, one seed, one fine-tune seed, 10 epochs of
fine-tuning: where the curves flatten), "tiny" (the test).
"""

import ml_collections

from jtransfer.data import variants  # noqa: F401  (registers the variant source tasks)

SOURCES = (
  "mnist",
  "fashion_mnist",
  "mnist_split_0_4",
  "mnist_split_5_9",
  "mnist_noise_struct",
  "mnist_noise",
  "kmnist_split",
  "usps_28",
  "cifar10_gray28",
  "fashion_split_0_4",
  "fashion_split_5_9",
  "mnist_binary_0_1",
  "mnist_n50",
  "mnist_label_noise_50",
  "mnist_gauss_noise",
  "mnist_inverted",
)
# The second architecture, on sources of four kinds (same domain, other domain, far domain).
HALF_WIDTH_SOURCES = ("mnist", "fashion_mnist", "kmnist_split", "cifar10_gray28")
TARGETS = ("mnist", "fashion_mnist")
CHECKPOINT_STEPS = (0, 30, 100, 300, 1000, 3000)
TARGET_TRAIN_EXAMPLES = 6_000
FT_EPOCHS = 5
FT_LEARNING_RATE = 1e-3
FT_SEEDS = (0, 1, 2)
# Fine-tuned positions: a decade apart, from the initialisation to the end of pre-training; the
# other positions are scored only (their scores are cheap, their fine-tunes are not).
FT_STEPS = (0, 30, 300, 3000)


def _set(section: ml_collections.ConfigDict, **fields) -> None:
  """Replaces whole fields (ConfigDict.update would merge nested dicts such as duration)."""
  for name, value in fields.items():
    section[name] = value


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg not in ("full", "pilot", "tiny"):
    raise ValueError(f"unknown variant {arg!r}; valid: full, pilot, tiny")
  c = ml_collections.ConfigDict()
  c.cpu_devices = 2
  c.sources = [{"name": s} for s in SOURCES] + [
    {"name": s, "arch": "cnn_half"} for s in HALF_WIDTH_SOURCES
  ]
  c.pretrain = dict(
    arch="cnn",
    num_seeds=1,
    batch_size=64,
    duration={"steps": CHECKPOINT_STEPS[-1]},
    checkpoint_steps=list(CHECKPOINT_STEPS),
    optimizer="adam",
    optimizer_kwargs={"learning_rate": 1e-4},
    eval_train_examples=2_000,
    eval_test_examples=2_000,
  )
  c.score = dict(
    targets=list(TARGETS),
    probe_per_class=50,
    heldout_probe=False,
    layers=None,
    scores=None,
  )
  c.finetune = dict(
    targets=list(TARGETS),
    modes=["full"],
    ft_seeds=list(FT_SEEDS),
    duration={"epochs": FT_EPOCHS},
    train_examples=TARGET_TRAIN_EXAMPLES,
    batch_size=64,
    optimizer="adam",
    optimizer_kwargs={"learning_rate": FT_LEARNING_RATE},
    eval_examples=2_000,
    eval_final=True,
    steps=list(FT_STEPS),
  )
  c.evaluate = dict(keep_seeds=False, n_boot=2_000, focus_layer="pool2")
  c.studies = ("thesis",)
  if arg == "pilot":
    c.sources = [{"name": "mnist"}, {"name": "mnist_noise"}]
    c.pretrain["num_seeds"] = 1
    c.score["targets"] = ["fashion_mnist"]
    c.score["layers"] = ["pool2"]
    _set(
      c.finetune,
      targets=["fashion_mnist"],
      ft_seeds=[0],
      duration={"epochs": 10},
      steps=[0, 300, 3000],
    )
    c.evaluate["n_boot"] = 50
  elif arg == "tiny":
    c.sources = [{"name": "mnist_n50"}, {"name": "usps_28"}, {"name": "mnist", "arch": "cnn_half"}]
    _set(
      c.pretrain,
      num_seeds=1,
      duration={"steps": 12},
      checkpoint_steps=[0, 3, 12],
      eval_train_examples=200,
      eval_test_examples=200,
    )
    _set(c.score, targets=["mnist"], probe_per_class=5, layers=["pool2", "fc1"])
    _set(
      c.finetune,
      targets=["mnist"],
      ft_seeds=[0, 1],
      duration={"steps": 6},
      train_examples=256,
      eval_examples=200,
    )
    c.evaluate["n_boot"] = 50
  return c
