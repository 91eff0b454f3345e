"""Training-time image augmentation: random crop with zero padding, horizontal flip (NumPy, host).

    aug = augment.for_dataset("cifar10")         # Augment(crop_padding=4, flip=True), or None
    x = augment.apply(aug, x, seed=s, step=t, examples=idx)   # x uint8/float [B, H, W, C]

Off unless asked for: the input pipeline applies it only with `augment=` set, and
`for_dataset` declares none for the MNIST family (a flipped or shifted digit is another
digit, or off-centre where the thesis trained centred ones) and none for audio.

Deterministic per example: the crop offset and the flip of example `examples[b]` at training
step `step` of member seed `seed` come from a counter-based hash of (seed, step, example) and
nothing else, so they do not depend on the batch size, on the other examples in the batch, on
how the batch is split over processes or on threads. The hash is SplitMix64's finaliser
(Steele et al. 2014) in wrapping uint64 NumPy arithmetic: the same bits on every machine.

Runs on the source's raw values, before normalisation, so the padding is black (0), as
torchvision's `RandomCrop(padding=p)` before `Normalize` does.
"""

from __future__ import annotations

import dataclasses

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_AUG_STREAM = 0xA06  # keeps these draws apart from any other hash of (seed, step, example)


@dataclasses.dataclass(frozen=True)
class Augment:
  crop_padding: int = 0  # pad p zero pixels on each side, then crop back to H x W at random
  flip: bool = False  # mirror left-right with probability 1/2

  def __post_init__(self):
    if self.crop_padding < 0:
      raise ValueError(f"crop_padding must be >= 0, got {self.crop_padding}")

  @property
  def active(self) -> bool:
    return self.crop_padding > 0 or self.flip


_CIFAR = Augment(crop_padding=4, flip=True)  # the standard CIFAR recipe
# Only datasets named here are augmented by `for_dataset`; all others (the MNIST family,
# audio, derived tasks) get none.
DATASET_AUGMENT: dict[str, Augment] = {
  "cifar10": _CIFAR,
  "tfds:cifar10": _CIFAR,
  # 224 x 224 natural images: a mirrored pet, car or cell is the same class.
  "oxford_iiit_pet": Augment(flip=True),
  "cars196": Augment(flip=True),
  "malaria": Augment(flip=True),
}


def for_dataset(name: str) -> Augment | None:
  """The augmentation declared for dataset `name`, or None (the MNIST family and audio)."""
  return DATASET_AUGMENT.get(name)


def _mix(h: np.ndarray) -> np.ndarray:
  # SplitMix64 finaliser; uint64 arrays wrap silently (no overflow warning for arrays).
  h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
  h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
  return h ^ (h >> np.uint64(31))


def example_hash(seed: int, step: int, examples) -> np.ndarray:
  """uint64 [B]: a well-mixed hash of (seed, step, example) for every example index."""
  if seed < 0 or step < 0:
    raise ValueError(f"seed and step must be >= 0, got seed={seed}, step={step}")
  ex = np.asarray(examples, np.int64).reshape(-1)
  if ex.size and ex.min() < 0:
    raise ValueError("example indices must be >= 0")
  # Only array arithmetic: uint64 scalars would warn on the (intended) wrap-around.
  h = _mix(np.full(ex.shape, seed, np.uint64) * _GOLDEN + np.uint64(_AUG_STREAM))
  h = _mix(h ^ (np.full(ex.shape, step, np.uint64) * _GOLDEN))
  return _mix(h ^ (ex.astype(np.uint64) * _GOLDEN))


def draws(aug: Augment, seed: int, step: int, examples) -> tuple[np.ndarray, ...]:
  """(dy, dx, flip) per example: crop offsets in [0, 2p] into the padded image, flip bool."""
  h = example_hash(seed, step, examples)
  span = np.uint64(2 * aug.crop_padding + 1)
  dy = ((h & np.uint64(0xFFFFFF)) % span).astype(np.int64)
  dx = (((h >> np.uint64(24)) & np.uint64(0xFFFFFF)) % span).astype(np.int64)
  flip = ((h >> np.uint64(63)) == 1) if aug.flip else np.zeros(h.shape, bool)
  return dy, dx, flip


def hflip(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """x [B, H, W, C] with the rows where `mask` [B] is True mirrored left-right (a new array)."""
  out = np.array(x, copy=True)
  out[mask] = x[mask][:, :, ::-1]
  return out


def crop_with_padding(x: np.ndarray, padding: int, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
  """x [B, H, W, C] padded with `padding` zeros per side, then the H x W window at (dy, dx)."""
  if padding == 0:
    return np.array(x, copy=True)
  b, h, w, _ = x.shape
  if not (np.all((0 <= dy) & (dy <= 2 * padding)) and np.all((0 <= dx) & (dx <= 2 * padding))):
    raise ValueError(f"crop offsets must be in [0, {2 * padding}]")
  p = padding
  padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  rows = dy[:, None] + np.arange(h)  # [B, H]
  cols = dx[:, None] + np.arange(w)  # [B, W]
  return padded[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


def apply(aug: Augment | None, x: np.ndarray, *, seed: int, step: int, examples) -> np.ndarray:
  """The augmented batch x [B, H, W, C] (same shape and dtype); `examples` [B] are the
  dataset indices of its rows, which key the draws. None or an inactive `aug`: x unchanged."""
  if aug is None or not aug.active:
    return x
  if x.ndim != 4:
    raise ValueError(f"augmentation needs images [B, H, W, C], got shape {x.shape}")
  if len(np.asarray(examples).reshape(-1)) != len(x):
    raise ValueError(f"{len(np.asarray(examples).reshape(-1))} example indices for {len(x)} images")
  dy, dx, flip = draws(aug, seed, step, examples)
  out = crop_with_padding(x, aug.crop_padding, dy, dx)
  return hflip(out, flip) if aug.flip else out
