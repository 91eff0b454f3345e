"""A directory of images, one subfolder per class, as a named dataset.

  image_folder.register("custom3d", "/data/custom3d")     # then data.load("custom3d", "train")

Layouts: `<root>/<class>/*.jpg|png` (a class-stratified 80/20 train/test split, the same on
every machine: each class's files sorted by name, shuffled with `seed`, the first
ceil(80%) train) or `<root>/train/<class>/...` + `<root>/test/<class>/...` (the given split).
Classes are the sorted subfolder names (the union over splits, so a label means one class).

Files: only `.jpg`, `.jpeg` and `.png` files directly in a class folder are images; other files
(notes, `.DS_Store`, subfolders) are ignored. A class folder without images is an error naming
it; so is an image that does not decode completely (truncated, or not an image at all despite
its name), naming the file, also where another library set Pillow's LOAD_TRUNCATED_IMAGES.

Images are read with Pillow, converted to RGB and resized as the thesis does: shorter side to
`resize` (bilinear), then the centre `size` x `size` crop (default 256 -> 224; `resize` defaults
to round(size * 256 / 224) for other sizes). Conversion to RGB: grey-scale (8-bit) repeats the
grey value in R, G and B; 16-bit grey is first scaled to 8 bits (round(v / 257)); palette
images are expanded and alpha is dropped (Pillow's `convert("RGB")`); 32-bit integer or float
images (modes I, F: no fixed range) are refused, naming the file.

Each split is decoded ONCE into `<cache_dir>/<name>-<split>-<fingerprint>.npz` (uint8); the
fingerprint covers every file's name, size, mtime and ctime (the inode change time, which no
tool can set back) and the sizes, so added, removed or changed images are decoded again. A
cache file that does not read back is decoded again; one that cannot be written (disk full) is
skipped with a warning. Default cache dir: $JTRANSFER_CACHE_DIR, else ~/.cache/jtransfer.
Normalisation: ImageNet mean/std by default (the statistics of the ImageNet-trained models one
usually scores).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import pathlib

import numpy as np

from jtransfer import errors
from jtransfer.data import images
from jtransfer.data.registry import DatasetSpec, get, names
from jtransfer.data.registry import register as register_spec

EXTENSIONS = (".jpg", ".jpeg", ".png")
CACHE_ENV = "JTRANSFER_CACHE_DIR"
_SPLITS = ("train", "test")
_FOLDERS: dict[str, tuple] = {}  # name -> the arguments it was registered with
_16_BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N")
log = logging.getLogger(__name__)


def _images_in(folder: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)


def _class_dirs(folder: pathlib.Path) -> list[str]:
  return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_files(
  root: str | os.PathLike, *, seed: int = 0, train_fraction: float = 0.8
) -> tuple[tuple[str, ...], dict[str, list[tuple[pathlib.Path, int]]]]:
  """(class names, {split: [(file, label)]}) of an image folder; see the module docstring."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f"no image folder at {root}")
  if all((root / s).is_dir() for s in _SPLITS):
    classes = tuple(sorted(set(_class_dirs(root / "train")) | set(_class_dirs(root / "test"))))
    out = {
      s: [
        (f, i)
        for i, c in enumerate(classes)
        if (root / s / c).is_dir()
        for f in _images_in(root / s / c)
      ]
      for s in _SPLITS
    }
  else:
    classes = tuple(_class_dirs(root))
    if not 0 < train_fraction < 1:
      raise errors.UserError(f"train_fraction must be in (0, 1), got {train_fraction}")
    out = {s: [] for s in _SPLITS}
    for i, c in enumerate(classes):
      files = _images_in(root / c)
      rng = np.random.default_rng([seed, i])
      files = [files[j] for j in rng.permutation(len(files))]
      n_train = math.ceil(train_fraction * len(files))
      out["train"] += [(f, i) for f in files[:n_train]]
      out["test"] += [(f, i) for f in files[n_train:]]
  if len(classes) < 2:
    raise errors.UserError(
      f"{root}: an image folder needs at least 2 class subfolders, found {classes}"
    )
  empty = [c for i, c in enumerate(classes) if not any(lab == i for _, lab in out["train"])]
  if empty:
    raise errors.UserError(
      f"{root}: classes without training images ({', '.join(EXTENSIONS)}): {empty}"
    )
  return classes, out


def decode(path: pathlib.Path, size: int, resize: int) -> np.ndarray:
  """uint8 [size, size, 3]: RGB (see the module docstring), shorter side to `resize`, centre
  crop `size`. A file that does not decode completely is a UserError naming it."""
  from PIL import Image, ImageFile

  from jtransfer.data.tfds_source import center_crop_resize

  # tensorflow_datasets sets LOAD_TRUNCATED_IMAGES for the whole process once it decodes an
  # image; Pillow then fills a truncated file's missing part with grey instead of raising.
  truncated_ok, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
  try:
    with Image.open(path) as im:
      im.load()
      if im.mode in _16_BIT_GREY:
        grey = np.asarray(im, dtype=np.uint16)  # convert("RGB") would clip it at 255
        rgb = np.repeat(np.round(grey / 257.0).astype(np.uint8)[..., None], 3, axis=-1)
      elif im.mode in ("I", "F"):
        raise errors.UserError(
          f"image {path} has mode {im.mode} (32-bit integer or float pixels, no fixed range): "
          "save it as 8-bit RGB or grey-scale"
        )
      else:
        rgb = np.asarray(im.convert("RGB"))
  except errors.UserError:
    raise
  except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError... for a bad file
    raise errors.UserError(f"cannot read image {path} ({type(e).__name__}: {e})") from e
  finally:
    ImageFile.LOAD_TRUNCATED_IMAGES = truncated_ok
  return center_crop_resize(rgb, size, resize)


def _fingerprint(files, size: int, resize: int) -> str:
  h = hashlib.sha256(f"{size}/{resize}".encode())
  for f, label in files:
    st = f.stat()
    h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{label}\n".encode())
  return h.hexdigest()[:16]


def cache_dir(explicit: str | os.PathLike | None = None) -> pathlib.Path:
  if explicit is not None:
    return pathlib.Path(explicit)
  env = os.environ.get(CACHE_ENV)
  return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "jtransfer"


def load_split(name, files, *, size: int, resize: int, cache: pathlib.Path):
  """(uint8 images, int32 labels) of one split, decoded once into the cache."""
  path = cache / f"{name}-{_fingerprint(files, size, resize)}.npz"
  if path.exists():
    try:
      with open(path, "rb") as f, np.load(f) as z:  # np.load leaks its own file on an error
        x, y = z["images"], z["labels"]
      if x.shape == (len(files), size, size, 3) and y.shape == (len(files),):
        return x, y
    except Exception as e:  # truncated (a crash before the data reached the disk), foreign
      log.warning("image cache %s does not read back (%s): decoding the images again", path, e)
  x = (
    np.stack([decode(f, size, resize) for f, _ in files])
    if files
    else np.zeros((0, size, size, 3), np.uint8)
  )
  y = np.asarray([label for _, label in files], np.int32)
  tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
  try:
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(tmp, images=x, labels=y)
    os.replace(tmp, path)  # atomic: a concurrent reader sees a whole file or none
  except OSError as e:  # disk full, read-only: the decoded arrays are good, the cache is not
    tmp.unlink(missing_ok=True)
    log.warning("cannot write the image cache %s (%s): going on without it", path, e)
  return x, y


def register(
  name: str,
  root: str | os.PathLike,
  *,
  size: int = 224,
  resize: int | None = None,
  seed: int = 0,
  train_fraction: float = 0.8,
  mean: tuple[float, ...] = images.IMAGENET_MEAN_STD[0],
  std: tuple[float, ...] = images.IMAGENET_MEAN_STD[1],
  cache: str | os.PathLike | None = None,
) -> DatasetSpec:
  """Registers the image folder at `root` as dataset `name` (same arguments again: a no-op)."""
  root = pathlib.Path(root).absolute()
  resize = round(size * 256 / 224) if resize is None else int(resize)
  if resize < size:
    raise ValueError(f"resize ({resize}) must be >= size ({size}): the crop is taken after it")
  args = (root, size, resize, seed, train_fraction, tuple(mean), tuple(std), cache)
  if name in _FOLDERS:
    if _FOLDERS[name] != args:
      raise ValueError(f"dataset {name!r} is already registered with other arguments")
    return get(name)
  if name in names():
    raise ValueError(f"dataset {name!r} is already registered (not an image folder)")
  classes, files = list_files(root, seed=seed, train_fraction=train_fraction)
  arrays: dict[str, tuple] = {}

  def loader(split: str, data_dir) -> tuple[np.ndarray, np.ndarray]:
    del data_dir  # the folder is the data
    if split not in arrays:
      arrays[split] = load_split(
        f"{name}-{split}", files[split], size=size, resize=resize, cache=cache_dir(cache)
      )
    x, y = arrays[split]
    return x.astype(np.float32) / 255.0, y.copy()

  spec = DatasetSpec(
    name=name,
    num_classes=len(classes),
    class_names=classes,
    input_shape=(size, size, 3),
    splits=_SPLITS,
    loader=loader,
    description=f"image folder {root}",
    mean=tuple(mean),
    std=tuple(std),
  )
  register_spec(spec)
  _FOLDERS[name] = args
  return spec


def register_all(folders) -> list[DatasetSpec]:
  """`register(**f)` for each mapping of a config's `image_folders` list."""
  return [register(**dict(f)) for f in folders or ()]
