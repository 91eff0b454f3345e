"""Extra FSDD tasks for the audio experiments (`configs/audio_*.py`); importing registers them.

Design: speakers 0-3 (george, jackson, lucas, nicolas) are the SOURCE speakers, speakers 4-5
(theo, yweweler) the held-out TARGET speakers (`fsdd_digit_spk45`, registered in `fsdd`). Every
source task below draws only on the source speakers, so no source has heard a target voice.

Zoo sources (`configs/audio_fsdd.py`; `fsdd_speaker_spk0123` and `fsdd_digit_spk0123` come
from `fsdd`):
- `fsdd_digit_0_4_spk0123`: digits 0-4 of the source speakers (5 classes).
- `fsdd_digit_spk0123_n10`: digits of the source speakers, 10 train clips per digit (the
  sample ladder's first rung).
- `fsdd_noise`: noise clips carrying `fsdd_digit_spk0123`'s labels sample for sample (the audio
  `mnist_noise`: nothing learnable, the lower bound). Each clip is i.i.d. uniform noise
  U[-NOISE_AMPLITUDE, NOISE_AMPLITUDE) over all `CLIP_SAMPLES` samples, float32, drawn from
  `np.random.default_rng([seed, split_id])` (split_id 0 train, 1 test; registered seed
  `NOISE_SEED`), so the same arguments give the same clips on every machine.

Scale ladders (`configs/audio_scale.py`), all digits of the source speakers; the train split
is subset, the test split keeps every clip of the kept classes (as `fsdd.register_fsdd_task`):
- classes: `fsdd_digit_c{k}` for k in `CLASS_LADDER` = digits 0..k-1, every train clip of
  them (180 per class: 4 speakers x 45 takes), labels 0..k-1. k = 10 is `fsdd_digit_spk0123`'s
  data under the ladder's name.
- samples: `fsdd_digit_spk0123_n{n}` for n in `SAMPLE_LADDER` = all 10 digits, n train clips
  per digit (a seeded choice, `fsdd.load_fsdd(per_class=...)`); n = 180 is every clip, n = 10
  is the zoo's `fsdd_digit_spk0123_n10`. (`fsdd`'s own `fsdd_digit_n10` spans all 6 speakers.)
  The rungs are nested (n = 10 clips are among the n = 45 ones): each class's clips come from
  one seeded permutation, cut at n.
`LADDER_COUNTS` holds the documented (train, test) sizes the tests check.

Binary target (`configs/audio_nc.py`, reported with AUROC as the NC paper does for COVID):
- `fsdd_zero_vs_rest_spk45`: the held-out speakers' clips, label 1 for the digit "zero" and 0
  for every other digit (imbalanced 1:9: 90 / 810 train, 10 / 90 test).
"""

from __future__ import annotations

import functools

import numpy as np

from jtransfer.data import fsdd, registry

SOURCE_SPEAKERS = (0, 1, 2, 3)
TARGET_SPEAKERS = (4, 5)
NOISE_AMPLITUDE = 0.25  # about the peak level of the FSDD takes
NOISE_SEED = 1
CLASS_LADDER = (2, 5, 10)
SAMPLE_LADDER = (10, 45, 180)
_SPLIT_ID = {"train": 0, "test": 1}
_TRAIN_PER_DIGIT = len(SOURCE_SPEAKERS) * (50 - fsdd.TEST_TAKES)  # 180
_TEST_PER_DIGIT = len(SOURCE_SPEAKERS) * fsdd.TEST_TAKES  # 20


def class_ladder_name(k: int) -> str:
  return f"fsdd_digit_c{k}"


def sample_ladder_name(n: int) -> str:
  return f"fsdd_digit_spk0123_n{n}"


# Documented sizes: {name: (train clips, test clips)}.
LADDER_COUNTS = {
  **{class_ladder_name(k): (k * _TRAIN_PER_DIGIT, k * _TEST_PER_DIGIT) for k in CLASS_LADDER},
  **{sample_ladder_name(n): (10 * n, 10 * _TEST_PER_DIGIT) for n in SAMPLE_LADDER},
}


# -- noise ----------------------------------------------------------------------------------


def noise_clips(num: int, *, seed: int, split: str, clip_samples: int = fsdd.CLIP_SAMPLES):
  """`num` float32 clips of U[-NOISE_AMPLITUDE, NOISE_AMPLITUDE) noise (module docstring)."""
  if split not in _SPLIT_ID:
    raise ValueError(f"unknown split {split!r}; valid splits: {tuple(_SPLIT_ID)}")
  rng = np.random.default_rng([int(seed), _SPLIT_ID[split]])
  x = rng.uniform(-NOISE_AMPLITUDE, NOISE_AMPLITUDE, size=(num, clip_samples))
  return x.astype(np.float32)


def noise_split(
  split: str,
  *,
  seed: int = NOISE_SEED,
  data_dir: str | None = None,
  label_task: str = "fsdd_digit_spk0123",
):
  """`(noise clips [N, CLIP_SAMPLES], labels of `label_task`'s split)` (module docstring)."""
  _, labels = registry.load(label_task, split, data_dir=data_dir)
  return noise_clips(len(labels), seed=seed, split=split), labels


# -- binary target ----------------------------------------------------------------------------


def _zero_vs_rest(split: str, data_dir: str | None):
  x, digit = fsdd.load_fsdd("digit", split, data_dir=data_dir, speakers=TARGET_SPEAKERS)
  return x, (digit == 0).astype(np.int32)


# -- registration -------------------------------------------------------------------------------


def _register_once(spec: registry.DatasetSpec) -> None:
  # Importing this module twice (e.g. by path and by name) must not fail.
  if spec.name not in registry.names():
    registry.register(spec)


@functools.cache
def register_all() -> tuple[str, ...]:
  """Registers every task of this module (idempotent); returns their names."""
  names = []
  fsdd.register_fsdd_task(
    "fsdd_digit_0_4_spk0123",
    task="digit",
    speakers=SOURCE_SPEAKERS,
    digits=range(5),
    description="digits 0-4 of the source speakers 0-3",
  )
  names.append("fsdd_digit_0_4_spk0123")
  for k in CLASS_LADDER:
    fsdd.register_fsdd_task(
      class_ladder_name(k),
      task="digit",
      speakers=SOURCE_SPEAKERS,
      digits=range(k),
      description=f"class ladder: digits 0-{k - 1} of speakers 0-3, every train clip",
    )
    names.append(class_ladder_name(k))
  for n in SAMPLE_LADDER:
    name = sample_ladder_name(n)
    fsdd.register_fsdd_task(
      name,
      task="digit",
      speakers=SOURCE_SPEAKERS,
      per_class=None if n == _TRAIN_PER_DIGIT else n,
      description=f"sample ladder: 10 digits of speakers 0-3, {n} train clips per digit",
    )
    names.append(name)
  _register_once(
    registry.DatasetSpec(
      name="fsdd_noise",
      num_classes=10,
      class_names=fsdd.class_names("digit"),
      input_shape=(fsdd.CLIP_SAMPLES,),
      splits=("train", "test"),
      loader=lambda split, data_dir: noise_split(split, data_dir=data_dir),
      domain="audio",
      sample_rate=fsdd.SAMPLE_RATE,
      description=f"U[-{NOISE_AMPLITUDE}, {NOISE_AMPLITUDE}) noise clips with the digit labels "
      f"of speakers 0-3 (seed {NOISE_SEED})",
    )
  )
  _register_once(
    registry.DatasetSpec(
      name="fsdd_zero_vs_rest_spk45",
      num_classes=2,
      class_names=("other", "zero"),
      input_shape=(fsdd.CLIP_SAMPLES,),
      splits=("train", "test"),
      loader=_zero_vs_rest,
      domain="audio",
      sample_rate=fsdd.SAMPLE_RATE,
      description="held-out speakers 4-5: digit 'zero' (1) vs any other digit (0)",
    )
  )
  names += ["fsdd_noise", "fsdd_zero_vs_rest_spk45"]
  return tuple(names)


register_all()
