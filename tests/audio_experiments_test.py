"""End to end: the `tiny` variant of configs/audio_fsdd.py through `sweep.run` on real FSDD audio.

Pre-train (2 sources x 2 seeds x 4 steps) -> score (every tap) -> fine-tune (3 steps, scratch
and random-init baselines) -> evaluate (report). Minutes on a shared 2-core CPU, hence slow.
"""

import math

import jax
import numpy as np
import pandas as pd
import pytest

from configs import audio_fsdd
from jtransfer import checkpointing, results, score_job, sweep
from jtransfer.models import functional

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_dir):
  workdir = tmp_path_factory.mktemp("audio_fsdd_tiny")
  c = audio_fsdd.get_config("tiny").to_dict()
  report = sweep.run(
    workdir=workdir,
    sources=c["sources"],
    pretrain=c["pretrain"],
    score=c["score"],
    finetune=c["finetune"],
    evaluate=c["evaluate"],
    data_dir=str(data_dir),
  )
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


def test_binary_target_auroc_and_nc_comparison(tiny_run, data_dir):
  """AUROC re-run of the binary target's fine-tuning gives the fine-tune job's models."""
  from jtransfer.analysis import auroc
  from jtransfer.train import finetune

  workdir, c, _, _ = tiny_run
  target = "fsdd_zero_vs_rest_spk45"
  kwargs = dict(
    modes=["head", "full"], ft_seeds=[0], steps=[4], duration={"steps": 3}, batch_size=8,
    optimizer="adam", optimizer_kwargs={"learning_rate": 1e-3}, baselines=False,
    group_size=32, data_dir=str(data_dir),
  )  # fmt: skip
  with pytest.raises(ValueError, match="binary target"):
    auroc.finetune_auroc(workdir, "fsdd_digit_spk45", **kwargs)
  score_job.run(
    workdir=workdir, target=target, probe_per_class=3, scores=list(audio_fsdd.TINY_SCORES),
    data_dir=str(data_dir), show_progress=False,
  )  # fmt: skip
  finetune.run(workdir=workdir, target=target, show_progress=False, **kwargs)
  got = auroc.finetune_auroc(workdir, target, **kwargs)
  ft = results.load(workdir, "finetune")
  ft = ft[(ft["target"] == target) & (ft["ft_step"] == 3)]
  keys = ["source", "arch", "seed", "step", "mode"]
  joint = got.merge(ft, on=keys, suffixes=("", "_ft"))
  assert len(joint) == len(ft) == 2 * 2 * 2  # sources x seeds x modes (final checkpoints)
  np.testing.assert_allclose(joint["test_acc"], joint["test_acc_ft"], atol=1e-6)
  assert ((got["test_auroc"] >= 0) & (got["test_auroc"] <= 1)).all()
  # A rerun finds every unit done and returns the same table.
  again = auroc.finetune_auroc(workdir, target, **kwargs)
  assert len(again) == len(got)
  path = auroc.nc_comparison(workdir, auroc_targets=[target], embedding={"audio_cnn_tiny": "fc1"})
  table = pd.read_csv(workdir / "nc_comparison.csv")
  assert {"test_acc", "test_auroc"} <= set(table["metric"])
  assert {"head", "full"} <= set(table["mode"])
  assert "embedding" in set(table["layer"]) and path.exists()
