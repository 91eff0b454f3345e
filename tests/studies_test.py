"""The studies apart from the analysis library: signs from the score registry only, the focus
layer from the model's taps, study parts added to the report only when asked for."""

import ast
import pathlib

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from analysis_conclusions_test import _study
from flax import nnx

from jtransfer import models, studies
from jtransfer.analysis import figures, pipeline, report, signs, taps
from jtransfer.cli import checks as config_checks
from jtransfer.cli import main as cli
from jtransfer.cli import overrides as config_cli
from jtransfer.jobs import sweep
from jtransfer.scores import registry
from jtransfer.store import results
from jtransfer.studies import neural_collapse, thesis

# -- signs ------------------------------------------------------------------------------------


def test_every_sign_is_the_registrys():
  table = signs.sign_table()
  for name, spec in registry.REGISTRY.items():
    assert table[name] is spec.higher_is_better, name
  assert {k: table[k] for k in registry.CHECKPOINT_BASELINES} == dict(registry.CHECKPOINT_BASELINES)
  assert {k: table[k] for k in registry.POOL} == {
    k: p.higher_is_better for k, p in registry.POOL.items()
  }
  assert set(table) == (
    set(registry.REGISTRY) | set(registry.CHECKPOINT_BASELINES) | set(registry.POOL)
  )
  # Every baseline the analysis compares with has a sign there, and the figures' layer-free
  # scores take the checkpoint baselines from the same place.
  assert set(signs.BASELINES) <= set(table)
  assert set(registry.CHECKPOINT_BASELINES) <= figures._CHECKPOINT_SCORES


def test_a_score_without_a_registered_sign_fails_unless_given_one():
  df = pd.DataFrame(dict(score=["mine", "two_nn"], value=[2.0, 3.0]))
  with pytest.raises(ValueError, match="unknown score.*'mine'"):
    signs.orient(df)
  out = signs.orient(df, {"mine": False, "two_nn": True})  # overrides win over the registry
  np.testing.assert_array_equal(out["oriented"], [-2.0, 3.0])


# -- focus layer ------------------------------------------------------------------------------


@pytest.mark.parametrize(
  "arch, shape", [("cnn", (28, 28, 1)), ("vgg_tiny", (32, 32, 3)), ("resnet_tiny", (32, 32, 3))]
)
def test_default_focus_layer_is_what_the_head_reads(arch, shape):
  """Independent check: the activation at that tap, flattened, is exactly the input of the
  head's first layer (its kernel's fan-in), and the tap is not itself a head layer."""
  tap = taps.head_input(arch)
  model = models.get_model(arch, num_classes=3, rngs=nnx.Rngs(0))
  act = model(jnp.zeros((2, *shape)), taps=(tap,))[tap]
  first_head = next(t for t in model.taps if t in model.head)
  assert tap not in model.head
  assert int(np.prod(act.shape[1:])) == model.head[first_head].kernel.shape[0]


# The order the analysis used to hard-code for every tap name of the registered models.
_OLD_ORDER = (
  "input", "stem", *(f"{kind}{i}" for i in range(1, 6) for kind in ("conv", "pool")),
  *(f"block{i}" for i in range(1, 9)), *(f"stage{i}" for i in range(1, 5)), "pool", "gru",
  "embedding", "fc1", "fc6", "fc7", "logits",
)  # fmt: skip


# jtransfer's own architectures (other test files register more while they are collected).
_BUILT_IN = (
  "audio_cnn", "audio_cnn_tiny", "audio_crnn", "audio_crnn_tiny", "cnn", "cnn_tiny", "dcase_cnn",
  "dcase_cnn_tiny", "resnet18", "resnet_tiny", "vgg16", "vgg16_bn", "vgg19", "vgg_tiny",
)  # fmt: skip


def _old_order(layers):
  return [x for x in _OLD_ORDER if x in layers] + [x for x in layers if x not in _OLD_ORDER]


@pytest.mark.parametrize(
  "archs",
  [[a] for a in _BUILT_IN]
  + [["audio_cnn", "audio_crnn", "dcase_cnn"], ["audio_cnn_tiny", "audio_crnn_tiny"]],
)
def test_layer_order_comes_from_the_taps_and_keeps_the_old_order(archs):
  names = sorted({t for a in archs for t in taps.model_taps(a)})
  assert names and set(names) <= set(_OLD_ORDER)
  shuffled = list(np.random.default_rng(0).permutation(names))
  assert taps.layer_order(shuffled, archs) == _old_order(shuffled)
  # A layer no model declares keeps its place of first appearance, after the known ones.
  assert taps.layer_order(["mine", *shuffled[:2]], archs) == [*_old_order(shuffled[:2]), "mine"]
  assert taps.layer_order(["b", "a"], ["not_a_model"]) == ["b", "a"]


def test_default_focus_layer_from_the_store():
  # cnn: its head input even when a deeper tap (fc1, logits) was scored.
  assert taps.default_focus_layer(["cnn"], ["conv1", "pool2", "fc1", "logits"]) == "pool2"
  # An architecture the registry does not know: the second-deepest stored layer.
  assert taps.head_input("not_a_model") is None
  assert taps.default_focus_layer(["-"], ["a", "b", "c"]) == "b"
  assert taps.default_focus_layer(["-"], ["a"]) == "a"
  # The head input was not scored: fall back as well.
  assert taps.default_focus_layer(["cnn"], ["conv1", "fc1", "logits"]) == "fc1"


def test_analyse_takes_the_focus_layer_from_the_models_taps():
  sc, ft = _study()
  # Scores at fc1 and logits too: the second-deepest layer is now fc1, the head input pool2.
  deeper = sc[sc["layer"] == "pool2"]
  sc = pd.concat([sc, deeper.assign(layer="fc1"), deeper.assign(layer="logits")])
  a = pipeline.analyse(sc, ft, n_boot=0)
  assert a.layers[-3:] == ["pool2", "fc1", "logits"] and a.focus_layer == "pool2"
  a = pipeline.analyse(sc.assign(arch="mine"), ft.assign(arch="mine"), n_boot=0)
  assert a.focus_layer == "fc1"


# -- studies in the report --------------------------------------------------------------------


def test_resolve_studies():
  assert studies.resolve(["thesis"]) == (thesis,)
  assert studies.resolve([]) == ()
  with pytest.raises(ValueError, match=r"^unknown studies 'nope'; valid: thesis, neural_coll"):
    studies.resolve(["nope"])
  # Every study named is a module of the package with the one entry point.
  for module in studies.resolve(studies.STUDIES):
    assert callable(module.report), module.__name__


def test_analysis_never_imports_the_studies():
  """The studies build on the analysis library, never the other way (checked on the source)."""
  root = pathlib.Path(pipeline.__file__).parent
  for path in sorted(root.glob("*.py")):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
      else:
        continue
      bad = [n for n in names if n == "jtransfer.studies" or n.startswith("jtransfer.studies.")]
      assert not bad, f"{path.name}:{node.lineno} imports {bad}"


def test_report_shows_a_studys_parts_only_when_asked(tmp_path):
  sc, ft = _study()
  a = pipeline.analyse(sc, ft, n_boot=50)
  plain = report.write(a, tmp_path).read_text()
  assert "## Published numbers" not in plain and "RSA at pool2" not in plain
  part = thesis.report(tmp_path, studies.Tables(store={}, analysis=a))
  with_thesis = report.write(a, tmp_path, parts=[part]).read_text()
  assert "## Published numbers (thesis, CNN study)" in with_thesis
  # The study's findings lead the power section's list, before the generic ones.
  lines = [x[2:] for x in with_thesis.split("\n") if x.startswith("- ")]
  first = next(i for i, x in enumerate(lines) if x.startswith("noise sources transfer worst"))
  generic = next(i for i, x in enumerate(lines) if x.startswith("scores vs checkpoint_index"))
  assert first < generic
  # The answer section lists them too, under the study's name, and the contents name its section.
  answer = with_thesis.split("\n## ", 2)[1]
  assert "Findings (thesis):" in answer and "- noise sources transfer worst" in answer
  # Everything else is the same page.
  drop = {
    "## Published numbers (thesis, CNN study)",
    "Findings (thesis):",
    "[Published numbers (thesis, CNN study)](#published-numbers-thesis-cnn-study)",
    *thesis.findings(a),
  }
  kept = [x for x in with_thesis.split("\n") if x.removeprefix("- ") not in drop and x.strip()]
  start = [x for x in plain.split("## Power")[0].split("\n") if x.strip()]
  assert kept[: len(start)] == start


# -- one way to make the report ---------------------------------------------------------------

_REPO = pathlib.Path(__file__).resolve().parents[1]
_NC_LAYERS = {"audio_cnn": ("block3", "fc1"), "audio_crnn": ("block3", "fc1"),
              "dcase_cnn": ("block3", "pool")}  # fmt: skip


def _nc_like_store(workdir, config, rng) -> None:
  """A store shaped like a finished configs/audio_nc.py run: its sources, targets, scores and
  modes, 2 seeds of each model's last checkpoint, 4-point fine-tune curves with validation
  metrics and (binary target) AUROC; values drawn so that better models fine-tune better."""
  c = config.to_dict()
  step = c["finetune"]["steps"][0]
  binary = set(neural_collapse.AUROC_TARGETS)
  ck, sc, ft = [], [], []
  for src in c["sources"]:
    quality = rng.uniform()
    for seed in range(c["pretrain"]["num_seeds"]):
      key = dict(source=src["name"], arch=src["arch"], seed=seed, step=step)
      ck.append(dict(key, epoch=1.0, path=f"zoo/{src['name']}/{seed}/{step}", train_acc=0.9,
                     test_acc=0.9, train_loss=0.3, test_loss=0.3))  # fmt: skip
      for target in c["score"]["targets"]:
        base = dict(key, target=target, probe="train")
        for layer in _NC_LAYERS[src["arch"]]:
          for name in ("nc_score", "leep", "logme"):
            sign = -1.0 if name == "nc_score" else 1.0
            sc.append(dict(base, layer=layer, score=name, value=sign * quality + rng.normal()))
        sc.append(dict(base, layer="-", score="param_count", value=1e5 * (1 + seed)))
        for mode in c["finetune"]["modes"]:
          for k, ft_step in enumerate((0, 5, 20, 60)):
            acc = 0.1 + 0.8 * quality * (k + 1) / 4 + 0.05 * rng.normal()
            auroc = 0.5 + 0.4 * quality + 0.02 * rng.normal() if target in binary else None
            ft.append(dict(key, target=target, mode=mode, frozen_layers=0, ft_seed=0,
                           ft_step=ft_step, ft_epoch=k, test_acc=acc, test_loss=1.0,
                           val_acc=acc + 0.05 * rng.normal(), val_loss=1.0, test_auroc=auroc,
                           val_auroc=auroc))  # fmt: skip
  with results.Store(workdir) as store:
    store.add_rows("checkpoints", ck)
    store.add_scores(sc)
    store.add_finetune(ft)


def test_the_evaluate_stage_and_the_report_command_write_the_same_files(tmp_path, capsys):
  config = config_cli.load(f"{_REPO / 'configs' / 'audio_nc.py'}:quick")
  assert tuple(config.studies) == ("neural_collapse",)
  config.evaluate.n_boot = 20  # the config's other settings as they are, less the figures
  config.evaluate.with_figures = False
  _nc_like_store(tmp_path, config, np.random.default_rng(0))
  report_md = sweep.run_study(config, workdir=tmp_path, stages=("evaluate",))
  files = ["report.md", "report.html", "nc_comparison.md", "nc_comparison.csv",
           "analysis_correlations.csv", "analysis_ground_truth.csv"]  # fmt: skip
  assert report_md == tmp_path / "report.md"
  stage = {name: (tmp_path / name).read_bytes() for name in files}
  # The study's file holds the comparison of the config's binary target.
  table = pd.read_csv(tmp_path / "nc_comparison.csv")
  assert set(table.loc[table["metric"] == "test_auroc", "target"]) == {"fsdd_zero_vs_rest_spk45"}
  assert "block3" in set(table["layer"])
  for name in files:
    (tmp_path / name).unlink()
  capsys.readouterr()
  assert cli.main(["report", str(tmp_path)]) == 0
  printed = capsys.readouterr().out.split()
  assert printed[:2] == [str(tmp_path / "report.md"), str(tmp_path / "nc_comparison.md")]
  for name in files:
    assert (tmp_path / name).read_bytes() == stage[name], name
  # The recorded settings are the base the flags change: another n_boot is another report.
  assert cli.main(["report", str(tmp_path), "--n_boot", "0", "--studies", ""]) == 0
  assert (tmp_path / "report.md").read_bytes() != stage["report.md"]


def test_an_unknown_study_is_one_line_naming_the_valid_ones(tmp_path, capsys):
  valid = "valid: thesis, neural_collapse, audio_scale, gradual"
  with pytest.raises(ValueError, match=f"^studies: unknown studies 'nope'; {valid}$"):
    sweep.plan(workdir=tmp_path, sources=[], pretrain={}, score={}, finetune={}, evaluate={},
               stages=("evaluate",), studies=("thesis", "nope"))  # fmt: skip
  c = config_cli.load(f"{_REPO / 'configs' / 'thesis_cnn.py'}:tiny")
  c.studies = ("thesis_cnn",)
  with pytest.raises(ValueError, match="^studies: unknown studies 'thesis_cnn'"):
    config_checks.check_study(c, stages=("evaluate",))
  _nc_like_store(tmp_path, config_cli.load(f"{_REPO / 'configs' / 'audio_nc.py'}:quick"),
                 np.random.default_rng(1))  # fmt: skip
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["report", str(tmp_path), "--studies", "nope", "--n_boot", "0"])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err.strip()
  assert err == f"python -m jtransfer report: error: unknown studies 'nope'; {valid}"
