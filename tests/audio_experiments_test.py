"""End to end: the `tiny` variant of configs/audio_scale.py (the zoo settings of
configs/audio_fsdd.py on two rungs of the scale ladders) through `sweep.run` on real FSDD audio.

Pre-train (3 sources x 2 seeds x 4 steps) -> score (every tap) -> fine-tune (3 steps, scratch
and random-init baselines) -> evaluate (report, then the config's scale plot). Then a binary
target through the score and fine-tune jobs, and the NC paper's comparison with AUROC. Minutes
on a shared 2-core CPU, hence slow.
"""

import math
import pathlib

import jax
import numpy as np
import pandas as pd
import pytest
from references import pairwise_auroc
from stage_calls import run_job

from jtransfer import metrics, studies
from jtransfer.cli import overrides as config_cli
from jtransfer.jobs import score as score_job
from jtransfer.jobs import sweep
from jtransfer.models import functional
from jtransfer.store import checkpointing, results
from jtransfer.studies import audio_scale as scale_study
from jtransfer.studies import neural_collapse

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
audio_fsdd = config_cli.load_module(CONFIGS / "audio_fsdd.py")
audio_scale = config_cli.load_module(CONFIGS / "audio_scale.py")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_dir):
  workdir = tmp_path_factory.mktemp("audio_scale_tiny")
  config = audio_scale.get_config("tiny")
  report = sweep.run_study(config, workdir=workdir, data_dir=str(data_dir))
  c = config.to_dict()
  tables = {t: results.load(workdir, t) for t in ("checkpoints", "scores", "finetune")}
  return workdir, c, report, tables


def _expected_steps(c):
  # 4 steps, far below one epoch: the log-spaced batches 0, 1, 3 and the final step 4.
  assert c["pretrain"]["duration"] == {"steps": 4}
  return [0, 1, 3, 4]


def test_checkpoints_table(tiny_run):
  workdir, c, _, tables = tiny_run
  ck = tables["checkpoints"]
  sources = [s["name"] for s in c["sources"]]
  want = {
    (src, seed, step)
    for src in sources
    for seed in range(c["pretrain"]["num_seeds"])
    for step in _expected_steps(c)
  }
  assert set(zip(ck["source"], ck["seed"], ck["step"], strict=True)) == want
  assert len(ck) == len(want)
  assert set(ck["arch"]) == {"audio_cnn_tiny"}
  # Test accuracy is a count of correct clips out of eval_test_examples (32).
  n = c["pretrain"]["eval_test_examples"]
  np.testing.assert_allclose(ck["test_acc"] * n, np.round(ck["test_acc"] * n), atol=1e-4)
  for path in ck["path"]:
    assert checkpointing.exists(workdir / path)


def test_scores_every_tap_of_every_checkpoint(tiny_run):
  workdir, c, _, tables = tiny_run
  sc, ck = tables["scores"], tables["checkpoints"]
  graphdef, params, rest = functional.init("audio_cnn_tiny", num_classes=5, seed=0)
  taps = tuple(functional.merge(graphdef, params, rest).taps)
  assert taps == ("block1", "block2", "block3", "pool", "fc1", "logits")
  feature = {"nc_score", "logme", "rsa", "knn_accuracy"}
  for key, g in sc.groupby(["source", "seed", "step"]):
    assert set(g["target"]) == {"fsdd_digit_spk45"}, key
    for name in feature:
      assert set(g.loc[g["score"] == name, "layer"]) == set(taps), (key, name)
    assert set(g.loc[g["score"] == "leep", "layer"]) == {"-"}, key
  assert len(sc.groupby(["source", "seed", "step"])) == len(ck)
  # Baselines against independent values: position in the schedule, parameters on disk.
  steps = _expected_steps(c)
  idx = sc[sc["score"] == "checkpoint_index"]
  np.testing.assert_array_equal(idx["value"], [steps.index(s) for s in idx["step"]])
  pc = sc[sc["score"] == "param_count"].merge(ck, on=["source", "seed", "step"])
  for _, row in pc.iterrows():
    # Checkpoints of batch-norm models also hold the statistics (`rest`): count params only.
    tree, _ = checkpointing.split_rest(checkpointing.restore(workdir / row["path"]))
    n_params = sum(math.prod(np.shape(a)) for a in jax.tree.leaves(tree))
    assert row["value"] == n_params
  # LEEP is a mean log-likelihood (<= 0); RSA a Spearman correlation.
  feature_rows = sc[sc["score"].isin(["leep", "rsa", "nc_score", "logme"])]
  assert np.isfinite(feature_rows["value"].astype(float)).mean() > 0.9
  assert (sc.loc[sc["score"] == "leep", "value"] <= 0).all()
  rsa = sc.loc[sc["score"] == "rsa", "value"].dropna()
  assert ((rsa >= -1) & (rsa <= 1)).all()


def test_finetune_with_scratch_baseline(tiny_run):
  _, c, _, tables = tiny_run
  ft, ck = tables["finetune"], tables["checkpoints"]
  assert set(ft["target"]) == {"fsdd_digit_spk45"}
  assert set(ft["ft_step"]) == {0, 1, 3}  # the log-spaced schedule cut at 3 steps
  starts = set(zip(ft["source"], ft["seed"], ft["step"], strict=True))
  assert set(zip(ck["source"], ck["seed"], ck["step"], strict=True)) <= starts
  assert "scratch" in set(ft["source"]) and "random_init" in set(ft["source"])
  assert set(ft.loc[ft["source"] == "scratch", "mode"]) == {"full"}
  # Every unit has a whole curve, and accuracies count correct clips out of 40.
  assert (ft.groupby(["source", "seed", "step", "mode", "ft_seed"]).size() == 3).all()
  n = c["finetune"]["eval_examples"]
  np.testing.assert_allclose(ft["test_acc"] * n, np.round(ft["test_acc"] * n), atol=1e-4)


def test_report_exists(tiny_run):
  workdir, _, report, _ = tiny_run
  assert report is not None and report.exists()
  text = report.read_text()
  assert "fsdd_digit_spk45" in text and "audio_cnn_tiny" in text
  assert (workdir / "report.html").exists()
  assert list((workdir / "figures").glob("*.png"))


def test_scale_report_matches_the_tables(tiny_run):
  workdir, c, _, tables = tiny_run
  table = pd.read_csv(workdir / "scale.csv").set_index("source")
  assert sorted(table.index) == sorted(s["name"] for s in c["sources"])
  assert sorted(p.name for p in (workdir / "figures").glob("scale_*.png")) == [
    "scale_classes.png",
    "scale_samples.png",
  ]
  ft, sc = tables["finetune"], tables["scores"]
  last = max(_expected_steps(c))
  for source, row in table.iterrows():
    assert (row["num_classes"], row["per_class"]) == scale_study.LADDER[source]
    # Log-AUC: trapezoids of accuracy over the evaluation index / (K - 1), then the seed mean.
    per_seed = []
    for _, g in ft[(ft.source == source) & (ft.step == last) & (ft["mode"] == "full")].groupby(
      "seed"
    ):
      acc = g.sort_values("ft_step")["test_acc"].to_numpy(np.float64)
      per_seed.append(np.sum((acc[1:] + acc[:-1]) / 2) / (len(acc) - 1))
    assert len(per_seed) == c["pretrain"]["num_seeds"]
    assert row["log_auc"] == pytest.approx(np.mean(per_seed), abs=1e-12)
    nc = sc[(sc.source == source) & (sc.step == last) & (sc.score == "nc_score")]
    nc = nc[nc.layer == scale_study.PLOT_LAYER]
    assert row["nc_score"] == pytest.approx(nc["value"].mean(), rel=1e-9)


def test_binary_target_auroc_and_nc_comparison(tiny_run, data_dir):
  """The fine-tune job stores a binary target's AUROC; the NC comparison reads it."""
  from jtransfer.jobs import finetune

  workdir, c, _, _ = tiny_run
  target = neural_collapse.AUROC_TARGETS[0]
  kwargs = dict(
    modes=["head", "full"], ft_seeds=[0], steps=[4], duration={"steps": 3}, batch_size=8,
    optimizer="adam", optimizer_kwargs={"learning_rate": 1e-3}, baselines=False,
    group_size=32, data_dir=str(data_dir),
  )  # fmt: skip
  run_job(score_job,
    workdir=workdir, target=target, probe_per_class=3, scores=list(audio_fsdd.TINY_SCORES),
    data_dir=str(data_dir), show_progress=False,
  )  # fmt: skip
  run_job(finetune, workdir=workdir, target=target, show_progress=False, **kwargs)
  ft = results.load(workdir, "finetune")
  binary, ten = ft[ft["target"] == target], ft[ft["target"] != target]
  # sources x seeds x modes x evaluations (the final checkpoints only)
  assert len(binary) == len(c["sources"]) * c["pretrain"]["num_seeds"] * 2 * 3
  assert ten["test_auroc"].isna().all()
  assert ((binary["test_auroc"] >= 0) & (binary["test_auroc"] <= 1)).all()
  # At step 0 the head is the shared init on each backbone: its AUROC is that of the start
  # model, recomputed here from the checkpoint's backbone and the shared head.
  x, y = finetune.load_target(
    target, data_dir=str(data_dir), batch_size=8, duration={"steps": 3}
  ).test
  graphdef, head, head_rest = functional.init(
    "audio_cnn_tiny", num_classes=2, seed=finetune.head_seed(0)
  )
  start = binary[(binary.ft_step == 0) & (binary["mode"] == "full")]
  ck = results.load(workdir, "checkpoints").set_index(["source", "seed", "step"])
  for _, row in start.iterrows():
    path = workdir / ck.loc[(row.source, row.seed, row.step), "path"]
    params = {"backbone": checkpointing.restore_backbone(path), "head": head["head"]}
    rest = {**head_rest, "backbone": checkpointing.restore_backbone_rest(path)}
    logits = np.asarray(functional.apply(graphdef, params, rest, x, train=False)[0], np.float64)
    margin = logits[:, 1] - logits[:, 0]
    want = pairwise_auroc(margin, y)
    assert row["test_auroc"] == pytest.approx(want, abs=1e-9)
    assert metrics.auroc(margin, y) == pytest.approx(want, abs=1e-12)
  config = studies.ReportConfig(evaluate=None, studies=("neural_collapse",))
  path = studies.write_report(workdir, config)[0]  # the study of configs/audio_nc.py
  table = pd.read_csv(workdir / "nc_comparison.csv")
  assert {"test_acc", "test_auroc"} <= set(table["metric"])
  assert {"head", "full"} <= set(table["mode"])
  assert set(table.loc[table["metric"] == "test_auroc", "target"]) == {target}
  # p-values where r is defined (NaN where a score or the metric is constant over models).
  assert (table["pearson_p"].isna() == table["pearson"].isna()).all()
  p_values = table["pearson_p"].dropna()
  assert len(p_values) and ((p_values >= 0) & (p_values <= 1)).all()
  assert "| score | layer | n | full | head |" in path.read_text()
  with pytest.raises(ValueError, match="two-class targets only"):
    neural_collapse.nc_comparison(workdir, auroc_targets=["fsdd_digit_spk45"])
