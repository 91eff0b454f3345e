"""Config overrides from the command line and the start-up checks of a study config."""

import pathlib
import subprocess
import sys

import pytest

from jtransfer import analysis
from jtransfer.cli import checks as config_checks
from jtransfer.cli import overrides as config_cli
from jtransfer.jobs import pretrain, sweep
from jtransfer.jobs import score as score_job
from jtransfer.train import finetune_plan

REPO = pathlib.Path(__file__).resolve().parents[1]
THESIS = str(REPO / "configs" / "thesis_cnn.py")


def _thesis(variant="tiny", *overrides):
  c = config_cli.load(f"{THESIS}:{variant}")
  pairs = [o.split("=", 1) for o in overrides]
  return config_cli.apply_overrides(c, pairs, schema=config_checks.study_schema())


def test_split_argv_takes_only_the_overrides():
  rest, overrides = config_cli.split_argv(
    ["prog", "--config", "x.py:quick", "--config.a.b=1", "--workdir=w", "--config.c", "2,3"]
  )
  assert rest == ["prog", "--config", "x.py:quick", "--workdir=w"]
  assert overrides == [("a.b", "1"), ("c", "2,3")]


def test_list_fields_take_comma_lists_and_literals():
  c = _thesis("full", "score.targets=mnist", "finetune.modes=full,head,frozen=2")
  assert list(c.score.targets) == ["mnist"]
  assert list(c.finetune.modes) == ["full", "head", "frozen=2"]
  c = _thesis("full", "finetune.ft_seeds=1,2", "score.targets=('fashion_mnist',)")
  assert list(c.finetune.ft_seeds) == [1, 2] and all(type(s) is int for s in c.finetune.ft_seeds)
  assert list(c.score.targets) == ["fashion_mnist"]
  assert list(_thesis("full", "finetune.ft_seeds=").finetune.ft_seeds) == []


def test_sources_by_name_keep_their_settings():
  c = _thesis("full", "sources=mnist_split_0_4,kmnist")
  expected = [{"name": "mnist_split_0_4", "batch_size": 32}, {"name": "kmnist"}]
  assert c.to_dict()["sources"] == expected


def test_duration_unit_switches_and_numbers_parse():
  c = _thesis("full", "pretrain.duration=steps:400", "finetune.duration={'examples': 5000}")
  assert c.to_dict()["pretrain"]["duration"] == {"steps": 400}
  assert c.to_dict()["finetune"]["duration"] == {"examples": 5000}
  c = _thesis("full", "pretrain.optimizer_kwargs.learning_rate=3e-4", "evaluate.keep_seeds=true")
  assert c.pretrain.optimizer_kwargs.learning_rate == pytest.approx(3e-4)
  assert c.evaluate.keep_seeds is True


def test_none_fields_take_their_declared_type():
  c = _thesis("full", "score.layers=pool2,fc1", "pretrain.eval_test_examples=500")
  assert tuple(c.score.layers) == ("pool2", "fc1")
  assert c.pretrain.eval_test_examples == 500  # absent from the config: typed by pretrain.run
  with pytest.raises(config_cli.ConfigError, match=r"eval_test_examples=5x: expected an int"):
    _thesis("full", "pretrain.eval_test_examples=5x")
  c = _thesis("quick", "pretrain.train_examples=512", "pretrain.num_devices=none")
  assert c.pretrain.train_examples == 512 and c.pretrain.num_devices is None


def test_unknown_keys_name_the_valid_ones():
  with pytest.raises(config_cli.ConfigError) as e:
    _thesis("tiny", "foo=1")
  assert str(e.value) == (
    "--config.foo: unknown key 'foo'; valid top-level keys: "
    "cpu_devices, evaluate, finetune, pretrain, score, sources, studies"
  )
  with pytest.raises(config_cli.ConfigError, match=r"unknown key 'workdir'; valid keys of 'score'"):
    _thesis("tiny", "score.workdir=x")  # set by the sweep, not by the config
  with pytest.raises(config_cli.ConfigError, match=r"--config.pretrain.num_seeds=two: expected"):
    _thesis("tiny", "pretrain.num_seeds=two")


def test_override_schema_is_the_fields_of_the_stage_dataclasses():
  schema = config_checks.study_schema()
  runtime = {"store_shard", "num_devices", "show_progress"}  # what a section may set of `Runtime`
  by_sweep = {"pretrain": {"source"}, "score": {"target"}, "finetune": {"target"}}
  for stage, config_type in [
    ("pretrain", pretrain.PretrainConfig),
    ("score", score_job.ScoreConfig),
    ("finetune", finetune_plan.FinetuneConfig),
    ("evaluate", analysis.EvaluateConfig),
  ]:
    fields = set(config_type.__dataclass_fields__) - by_sweep.get(stage, set())
    extra = {"targets"} if stage in ("score", "finetune") else set()
    assert set(schema[stage]) == fields | extra | (runtime if stage != "evaluate" else set())
  assert schema["pretrain"]["num_seeds"] is int
  assert schema["finetune"]["modes"] == tuple[str, ...]
  assert schema["pretrain"]["eval_test_examples"] == int | None
  assert not any("workdir" in keys or "data_dir" in keys for keys in schema.values())
  # A section that leaves a field out gets the dataclass's default, and nothing else does.
  (call,) = sweep.plan(
    workdir="w", sources=[{"name": "mnist"}], pretrain={}, score={}, finetune={}, evaluate=None,
    stages=("pretrain",),
  ).calls  # fmt: skip
  assert call.config == pretrain.PretrainConfig(source="mnist")
  assert call.config.arch == "cnn" and call.config.duration == {"epochs": 100}
  assert not hasattr(config_checks, "DEFAULT_ARCH")


def test_layout_names_are_one_vocabulary_in_every_job():
  # The old extraction name "map" means "loop" wherever a layout is asked for.
  assert pretrain.PretrainConfig(source="mnist", seed_parallel="map").seed_parallel == "loop"
  assert finetune_plan.FinetuneConfig(target="mnist", seed_parallel="map").seed_parallel == "loop"
  for make in (
    lambda: pretrain.PretrainConfig(source="mnist", seed_parallel="pmap"),
    lambda: finetune_plan.FinetuneConfig(target="mnist", seed_parallel="pmap"),
  ):
    with pytest.raises(ValueError, match="^unknown seed_parallel 'pmap'; valid: auto, vmap"):
      make()


def test_sequential_layout_is_selectable_per_stage():
  c = _thesis("quick", "pretrain.seed_parallel=sequential", "finetune.seed_parallel=sequential")
  config_checks.check_study(c)
  assert (c.pretrain.seed_parallel, c.finetune.seed_parallel) == ("sequential", "sequential")


@pytest.mark.parametrize(
  "override, message",
  [
    ("evaluate.focus_layer=pool9", "evaluate.focus_layer: 'pool9' is not a tap of cnn; valid: "
     "conv1, pool1, conv2, pool2, fc1, logits"),
    ("score.layers=pool2,fc9", "score.layers (cnn taps): unknown 'fc9'"),
    ("finetune.targets=mnist,fashon", "finetune.targets: unknown 'fashon'; valid: "),
    ("sources=mnist,mnst", "sources: unknown 'mnst'"),
    ("pretrain.arch=cnn9", "pretrain.arch: unknown 'cnn9'; valid: audio_cnn"),
    ("score.scores=logme,lgme", "score.scores: unknown 'lgme'"),
    ("pretrain.duration=step:3", "pretrain (mnist): duration must be one of steps, epochs, "
     "examples"),
    ("finetune.duration=epochs:0", "finetune (mnist): duration.epochs must be a positive "
     "number, got 0"),
    ("finetune.modes=full,frozen=9", "finetune.modes (cnn): frozen_layers must be in [0, 3]"),
    ("pretrain.seed_parallel=seqential", "pretrain (mnist): unknown seed_parallel 'seqential'; "
     "valid: "
     "auto, vmap, loop, devices, sequential"),
  ],
)  # fmt: skip
def test_cross_field_checks(override, message):
  config_checks.check_study(_thesis("tiny"))  # the config itself passes
  with pytest.raises(ValueError) as e:
    config_checks.check_study(_thesis("tiny", override))
  assert str(e.value).startswith(message) and "\n" not in str(e.value)


def _sweep(tmp_path, *args):
  return subprocess.run(
    [sys.executable, str(REPO / "launch" / "sweep.py"), f"--config={THESIS}:tiny",
     f"--workdir={tmp_path / 'run'}", *args],
    capture_output=True, text=True, cwd=tmp_path, timeout=300,
  )  # fmt: skip


@pytest.mark.slow
def test_launcher_rejects_before_any_work(tmp_path):
  proc = _sweep(tmp_path, "--config.foo=1")
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
    "error: --config.foo: unknown key 'foo'; valid top-level keys: "
    "cpu_devices, evaluate, finetune, pretrain, score, sources, studies"
  ]
  proc = _sweep(tmp_path, "--config.evaluate.focus_layer=pool9")
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert (
    proc.stderr.strip()
    .splitlines()[-1]
    .startswith("error: evaluate.focus_layer: 'pool9' is not a tap of cnn")
  )
  assert not (tmp_path / "run").exists()  # nothing trained, nothing written
