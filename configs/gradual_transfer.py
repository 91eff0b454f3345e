r"""Gradual transfer (Fayek et al.): how far up the network does A's representation serve B?

  python launch/sweep.py --config configs/gradual_transfer.py:quick --workdir runs/gradual_quick

For every pair {A, B} both models are pre-trained; each (last checkpoint) is then fine-tuned on
both tasks with its first l layers held constant, for every l = 0 .. L_H: l = 0 uses the source
as an initialisation, l = L_H (every transferred layer frozen, only the new head trains) as a
feature extractor. L_H is the number of TRANSFERRED layers (the backbone): the thesis CNN hands
over conv1, conv2 (fc1 and the classifier are new), so l = 0..2; `audio_cnn` hands over
block1..3 and fc1, so l = 0..4. Freezing a new, random layer is not part of the protocol.
A→A (self-transfer) is the reference for the drop, and the scratch baseline (a model trained on
the target only, for the fine-tune length) is drawn beside it.

Pairs: MNIST ↔ Fashion-MNIST and MNIST 0-4 ↔ 5-9 (thesis CNN), FSDD digits ↔ speakers of the
same clips of speakers 0-3 (`audio_cnn`; the paper's ASR ↔ SER analogue: same audio, two tasks).
No scores are computed (stages pretrain, finetune, evaluate); the evaluate stage runs the
`gradual` study (`jtransfer.studies.gradual`), which writes `gradual_matrix.csv` (source, target,
l: log-AUC and final accuracy, seed mean/std), `gradual_asymmetry.csv` and, under figures/,
`gradual_transfer_<value>.png` (Fayek's Fig. 1 layout: per pair, value vs l for A→B and B→B, B→A
and A→A, and the asymmetry) and `gradual_matrix_<value>.png` (the source→target × l matrix).
Asymmetry at l: drop(A→B) − drop(B→A), drop(A→B) = M[A→B, l] − M[B→B, l]
(`jtransfer.analysis.transfer_matrix.asymmetry`).

What to expect: the drop relative to self-transfer grows with l, fastest for the least related
pair, and need not be symmetric (Fayek: "layer-wise transferability between two datasets or
tasks can be nonsymmetric"). Quick: the MNIST-family CNNs for 300 steps (2 seeds; MNIST 0-4 /
5-9 at batch 32, so ~1/3 epoch), the FSDD `audio_cnn` at 1/4 width for 150 steps; fine-tuning
60 steps (CNN, 10,000 target train images) / 40 steps (audio) at Adam 1e-3, test accuracy on
1,000 images (all 200 clips for FSDD). Its log-AUC has a seed spread of a few hundredths and
150 steps leave the FSDD digit model weak (self-transfer accuracy ~0.3; speakers ~0.97): a
pipeline-sized run, not a settled answer. Measured: 33.6 min of stage time on the 2-core CPU
while LOADED (load average 11-15 from other jobs: CNN pre-training 9.7 min, audio 7.2, fine-
tuning 16.6, report 8 s); the training throughput measured at that load was 1/5.9 of the idle
machine's (BENCHMARKS.md), so expect roughly 6-10 min idle (an estimate, to be re-measured).
Full: 3 seeds, 20,000 (CNN) / 6,000 (audio) pre-training steps, 20 epochs of fine-tuning at
Adam 1e-4 (a GPU job).
Tiny (the test): MNIST 0-4 ↔ 5-9 only, a few steps.
Faithful (`:faithful`, Fayek's protocol on the CNN pairs): `cnn_fc1` hands over conv1, conv2 and
fc1 (l = 0..3; l = 3 is a frozen feature extractor under a new output layer), 5 seeds x 3
fine-tune seeds, converged final accuracy beside log-AUC; `gradual_drops.csv` and
`gradual_slopes.csv` give each drop, its slope against l and the asymmetry with 95 % intervals
from resampling pre-training seeds (`jtransfer.studies.gradual.drop_intervals`).
"""

import ml_collections

from jtransfer.data import audio_tasks  # noqa: F401  (registers the extra FSDD tasks)
from jtransfer.models import audio  # noqa: F401  (registers the audio models)

# arch -> the pairs fine-tuned both ways (each task is the source of its own self-transfer too).
PAIRS = {
  "cnn": (("mnist", "fashion_mnist"), ("mnist_split_0_4", "mnist_split_5_9")),
  "cnn_fc1": (("mnist", "fashion_mnist"), ("mnist_split_0_4", "mnist_split_5_9")),
  "audio_cnn": (("fsdd_digit_spk0123", "fsdd_speaker_spk0123"),),
}
# Transferred (backbone) layers of each architecture: l runs over 0..L_H (checked in the tests
# against the models' `backbone_layers`).
TRANSFERRED_LAYERS = {"cnn": 2, "cnn_fc1": 3, "audio_cnn": 4}
BATCH = {"mnist_split_0_4": 32, "mnist_split_5_9": 32}  # thesis: batch 32 for the MNIST splits
QUICK_AUDIO = {"widths": [16, 32, 64], "fc": 64}


def modes(arch: str) -> list[str]:
  """frozen=0 .. frozen=L_H of one architecture."""
  return [f"frozen={k}" for k in range(TRANSFERRED_LAYERS[arch] + 1)]


def _family(arch, pairs, *, steps, model_kwargs, source_kwargs, ft_kwargs):
  """Sources (pre-train overrides) and per-target fine-tune overrides of one architecture."""
  tasks = list(dict.fromkeys(t for pair in pairs for t in pair))
  partner = {a: b for a, b in pairs} | {b: a for a, b in pairs}
  sources = [
    {
      "name": t,
      "arch": arch,
      "model_kwargs": dict(model_kwargs),
      "duration": {"steps": steps},
      **({"batch_size": BATCH[t]} if t in BATCH else {}),
      **source_kwargs,
    }
    for t in tasks
  ]
  # Each target is fine-tuned from itself and its partner only, from their last checkpoints.
  targets = [
    dict(name=t, sources=[t, partner[t]], steps=[steps], modes=modes(arch), **ft_kwargs)
    for t in tasks
  ]
  return sources, targets


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg not in ("full", "quick", "tiny", "faithful"):
    raise ValueError(f"unknown variant {arg!r}; valid: full, quick, tiny, faithful")
  pretrain = dict(
    num_seeds=3,
    batch_size=64,
    optimizer="adam",
    optimizer_kwargs={"learning_rate": 1e-4},
    eval_train_examples=2_000,
    eval_test_examples=None,
    eval_batch_size=500,
  )
  finetune = dict(
    ft_seeds=[0],
    duration={"epochs": 20},
    batch_size=64,
    optimizer="adam",
    optimizer_kwargs={"learning_rate": 1e-4},
    eval_batch_size=500,
  )
  image = dict(arch="cnn", steps=20_000, model_kwargs={}, source_kwargs={}, ft_kwargs={})
  sound = dict(
    arch="audio_cnn",
    steps=6_000,
    model_kwargs={},
    source_kwargs={"batch_size": 32},
    ft_kwargs={"batch_size": 32},
  )
  pairs = dict(PAIRS)
  if arg == "quick":
    pretrain.update(num_seeds=2, optimizer_kwargs={"learning_rate": 1e-3}, eval_train_examples=500)
    pretrain.update(eval_test_examples=1_000)
    finetune.update(
      duration={"steps": 60},
      optimizer_kwargs={"learning_rate": 1e-3},
      eval_examples=1_000,
    )
    image.update(steps=300, ft_kwargs={"train_examples": 10_000})
    # audio_cnn fine-tuning dominates the cost (5 frozen counts x 2 targets): 40 steps, as
    # configs/audio_fsdd.py:quick.
    sound.update(
      steps=150,
      model_kwargs=dict(QUICK_AUDIO),
      ft_kwargs={"batch_size": 32, "duration": {"steps": 40}},
    )
  elif arg == "tiny":  # MNIST 0-4 <-> 5-9 for a few steps: the test's end-to-end run
    pairs = {"cnn": (PAIRS["cnn"][1],)}
    pretrain.update(
      num_seeds=2,
      optimizer_kwargs={"learning_rate": 1e-3},
      train_examples=256,
      eval_train_examples=64,
      eval_test_examples=64,
    )
    finetune.update(
      duration={"steps": 4},
      batch_size=16,
      optimizer_kwargs={"learning_rate": 1e-3},
      eval_examples=64,
      train_examples=256,
    )
    image.update(steps=6, source_kwargs={"batch_size": 16})
  families = (image, sound) if arg in ("full", "quick") else (image,)
  if arg == "faithful":
    # Fayek's protocol: every layer but the output transferred (cnn_fc1: conv1, conv2, fc1), so
    # l = 3 is a frozen feature extractor; converged final accuracy; 5 seeds x 3 fine-tune
    # seeds. Pre-training 3,000 steps at Adam 1e-3 (MNIST test accuracy ~0.98, as the deciding
    # study's zoo), fine-tuning 5 epochs at Adam 1e-3 on 6,000 target images (the deciding
    # study's pilot: the curves flatten there), evaluated on 2,000 test images.
    pretrain.update(num_seeds=5, optimizer_kwargs={"learning_rate": 1e-3})
    pretrain.update(eval_train_examples=2_000, eval_test_examples=2_000)
    finetune.update(
      ft_seeds=[0, 1, 2],
      duration={"epochs": 5},
      optimizer_kwargs={"learning_rate": 1e-3},
      eval_examples=2_000,
    )
    image.update(arch="cnn_fc1", steps=3_000, ft_kwargs={"train_examples": 6_000})
  sources, targets = [], []
  for fam in families:
    s, t = _family(
      fam["arch"],
      pairs[fam["arch"]],
      steps=fam["steps"],
      model_kwargs=fam["model_kwargs"],
      source_kwargs=fam["source_kwargs"],
      ft_kwargs=fam["ft_kwargs"],
    )
    sources += s
    targets += t
  c = ml_collections.ConfigDict()
  # CPU host: one XLA device per core of the 2-core machine (as thesis_cnn quick).
  c.cpu_devices = 2 if arg in ("quick", "faithful") else 0
  c.sources = sources
  c.pretrain = pretrain
  c.score = {"targets": []}  # no scores: the study's ground truth is the fine-tune curves
  c.finetune = {**finetune, "targets": targets}
  c.evaluate = None  # the standard score report has nothing to correlate; the study's is the report
  c.stages = ["pretrain", "finetune", "evaluate"]
  c.studies = ("gradual",)
  return c
