"""Named tfds datasets through tfds' TensorFlow-free path (`tfds.data_source`, ArrayRecord).

For users with internet: `tfds.data_source(name, split=..., data_dir=...)` downloads and prepares
the dataset as ArrayRecord on first use, then gives random access without TensorFlow. Nothing
here imports TensorFlow (the tests check it with `tfds.testing.mock_data`).

Registered names (spec built lazily on first `get`, so importing jtransfer does not import tfds):
- `tfds:mnist`, `tfds:fashion_mnist`, `tfds:kmnist` (full KMNIST, train included), `tfds:cifar10`
  (all 50,000 / 10,000; the plain `cifar10` is the partial offline copy);
- `oxford_iiit_pet`, `cars196`, `malaria` (tfds has only `train`; our `train` / `test` are its
  `train[:80%]` / `train[80%:]`, the thesis' 80/20 split): resized to 224x224x3 the way the thesis
  evaluates (shorter side to 256, centre crop 224), normalised as the thesis (ImageNet mean/std;
  malaria 0.5/0.5);
- audio, int16 / 32768 as float32 [N, samples], zero-padded or cropped to the declared length
  (the NC paper's source tasks): `speech_commands` (12 classes, 1 s at 16 kHz), `gtzan` (10
  genres, 30 s at 22.05 kHz; tfds has only `train`: 80/20 as above), `crema_d` (6 emotions,
  5 s at 16 kHz; tfds' speaker-disjoint train / validation / test). Their tfds builder code
  imports TensorFlow, so they work TF-free only when the prepared ArrayRecord files already
  exist in the tfds data dir (prepare them once where TensorFlow is installed).

Data dir: `<data_dir>/tfds` when a data dir is given (argument or $JTRANSFER_DATA_DIR), else
tfds' own default ($TFDS_DATA_DIR or ~/tensorflow_datasets). `load` materialises a split in
memory and refuses splits over `MAX_MATERIALIZE_BYTES` (float32 size); use `source(name, split)`
for those: a random-access sequence of preprocessed `(input, label)` pairs.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from jtransfer.data import images
from jtransfer.data.registry import DatasetSpec, check_split, get, register_lazy, resolve_data_dir

MAX_MATERIALIZE_BYTES = 4 * 2**30
THESIS_RESIZE, THESIS_CROP = 256, 224


@dataclasses.dataclass(frozen=True)
class TfdsEntry:
  name: str  # registry name
  tfds_name: str
  input_shape: tuple[int, ...]
  splits: tuple[str, ...]
  input_key: str = "image"
  label_key: str = "label"
  domain: str = "image"
  mean: tuple[float, ...] = ()
  std: tuple[float, ...] = ()
  class_names: tuple[str, ...] | None = None  # None: read from the tfds builder's ClassLabel
  num_classes: int | None = None
  sample_rate: int | None = None  # audio
  # Our split name -> tfds split string, where they differ (tfds datasets with one split).
  split_map: tuple[tuple[str, str], ...] = ()

  def tfds_split(self, split: str) -> str:
    return dict(self.split_map).get(split, split)


SPEECH_COMMANDS_CLASSES = (
  "down",
  "go",
  "left",
  "no",
  "off",
  "on",
  "right",
  "stop",
  "up",
  "yes",
  "_silence_",
  "_unknown_",
)
_TT = ("train", "test")
# The thesis' 80/20 split of a tfds dataset that has only `train` (tfds shuffles at preparation,
# so both parts hold every class).
_80_20 = (("train", "train[:80%]"), ("test", "train[80%:]"))
GTZAN_CLASSES = (
  "blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock",
)  # fmt: skip
CREMA_D_CLASSES = ("NEU", "HAP", "SAD", "ANG", "FEA", "DIS")  # tfds' label order
_M, _I = images.MNIST_MEAN_STD, images.IMAGENET_MEAN_STD
ENTRIES = (
  TfdsEntry("tfds:mnist", "mnist", (28, 28, 1), _TT, mean=_M[0], std=_M[1],
            class_names=images.MNIST_CLASSES),
  TfdsEntry("tfds:fashion_mnist", "fashion_mnist", (28, 28, 1), _TT,
            mean=images.FASHION_MNIST_MEAN_STD[0], std=images.FASHION_MNIST_MEAN_STD[1],
            class_names=images.FASHION_MNIST_CLASSES),
  TfdsEntry("tfds:kmnist", "kmnist", (28, 28, 1), _TT, mean=images.KMNIST_MEAN_STD[0],
            std=images.KMNIST_MEAN_STD[1], class_names=images.KMNIST_CLASSES),
  TfdsEntry("tfds:cifar10", "cifar10", (32, 32, 3), _TT, mean=_I[0], std=_I[1],
            class_names=images.CIFAR10_CLASSES),
  TfdsEntry("oxford_iiit_pet", "oxford_iiit_pet", (224, 224, 3), _TT, mean=_I[0], std=_I[1],
            num_classes=37),
  TfdsEntry("cars196", "cars196", (224, 224, 3), _TT, mean=_I[0], std=_I[1], num_classes=196),
  TfdsEntry("malaria", "malaria", (224, 224, 3), _TT, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
            class_names=("parasitized", "uninfected"), split_map=_80_20),
  TfdsEntry("speech_commands", "speech_commands", (16_000,), ("train", "validation", "test"),
            input_key="audio", domain="audio", class_names=SPEECH_COMMANDS_CLASSES,
            sample_rate=16_000),
  TfdsEntry("gtzan", "gtzan", (30 * 22_050,), _TT, input_key="audio", domain="audio",
            class_names=GTZAN_CLASSES, sample_rate=22_050, split_map=_80_20),
  TfdsEntry("crema_d", "crema_d", (5 * 16_000,), ("train", "validation", "test"),
            input_key="audio", domain="audio", class_names=CREMA_D_CLASSES, sample_rate=16_000),
)  # fmt: skip
_BY_NAME = {e.name: e for e in ENTRIES}


def tfds_data_dir(data_dir: str | None) -> str | None:
  return None if data_dir is None else os.path.join(data_dir, "tfds")


def _class_names(entry: TfdsEntry) -> tuple[str, ...]:
  if entry.class_names is not None:
    return entry.class_names
  import tensorflow_datasets as tfds  # noqa: PLC0415 (heavy; only when this dataset is used)

  names = tuple(tfds.builder(entry.tfds_name).info.features[entry.label_key].names)
  if entry.num_classes is not None and len(names) != entry.num_classes:
    raise ValueError(f"tfds {entry.tfds_name}: {len(names)} classes, expected {entry.num_classes}")
  return names


def center_crop_resize(image: np.ndarray, size: int, resize: int) -> np.ndarray:
  """uint8 HxWxC -> uint8 size x size x C: shorter side to `resize` (bilinear), centre crop."""
  from PIL import Image  # noqa: PLC0415

  h, w, c = image.shape
  scale = resize / min(h, w)
  nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
  pil = Image.fromarray(image[..., 0] if c == 1 else image)
  out = np.asarray(pil.resize((nw, nh), Image.Resampling.BILINEAR))
  top, left = (nh - size) // 2, (nw - size) // 2
  out = out[top : top + size, left : left + size]
  return out[..., None] if out.ndim == 2 else out


def preprocess(entry: TfdsEntry, example: dict) -> tuple[np.ndarray, int]:
  """One tfds example -> (float32 input in the registry convention, int label)."""
  x = np.asarray(example[entry.input_key])
  label = int(example[entry.label_key])
  if entry.domain == "audio":
    n = entry.input_shape[0]
    audio = x.astype(np.float32).reshape(-1)[:n] / 32768.0
    return np.pad(audio, (0, n - audio.size)), label
  if x.ndim == 2:
    x = x[..., None]
  h, w, c = entry.input_shape
  if x.shape[-1] != c:
    raise ValueError(f"{entry.name}: image with {x.shape[-1]} channels, expected {c}")
  if x.shape[:2] != (h, w):
    x = center_crop_resize(x, h, round(h * THESIS_RESIZE / THESIS_CROP))
  return x.astype(np.float32) / 255.0, label


class Source:
  """Random access to a tfds split, preprocessed: `len(src)`, `src[i] -> (input, label)`."""

  def __init__(self, entry: TfdsEntry, split: str, data_dir: str | None):
    import tensorflow_datasets as tfds  # noqa: PLC0415

    self.entry = entry
    self.raw = tfds.data_source(
      entry.tfds_name, split=entry.tfds_split(split), data_dir=tfds_data_dir(data_dir)
    )

  def __len__(self) -> int:
    return len(self.raw)

  def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
    return preprocess(self.entry, self.raw[int(i)])

  def labels(self) -> np.ndarray:
    """int32 labels of every example (reads each record once; images are decoded by tfds)."""
    key = self.entry.label_key
    return np.fromiter((int(self.raw[i][key]) for i in range(len(self))), np.int32, len(self))

  def take(self, indices) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and int32 labels of `indices`, stacked."""
    out = np.empty((len(indices), *self.entry.input_shape), dtype=np.float32)
    labels = np.empty(len(indices), dtype=np.int32)
    for j, i in enumerate(indices):
      out[j], labels[j] = self[i]
    return out, labels


def _source_fn(entry: TfdsEntry):
  def make(split: str, data_dir: str | None) -> Source:
    return Source(entry, split, data_dir)

  return make


def _loader(entry: TfdsEntry):
  def load(split: str, data_dir: str | None):
    src = Source(entry, split, data_dir)
    nbytes = len(src) * int(np.prod(entry.input_shape)) * 4
    if nbytes > MAX_MATERIALIZE_BYTES:
      raise ValueError(
        f"{entry.name}/{split}: {len(src)} examples need {nbytes / 2**30:.1f} GiB as float32, over "
        f"MAX_MATERIALIZE_BYTES ({MAX_MATERIALIZE_BYTES / 2**30:.1f} GiB); use "
        f"jtransfer.data.source({entry.name!r}, {split!r}) for random access instead"
      )
    return src.take(range(len(src)))

  return load


def _factory(entry: TfdsEntry):
  def build() -> DatasetSpec:
    names = _class_names(entry)
    return DatasetSpec(
      name=entry.name,
      num_classes=len(names),
      class_names=names,
      input_shape=entry.input_shape,
      splits=entry.splits,
      loader=_loader(entry),
      domain=entry.domain,
      sample_rate=entry.sample_rate,
      description=f"tfds {entry.tfds_name!r} via tfds.data_source (TF-free, needs the network "
      "or prepared ArrayRecord files on first use)",
      mean=entry.mean,
      std=entry.std,
      source=_source_fn(entry),
    )

  return build


def source(name: str, split: str, *, data_dir: str | None = None):
  """Random-access source of a dataset that has one (the tfds datasets)."""
  spec = get(name)
  if spec.source is None:
    raise ValueError(f"dataset {name!r} has no random-access source; use load({name!r}, split)")
  check_split(spec, split)
  return spec.source(split, resolve_data_dir(data_dir))


for _entry in ENTRIES:
  register_lazy(_entry.name, _factory(_entry))
