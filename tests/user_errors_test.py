"""User mistakes end in one line naming the thing and the fix; bad weights are refused.

Each case here was a traceback or a silent import before `jtransfer.errors`: the sweep without a
data dir (a ValueError traceback from jtransfer/data/images.py), a truncated .safetensors (the
raw SafetensorError without the file's name), NaN and int32 weights (imported silently).
"""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from importers_torch_test import resnet_state_dict
from safetensors.numpy import save_file

from jtransfer import errors
from jtransfer.importers import flax_orbax, torch_weights
from jtransfer.models import functional

REPO = pathlib.Path(__file__).resolve().parents[1]


def _run(args, tmp_path, **env):
  base = {
    k: v for k, v in os.environ.items() if k not in ("JTRANSFER_DATA_DIR", "JTRANSFER_VERBOSE")
  }
  return subprocess.run(
    [sys.executable, *args], cwd=tmp_path, env={**base, "JAX_PLATFORMS": "cpu", **env},
    capture_output=True, text=True, timeout=300,
  )  # fmt: skip


def _one_line_error(out, *words):
  assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
  assert "Traceback" not in out.stderr, out.stderr[-2000:]
  lines = [line for line in out.stderr.splitlines() if "error:" in line]
  assert len(lines) == 1, out.stderr[-2000:]
  for w in words:
    assert w in lines[0], lines[0]


@pytest.mark.slow  # two fresh interpreters running the launcher
def test_sweep_without_a_data_dir_is_one_line_and_verbose_gives_the_traceback(tmp_path):
  args = [str(REPO / "launch/sweep.py"), f"--config={REPO}/configs/decide_cnn.py:tiny",
          f"--workdir={tmp_path / 'run'}"]  # fmt: skip
  out = _run(args, tmp_path)
  _one_line_error(out, "sweep.py: error:", "JTRANSFER_DATA_DIR")
  verbose = _run(args, tmp_path, JTRANSFER_VERBOSE="1")
  assert verbose.returncode != 0 and "Traceback" in verbose.stderr
  assert "UserError" in verbose.stderr


def _truncated(tmp_path):
  path = tmp_path / "r18.safetensors"
  save_file(resnet_state_dict(np.random.default_rng(0)), str(path))
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2])
  return path


@pytest.mark.slow  # a fresh interpreter running the importer
def test_import_zoo_of_a_truncated_file_names_the_file(tmp_path):
  path = _truncated(tmp_path)
  out = _run([str(REPO / "launch/import_zoo.py"), f"--workdir={tmp_path / 'wd'}",
              "--source=s", "--arch=resnet18", f"--weights={path}"], tmp_path)  # fmt: skip
  _one_line_error(out, "import_zoo.py: error:", str(path), "cannot be read as .safetensors")


@pytest.mark.parametrize(
  "content, words",
  [
    ("truncated", ["cannot be read as .safetensors"]),
    (b"not a weights file at all", ["cannot be read as .safetensors"]),
    (b"\xff" * 8 + b"{}", ["cannot be read as .safetensors"]),  # a header length far too large
  ],
)
def test_unreadable_safetensors_are_a_user_error_naming_the_file(tmp_path, content, words):
  if content == "truncated":
    path = _truncated(tmp_path)
  else:
    path = tmp_path / "w.safetensors"
    path.write_bytes(content)
  with pytest.raises(errors.UserError) as e:
    torch_weights.read_state_dict(path)
  assert str(path) in str(e.value) and all(w in str(e.value) for w in words)


def test_nan_and_integer_weights_are_refused_naming_the_tensor(tmp_path):
  sd = resnet_state_dict(np.random.default_rng(1))
  nan = dict(sd, **{"conv1.weight": np.full_like(sd["conv1.weight"], np.nan)})
  save_file(nan, str(tmp_path / "nan.safetensors"))
  with pytest.raises(errors.UserError, match=r"'conv1.weight' .* non-finite"):
    torch_weights.import_file(tmp_path / "wd", tmp_path / "nan.safetensors", arch="resnet18",
                              source="s")  # fmt: skip
  ints = dict(sd, **{"fc.weight": sd["fc.weight"].astype(np.int32)})
  save_file(ints, str(tmp_path / "int.safetensors"))
  with pytest.raises(errors.UserError, match=r"'fc.weight' has dtype int32"):
    torch_weights.read_state_dict(tmp_path / "int.safetensors")
  assert not (tmp_path / "wd").exists() or not any((tmp_path / "wd").rglob("*.json"))


def test_batch_norm_counters_and_half_precision_are_accepted(tmp_path):
  sd = resnet_state_dict(np.random.default_rng(2))
  half = {k: v.astype(np.float16) for k, v in sd.items()}
  half["bn1.num_batches_tracked"] = np.array(7, dtype=np.int64)
  save_file(half, str(tmp_path / "h.safetensors"))
  got = torch_weights.read_state_dict(tmp_path / "h.safetensors")
  assert "bn1.num_batches_tracked" not in got and got["conv1.weight"].dtype == np.float32
  np.testing.assert_array_equal(got["conv1.weight"], half["conv1.weight"].astype(np.float32))


def test_flax_trees_with_nan_or_integer_weights_are_refused():
  _, params, rest = functional.init("cnn_tiny", num_classes=10, seed=0)
  bad = {k: dict(v) for k, v in params.items()}
  conv1 = {
    **bad["backbone"]["conv1"],
    "kernel": np.full_like(bad["backbone"]["conv1"]["kernel"], np.inf),
  }
  bad["backbone"] = {**bad["backbone"], "conv1": conv1}
  with pytest.raises(errors.UserError, match=r"backbone/conv1/kernel .* NaN or Inf"):
    flax_orbax.to_model_trees(bad, arch="cnn_tiny", num_classes=10)
  ints = {k: dict(v) for k, v in params.items()}
  conv1 = {**ints["backbone"]["conv1"], "bias": np.zeros(conv1["bias"].shape, np.int32)}
  ints["backbone"] = {**ints["backbone"], "conv1": conv1}
  with pytest.raises(errors.UserError, match=r"backbone/conv1/bias has dtype int32"):
    flax_orbax.to_model_trees(ints, arch="cnn_tiny", num_classes=10)
  # The good tree still imports.
  got, _, _ = flax_orbax.to_model_trees(params, arch="cnn_tiny", num_classes=10)
  np.testing.assert_array_equal(
    got["backbone"]["conv1"]["kernel"], params["backbone"]["conv1"]["kernel"]
  )


def test_one_line_joins_a_multi_line_message():
  assert errors.one_line(ValueError("a\n  b\n\nc")) == "a | b | c"
  assert errors.verbose(False) is (os.environ.get("JTRANSFER_VERBOSE", "") not in ("", "0"))
