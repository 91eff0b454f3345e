"""Offline readers on the real files: published counts and values; clear errors on bad files."""

import bz2
import gzip
import os
import shutil

import numpy as np
import pytest

from jtransfer import data
from jtransfer.data import readers

# Published numbers (../shared/datasets/README.md).
MNIST_COUNTS = {
  "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
  "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}
CIFAR_PARTIAL_COUNTS = {
  "train": [396, 366, 420, 384, 422, 393, 414, 385, 407, 413],
  "test": [103, 89, 100, 103, 90, 86, 112, 102, 106, 109],
}
USPS_COUNTS = [359, 264, 198, 166, 200, 160, 170, 147, 166, 177]

CASES = [
  ("mnist", "train", (28, 28, 1), MNIST_COUNTS["train"]),
  ("mnist", "test", (28, 28, 1), MNIST_COUNTS["test"]),
  ("fashion_mnist", "train", (28, 28, 1), [6000] * 10),
  ("fashion_mnist", "test", (28, 28, 1), [1000] * 10),
  ("kmnist", "test", (28, 28, 1), [1000] * 10),
  ("cifar10", "train", (32, 32, 3), CIFAR_PARTIAL_COUNTS["train"]),
  ("cifar10", "test", (32, 32, 3), CIFAR_PARTIAL_COUNTS["test"]),
  ("usps", "test", (16, 16, 1), USPS_COUNTS),
]


@pytest.mark.parametrize("name,split,shape,counts", CASES)
def test_counts_shapes_and_range_match_published(data_dir, name, split, shape, counts):
  x, y = data.load(name, split, data_dir=data_dir)
  assert x.dtype == np.float32 and y.dtype == np.int32
  assert x.shape == (sum(counts), *shape)
  np.testing.assert_array_equal(np.bincount(y, minlength=10), counts)
  assert x.min() == 0.0 and x.max() == 1.0  # background 0 and full ink/saturation occur
  assert data.get(name).input_shape == shape


def test_idx_values_equal_raw_bytes(data_dir):
  x, y = data.load("mnist", "test", data_dir=data_dir)
  with gzip.open(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz") as f:
    raw = f.read()
  with gzip.open(data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz") as f:
    raw_labels = f.read()
  # IDX: 16-byte image header then 784 bytes per image, row-major; 8-byte label header.
  for i in (0, 1, 9999):
    pixels = np.array(list(raw[16 + 784 * i : 16 + 784 * (i + 1)]), np.float64).reshape(28, 28)
    np.testing.assert_allclose(x[i, :, :, 0], pixels / 255.0, rtol=0, atol=1e-7)
    assert y[i] == raw_labels[8 + i]


def test_cifar_partial_matches_published_values(data_dir):
  xtr, ytr = data.load("cifar10", "train", data_dir=data_dir)
  xte, yte = data.load("cifar10", "test", data_dir=data_dir)
  np.testing.assert_array_equal(ytr[:10], [6, 9, 9, 4, 1, 1, 2, 7, 8, 3])
  np.testing.assert_array_equal(yte[:10], [3, 8, 8, 0, 6, 6, 1, 6, 3, 1])
  u8 = lambda a: np.rint(a * 255).astype(int)  # noqa: E731
  # Record 0 of data_batch_1: R plane starts 59 43 50 68 98, B plane ends 140 84 72.
  np.testing.assert_array_equal(u8(xtr[0, 0, :5, 0]), [59, 43, 50, 68, 98])
  np.testing.assert_array_equal(u8(xtr[0, 31, -3:, 2]), [140, 84, 72])
  np.testing.assert_array_equal(u8(xtr[1, 0, :3, 0]), [154, 126, 105])
  np.testing.assert_array_equal(u8(xtr[1, 31, -3:, 2]), [139, 142, 144])
  np.testing.assert_array_equal(u8(xte[0, 0, :5, 0]), [158, 159, 165, 166, 160])


def test_usps_values_equal_a_plain_python_parse(data_dir):
  x, y = data.load("usps", "test", data_dir=data_dir)
  with bz2.open(data_dir / "usps" / "usps.t.bz2", "rt") as f:
    lines = [next(f) for _ in range(3)]
  for i, line in enumerate(lines):
    label, *pairs = line.split()
    dense = np.zeros(256)
    for pair in pairs:
      k, v = pair.split(":")
      dense[int(k) - 1] = float(v)
    assert y[i] == int(label) - 1
    np.testing.assert_allclose(x[i, :, :, 0].ravel(), (dense + 1) / 2, rtol=0, atol=1e-6)


def test_kmnist_npz_equals_kmnist_idx(data_dir):
  x, y = data.load("kmnist", "test", data_dir=data_dir)
  idx_images = readers.read_idx(
    os.path.join(data_dir, "kmnist", "t10k-images-idx3-ubyte.gz"), shape=(10000, 28, 28)
  )
  np.testing.assert_array_equal(np.rint(x[..., 0] * 255).astype(np.uint8), idx_images)


def test_missing_splits_and_names_are_clear(data_dir):
  with pytest.raises(ValueError, match="KMNIST train images.*missing"):
    data.load("kmnist", "train", data_dir=data_dir)
  with pytest.raises(ValueError, match="USPS train file.*missing"):
    data.load("usps", "train", data_dir=data_dir)
  with pytest.raises(ValueError, match="unknown dataset 'mnits'.*valid names:.*fashion_mnist"):
    data.load("mnits", "train", data_dir=data_dir)
  with pytest.raises(ValueError, match="no split 'validation'"):
    data.load("mnist", "validation", data_dir=data_dir)


def test_data_dir_from_env_and_absent(data_dir, monkeypatch):
  monkeypatch.setenv(data.DATA_DIR_ENV, str(data_dir))
  _, y = data.load("usps", "test")
  assert y.size == 2007
  monkeypatch.delenv(data.DATA_DIR_ENV)
  with pytest.raises(ValueError, match="JTRANSFER_DATA_DIR"):
    data.load("usps", "test")
  with pytest.raises(FileNotFoundError, match="missing"):
    data.load("usps", "test", data_dir="/nonexistent/datasets")


def test_returned_arrays_are_private_copies(data_dir):
  x, y = data.load("cifar10", "test", data_dir=data_dir)
  x[:] = 7.0
  y[:] = 0
  x2, y2 = data.load("cifar10", "test", data_dir=data_dir)
  assert x2.max() == 1.0 and np.bincount(y2).tolist() == CIFAR_PARTIAL_COUNTS["test"]


# ---- damaged copies written to tmp_path ---------------------------------------------------------


def _copy_tree(data_dir, tmp_path, folder):
  shutil.copytree(data_dir / folder, tmp_path / folder)
  return tmp_path / folder


def test_truncated_gzip_idx(data_dir, tmp_path):
  folder = _copy_tree(data_dir, tmp_path, "mnist")
  path = folder / "t10k-labels-idx1-ubyte.gz"
  blob = path.read_bytes()
  os.chmod(path, 0o644)
  path.write_bytes(blob[: len(blob) // 2])
  with pytest.raises(ValueError, match="t10k-labels.*truncated or corrupt"):
    data.load("mnist", "test", data_dir=tmp_path)


def test_corrupt_gzip_payload(tmp_path):
  path = tmp_path / "labels.gz"
  good = gzip.compress(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + bytes(5))
  bad = bytearray(good)
  bad[12] ^= 0xFF  # flip bits inside the deflate stream / CRC
  bad[-6] ^= 0xFF
  path.write_bytes(bytes(bad))
  with pytest.raises(ValueError, match="truncated or corrupt"):
    readers.read_idx(str(path), shape=(5,))


def test_idx_header_and_payload_checks(tmp_path):
  header = b"\x00\x00\x08\x03" + b"".join(d.to_bytes(4, "big") for d in (3, 28, 28))
  wrong_dims = tmp_path / "wrong_dims.gz"
  wrong_dims.write_bytes(gzip.compress(header + bytes(3 * 784)))
  with pytest.raises(ValueError, match=r"header says shape \(3, 28, 28\), expected \(4, 28, 28\)"):
    readers.read_idx(str(wrong_dims), shape=(4, 28, 28))
  short = tmp_path / "short_payload.gz"  # a valid gzip of a cut file
  short.write_bytes(gzip.compress(header + bytes(3 * 784 - 10)))
  with pytest.raises(ValueError, match="payload has 2342 bytes, header promises 2352"):
    readers.read_idx(str(short), shape=(3, 28, 28))
  magic = tmp_path / "magic.gz"
  magic.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (2352).to_bytes(4, "big") + bytes(2352)))
  with pytest.raises(ValueError, match="IDX magic"):
    readers.read_idx(str(magic), shape=(3, 28, 28))
  with pytest.raises(FileNotFoundError, match="missing"):
    readers.read_idx(str(tmp_path / "nope.gz"), shape=(3,))


def test_truncated_cifar_and_usps_and_npz(data_dir, tmp_path):
  with gzip.open(data_dir / "cifar10-partial" / "test_batch_first1000.bin.gz") as f:
    raw = f.read()
  cut = tmp_path / "cifar.bin.gz"
  cut.write_bytes(gzip.compress(raw[:-100], compresslevel=1))
  with pytest.raises(ValueError, match="expected 1000 records"):
    readers.read_cifar_bin(str(cut), num_records=1000)

  with bz2.open(data_dir / "usps" / "usps.t.bz2") as f:
    lines = f.read().splitlines()
  short = tmp_path / "usps_short.bz2"
  short.write_bytes(bz2.compress(b"\n".join(lines[:-1]), compresslevel=1))
  with pytest.raises(ValueError, match="2006 lines, expected 2007"):
    readers.read_libsvm_bz2(str(short), num_samples=2007, num_features=256)
  blob = (data_dir / "usps" / "usps.t.bz2").read_bytes()
  cut_bz2 = tmp_path / "usps_cut.bz2"
  cut_bz2.write_bytes(blob[: len(blob) // 3])
  with pytest.raises(ValueError, match="truncated or corrupt"):
    readers.read_libsvm_bz2(str(cut_bz2), num_samples=2007, num_features=256)

  npz = (data_dir / "kmnist" / "kmnist-test-labels.npz").read_bytes()
  cut_npz = tmp_path / "labels.npz"
  cut_npz.write_bytes(npz[: len(npz) // 2])
  with pytest.raises(ValueError, match="truncated or corrupt npz"):
    readers.read_npz_array(str(cut_npz), shape=(10000,))


def test_libsvm_sparse_lines(tmp_path):
  path = tmp_path / "sparse.bz2"
  path.write_bytes(bz2.compress(b"3 2:0.5 4:-1\n1\n2 1:1 3:0.25\n"))
  values, labels = readers.read_libsvm_bz2(str(path), num_samples=3, num_features=4)
  np.testing.assert_array_equal(labels, [3, 1, 2])
  np.testing.assert_array_equal(values, [[0, 0.5, 0, -1], [0, 0, 0, 0], [1, 0, 0.25, 0]])


# ---- normalisation -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_declared_normalisation_standardises_the_train_split(data_dir, name):
  x, _ = data.load(name, "train", data_dir=data_dir)
  z = data.normalize(name, x)
  mean, mean_sq = z.mean(dtype=np.float64), np.square(z).mean(dtype=np.float64)
  # The thesis' declared values are the train pixel statistics to 4 digits.
  assert abs(mean) < 1e-3 and abs(np.sqrt(mean_sq - mean**2) - 1.0) < 1e-3


def test_normalize_formula_per_channel_and_identity():
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(4, 32, 32, 3)).astype(np.float32)
  mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
  np.testing.assert_allclose(data.normalize("cifar10", x), (x - mean) / std, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(
    data.denormalize("cifar10", data.normalize("cifar10", x)), x, atol=1e-6
  )
  g = x[..., :1]
  np.testing.assert_allclose(data.normalize("mnist_split_5_9", g), (g - 0.1307) / 0.3081, atol=1e-6)
  np.testing.assert_array_equal(data.normalize("mnist_noise_struct", g), g)
  assert data.mean_std("mnist_noise") is None
  with pytest.raises(ValueError, match="channels"):
    data.normalize("cifar10", np.zeros((1, 4, 4, 2), np.float32))
