"""The launchers' shared pieces: the multi-process flags (one definition), the CPU-device helper,
and the single-stage launchers running one stage of a study config (`jtransfer.cli.launcher`)."""

import os
import pathlib
import subprocess
import sys

import jax
import pytest
from absl import flags

from jtransfer.runtime import devices, distributed

REPO = pathlib.Path(__file__).resolve().parents[1]


# -- distributed flags --------------------------------------------------------------------------


@pytest.fixture
def calls(monkeypatch):
  """Records jax.distributed.initialize's arguments instead of starting a cluster."""
  seen = []
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
  monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **kw: seen.append((a, kw)))
  return seen


def _parsed(*argv):
  fv = flags.FlagValues()
  distributed.define_flags(fv)
  fv(["prog", *argv])
  return fv


def test_flags_give_initialize_the_coordinator_and_the_process(calls):
  fv = _parsed("--coordinator=10.0.0.1:1234", "--num_processes=4", "--process_id=3")
  assert distributed.initialize_from_flags(fv) is True
  assert calls == [
    ((), {"coordinator_address": "10.0.0.1:1234", "num_processes": 4, "process_id": 3})
  ]


def test_auto_lets_jax_detect_the_cluster(calls):
  assert distributed.initialize_from_flags(_parsed("--distributed_auto")) is True
  assert calls == [((), {})]


def test_no_flags_is_one_process_and_no_call(calls):
  fv = _parsed()
  assert (fv.coordinator, fv.num_processes, fv.process_id, fv.distributed_auto) == (
    None, None, None, False,
  )  # fmt: skip
  assert distributed.initialize_from_flags(fv) is False and calls == []


@pytest.mark.parametrize(
  "argv, message",
  [
    (["--coordinator=h:1"], "give all of coordinator, num_processes and process_id"),
    (["--num_processes=2", "--process_id=0"], "give all of coordinator"),
    (["--coordinator=h:1", "--num_processes=2", "--process_id=2"],
     "--process_id=2 must be below --num_processes=2"),
    (["--distributed_auto", "--coordinator=h:1"], "--distributed_auto detects the cluster"),
  ],
)  # fmt: skip
def test_bad_flag_sets_fail_in_one_line_without_a_call(calls, argv, message):
  with pytest.raises(ValueError) as e:
    distributed.initialize_from_flags(_parsed(*argv))
  assert str(e.value).startswith(message) and "\n" not in str(e.value)
  assert calls == []


def test_flags_reject_impossible_numbers():
  for bad in ("--num_processes=0", "--process_id=-1", "--num_processes=two"):
    with pytest.raises(flags.IllegalFlagValueError):
      _parsed(bad)


# -- CPU devices ------------------------------------------------------------------------------


def test_request_cpu_devices_rejects_bad_counts():
  for bad in (-1, 2.0, True, "4"):
    with pytest.raises(ValueError, match="cpu_devices must be a non-negative int"):
      devices.request_cpu_devices(bad)
  assert devices.request_cpu_devices(0) is False and devices.request_cpu_devices(None) is False


def test_request_cpu_devices_leaves_an_explicit_xla_flag_alone():
  # conftest set --xla_force_host_platform_device_count=8: the explicit choice wins.
  assert "xla_force_host_platform_device_count=8" in os.environ["XLA_FLAGS"]
  assert devices.request_cpu_devices(3) is False
  assert jax.device_count() == 8


def test_request_cpu_devices_after_start_up_is_an_error(monkeypatch):
  jax.devices()  # the backend has started with 8 devices
  monkeypatch.setenv("XLA_FLAGS", "")
  with pytest.raises(RuntimeError, match="before backends are initialized"):
    devices.request_cpu_devices(3)
  assert jax.device_count() == 8


def _device_count(n, xla_flags):
  code = (
    "import sys; from jtransfer.runtime import devices; import jax\n"
    f"set_ = devices.request_cpu_devices({n})\n"
    "print(set_, jax.device_count(), jax.devices()[0].platform)"
  )
  env = {**os.environ, "XLA_FLAGS": xla_flags, "JAX_PLATFORMS": "cpu"}
  out = subprocess.run(
    [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True
  )
  return out.stdout.split()


@pytest.mark.slow  # fresh interpreters: the device count is fixed when JAX starts
def test_request_cpu_devices_in_a_fresh_process():
  assert _device_count(3, "") == ["True", "3", "cpu"]
  assert _device_count(0, "") == ["False", "1", "cpu"]
  assert _device_count(3, "--xla_force_host_platform_device_count=2") == ["False", "2", "cpu"]


# -- the single-stage launchers ---------------------------------------------------------------


def test_run_study_runs_the_plan_of_the_config_sections_and_the_stages(monkeypatch, tmp_path):
  from jtransfer.cli import overrides as config_cli  # noqa: PLC0415
  from jtransfer.jobs import context as job  # noqa: PLC0415
  from jtransfer.jobs import sweep

  seen, built = [], []
  monkeypatch.setattr(sweep, "run", seen.append)
  build = job.build
  monkeypatch.setattr(job, "build", lambda *a, **k: built.append(a[0]) or build(*a, **k))
  thesis = config_cli.load(f"{REPO / 'configs' / 'thesis_cnn.py'}:tiny")
  sweep.run_study(thesis, workdir=tmp_path, stages=("score",), data_dir="d")
  d = thesis.to_dict()
  # Every stage config is built once, into the plan `run` is given.
  assert len(built) == len(d["score"]["targets"]) == len(seen[-1].of("score"))
  assert seen[-1] == sweep.plan(
    workdir=tmp_path, sources=d["sources"], pretrain=d["pretrain"], score=d["score"],
    finetune=d["finetune"], evaluate=d["evaluate"], stages=("score",), data_dir="d",
    studies=("thesis",),
  )  # fmt: skip
  assert seen[-1].calls[0].runtime.data_dir == "d" and seen[-1].workdir == tmp_path
  sweep.run_study(thesis, workdir=tmp_path)  # no stages: all of them
  assert seen[-1].stages == sweep.STAGES
  gradual = config_cli.load(f"{REPO / 'configs' / 'gradual_transfer.py'}:quick")
  sweep.run_study(gradual, workdir=tmp_path)  # the config's own stages and studies
  assert seen[-1].stages == tuple(gradual.stages) != sweep.STAGES
  (evaluate,) = seen[-1].of("evaluate")
  assert evaluate.config.studies == ("gradual",) and evaluate.config.evaluate is None


def test_the_start_up_check_returns_the_plan_the_launcher_runs(tmp_path):
  """The launcher runs the plan its start-up check built (each stage config built once): the
  plan of the stages to run, in the workdir and data dir of the flags."""
  from jtransfer.cli import checks as config_checks  # noqa: PLC0415
  from jtransfer.cli import overrides as config_cli
  from jtransfer.jobs import sweep  # noqa: PLC0415

  thesis = config_cli.load(f"{REPO / 'configs' / 'thesis_cnn.py'}:tiny")
  checked = config_checks.check_study(thesis, stages=("score",), workdir=tmp_path, data_dir="d")
  assert checked == sweep.plan_study(thesis, workdir=tmp_path, stages=("score",), data_dir="d")
  assert checked.stages == ("score",) and {c.stage for c in checked.calls} == {"score"}
  everything = config_checks.check_study(thesis, workdir=tmp_path)
  assert everything == sweep.plan_study(thesis, workdir=tmp_path)
  assert everything.stages == sweep.STAGES


@pytest.mark.slow  # four launcher processes: the tiny study, one stage each
def test_single_stage_launchers_run_one_stage_each_and_match_the_sweep(tmp_path, data_dir):
  """pretrain.py, score.py, finetune.py, evaluate.py on one workdir: each runs only its stage of
  the study config, and together they write the tables the tiny sweep wrote before issue 12."""
  import sweep_test  # noqa: PLC0415  (the stored tables and their comparison)

  from jtransfer.store import results  # noqa: PLC0415

  wd = tmp_path / "run"

  def launch(name, *extra):
    out = subprocess.run(
      [sys.executable, str(REPO / "launch" / f"{name}.py"),
       f"--config={REPO / 'configs' / 'thesis_cnn.py'}:tiny", f"--workdir={wd}",
       f"--data_dir={data_dir}", *extra],
      capture_output=True, text=True, timeout=1800, cwd=tmp_path,
      env={**os.environ, "JTRANSFER_QUIET": "1"},
    )  # fmt: skip
    assert out.returncode == 0, f"{name}:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    return out.stdout

  def rows():
    return {t: len(results.load(wd, t)) for t in sweep_test._TABLES}

  out = launch("pretrain", "--config.pretrain.show_progress=false")
  assert "[sweep] pretrain mnist_noise done" in out and "[sweep] score" not in out
  assert rows()["checkpoints"] > 0 and rows()["scores"] == rows()["finetune"] == 0
  out = launch("score")
  assert "[sweep] score on mnist done" in out and "[sweep] pretrain" not in out
  assert rows()["scores"] > 0 and rows()["finetune"] == 0
  out = launch("finetune")
  assert "[sweep] finetune on mnist done" in out and "[sweep] score" not in out
  for table in sweep_test._TABLES:
    before = sweep_test.pd.read_csv(sweep_test._BEFORE / f"{table}.csv")
    sweep_test._compare(table, before, results.load(wd, table))
  out = launch("evaluate", "--config.evaluate.with_figures=false")
  assert f"report: {wd / 'report.md'}" in out and "[sweep] finetune" not in out
  assert (wd / "report.md").is_file() and not list(wd.glob("figures/*.png"))
