"""Image folders against a messy disk (issue 23): an empty class folder, a truncated JPEG (also
where another library set Pillow's LOAD_TRUNCATED_IMAGES), a non-image file, grey-scale images
among RGB ones, and the decode cache after the folder changes (a file added, removed, rewritten
in place with its old size and mtime restored), unreadable or unwritable (disk full).

Before: a truncated JPEG with LOAD_TRUNCATED_IMAGES set decoded silently (its missing part
grey); a 16-bit grey PNG was clipped to white at 255; a file rewritten with the same size and
its mtime set back was served stale from the cache; a truncated cache file was a raw zipfile
traceback; a cache write that failed (disk full) failed the load and left its tmp file; every
folder error was a plain ValueError, which the launchers show as a traceback.
"""

import errno
import io
import logging
import os

import numpy as np
import pytest
from PIL import Image, ImageFile

from jtransfer import data, errors
from jtransfer.data import image_folder

SIZE = dict(size=16, resize=16)


def _rgb(seed, shape=(16, 16)):
  return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def _folder(root, counts, ext=".png"):
  for c, n in counts.items():
    (root / c).mkdir(parents=True, exist_ok=True)
    for i in range(n):
      Image.fromarray(_rgb(100 * len(c) + ord(c[0]) + i)).save(root / c / f"img{i}{ext}")
  return root


def _load(name, root, cache, split="train"):
  image_folder.register(name, root, cache=cache, train_fraction=0.5, **SIZE)
  return data.load(name, split)


def test_an_empty_class_folder_is_a_user_error_naming_the_class(tmp_path):
  root = _folder(tmp_path / "f", {"a": 2, "b": 2})
  (root / "empty").mkdir()
  (root / "empty" / "notes.txt").write_text("no images here")
  with pytest.raises(errors.UserError, match=r"classes without training images.*\['empty'\]"):
    image_folder.register("rel_empty", root, **SIZE)


def _truncated_jpeg(path):
  buf = io.BytesIO()
  Image.fromarray(_rgb(7, (40, 40))).save(buf, "JPEG")
  path.write_bytes(buf.getvalue()[: len(buf.getvalue()) * 2 // 3])


@pytest.mark.parametrize("pillow_allows_truncated", [False, True])
def test_a_truncated_jpeg_is_a_user_error_naming_the_file(tmp_path, monkeypatch,
                                                          pillow_allows_truncated):  # fmt: skip
  monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", pillow_allows_truncated)
  root = _folder(tmp_path / "f", {"a": 2, "b": 2}, ext=".jpg")
  bad = root / "a" / "img0.jpg"
  _truncated_jpeg(bad)
  name = f"rel_trunc_{pillow_allows_truncated}"
  with pytest.raises(errors.UserError) as e:
    _load(name, root, tmp_path / "c")
  assert str(bad) in str(e.value) and "truncated" in str(e.value) and "\n" not in str(e.value)
  assert ImageFile.LOAD_TRUNCATED_IMAGES is pillow_allows_truncated  # left as it was
  assert not list((tmp_path / "c").glob("*.npz"))  # nothing cached


def test_non_image_files_are_ignored_unless_they_claim_to_be_images(tmp_path):
  root = _folder(tmp_path / "f", {"a": 2, "b": 2})
  (root / "a" / "README.txt").write_text("not an image")
  (root / "a" / ".DS_Store").write_bytes(b"\0\1\2")
  (root / "a" / "sub").mkdir()
  x, y = _load("rel_extra", root, tmp_path / "c")
  assert x.shape == (2, 16, 16, 3) and sorted(y.tolist()) == [0, 1]
  (root / "b" / "fake.png").write_text("not an image either")
  image_folder.register("rel_fake", root, cache=tmp_path / "c", train_fraction=0.5, **SIZE)
  with pytest.raises(errors.UserError) as e:
    for split in ("train", "test"):  # the fake lands in one of them
      data.load("rel_fake", split)
  assert str(root / "b" / "fake.png") in str(e.value) and "cannot read image" in str(e.value)


def test_grey_scale_images_become_rgb_by_the_stated_rule(tmp_path):
  root = _folder(tmp_path / "f", {"a": 1, "b": 1})
  grey8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
  Image.fromarray(grey8).save(root / "a" / "grey8.png")
  grey16 = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 257).astype(np.uint16)
  grey16[0, :4] = (0, 128, 129, 65535)  # round(v / 257): 0, 0, 1, 255
  Image.fromarray(grey16).save(root / "b" / "grey16.png")
  with Image.open(root / "b" / "grey16.png") as im:
    assert im.mode == "I;16"
  classes, files = image_folder.list_files(root, train_fraction=0.5)
  x = image_folder.load_split("rel_grey", files["train"] + files["test"], cache=tmp_path / "c",
                              **SIZE)[0]  # fmt: skip
  got = {f.name: img for (f, _), img in zip(files["train"] + files["test"], x, strict=True)}
  np.testing.assert_array_equal(got["grey8.png"], np.repeat(grey8[..., None], 3, axis=-1))
  want16 = np.round(grey16 / 257.0).astype(np.uint8)
  assert want16[0, :4].tolist() == [0, 0, 1, 255]
  np.testing.assert_array_equal(got["grey16.png"], np.repeat(want16[..., None], 3, axis=-1))
  # 32-bit integer pixels have no fixed range: refused, naming the file.
  Image.fromarray(np.zeros((16, 16), np.int32)).save(tmp_path / "int32.tif")
  with Image.open(tmp_path / "int32.tif") as im:
    assert im.mode == "I"
  with pytest.raises(errors.UserError, match=r"int32\.tif has mode I"):
    image_folder.decode(tmp_path / "int32.tif", 16, 16)


def _decoded(root, cache):
  """(images, file names) of the whole folder as one split, through the cache."""
  classes, files = image_folder.list_files(root, train_fraction=0.5)
  split = sorted(files["train"] + files["test"])
  x, _ = image_folder.load_split("rel_cache", split, cache=cache, **SIZE)
  return {f"{f.parent.name}/{f.name}": img for (f, _), img in zip(split, x, strict=True)}


def test_the_cache_follows_the_folder(tmp_path):
  root, cache = _folder(tmp_path / "f", {"a": 2, "b": 2}), tmp_path / "c"
  assert sorted(_decoded(root, cache)) == ["a/img0.png", "a/img1.png", "b/img0.png", "b/img1.png"]
  # Added: served.
  Image.fromarray(_rgb(99)).save(root / "a" / "new.png")
  np.testing.assert_array_equal(_decoded(root, cache)["a/new.png"], _rgb(99))
  # Removed: gone.
  (root / "a" / "new.png").unlink()
  assert "a/new.png" not in _decoded(root, cache)
  # Rewritten in place with the same size, the old mtime set back (cp -p, rsync -t, touch -r).
  target = root / "b" / "img1.png"
  old = np.asarray(Image.open(target))
  new = old.copy()
  new[0, 0] = 255 - new[0, 0]
  buf = io.BytesIO()
  Image.fromarray(new).save(buf, "PNG", compress_level=0)  # uncompressed: the same byte size
  Image.fromarray(old).save(target, "PNG", compress_level=0)
  st = target.stat()
  before = _decoded(root, cache)["b/img1.png"]
  target.write_bytes(buf.getvalue())
  assert target.stat().st_size == st.st_size
  os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
  assert target.stat().st_mtime_ns == st.st_mtime_ns
  after = _decoded(root, cache)
  assert not np.array_equal(before, after["b/img1.png"])
  np.testing.assert_array_equal(after["b/img1.png"], new)


def test_a_cache_file_that_does_not_read_back_is_decoded_again(tmp_path, caplog):
  root, cache = _folder(tmp_path / "f", {"a": 2, "b": 2}), tmp_path / "c"
  want = _decoded(root, cache)
  (path,) = cache.glob("*.npz")
  path.write_bytes(path.read_bytes()[:100])  # e.g. a crash before the data reached the disk
  with caplog.at_level(logging.WARNING):
    got = _decoded(root, cache)
  assert "does not read back" in caplog.text and str(path) in caplog.text
  for k in want:
    np.testing.assert_array_equal(got[k], want[k])
  with np.load(path) as z:  # rewritten whole
    assert z["images"].shape == (4, 16, 16, 3)


def test_a_full_disk_while_caching_loses_nothing(tmp_path, monkeypatch, caplog):
  root, cache = _folder(tmp_path / "f", {"a": 2, "b": 2}), tmp_path / "c"
  real = np.savez

  def half_then_enospc(file, **arrays):
    with open(file, "wb") as f:
      f.write(b"PK\3\4 half a zip")
    raise OSError(errno.ENOSPC, "No space left on device", str(file))

  monkeypatch.setattr(image_folder.np, "savez", half_then_enospc)
  with caplog.at_level(logging.WARNING):
    got = _decoded(root, cache)
  assert "cannot write the image cache" in caplog.text and "No space left" in caplog.text
  assert not list(cache.iterdir())  # neither a cache file nor the tmp file
  monkeypatch.setattr(image_folder.np, "savez", real)
  again = _decoded(root, cache)  # the rerun caches it
  assert len(list(cache.glob("*.npz"))) == 1
  for k in got:
    np.testing.assert_array_equal(got[k], again[k])
