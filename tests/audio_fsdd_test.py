"""FSDD datasets against the dataset's documentation and the files themselves."""

import os
import re
import wave
from collections import Counter

import numpy as np
import pytest

import jtransfer.data.fsdd as fsdd
from jtransfer.data import registry


@pytest.fixture(scope="module")
def root(data_dir):
  if not (data_dir / "fsdd" / "recordings").is_dir():
    pytest.skip(f"FSDD not found under {data_dir}")
  return str(data_dir)


def _file_list(root):
  names = os.listdir(os.path.join(root, "fsdd", "recordings"))
  parsed = [re.match(r"(\d)_([a-z]+)_(\d+)\.wav$", n) for n in names]
  return [(int(m[1]), m[2], int(m[3])) for m in parsed if m]


def test_counts_and_split_match_the_documentation(root):
  files = _file_list(root)
  assert len(files) == 3000
  assert sorted({s for _, s, _ in files}) == list(fsdd.SPEAKERS)
  per_pair = Counter((d, s) for d, s, _ in files)
  assert len(per_pair) == 60 and set(per_pair.values()) == {50}

  x_tr, y_tr = fsdd.load_fsdd("digit", "train", data_dir=root)
  x_te, y_te = fsdd.load_fsdd("digit", "test", data_dir=root)
  assert x_tr.shape == (2700, 8000) and x_te.shape == (300, 8000)
  assert x_tr.dtype == np.float32 and y_tr.dtype == np.int32
  np.testing.assert_array_equal(np.bincount(y_te), [30] * 10)
  np.testing.assert_array_equal(np.bincount(y_tr), [270] * 10)
  _, s_te = fsdd.load_fsdd("speaker", "test", data_dir=root)
  np.testing.assert_array_equal(np.bincount(s_te), [50] * 6)


def test_registered_specs(root):
  digit, speaker = registry.get("fsdd_digit"), registry.get("fsdd_speaker")
  assert (digit.num_classes, speaker.num_classes) == (10, 6)
  assert digit.domain == speaker.domain == "audio"
  assert digit.input_shape == speaker.input_shape == (8000,)
  assert speaker.class_names == fsdd.SPEAKERS
  x, y = registry.load("fsdd_speaker", "train", data_dir=root)
  assert x.shape == (2700, 8000) and y.max() == 5


def _read(root, digit, speaker, take):
  with wave.open(os.path.join(root, "fsdd", "recordings", f"{digit}_{speaker}_{take}.wav")) as w:
    return np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32768.0


def _frames(root, digit, speaker, take):
  with wave.open(os.path.join(root, "fsdd", "recordings", f"{digit}_{speaker}_{take}.wav")) as w:
    return w.getnframes()


def test_clips_are_padded_or_center_cropped(root):
  # The test split in file order: digit-major, then speaker, then take 0..4.
  x, y = fsdd.load_fsdd("digit", "test", data_dir=root)
  i = 0 * 30 + fsdd.SPEAKERS.index("george") * 5 + 0
  raw = _read(root, 0, "george", 0)
  assert len(raw) < 8000 and y[i] == 0
  np.testing.assert_array_equal(x[i, : len(raw)], raw)
  np.testing.assert_array_equal(x[i, len(raw) :], 0.0)
  # A long clip (> 1 s) keeps its middle second.
  long_ones = [f for f in sorted(_file_list(root)) if _frames(root, *f) > 8000]
  assert long_ones
  d, s, t = long_ones[0]
  raw = _read(root, d, s, t)
  x, _ = fsdd.load_fsdd(
    "digit", "test" if t < 5 else "train", data_dir=root, speakers=[s], digits=[d]
  )
  start = (len(raw) - 8000) // 2
  k = t if t < 5 else t - 5
  np.testing.assert_array_equal(x[k], raw[start : start + 8000])
  # A declared length other than 1 s.
  x, _ = fsdd.load_fsdd("digit", "test", data_dir=root, clip_samples=4000)
  assert x.shape == (300, 4000)


def test_subsets_by_speaker_and_digit(root):
  x, y = registry.load("fsdd_digit_spk45", "test", data_dir=root)
  assert registry.get("fsdd_digit_spk45").num_classes == 10
  np.testing.assert_array_equal(np.bincount(y), [10] * 10)  # 2 speakers x 5 takes per digit
  x_all, y_all = fsdd.load_fsdd("digit", "test", data_dir=root)
  spk = np.tile(np.repeat(np.arange(6), 5), 10)  # file order within the test split
  np.testing.assert_array_equal(x, x_all[spk >= 4])
  # Digits 5-9 are re-indexed to 0-4 and keep their audio.
  x59, y59 = registry.load("fsdd_digit_5_9", "test", data_dir=root)
  np.testing.assert_array_equal(x59, x_all[y_all >= 5])
  np.testing.assert_array_equal(y59, y_all[y_all >= 5] - 5)
  # Speaker task over two named speakers.
  _, ys = fsdd.load_fsdd("speaker", "train", data_dir=root, speakers=["theo", "jackson"])
  np.testing.assert_array_equal(np.bincount(ys), [450, 450])  # jackson -> 0, theo -> 1


def test_per_class_cap_is_balanced_seeded_and_train_only(root):
  x1, y1 = registry.load("fsdd_digit_n10", "train", data_dir=root)
  np.testing.assert_array_equal(np.bincount(y1), [10] * 10)
  x2, _ = fsdd.load_fsdd("digit", "train", data_dir=root, per_class=10, seed=0)
  np.testing.assert_array_equal(x1, x2)
  x3, _ = fsdd.load_fsdd("digit", "train", data_dir=root, per_class=10, seed=1)
  assert not np.array_equal(x1, x3)
  # Every chosen clip is a clip of the full train split.
  full, _ = fsdd.load_fsdd("digit", "train", data_dir=root)
  rows = {r.tobytes() for r in full}
  assert all(r.tobytes() in rows for r in x1)
  _, y_test = registry.load("fsdd_digit_n10", "test", data_dir=root)
  assert len(y_test) == 300


def test_bad_arguments_raise(root, tmp_path):
  with pytest.raises(ValueError, match="unknown task"):
    fsdd.load_fsdd("gender", "train", data_dir=root)
  with pytest.raises(ValueError, match="unknown split"):
    fsdd.load_fsdd("digit", "validation", data_dir=root)
  with pytest.raises(ValueError, match="invalid speakers"):
    fsdd.load_fsdd("digit", "train", data_dir=root, speakers=["alice"])
  with pytest.raises(ValueError, match="invalid digits"):
    fsdd.load_fsdd("digit", "train", data_dir=root, digits=[10])
  with pytest.raises(ValueError, match="fewer than per_class=31"):
    fsdd.load_fsdd("digit", "test", data_dir=root, per_class=31)
  with pytest.raises(ValueError, match="not a directory"):
    fsdd.load_fsdd("digit", "train", data_dir=tmp_path)
  # Same arguments: the same spec; different arguments under a taken name: an error.
  assert fsdd.register_fsdd_task("fsdd_digit_0_4", task="digit", digits=[4, 3, 2, 1, 0]) is (
    registry.get("fsdd_digit_0_4")
  )
  with pytest.raises(ValueError, match="already registered"):
    fsdd.register_fsdd_task("fsdd_digit_0_4", task="digit", digits=[0, 1])
