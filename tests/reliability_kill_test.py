"""`kill -9` during import (launch/import_zoo.py), evaluate (launch/evaluate.py) and export
(`python -m jtransfer export`), then the same command again (issue 23): the rerun's tables equal
an uninterrupted run's, and what the killed run left is never read as a finished file.

The kill comes at a chosen point, with no hook in the code: each command runs under a small
runner that patches one function (the checkpoint's commit rename, the store write, the n-th
table write) to SIGKILL its own process there, then runs the real command line.

Before: an export or an analysis table killed mid-file stayed at its final name, half written
(a reader took the first rows as the whole table); the import survived both kill points.
"""

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from importers_torch_test import resnet_state_dict
from safetensors.numpy import save_file

from jtransfer.importers import torch_weights
from jtransfer.store import checkpointing, results, zoo

REPO = pathlib.Path(__file__).resolve().parents[1]

_RUNNER = textwrap.dedent(
  """
  import os, runpy, signal, sys
  where, target, args = sys.argv[1], sys.argv[2], sys.argv[3:]

  def die():
    os.kill(os.getpid(), signal.SIGKILL)

  if where == "checkpoint_commit":  # the checkpoint is all in orbax's tmp dir, not renamed yet
    from orbax.checkpoint._src.path import async_path
    async def rename(*a, **k):
      die()
    async_path.rename = rename
  elif where == "store_write":  # the checkpoint is committed, its store row not yet written
    from jtransfer.store import results
    results.Store.mark_done = lambda *a, **k: die()
  elif where.startswith("csv_write_"):  # half of the n-th table written, then killed
    import pandas as pd
    real, calls, n = pd.DataFrame.to_csv, [], int(where.rsplit("_", 1)[1])
    def to_csv(self, path=None, *a, **k):
      calls.append(path)
      if len(calls) != n or path is None:
        return real(self, path, *a, **k)
      text = real(self, None, *a, **k)
      with open(path, "w") as f:
        f.write(text[: len(text) // 2])
        f.flush()
      die()
    pd.DataFrame.to_csv = to_csv
  sys.argv = [target, *args]
  if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
  else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
  """
)


def _run(tmp_path, where, target, *args):
  runner = tmp_path / "runner.py"
  runner.write_text(_RUNNER)
  env = {k: v for k, v in os.environ.items() if k != "JTRANSFER_VERBOSE"}
  env.update(PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu", XLA_FLAGS="", JTRANSFER_QUIET="1")
  return subprocess.run(
    [sys.executable, str(runner), where, target, *args], capture_output=True, text=True,
    env=env, cwd=tmp_path, timeout=240,
  )  # fmt: skip


def _killed(out):
  assert out.returncode == -signal.SIGKILL, (out.returncode, out.stderr[-3000:])


def _ok(out):
  assert out.returncode == 0, out.stderr[-3000:]


def _table(workdir, table):
  return results.load(workdir, table).drop(columns="created_at")


@pytest.mark.slow  # four import_zoo runs in subprocesses
@pytest.mark.parametrize("where", ["checkpoint_commit", "store_write"])
def test_import_killed_then_rerun_equals_an_uninterrupted_import(tmp_path, where):
  weights = tmp_path / "r18.safetensors"
  save_file(resnet_state_dict(np.random.default_rng(3)), str(weights))
  args = [f"--workdir={tmp_path / 'wd'}", "--source=imnet", "--arch=resnet18",
          f"--weights={weights}"]  # fmt: skip
  _killed(_run(tmp_path, where, str(REPO / "launch/import_zoo.py"), *args))
  ckpt = checkpointing.checkpoint_path(tmp_path / "wd", "imnet", "resnet18", 0, 0)
  assert checkpointing.exists(ckpt) is (where == "store_write")
  _ok(_run(tmp_path, "nowhere", str(REPO / "launch/import_zoo.py"), *args))

  want = torch_weights.import_file(tmp_path / "one", weights, arch="resnet18", source="imnet")
  for table in ("checkpoints", "done"):
    pd.testing.assert_frame_equal(_table(tmp_path / "wd", table), _table(tmp_path / "one", table))
  got = zoo.read_entry(ckpt)
  assert got.content_hash == want.content_hash and got.imported_from == want.imported_from
  assert checkpointing.tree_hash(checkpointing.restore(ckpt)) == want.content_hash
  assert [p.name for p in ckpt.parent.iterdir()] == ["0"]  # no tmp directory left


def _analysis_store(workdir):
  from analysis_report_test import _synthetic

  ck, sc, ft = _synthetic(np.random.default_rng(0))
  with results.Store(workdir) as s:
    s.add_rows("checkpoints", ck.to_dict("records"))
    s.add_rows("scores", sc.to_dict("records"))
    s.add_rows("finetune", ft.to_dict("records"))


def _csvs(folder, prefix=""):
  return {p.name: p.read_bytes() for p in sorted(folder.glob(f"{prefix}*.csv"))}


@pytest.mark.slow  # two launcher runs in subprocesses
def test_evaluate_killed_mid_table_then_rerun_equals_an_uninterrupted_evaluate(tmp_path):
  from jtransfer import analysis

  _analysis_store(tmp_path / "wd")
  shutil.copytree(tmp_path / "wd", tmp_path / "one")
  analysis.run(
    analysis.EvaluateConfig(n_boot=0, with_figures=False), tmp_path / "one"
  )  # what launch/evaluate.py runs
  want = _csvs(tmp_path / "one", "analysis_")
  args = [f"--workdir={tmp_path / 'wd'}", "--config.evaluate.n_boot=0",
          "--config.evaluate.with_figures=false"]  # fmt: skip
  _killed(_run(tmp_path, "csv_write_4", str(REPO / "launch/evaluate.py"), *args))
  left = _csvs(tmp_path / "wd", "analysis_")
  assert len(left) == 3 and all(left[k] == want[k] for k in left)  # whole tables, or none
  assert not (tmp_path / "wd" / "report.md").exists()
  _ok(_run(tmp_path, "nowhere", str(REPO / "launch/evaluate.py"), *args))
  assert _csvs(tmp_path / "wd", "analysis_") == want
  report = (tmp_path / "wd" / "report.md").read_text()
  assert report == (tmp_path / "one" / "report.md").read_text().replace(
    str(tmp_path / "one"), str(tmp_path / "wd")
  )  # the report names its workdir
  # Killed again, now with a finished report in place: that report goes (it describes the
  # tables before this run; it stayed, beside newer CSVs, before the fix).
  _killed(_run(tmp_path, "csv_write_4", str(REPO / "launch/evaluate.py"), *args))
  assert not (tmp_path / "wd" / "report.md").exists()
  assert not (tmp_path / "wd" / "report.html").exists()


@pytest.mark.slow  # two `python -m jtransfer` runs in subprocesses
def test_export_killed_mid_table_then_rerun_equals_an_uninterrupted_export(tmp_path):
  from jtransfer.cli import main as cli

  _analysis_store(tmp_path / "wd")
  cli.export(str(tmp_path / "wd"), "csv", str(tmp_path / "one"))
  want = _csvs(tmp_path / "one")
  args = ["export", str(tmp_path / "wd"), "--format=csv", f"--out={tmp_path / 'out'}"]
  _killed(_run(tmp_path, "csv_write_2", "jtransfer", *args))
  left = _csvs(tmp_path / "out")
  assert len(left) == 1 and all(left[k] == want[k] for k in left)  # whole tables, or none
  _ok(_run(tmp_path, "nowhere", "jtransfer", *args))
  assert _csvs(tmp_path / "out") == want
