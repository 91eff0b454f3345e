"""`python -m jtransfer`: list, export and report on a small store written here."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from jtransfer import data, models, scores
from jtransfer.cli import main as cli
from jtransfer.store import results


def test_scores_names_is_the_registry_in_order():
  assert scores.names() == tuple(scores.REGISTRY)
  assert {"nc_score", "leep", "logme"} <= set(scores.names())


def test_list_scores_shows_direction_and_description():
  lines = cli.list_lines("scores")
  by_name = {line.split()[0]: line for line in lines}
  assert set(by_name) == {*scores.REGISTRY, "checkpoint_index", "param_count"}
  for name, spec in scores.REGISTRY.items():
    assert by_name[name].split()[1] == ("↑" if spec.higher_is_better else "↓")
    assert spec.description and by_name[name].endswith(spec.description)
  assert by_name["nc_score"].split()[1] == "↓" and by_name["logme"].split()[1] == "↑"


def test_list_datasets_and_models():
  lines = cli.list_lines("datasets")
  assert [line.split()[0] for line in lines] == list(data.names())
  mnist = next(line for line in lines if line.startswith("mnist "))
  assert mnist.split()[1:4] == ["10", "classes", "image"]
  assert cli.list_lines("models") == list(models.names())
  with pytest.raises(ValueError, match="unknown kind 'foo'; valid: datasets, models, scores"):
    cli.list_lines("foo")


def _store(workdir):
  rng = np.random.default_rng(0)
  ck = [
    dict(source="mnist", arch="cnn", seed=s, step=t, epoch=t / 10, path=f"zoo/{s}/{t}",
         train_acc=rng.random(), test_acc=rng.random(), train_loss=1.0, test_loss=1.0)
    for s in (0, 1) for t in (0, 3)
  ]  # fmt: skip
  sc = [dict(r, target="mnist", probe="train", layer="fc1", score="rsa", value=rng.random())
        for r in ck]  # fmt: skip
  for r in sc:
    del r["epoch"], r["path"], r["train_acc"], r["test_acc"], r["train_loss"], r["test_loss"]
  with results.Store(workdir) as s:
    s.add_rows("checkpoints", ck)
    s.add_rows("scores", sc)
  return pd.DataFrame(ck), pd.DataFrame(sc)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_writes_every_table_with_the_stored_values(tmp_path, fmt, capsys):
  if fmt == "parquet":
    pytest.importorskip("pyarrow")
  ck, sc = _store(tmp_path)
  assert cli.main(["export", str(tmp_path), "--format", fmt]) == 0
  printed = capsys.readouterr().out.split()
  read = pd.read_csv if fmt == "csv" else pd.read_parquet
  out = {p.rsplit("/", 1)[1].split(".")[0]: read(p) for p in printed}
  assert set(out) == {t for t in results.TABLES if t != "done"}
  got = out["scores"].sort_values(["seed", "step"]).reset_index(drop=True)
  np.testing.assert_allclose(got["value"], sc.sort_values(["seed", "step"])["value"], rtol=1e-12)
  got = out["checkpoints"].sort_values(["seed", "step"]).reset_index(drop=True)
  np.testing.assert_allclose(got["test_acc"], ck.sort_values(["seed", "step"])["test_acc"])
  assert len(out["finetune"]) == 0 and "ft_step" in out["finetune"].columns


@pytest.mark.slow  # runs the CLI in a subprocess
def test_bad_workdir_is_one_line_exit_2(tmp_path):
  proc = subprocess.run(
    [sys.executable, "-m", "jtransfer", "export", str(tmp_path / "none")],
    capture_output=True,
    text=True,
  )
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
    f"python -m jtransfer export: error: {tmp_path / 'none'} holds no results store "
    "(results.sqlite)"
  ]


@pytest.mark.slow  # runs the CLI in a subprocess
def test_list_scores_command(tmp_path):
  proc = subprocess.run(
    [sys.executable, "-m", "jtransfer", "list", "scores"], capture_output=True, text=True
  )
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.splitlines() == cli.list_lines("scores")


def test_report_rerenders_the_same_tables(tmp_path, capsys):
  from analysis_report_test import _synthetic  # noqa: PLC0415  (the report tests' small store)

  from jtransfer import analysis  # noqa: PLC0415

  ck, sc, ft = _synthetic(np.random.default_rng(0))
  with results.Store(tmp_path) as s:
    s.add_rows("checkpoints", ck.to_dict("records"))
    s.add_rows("scores", sc.to_dict("records"))
    s.add_rows("finetune", ft.to_dict("records"))
  direct = analysis.run(analysis.EvaluateConfig(n_boot=0, with_figures=False), tmp_path)
  expected = pd.read_csv(tmp_path / "analysis_correlations.csv")
  (tmp_path / "analysis_correlations.csv").unlink()
  direct.unlink()
  assert cli.main(["report", str(tmp_path), "--n_boot", "0", "--no-figures"]) == 0
  assert capsys.readouterr().out.strip() == str(direct) and direct.exists()
  pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "analysis_correlations.csv"), expected)


def test_help_names_every_command_and_each_command_its_flags(capsys):
  assert cli.main(["--help"]) == 0
  out = capsys.readouterr().out.splitlines()
  listed = [line.split()[0] for line in out[out.index("commands:") + 1 :] if line.startswith("  ")]
  assert listed == ["list", "export", "report", "migrate"]
  expected = {
    "list": ["--[no]verbose"],
    "export": ["--format", "--out", "--[no]verbose"],
    "report": ["--[no]figures", "--n_boot", "--seeds", "--studies", "--[no]verbose"],
    "migrate": ["--[no]verbose"],
  }
  for command, names in expected.items():
    assert cli.main([command, "--help"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"usage: python -m jtransfer {command} ")
    flag_lines = out[out.index("flags:") + 1 :]
    assert [line.split(":")[0].strip() for line in flag_lines if line.startswith("  --")] == names


@pytest.mark.parametrize(
  "argv, message",
  [
    ([], "python -m jtransfer: error: name a command: list, export, report, migrate"),
    (["frobnicate"], "python -m jtransfer: error: unknown command 'frobnicate'; valid: list,"),
    (["list"], "python -m jtransfer list: error: takes KIND, got 0 argument(s) []"),
    (["list", "scores", "x"], "python -m jtransfer list: error: takes KIND, got 2 argument(s)"),
    (["list", "foo"], "python -m jtransfer list: error: unknown kind 'foo'; valid: datasets,"),
    (["export", "w", "--format", "xlsx"], "python -m jtransfer export: error: flag --format=xlsx"),
    (["report", "w", "--n_boot=-1"], "python -m jtransfer report: error: flag --n_boot=-1: -1 is"),
    (["export", "w", "--bogus"], "python -m jtransfer export: error: Unknown command line flag"),
  ],
)
def test_a_bad_command_line_is_one_line_and_status_2(argv, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(argv)
  assert exit_info.value.code == 2
  captured = capsys.readouterr()
  assert captured.out == ""
  assert len(captured.err.splitlines()) == 1 and captured.err.startswith(message)


def test_flags_go_anywhere_and_bools_take_the_absl_and_dashed_negations(tmp_path, capsys):
  ck, _ = _store(tmp_path)
  out = tmp_path / "elsewhere"
  assert cli.main(["--verbose", "export", "--out", str(out), str(tmp_path), "--format=csv"]) == 0
  printed = capsys.readouterr().out.split()
  assert sorted(printed) == sorted(str(out / f"{t}.csv") for t in results.TABLES if t != "done")
  np.testing.assert_allclose(
    pd.read_csv(out / "checkpoints.csv").sort_values(["seed", "step"])["test_acc"],
    ck.sort_values(["seed", "step"])["test_acc"],
  )


NOT_GIVEN = dict(seeds=None, n_boot=None, figures=None, studies=None)  # the recorded ones


@pytest.mark.parametrize(
  "flags_, expected",
  [
    ([], NOT_GIVEN),
    (
      ["--seeds=keep", "--n_boot", "7", "--figures"],
      dict(NOT_GIVEN, seeds="keep", n_boot=7, figures=True),
    ),
    (["--nofigures"], dict(NOT_GIVEN, figures=False)),
    (["--no-figures"], dict(NOT_GIVEN, figures=False)),
    (
      ["--figures=false", "--studies=thesis,gradual"],
      dict(NOT_GIVEN, figures=False, studies=["thesis", "gradual"]),
    ),
    (["--studies="], dict(NOT_GIVEN, studies=[])),
  ],
)
def test_report_flags_reach_the_report(flags_, expected, monkeypatch, capsys):
  calls = []
  monkeypatch.setattr(cli, "report", lambda workdir, **kw: calls.append((workdir, kw)) or ["r.md"])
  assert cli.main(["report", *flags_, "runs/x"]) == 0
  assert calls == [("runs/x", expected)] and capsys.readouterr().out == "r.md\n"
