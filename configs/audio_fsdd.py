r"""Audio zoo on FSDD: 5 source tasks of speakers 0-3 → digits of the unseen speakers 4-5.

  python launch/sweep.py --config configs/audio_fsdd.py:quick --workdir runs/audio_fsdd_quick

What to expect (quick): the run prints one line per stage and ends with the report path
(`runs/audio_fsdd_quick/report.md`, plus `report.html` and the figures). It pre-trains a
slimmed `audio_cnn` (conv widths 16/32/64, fc 64; log-mel front end inside the model) on five
sources, 2 seeds each, 150 steps of batch 32 (log-spaced checkpoints at 0, 1, 3, 10, 30, 100
batches and 1, 3, ... epochs: 8-9 per seed, 86 in all), scores every checkpoint at every tap
(block1, block2, block3, pool, fc1, logits; all scores of the registry, LEEP/NCE from the
source head) on a 20-per-class probe of the target, fine-tunes every checkpoint (plus the
scratch and random-init baselines) for 40 steps, and correlates scores with the fine-tune
log-AUC. Expect the noise source and the step-0 checkpoints to transfer worst and the digit
sources of speakers 0-3 best; `fsdd_digit_spk0123_n10` (100 clips) sits between. With 2 seeds
and short runs the correlations are noisy: the quick variant checks the pipeline, it does not
settle questions.
Budget: 11.4 min end to end on the otherwise idle 2-core CPU (measured, BENCHMARKS.md "Audio
studies end to end"; the issue's budget is 20).

  python launch/sweep.py --config configs/audio_fsdd.py --workdir runs/audio_fsdd

Full variant (a GPU job): the NC paper's `audio_cnn` (0.44 M parameters), 5 seeds, Adam 1e-4,
batch 32 (the NC paper's settings), 100 epochs of pre-training and of fine-tuning, 50 probe clips
per class (the target's train split has 90 per class), and a held-out probe.

Sources (`jtransfer.data.fsdd` and `jtransfer.data.audio_tasks`; speakers 0-3 only, so no
source has heard a target voice):
- `fsdd_speaker_spk0123`: who is speaking (4 classes): same audio, another task;
- `fsdd_digit_spk0123`: the target's task on other speakers (10 classes, 1,800 clips);
- `fsdd_digit_0_4_spk0123`: half of the target's classes (5 classes, 900 clips);
- `fsdd_digit_spk0123_n10`: the target's task with 10 clips per class (100 clips);
- `fsdd_noise`: uniform noise clips with `fsdd_digit_spk0123`'s labels (nothing learnable).
Target: `fsdd_digit_spk45` (digits of theo and yweweler: 900 train / 100 test clips).
"""

import ml_collections
from ml_collections.config_dict import placeholder

from jtransfer.data import audio_tasks  # noqa: F401  (registers the extra FSDD tasks)
from jtransfer.models import audio  # noqa: F401  (registers the audio models)

SOURCES = (
  "fsdd_speaker_spk0123",
  "fsdd_digit_spk0123",
  "fsdd_digit_0_4_spk0123",
  "fsdd_digit_spk0123_n10",
  "fsdd_noise",
)
TARGETS = ("fsdd_digit_spk45",)
# The quick variant's model: audio_cnn at 1/4 width (about 30x fewer FLOPs per clip).
QUICK_MODEL = {"widths": [16, 32, 64], "fc": 64}
TINY_SCORES = (
  "nc_score",
  "leep",
  "logme",
  "rsa",
  "knn_accuracy",
  "checkpoint_index",
  "param_count",
)


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg not in ("full", "quick", "tiny"):
    raise ValueError(f"unknown variant {arg!r}; valid: full, quick, tiny")
  # Plain dicts first: ConfigDict.update merges nested dicts, which would keep the full run's
  # duration={"epochs": ...} next to a variant's {"steps": ...}.
  sources = [{"name": name} for name in SOURCES]
  pretrain = dict(
    arch="audio_cnn",
    model_kwargs={},
    num_seeds=5,
    batch_size=32,
    duration={"epochs": 100},
    optimizer="adam",
    optimizer_kwargs={"learning_rate": 1e-4},
    eval_train_examples=placeholder(int),  # None: the whole train split
    eval_batch_size=500,
  )
  score = dict(targets=list(TARGETS), probe_per_class=50, heldout_probe=True)
  score.update(layers=placeholder(tuple), scores=placeholder(tuple))  # None: every tap / score
  finetune = dict(
    targets=list(TARGETS),
    modes=["full"],
    ft_seeds=[0],
    duration={"epochs": 100},
    batch_size=32,
    optimizer="adam",
    optimizer_kwargs={"learning_rate": 1e-4},
    eval_batch_size=500,
  )
  evaluate = dict(keep_seeds=False, n_boot=1000, focus_layer="pool")

  if arg == "quick":
    pretrain.update(
      model_kwargs=dict(QUICK_MODEL),
      num_seeds=2,
      duration={"steps": 150},
      optimizer_kwargs={"learning_rate": 1e-3},  # short runs: a larger step than the paper's
      eval_train_examples=500,
    )
    score.update(probe_per_class=20, heldout_probe=False)
    finetune.update(duration={"steps": 40}, optimizer_kwargs={"learning_rate": 1e-3})
    evaluate.update(n_boot=200)
  elif arg == "tiny":
    sources = [{"name": "fsdd_digit_0_4_spk0123"}, {"name": "fsdd_noise"}]
    pretrain.update(
      arch="audio_cnn_tiny",
      num_seeds=2,
      duration={"steps": 4},
      batch_size=8,
      optimizer_kwargs={"learning_rate": 1e-3},
      eval_train_examples=32,
      eval_test_examples=32,
    )
    # Every tap, a few scores (each score x layer is one compile): NC, LEEP, LogME, RSA and
    # the baselines.
    score.update(probe_per_class=3, heldout_probe=False, scores=list(TINY_SCORES))
    finetune.update(
      duration={"steps": 3},
      batch_size=8,
      optimizer_kwargs={"learning_rate": 1e-3},
      eval_examples=40,
      group_size=32,  # every member in one jitted step: one compile
    )
    evaluate.update(n_boot=20)
  c = ml_collections.ConfigDict()
  c.sources, c.pretrain, c.score, c.finetune, c.evaluate = (
    sources,
    pretrain,
    score,
    finetune,
    evaluate,
  )
  return c
