"""Image-folder datasets: thesis resize + centre crop, stratified 80/20 split, decode cache."""

import numpy as np
import pytest
from PIL import Image

from jtransfer import data
from jtransfer.data import image_folder


def _write(path, array):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array).save(path)


def _folder(root, counts, shape=(36, 50), ext=".png"):
  rng = np.random.default_rng(0)
  arrays = {}
  for c, n in counts.items():
    for i in range(n):
      a = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
      _write(root / c / f"img{i:03d}{ext}", a)
      arrays[(c, f"img{i:03d}{ext}")] = a
  return arrays


def test_centre_crop_and_stratified_split(tmp_path):
  arrays = _folder(tmp_path / "pets", {"cat": 10, "dog": 5})
  spec = image_folder.register("pets_t1", tmp_path / "pets", size=32, resize=36,
                               cache=tmp_path / "cache")  # fmt: skip
  assert spec.class_names == ("cat", "dog") and spec.input_shape == (32, 32, 3)
  classes, files = image_folder.list_files(tmp_path / "pets")
  counts = {s: np.bincount([lab for _, lab in files[s]], minlength=2).tolist() for s in files}
  assert counts == {"train": [8, 4], "test": [2, 1]}  # ceil(80%) of every class
  assert not {f for f, _ in files["train"]} & {f for f, _ in files["test"]}
  x, y = data.load("pets_t1", "train")
  assert x.dtype == np.float32 and x.shape == (12, 32, 32, 3) and y.tolist() == [0] * 8 + [1] * 4
  # 36x50: the shorter side is already 36, so only the centre crop acts: rows 2:34, cols 9:41.
  for k, (f, _) in enumerate(files["train"]):
    want = arrays[(f.parent.name, f.name)][2:34, 9:41] / 255.0
    np.testing.assert_allclose(x[k], want, atol=1e-6)


def test_resize_shorter_side_then_crop(tmp_path):
  """A 72x100 image halves to 36x50 (bilinear), then crops: constant colours stay exact and
  the left/right halves of a two-tone image land where the geometry says."""
  a = np.zeros((72, 100, 3), np.uint8)
  a[:, :50] = (200, 10, 30)
  a[:, 50:] = (5, 120, 250)
  _write(tmp_path / "f" / "x" / "a.png", a)
  _write(tmp_path / "f" / "y" / "b.png", np.full((100, 72, 3), 77, np.uint8))
  image_folder.register("two_tone", tmp_path / "f", size=32, resize=36, train_fraction=0.5,
                        cache=tmp_path / "c")  # fmt: skip
  x, y = data.load("two_tone", "train")
  img = np.round(x[y.tolist().index(0)] * 255)
  # Resized to 36x50, crop columns 9:41: the colour boundary (column 25) sits at crop column 16.
  np.testing.assert_array_equal(img[:, :14], np.broadcast_to([200, 10, 30], (32, 14, 3)))
  np.testing.assert_array_equal(img[:, 18:], np.broadcast_to([5, 120, 250], (32, 14, 3)))
  np.testing.assert_array_equal(np.round(x[y.tolist().index(1)] * 255), 77)


def test_given_splits_and_cache_reuse(tmp_path, monkeypatch):
  _folder(tmp_path / "d" / "train", {"a": 3, "b": 2}, ext=".jpg")
  _folder(tmp_path / "d" / "test", {"a": 1, "b": 1}, ext=".jpg")
  image_folder.register("given_t", tmp_path / "d", size=32, resize=36, cache=tmp_path / "c")
  x, y = data.load("given_t", "test")
  assert x.shape == (2, 32, 32, 3) and y.tolist() == [0, 1]
  assert len(list((tmp_path / "c").glob("given_t-test-*.npz"))) == 1
  # The cache is read, not the images: decoding again would fail now.
  monkeypatch.setattr(image_folder, "decode", lambda *a: (_ for _ in ()).throw(AssertionError))
  _, files = image_folder.list_files(tmp_path / "d")
  x2, y2 = image_folder.load_split("given_t-test", files["test"], size=32, resize=36,
                                   cache=tmp_path / "c")  # fmt: skip
  np.testing.assert_array_equal(x2 / np.float32(255), x)
  # Same arguments again: a no-op; other arguments under the name: an error.
  image_folder.register("given_t", tmp_path / "d", size=32, resize=36, cache=tmp_path / "c")
  with pytest.raises(ValueError, match="already registered"):
    image_folder.register("given_t", tmp_path / "d", size=64, cache=tmp_path / "c")


def test_bad_folders_fail_clearly(tmp_path):
  _folder(tmp_path / "one", {"only": 2})
  with pytest.raises(ValueError, match="at least 2 class"):
    image_folder.register("one_t", tmp_path / "one")
  _folder(tmp_path / "hole", {"a": 2})
  (tmp_path / "hole" / "b").mkdir()
  with pytest.raises(ValueError, match=r"without training images.*\['b'\]"):
    image_folder.register("hole_t", tmp_path / "hole")
  with pytest.raises(FileNotFoundError):
    image_folder.register("none_t", tmp_path / "missing")
