r"""The thesis CNN study: 6 MNIST-family sources → targets MNIST and Fashion-MNIST.

Quick variant (the README's main job; offline, real data, a 2-core CPU in under 30 minutes):

  python launch/sweep.py --config configs/thesis_cnn.py:quick --workdir runs/thesis_cnn_quick

Full thesis setup (10 seeds, 100 epochs, 12 log-spaced checkpoints; a GPU job):

  python launch/sweep.py --config configs/thesis_cnn.py --workdir runs/thesis_cnn

Thesis-deciding variant (sized so the seed spread is well below the gaps between sources):

  python launch/sweep.py --config configs/thesis_cnn.py:thesis --workdir runs/thesis_cnn_thesis

One stage at a time, on the same workdir (each launcher runs one stage of this config and takes
the sweep's flags; `--stages` picks others):

  python launch/pretrain.py --config configs/thesis_cnn.py:quick --workdir runs/thesis_cnn_quick
  python launch/score.py    --config configs/thesis_cnn.py:quick --workdir runs/thesis_cnn_quick
  python launch/finetune.py --config configs/thesis_cnn.py:quick --workdir runs/thesis_cnn_quick
  python launch/evaluate.py --config configs/thesis_cnn.py:quick --workdir runs/thesis_cnn_quick

Smaller runs are overrides, e.g. scoring two taps on a 200-image probe
(`--config.score.layers=pool2,fc1 --config.score.probe_per_class=20`) or fine-tuning only the
final checkpoints in two modes (`--config.finetune.steps=400 --config.finetune.modes=full,head`).

Why this size. The quick run's seed-to-seed SD of a model's log-AUC is 0.01-0.04 with 2 seeds
and 400 pre-training steps (under an epoch, models far from converged), as large as many gaps
between sources. This variant trains 10 seeds (the thesis' number) for 3 full epochs on the full
training sets (9 checkpoints per seed, 540 in all) and fine-tunes each for 100 steps (test
accuracy on 2,000 images at 0, 1, 3, 10, 30, 100 steps). The SE of a source's seed mean is
SD/sqrt(10), that of a gap between two sources SD*sqrt(2/10) = 0.45 SD: 0.009 at SD 0.02, so
gaps of about 0.02-0.03 log-AUC are resolved at 2-3 SE even before the spread shrinks with the
longer training (expected, not measured). Read the report's power statement on the run itself.

Cost (an estimate from units measured on this 2-core CPU while it was LOADED, load average
11-15 from other jobs; the lead re-measures on an idle machine):
- units: 22.4 M train-step image equivalents = pre-training 9.0 M images (6 sources x 10 seeds x
  3 epochs) + its evaluations 6.5 M forward images (12,000 per checkpoint) + fine-tuning 6.9 M
  images (2 targets x 542 models x 100 steps x 64) + its evaluations 13.0 M forward images
  (2 x 542 x 6 x 2,000), a forward pass counted as 1/3 of a training step; and 1,080
  checkpoint scorings (540 checkpoints x 2 targets, 6 taps, all scores, probe 500).
- measured rates: training 244 img/s over 10 seeds (`benchmarks/zoo_throughput.py --seeds 10
  --steps 10 --repeats 2 --modes devices --cpu_devices 4`; the same command gave 1,447 img/s on
  the idle machine, BENCHMARKS.md); scoring 2.2 s per checkpoint in steady state plus about
  5 min of compilation per target (`benchmarks/score_job.py --num_checkpoints 8
  --memory_budget_gb 0.3 --loop_checkpoints 1 --io_checkpoints 2`, group 1 vs group 0).
- so: about 25.5 h of training + 0.8 h of scoring on the loaded CPU; about 4.3 h + 0.8 h (at
  most) on the idle one: an overnight CPU job.
- re-estimated after the reshape max pool and the "sequential" CPU layout on 2 devices (idle,
  BENCHMARKS.md): training ~5,300 img/s (`zoo_throughput.py --seeds 10 --cpu_devices 2
  --modes seq+data`), so ~1.2 h; scoring ~0.7 s per checkpoint and target (the quick study's
  score stage: 192 in 135-138 s), so ~13 min: about 1.5 h on the idle CPU (not run end to end).
- one GPU (an ESTIMATE, no GPU was lent to measure it): the CNN costs ~16 MFLOP per training
  image (forward ~5.3 MFLOP: conv2 4.5, fc1 0.4, conv1 0.4), so 22.4 M images are ~0.4 PFLOP,
  under a minute of compute at even 10% of an H100-class GPU's fp32 rate; such small steps are
  bound by per-step launch overhead instead (~2-3 ms for a jitted step of 10 vmapped seeds or a
  fine-tune group of 16, i.e. ~100k-300k img/s), which gives 2-4 min of training steps, plus
  compilation (one per source / group shape, ~1 min each), orbax I/O (540 checkpoints) and the
  eigh-bound scoring (1,080 x 6 layers of N = 500: a few minutes): about 30 min end to end.

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
# The `thesis` variant: the thesis' 10 seeds, 3 full epochs of pre-training (9 checkpoints per
# seed: 0, 1, 3, 10, 30, 100, 300 batches, 1 and 3 epochs), 100 fine-tune steps.
THESIS_SEEDS, THESIS_EPOCHS, THESIS_FT_STEPS = 10, 3, 100


def _set(section: ml_collections.ConfigDict, **fields) -> None:
  for name, value in fields.items():
    section[name] = value


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg not in ("full", "thesis", "quick", "tiny"):
    raise ValueError(f"unknown variant {arg!r}; valid: full, thesis, quick, tiny")
  c = ml_collections.ConfigDict()
  # >0: on a CPU-only host, split the CPU into this many XLA devices (`jtransfer.runtime.devices`; a
  # GPU/TPU keeps its own): each training step's batch and the scoring's checkpoints are spread
  # over them. The quick and thesis variants use 2, one per core of the 2-core machine they were
  # sized on: faster than 4 or 1 for training and scoring alike (BENCHMARKS.md).
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
  c.studies = ("thesis",)  # the thesis' published numbers and findings beside the run's

  # Variants replace whole fields: ConfigDict.update would merge nested dicts such as duration.
  if arg == "quick":
    c.cpu_devices = 2
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
  elif arg == "thesis":  # sized to decide the findings (see the module docstring for its cost)
    c.cpu_devices = 2
    _set(
      c.pretrain,
      num_seeds=THESIS_SEEDS,
      duration={"epochs": THESIS_EPOCHS},
      eval_train_examples=2_000,
      eval_test_examples=None,
    )
    _set(c.score, heldout_probe=False)
    _set(c.finetune, duration={"steps": THESIS_FT_STEPS}, eval_examples=2_000)
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
