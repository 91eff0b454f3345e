"""Free Spoken Digit Dataset (FSDD), offline from `<data_dir>/fsdd/recordings/*.wav`.

3,000 recordings, 8 kHz mono 16-bit, named `{digit}_{speaker}_{index}.wav`: 6 speakers x 10
digits x 50 takes. Official split: takes 0-4 are test (300 clips), 5-49 train (2,700).

Several tasks are drawn from the same audio (all `domain="audio"`, inputs float32 waveforms in
[-1, 1) of a fixed length, `input_shape=(clip_samples,)`):
- task "digit": label = the spoken digit (or its position among the kept `digits`);
- task "speaker": label = the speaker's position in `SPEAKERS` (or among the kept `speakers`).

Fixed length (declared per dataset, default `CLIP_SAMPLES = 8000` = 1.0 s): shorter clips are
zero-padded at the end (the utterance keeps its onset at t = 0); the 20 clips longer than 1 s
(up to 2.28 s) keep their central `clip_samples` samples, where the word is.

Subsets (`load_fsdd`): keep some `speakers` and/or `digits` (labels re-indexed 0..k-1 in sorted
order), and cap the number of clips per class (`per_class`, chosen with a seeded permutation of
each class, so the same arguments give the same clips on every machine). Registered datasets
apply `per_class` to the train split only: the test split stays complete so accuracies of
capped and full sources are comparable.

Decoded audio is cached per process (one read of the 3,000 files, about 1 s).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Sequence

import numpy as np

from jtransfer.audio.wav import read_wav
from jtransfer.data import registry

SAMPLE_RATE = 8000
CLIP_SAMPLES = 8000  # 1.0 s; the longest take is 2.28 s, the mean 0.44 s
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
DIGITS = tuple(range(10))
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEST_TAKES = 5  # takes 0..4 of every (digit, speaker) are the official test split
TASKS = ("digit", "speaker")
_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


@dataclasses.dataclass(frozen=True)
class _Corpus:
  waves: tuple[np.ndarray, ...]  # variable-length float32 clips
  digit: np.ndarray  # [N] int
  speaker: np.ndarray  # [N] index into SPEAKERS
  take: np.ndarray  # [N] recording index 0..49


def recordings_dir(data_dir: str | os.PathLike | None) -> str:
  root = registry.resolve_data_dir(data_dir)
  if root is None:
    raise ValueError(
      f"FSDD is read from <data_dir>/fsdd/recordings; pass data_dir or set ${registry.DATA_DIR_ENV}"
    )
  path = os.path.join(root, "fsdd", "recordings")
  if not os.path.isdir(path):
    raise ValueError(f"FSDD recordings not found: {path} is not a directory")
  return os.path.abspath(path)


@functools.lru_cache(maxsize=4)
def _corpus(path: str) -> _Corpus:
  files = sorted(f for f in os.listdir(path) if f.endswith(".wav"))
  if not files:
    raise ValueError(f"FSDD: no .wav files in {path}")
  rows = []
  for name in files:
    m = _NAME.match(name)
    if m is None or m.group(2) not in SPEAKERS:
      raise ValueError(f"FSDD: unexpected file {name!r} in {path} (want digit_speaker_index.wav)")
    rows.append((int(m.group(1)), SPEAKERS.index(m.group(2)), int(m.group(3)), name))
  rows.sort()  # by digit, speaker, take: the same order on every machine
  waves = tuple(read_wav(os.path.join(path, r[3]), expected_rate=SAMPLE_RATE)[0] for r in rows)
  digit, speaker, take = (np.array([r[i] for r in rows], np.int32) for i in range(3))
  return _Corpus(waves, digit, speaker, take)


def fix_length(wave: np.ndarray, length: int) -> np.ndarray:
  """Zero-pads at the end, or keeps the central `length` samples (module doc)."""
  if wave.shape[0] >= length:
    start = (wave.shape[0] - length) // 2
    return wave[start : start + length]
  return np.pad(wave, (0, length - wave.shape[0]))


@functools.lru_cache(maxsize=4)
def _fixed(path: str, clip_samples: int) -> np.ndarray:
  out = np.stack([fix_length(w, clip_samples) for w in _corpus(path).waves])
  out.setflags(write=False)
  return out


def _check_subset(values, valid: Sequence, what: str) -> tuple | None:
  if values is None:
    return None
  values = tuple(sorted(set(values)))
  bad = [v for v in values if v not in valid]
  if bad or not values:
    raise ValueError(f"FSDD: invalid {what} {bad or 'selection (empty)'}; valid: {tuple(valid)}")
  return values


def _speaker_ids(speakers) -> tuple[int, ...] | None:
  if speakers is None:
    return None
  ids = [SPEAKERS.index(s) if isinstance(s, str) and s in SPEAKERS else s for s in speakers]
  return _check_subset(ids, range(len(SPEAKERS)), "speakers")


def class_names(task: str, *, speakers=None, digits=None) -> tuple[str, ...]:
  if task == "digit":
    kept = _check_subset(digits, DIGITS, "digits") or DIGITS
    return tuple(DIGIT_NAMES[d] for d in kept)
  if task == "speaker":
    kept = _speaker_ids(speakers) or tuple(range(len(SPEAKERS)))
    return tuple(SPEAKERS[s] for s in kept)
  raise ValueError(f"FSDD: unknown task {task!r}; valid tasks: {TASKS}")


def load_fsdd(
  task: str,
  split: str,
  *,
  data_dir: str | os.PathLike | None = None,
  speakers: Sequence[str | int] | None = None,
  digits: Sequence[int] | None = None,
  per_class: int | None = None,
  seed: int = 0,
  clip_samples: int = CLIP_SAMPLES,
) -> tuple[np.ndarray, np.ndarray]:
  """Returns `(waveforms [N, clip_samples] float32, labels [N] int32)` of one FSDD task/split.

  `speakers` by name or index into `SPEAKERS`; `digits` 0-9; both re-index the labels of the
  task they define (a digit task over speakers 0-3 still has 10 digit classes). `per_class`
  keeps that many clips of every class of this split (a seeded choice; an error if a class has
  fewer).
  """
  if task not in TASKS:
    raise ValueError(f"FSDD: unknown task {task!r}; valid tasks: {TASKS}")
  if split not in ("train", "test"):
    raise ValueError(f"FSDD: unknown split {split!r}; valid splits: ('train', 'test')")
  if clip_samples < 1:
    raise ValueError(f"FSDD: clip_samples must be positive, got {clip_samples}")
  spk = _speaker_ids(speakers)
  dig = _check_subset(digits, DIGITS, "digits")
  path = recordings_dir(data_dir)
  corpus = _corpus(path)
  keep = (corpus.take < TEST_TAKES) if split == "test" else (corpus.take >= TEST_TAKES)
  if spk is not None:
    keep &= np.isin(corpus.speaker, spk)
  if dig is not None:
    keep &= np.isin(corpus.digit, dig)
  idx = np.flatnonzero(keep)
  if task == "digit":
    raw, kept = corpus.digit[idx], dig or DIGITS
  else:
    raw, kept = corpus.speaker[idx], spk or tuple(range(len(SPEAKERS)))
  labels = np.searchsorted(np.asarray(kept), raw).astype(np.int32)
  if per_class is not None:
    idx, labels = _cap_per_class(idx, labels, len(kept), per_class, seed)
  x = np.array(_fixed(path, clip_samples)[idx])
  registry.check_labels(labels, len(kept), f"fsdd {task}")
  return x, labels


def _cap_per_class(idx, labels, num_classes: int, per_class: int, seed: int):
  if per_class < 1:
    raise ValueError(f"FSDD: per_class must be >= 1, got {per_class}")
  chosen = []
  for c in range(num_classes):
    members = np.flatnonzero(labels == c)
    if members.size < per_class:
      raise ValueError(
        f"FSDD: class {c} has {members.size} clips, fewer than per_class={per_class}"
      )
    perm = np.random.default_rng([seed, c]).permutation(members.size)
    chosen.append(members[np.sort(perm[:per_class])])
  sel = np.sort(np.concatenate(chosen))
  return idx[sel], labels[sel]


_TASK_ARGS: dict[str, dict] = {}


def register_fsdd_task(
  name: str,
  *,
  task: str,
  speakers: Sequence[str | int] | None = None,
  digits: Sequence[int] | None = None,
  per_class: int | None = None,
  seed: int = 0,
  clip_samples: int = CLIP_SAMPLES,
  description: str = "",
) -> registry.DatasetSpec:
  """Registers an FSDD task under `name` (per_class caps the train split only).

  Registering the same name again with the same arguments returns the existing spec, so
  configs may declare the tasks they need; different arguments are an error.
  """
  args = dict(
    task=task,
    speakers=_speaker_ids(speakers),
    digits=_check_subset(digits, DIGITS, "digits"),
    per_class=per_class,
    seed=seed,
    clip_samples=clip_samples,
  )
  if name in _TASK_ARGS:
    if _TASK_ARGS[name] != args:
      raise ValueError(f"FSDD task {name!r} is already registered with {_TASK_ARGS[name]}")
    return registry.get(name)
  names = class_names(task, speakers=args["speakers"], digits=args["digits"])

  def loader(split: str, data_dir: str | None):
    return load_fsdd(
      task,
      split,
      data_dir=data_dir,
      speakers=args["speakers"],
      digits=args["digits"],
      per_class=per_class if split == "train" else None,
      seed=seed,
      clip_samples=clip_samples,
    )

  spec = registry.register(
    registry.DatasetSpec(
      name=name,
      num_classes=len(names),
      class_names=names,
      input_shape=(clip_samples,),
      splits=("train", "test"),
      loader=loader,
      domain="audio",
      sample_rate=SAMPLE_RATE,
      description=description or f"FSDD {task} task {args}",
    )
  )
  _TASK_ARGS[name] = args
  return spec


# The standard tasks, and the subsets the audio configs start from. Speakers 0-3 are george,
# jackson, lucas, nicolas; 4-5 (theo, yweweler) are the held-out speakers.
register_fsdd_task("fsdd_digit", task="digit", description="FSDD spoken digit, 10 classes")
register_fsdd_task("fsdd_speaker", task="speaker", description="FSDD speaker ID, 6 classes")
register_fsdd_task("fsdd_digit_0_4", task="digit", digits=range(5), description="digits 0-4")
register_fsdd_task("fsdd_digit_5_9", task="digit", digits=range(5, 10), description="digits 5-9")
register_fsdd_task(
  "fsdd_digit_spk0123", task="digit", speakers=range(4), description="digits of speakers 0-3"
)
register_fsdd_task(
  "fsdd_digit_spk45", task="digit", speakers=(4, 5), description="digits of held-out speakers 4-5"
)
register_fsdd_task(
  "fsdd_speaker_spk0123", task="speaker", speakers=range(4), description="speaker ID, speakers 0-3"
)
register_fsdd_task(
  "fsdd_digit_n10", task="digit", per_class=10, description="digits, 10 train clips per class"
)
