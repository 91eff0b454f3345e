"""Raw readers for the offline dataset files (IDX .gz, KMNIST .npz, CIFAR-10 binary, USPS LIBSVM).

Each reader takes one path, checks the file against what the format promises (magic number,
header dimensions, byte count, value range) and the caller's expected shape, and returns the
*raw* array (uint8 for images/labels, float32 for USPS). A missing file raises
`FileNotFoundError`; a truncated or corrupt one raises `ValueError` naming the file. Decoding is
vectorised NumPy; results are cached in-process by (path, size, mtime) because inflating MNIST's
47 MB takes ~0.3 s.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import os
import zlib

import numpy as np

_IDX_MAGIC_IMAGES = 0x00000803
_IDX_MAGIC_LABELS = 0x00000801
CIFAR_RECORD_BYTES = 1 + 3 * 32 * 32


def _require(path: str) -> os.stat_result:
  try:
    return os.stat(path)
  except FileNotFoundError:
    raise FileNotFoundError(
      f"dataset file {path!r} is missing (set the data dir argument or $JTRANSFER_DATA_DIR to the "
      "folder holding the datasets, e.g. ../shared/datasets)"
    ) from None


def _decompress(path: str, opener) -> bytes:
  try:
    with opener(path, "rb") as f:
      return f.read()
  except (OSError, EOFError, zlib.error, ValueError) as e:
    # gzip: EOFError on truncation, BadGzipFile/zlib.error on corruption; bz2: OSError/EOFError.
    raise ValueError(
      f"{path}: truncated or corrupt compressed file ({type(e).__name__}: {e})"
    ) from e


def read_idx(path: str, *, shape: tuple[int, ...]) -> np.ndarray:
  """Reads a gzipped IDX file (uint8 data) and checks it holds exactly `shape`."""
  st = _require(path)
  return _read_idx_cached(os.fspath(path), tuple(shape), st.st_size, st.st_mtime_ns).copy()


@functools.lru_cache(maxsize=16)
def _read_idx_cached(path: str, shape: tuple[int, ...], size: int, mtime: int) -> np.ndarray:
  del size, mtime  # cache key only: a replaced file is read again
  raw = _decompress(path, gzip.open)
  if len(raw) < 4:
    raise ValueError(f"{path}: IDX file too short ({len(raw)} bytes) for a header")
  magic = int.from_bytes(raw[:4], "big")
  expected_magic = 0x00000800 + len(shape)
  if magic != expected_magic:
    raise ValueError(
      f"{path}: IDX magic {magic:#010x}, expected {expected_magic:#010x} "
      f"(uint8 data with {len(shape)} dimensions)"
    )
  header_len = 4 + 4 * len(shape)
  if len(raw) < header_len:
    raise ValueError(f"{path}: IDX header truncated ({len(raw)} bytes)")
  dims = tuple(int(d) for d in np.frombuffer(raw[4:header_len], dtype=">u4"))
  if dims != shape:
    raise ValueError(f"{path}: IDX header says shape {dims}, expected {shape}")
  data = np.frombuffer(raw, dtype=np.uint8, offset=header_len)
  if data.size != int(np.prod(shape)):
    raise ValueError(
      f"{path}: IDX payload has {data.size} bytes, header promises {int(np.prod(shape))} "
      "(file truncated or padded)"
    )
  out = data.reshape(shape)
  out.flags.writeable = False
  return out


def read_npz_array(path: str, *, shape: tuple[int, ...], key: str = "arr_0") -> np.ndarray:
  """Reads `key` of a KMNIST-style .npz (uint8) and checks its shape."""
  st = _require(path)
  return _read_npz_cached(os.fspath(path), tuple(shape), key, st.st_size, st.st_mtime_ns).copy()


@functools.lru_cache(maxsize=16)
def _read_npz_cached(path: str, shape, key: str, size: int, mtime: int) -> np.ndarray:
  del size, mtime
  try:
    # Our own handle: np.load leaks the one it opens when the zip directory is unreadable.
    with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
      if key not in z.files:
        raise ValueError(f"{path}: no array {key!r} in npz (has {z.files})")
      arr = z[key]
  except ValueError:
    raise
  except Exception as e:  # zipfile.BadZipFile, zlib.error, EOFError, OSError on a damaged archive
    raise ValueError(f"{path}: truncated or corrupt npz ({type(e).__name__}: {e})") from e
  if arr.dtype != np.uint8 or arr.shape != shape:
    raise ValueError(f"{path}: array {arr.dtype}{arr.shape}, expected uint8{shape}")
  arr.flags.writeable = False
  return arr


def read_cifar_bin(path: str, *, num_records: int) -> tuple[np.ndarray, np.ndarray]:
  """Reads a gzipped CIFAR-10 binary batch: (uint8 images NHWC [n,32,32,3], uint8 labels [n])."""
  st = _require(path)
  images, labels = _read_cifar_cached(os.fspath(path), num_records, st.st_size, st.st_mtime_ns)
  return images.copy(), labels.copy()


@functools.lru_cache(maxsize=8)
def _read_cifar_cached(path: str, num_records: int, size: int, mtime: int):
  del size, mtime
  raw = _decompress(path, gzip.open)
  if len(raw) != num_records * CIFAR_RECORD_BYTES:
    raise ValueError(
      f"{path}: {len(raw)} bytes, expected {num_records} records x {CIFAR_RECORD_BYTES} bytes "
      f"= {num_records * CIFAR_RECORD_BYTES} (file truncated, or not this subset)"
    )
  records = np.frombuffer(raw, dtype=np.uint8).reshape(num_records, CIFAR_RECORD_BYTES)
  labels = records[:, 0].copy()
  if labels.max(initial=0) > 9:
    raise ValueError(f"{path}: label byte {labels.max()} out of range 0..9 (corrupt record)")
  # Each record stores R, G, B planes of 32x32 row-major; move channels last.
  images = np.ascontiguousarray(
    records[:, 1:].reshape(num_records, 3, 32, 32).transpose(0, 2, 3, 1)
  )
  images.flags.writeable = False
  labels.flags.writeable = False
  return images, labels


def read_libsvm_bz2(
  path: str, *, num_samples: int, num_features: int
) -> tuple[np.ndarray, np.ndarray]:
  """Reads a bzip2 LIBSVM text file into dense float32 [n, d] values and int64 [n] raw labels.

  Vectorised: every number in the file is parsed in one `np.fromstring` call, and the line /
  `index:value` structure is recovered from the positions of newlines and colons, so sparse lines
  (omitted zeros) work too.
  """
  st = _require(path)
  values, labels = _read_libsvm_cached(
    os.fspath(path), num_samples, num_features, st.st_size, st.st_mtime_ns
  )
  return values.copy(), labels.copy()


@functools.lru_cache(maxsize=4)
def _read_libsvm_cached(path: str, num_samples: int, num_features: int, size: int, mtime: int):
  del size, mtime
  raw = _decompress(path, bz2.open).strip()
  if not raw:
    raise ValueError(f"{path}: empty LIBSVM file")
  buf = np.frombuffer(raw, dtype=np.uint8)
  newline = buf == ord("\n")
  num_lines = int(newline.sum()) + 1
  if num_lines != num_samples:
    raise ValueError(f"{path}: {num_lines} lines, expected {num_samples} samples (truncated?)")
  # Non-zeros per line = colons per line.
  line_of_byte = np.cumsum(newline)
  nnz = np.bincount(line_of_byte[buf == ord(":")], minlength=num_lines)
  try:
    flat = np.array(raw.replace(b":", b" ").split(), dtype=np.float64)
  except ValueError as e:
    raise ValueError(f"{path}: non-numeric token in LIBSVM data ({e})") from e
  if flat.size != int(num_lines + 2 * nnz.sum()):
    raise ValueError(f"{path}: malformed LIBSVM lines (token count does not match 'i:v' pairs)")
  starts = np.concatenate([[0], np.cumsum(1 + 2 * nnz)[:-1]])
  labels = flat[starts]
  is_pair = np.ones(flat.size, dtype=bool)
  is_pair[starts] = False
  pairs = flat[is_pair].reshape(-1, 2)
  cols = pairs[:, 0].astype(np.int64) - 1  # LIBSVM indices are 1-based
  if cols.size and (cols.min() < 0 or cols.max() >= num_features):
    raise ValueError(f"{path}: feature index outside 1..{num_features}")
  rows = np.repeat(np.arange(num_lines), nnz)
  values = np.zeros((num_lines, num_features), dtype=np.float32)
  values[rows, cols] = pairs[:, 1]
  if np.any(labels != np.round(labels)):
    raise ValueError(f"{path}: non-integer labels")
  labels = labels.astype(np.int64)
  values.flags.writeable = False
  labels.flags.writeable = False
  return values, labels


def clear_cache() -> None:
  """Drops every cached decoded file (e.g. after replacing files on disk in the same process)."""
  for fn in (_read_idx_cached, _read_npz_cached, _read_cifar_cached, _read_libsvm_cached):
    fn.cache_clear()
