"""tfds datasets through the TF-free data_source path, on tfds' mock data (never the network)."""

import sys

import numpy as np
import pytest

from jtransfer import data
from jtransfer.data import tfds_source

tfds = pytest.importorskip("tensorflow_datasets")


@pytest.fixture
def mock():
  with tfds.testing.mock_data(num_examples=6):
    yield


def test_materialised_split_equals_the_raw_source(mock):
  x, y = data.load("tfds:mnist", "train", data_dir=None)
  raw = tfds.data_source("mnist", split="train")
  assert x.shape == (6, 28, 28, 1) and x.dtype == np.float32 and y.dtype == np.int32
  for i in range(6):
    np.testing.assert_allclose(x[i], raw[i]["image"].astype(np.float64) / 255, atol=1e-7)
    assert y[i] == raw[i]["label"]
  assert "tensorflow" not in sys.modules


def test_variable_size_images_resized_like_the_thesis(mock):
  spec = data.get("oxford_iiit_pet")
  assert spec.num_classes == 37 and spec.class_names[0] == "Abyssinian"
  assert spec.mean == (0.485, 0.456, 0.406)
  src = data.source("oxford_iiit_pet", "test")
  assert len(src) == 6
  img, label = src[0]
  assert img.shape == (224, 224, 3) and 0.0 <= img.min() <= img.max() <= 1.0
  assert 0 <= label < 37
  x, y = data.load("cars196", "train")
  assert x.shape == (6, 224, 224, 3) and data.get("cars196").num_classes == 196
  assert y.max() < 196
  assert "tensorflow" not in sys.modules


def test_memory_guard_points_to_source(mock, monkeypatch):
  monkeypatch.setattr(tfds_source, "MAX_MATERIALIZE_BYTES", 1000)
  with pytest.raises(ValueError, match=r"use jtransfer.data.source\('malaria', 'train'\)"):
    data.load("malaria", "train")


def test_one_split_datasets_get_the_thesis_80_20_train_test(mock, monkeypatch):
  # tfds malaria and gtzan have only `train`; ours are its first 80% and last 20%. (Mock data
  # ignores slicing, so this records the split string tfds is asked for.)
  asked = []
  real = tfds.data_source
  monkeypatch.setattr(tfds, "data_source", lambda name, split, **kw: asked.append(split) or real(
    name, split=split, **kw))  # fmt: skip
  for name in ("malaria", "gtzan"):
    entry = tfds_source._BY_NAME[name]
    assert [entry.tfds_split(s) for s in ("train", "test")] == ["train[:80%]", "train[80%:]"]
  data.source("malaria", "train"), data.source("malaria", "test")
  assert asked == ["train[:80%]", "train[80%:]"]
  with pytest.raises(ValueError, match="no split 'train\\[:80%\\]'"):
    data.source("malaria", "train[:80%]")
  assert "tensorflow" not in sys.modules


def test_static_specs_without_tfds_metadata():
  spec = data.get("speech_commands")
  assert spec.domain == "audio" and spec.num_classes == 12 and spec.input_shape == (16_000,)
  assert spec.sample_rate == 16_000
  gtzan, crema = data.get("gtzan"), data.get("crema_d")
  assert (gtzan.num_classes, gtzan.input_shape, gtzan.sample_rate) == (10, (661_500,), 22_050)
  assert gtzan.splits == ("train", "test") and gtzan.class_names[1] == "classical"
  assert (crema.num_classes, crema.input_shape, crema.sample_rate) == (6, (80_000,), 16_000)
  assert crema.splits == ("train", "validation", "test") and crema.class_names[0] == "NEU"
  assert data.get("tfds:cifar10").class_names == data.get("cifar10").class_names
  with pytest.raises(ValueError, match="no random-access source"):
    data.source("mnist", "train")


def test_center_crop_resize_geometry():
  # A horizontal ramp keeps its left-to-right order; shorter side 256 then a centre 224 crop.
  img = np.tile(np.linspace(0, 255, 400).astype(np.uint8), (300, 1))[..., None].repeat(3, -1)
  out = tfds_source.center_crop_resize(img, 224, 256)
  assert out.shape == (224, 224, 3) and out.dtype == np.uint8
  assert np.all(np.diff(out[112, :, 0].astype(int)) >= 0)
  # Resized width is 400 * 256/300 = 341; the crop keeps columns 58..281 of it.
  expected_mid = 255 * ((58 + 281) / 2 + 0.5) / 341.33
  assert abs(out[112, 112, 0] - expected_mid) < 3
  const = np.full((50, 80, 1), 77, np.uint8)
  np.testing.assert_array_equal(tfds_source.center_crop_resize(const, 32, 36), 77)


def test_audio_preprocess_crops_int64_clips():
  # gtzan / crema_d store int16 samples as int64; a long clip is cropped to the declared length.
  entry = tfds_source._BY_NAME["crema_d"]
  clip = np.arange(90_000, dtype=np.int64) % 65_536 - 32_768
  x, label = tfds_source.preprocess(entry, {"audio": clip, "label": 5})
  assert x.shape == (80_000,) and x.dtype == np.float32 and label == 5
  np.testing.assert_array_equal(x, clip[:80_000].astype(np.float64) / 32768)


def test_audio_preprocess_pads_and_scales():
  entry = tfds_source._BY_NAME["speech_commands"]
  x, label = tfds_source.preprocess(
    entry, {"audio": np.array([16384, -32768], np.int16), "label": 3}
  )
  assert x.shape == (16_000,) and label == 3
  np.testing.assert_array_equal(x[:3], [0.5, -1.0, 0.0])


def test_probe_through_the_source_equals_probe_of_the_materialised_split():
  with tfds.testing.mock_data(num_examples=40, max_value=2):  # labels in {0, 1}: malaria's classes
    x_full, y_full = data.load("malaria", "train")
    x, y, idx = data.probe_set("malaria", "train", 3, seed=4)
  np.testing.assert_array_equal(np.bincount(y), [3, 3])
  np.testing.assert_array_equal(x, x_full[idx])
  np.testing.assert_array_equal(y, y_full[idx])
  np.testing.assert_array_equal(idx, data.probe_indices(y_full, 3, num_classes=2, seed=4))
