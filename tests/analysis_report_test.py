"""The report, CSV tables and every figure render from a tiny synthetic results store."""

import pathlib
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

import jtransfer.analysis as analysis
from jtransfer import studies

SOURCES = ("mnist", "mnist_split_0_4", "mnist_noise")
STEPS = (0, 3, 10)
SEEDS = (0, 1)
FT_STEPS = (0, 1, 3, 10)
LAYERS = ("conv1", "pool2")


def _synthetic(rng):
  ck, sc, ft = [], [], []
  quality = {"mnist": 1.0, "mnist_split_0_4": 0.8, "mnist_noise": 0.05}
  for src in SOURCES:
    for seed in SEEDS:
      for k, step in enumerate(STEPS):
        key = dict(source=src, arch="cnn", seed=seed, step=step)
        ck.append(dict(key, epoch=step / 100, path=f"zoo/{src}/{seed}/{step}", train_acc=0.9,
                       test_acc=0.9, train_loss=0.3, test_loss=0.3))  # fmt: skip
        q = quality[src] * (k + 1) / len(STEPS) + 0.01 * rng.normal()
        for probe in ("train", "heldout"):
          base = dict(key, target="mnist", probe=probe)
          for layer in LAYERS:
            sc.append(dict(base, layer=layer, score="rsa", value=q + 0.05 * rng.normal()))
            sc.append(dict(base, layer=layer, score="two_nn", value=16 - 5 * q + rng.normal()))
            sc.append(dict(base, layer=layer, score="knn_accuracy", value=0.5 + 0.4 * q))
          sc.append(dict(base, layer="-", score="param_count", value=1.2e6))
        for frozen in (0, 1):
          for ft_step in FT_STEPS:
            acc = 0.1 + 0.85 * (1 - np.exp(-(ft_step + 1) * (0.05 + 0.3 * q) / (1 + frozen)))
            ft.append(dict(key, target="mnist", mode="full" if frozen == 0 else "frozen",
                           frozen_layers=frozen, ft_seed=0, ft_step=ft_step,
                           test_acc=acc + 0.005 * rng.normal(), test_loss=1.0))  # fmt: skip
  for seed in SEEDS:
    for ft_step in FT_STEPS:
      acc = 0.1 + 0.85 * (1 - np.exp(-(ft_step + 1) * 0.05)) + 0.005 * rng.normal()
      key = dict(source="scratch", arch="cnn", seed=seed, step=0, target="mnist", mode="full")
      ft.append(dict(key, frozen_layers=0, ft_seed=0, ft_step=ft_step, test_acc=acc, test_loss=1.0))
  return pd.DataFrame(ck), pd.DataFrame(sc), pd.DataFrame(ft)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
  results = pytest.importorskip("jtransfer.store.results")
  workdir = tmp_path_factory.mktemp("eval")
  ck, sc, ft = _synthetic(np.random.default_rng(0))
  with results.Store(workdir) as s:
    s.add_rows("checkpoints", ck.to_dict("records"))
    s.add_rows("scores", sc.to_dict("records"))
    s.add_rows("finetune", ft.to_dict("records"))
  return workdir, sc, ft


def _expected_rsa_rho(sc, ft, layer="pool2"):
  """Spearman of seed-averaged RSA vs seed-averaged log-AUC, computed here independently."""
  f = ft[(ft["source"] != "scratch") & (ft["mode"] == "full")].sort_values("ft_step")
  auc = f.groupby(["source", "seed", "step"])["test_acc"].apply(
    lambda a: np.trapezoid(a.to_numpy()) / (len(a) - 1)
  )
  auc = auc.groupby(["source", "step"]).mean()
  s = sc[(sc["score"] == "rsa") & (sc["layer"] == layer) & (sc["probe"] == "train")]
  s = s.groupby(["source", "step"])["value"].mean()
  both = pd.concat([s, auc], axis=1, join="inner")
  return sps.spearmanr(both.iloc[:, 0], both.iloc[:, 1]).statistic, len(both)


def test_report_tables_and_figures_render(store):
  workdir, sc, ft = store
  config = studies.ReportConfig(analysis.EvaluateConfig(n_boot=50), studies=("thesis",))
  path = studies.write_report(workdir, config)[0]  # the standard report, with the thesis' part
  assert path == workdir / "report.md"
  md = path.read_text()
  html = (workdir / "report.html").read_text()
  for section in ("## Setup", "## Correlation of scores with log-AUC", "## Breakdowns",
                  "## Baselines", "## Model selection", "## Training probe vs held-out probe",
                  "## Stability across setups", "## Layer-wise transfer matrix",
                  "## Published numbers"):  # fmt: skip
    assert section in md, section
  for words in ("null band", "Bonett–Wright", "bootstrap"):
    assert words in md
  # Answer first: the first section says which scores predict transfer, then the contents.
  h2 = re.findall(r"^## (.+)$", md, flags=re.M)
  assert h2[0] == "The answer" and h2[1] == "Setup"
  answer = md.split("## Setup")[0]
  # One source per cluster here: too few clusters for a cluster interval, so no interval, no star.
  assert re.search(r"\| mnist \| rsa \| 9 \| [0-9.]+ \(no interval: [0-9] clusters\) \|", answer)
  assert "best baseline" in answer and "*" not in answer.split("| mnist | rsa |")[1].split("\n")[0]
  links = re.findall(r"^- \[(.+)\]\(#([a-z0-9_-]+)\)$", answer, flags=re.M)
  assert [t for t, _ in links] == h2[1:]
  for _, anchor in links:  # every link has its heading's id in the HTML
    assert f"id='{anchor}'" in html and f"href='#{anchor}'" in html

  # The stored numbers are the independent computation's.
  rho, n = _expected_rsa_rho(sc, ft)
  corr = pd.read_csv(workdir / "analysis_correlations.csv")
  row = corr[(corr["breakdown"] == "all") & (corr["score"] == "rsa") & (corr["layer"] == "pool2")
             & (corr["setting"] == "full") & (corr["probe"] == "train")].iloc[0]  # fmt: skip
  assert row["spearman"] == pytest.approx(rho) and row["n"] == n == 9
  assert f"| {rho:.2f}" in md or f"{rho:.2f}*" in md
  assert "RSA at pool2" in md and "(n = 9)" in md
  # two_nn is lower-is-better: shown with ↓ and its ρ is that of the negated score.
  assert re.search(r"\| two_nn \| ↓ \| 9 \|", md)

  for name in ("ground_truth", "correlations", "baselines", "selection", "stability_models",
               "stability_rho", "stability_winner", "transfer_matrix"):  # fmt: skip
    assert not pd.read_csv(workdir / f"analysis_{name}.csv").empty, name
  breakdowns = set(corr["breakdown"])
  assert breakdowns == {"all", "per_source", "per_checkpoint", "per_ft_step"}

  figs = workdir / "figures"
  for prefix in ("score_vs_layer", "finetune_curves", "delta_to_scratch", "rho_per_layer",
                 "scatter", "transfer_matrix"):  # fmt: skip
    pngs = sorted(figs.glob(f"{prefix}*.png"))
    assert pngs, prefix
    for png in pngs:
      assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
      assert png.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
  linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
  assert len(linked) == len(list(figs.glob("*.png")))
  for rel in linked:
    assert (workdir / rel).exists() and f"src='{rel}'" in html


@pytest.mark.slow  # runs the evaluate CLI in a subprocess
def test_evaluate_entry_point(store, tmp_path):
  workdir, _, _ = store
  out = subprocess.run(
    [sys.executable, "launch/evaluate.py", f"--workdir={workdir}", "--config.evaluate.n_boot=0",
     "--config.evaluate.with_figures=false", "--config.evaluate.keep_seeds=true"],
    capture_output=True, text=True, check=True, cwd=pathlib.Path(__file__).parents[1],
  )  # fmt: skip
  assert f"report: {workdir / 'report.md'}" in out.stdout
  assert "kept as separate models" in (workdir / "report.md").read_text()


def test_empty_store_fails_clearly(tmp_path):
  with pytest.raises((ValueError, FileNotFoundError), match="results store|scores table"):
    analysis.run(None, tmp_path)


def test_the_evaluate_settings_have_their_defaults_in_one_place(store):
  """`EvaluateConfig` owns every setting's default: `analyse` takes its fields without copies,
  and the override schema of the `evaluate` section is the dataclass's fields."""
  import dataclasses  # noqa: PLC0415
  import inspect  # noqa: PLC0415

  from jtransfer.cli import checks as config_checks  # noqa: PLC0415

  fields = {f.name for f in dataclasses.fields(analysis.EvaluateConfig)}
  assert not fields & set(inspect.signature(analysis.analyse).parameters)
  assert set(config_checks.study_schema()["evaluate"]) == fields
  _, sc, ft = store
  a = analysis.analyse(sc, ft, n_boot=20)
  b = analysis.analyse_tables({"scores": sc, "finetune": ft}, analysis.EvaluateConfig(n_boot=20))
  pd.testing.assert_frame_equal(a.correlations, b.correlations)
  assert (a.keep_seeds, a.param_penalty, a.focus_layer) == (False, 0.0, b.focus_layer)
  with pytest.raises(TypeError, match="unexpected keyword argument 'n_boots'"):
    analysis.analyse(sc, ft, n_boots=20)
