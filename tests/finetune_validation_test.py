"""The fine-tune job's validation split and the NC comparison's validation-selected checkpoint."""

import numpy as np
import pandas as pd
import pytest
from stage_calls import run_job

from jtransfer import data as datasets
from jtransfer.analysis import auroc
from jtransfer.jobs import finetune, migrate
from jtransfer.models import functional
from jtransfer.store import results
from jtransfer.studies import neural_collapse
from jtransfer.train import finetune_plan as plan
from jtransfer.train import validation


def _reference_split(labels, fraction, seed):
  """Per class, the round(f * n_c) (>= 1) positions with the smallest raw PCG64 keys."""
  keys = np.random.PCG64(seed).random_raw(len(labels))
  val = []
  for c in np.unique(labels):
    pos = np.flatnonzero(labels == c)
    k = min(max(int(np.rint(fraction * len(pos))), 1), len(pos) - 1)
    val += pos[np.argsort(keys[pos], kind="stable")[:k]].tolist()
  val = np.sort(np.array(val))
  return np.setdiff1d(np.arange(len(labels)), val), val


def test_split_is_stratified_disjoint_and_fixed():
  labels = np.repeat(np.arange(4), [40, 13, 7, 2])
  labels = labels[np.random.default_rng(0).permutation(labels.size)]
  train, val = validation.split(labels, fraction=0.15, seed=0)
  want_train, want_val = _reference_split(labels, 0.15, 0)
  np.testing.assert_array_equal(train, want_train)
  np.testing.assert_array_equal(val, want_val)
  assert not set(train) & set(val) and len(train) + len(val) == labels.size
  # round(0.15 n): 6 of 40, 2 of 13, 1 of 7, and 1 of 2 (at least one, never the last).
  assert np.bincount(labels[val]).tolist() == [6, 2, 1, 1]
  again = validation.split(labels, fraction=0.15, seed=0)
  np.testing.assert_array_equal(again[1], val)
  assert not np.array_equal(validation.split(labels, fraction=0.15, seed=1)[1], val)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, True])
def test_split_rejects_bad_fractions(fraction):
  with pytest.raises(ValueError, match="fraction"):
    validation.split(np.array([0, 0, 1, 1]), fraction=fraction)


def test_split_with_no_room_for_validation_fails():
  with pytest.raises(ValueError, match="no validation sample"):
    validation.split(np.array([0, 1, 2]), fraction=0.5)


@pytest.fixture(scope="module")
def val_run(tmp_path_factory, data_dir):
  workdir = tmp_path_factory.mktemp("val")
  kw = dict(
    modes=["full"], ft_seeds=[0], duration={"steps": 12}, batch_size=16, optimizer="adam",
    optimizer_kwargs={"learning_rate": 3e-3}, baseline_archs=["cnn"], model_kwargs={},
    eval_examples=64, train_examples=300, val_fraction=0.2, data_dir=str(data_dir),
    show_progress=False, group_size=2,
  )  # fmt: skip
  run_job(finetune, workdir=workdir, target="mnist", **kw)
  return workdir, kw


def test_validation_examples_never_train(val_run, data_dir):
  _, kw = val_run
  target = finetune.load_target(
    "mnist", data_dir=str(data_dir), train_examples=300, batch_size=16,
    duration={"steps": 12}, val_fraction=0.2,
  )  # fmt: skip
  x, y = datasets.load("mnist", "train", data_dir=str(data_dir))
  x, y = datasets.normalize("mnist", x)[:300], y[:300]
  want_train, want_val = _reference_split(np.asarray(y), 0.2, 0)
  np.testing.assert_array_equal(target.val[0], np.asarray(x, np.float32)[want_val])
  np.testing.assert_array_equal(target.train[0], np.asarray(x, np.float32)[want_train])
  # No validation image is among the images the job trains on (bytes compared).
  train_bytes = {a.tobytes() for a in target.train[0]}
  assert not any(a.tobytes() in train_bytes for a in target.val[0])
  # The schedule counts the remaining train examples only.
  assert target.steps_per_epoch == len(want_train) // 16 != 300 // 16  # whole batches


def test_step0_validation_metrics_are_the_start_models(val_run, data_dir):
  workdir, _ = val_run
  ft = results.load(workdir, "finetune")
  assert ft["val_acc"].notna().all() and ft["val_loss"].notna().all()
  assert ft["val_auroc"].isna().all()  # ten classes: no AUROC
  x, y = datasets.load("mnist", "train", data_dir=str(data_dir))
  x, y = np.asarray(datasets.normalize("mnist", x)[:300], np.float32), np.asarray(y[:300])
  _, val = _reference_split(y, 0.2, 0)
  graphdef, params, rest = functional.init("cnn", num_classes=10, seed=plan.scratch_seed(0))
  logits = np.asarray(functional.apply(graphdef, params, rest, x[val], train=False)[0], np.float64)
  z = logits - logits.max(-1, keepdims=True)
  nll = -(z - np.log(np.exp(z).sum(-1, keepdims=True)))[np.arange(len(val)), y[val]]
  row = ft[(ft["source"] == "scratch") & (ft["ft_step"] == 0)].iloc[0]
  assert row.val_acc == pytest.approx((logits.argmax(-1) == y[val]).mean(), abs=1e-12)
  assert row.val_loss == pytest.approx(nll.mean(), rel=1e-5)


def test_selected_rows_match_a_recomputation(val_run):
  workdir, _ = val_run
  ft = results.load(workdir, "finetune")
  chosen = auroc.selected_rows(ft, by="val_acc").set_index(["source", "target"])
  for (source, target), g in ft.groupby(["source", "target"]):
    g = g.sort_values("ft_step")
    acc = g["val_acc"].to_numpy()
    step = int(g["ft_step"].to_numpy()[int(np.flatnonzero(acc == acc.max())[0])])
    assert chosen.loc[(source, target), "ft_step"] == step
    assert chosen.loc[(source, target), "test_acc"] == g.loc[g.ft_step == step, "test_acc"].item()


def test_selection_without_validation_is_a_clear_error(val_run):
  workdir, _ = val_run
  ft = results.load(workdir, "finetune").assign(val_acc=np.nan)
  with pytest.raises(ValueError, match="val_fraction"):
    auroc.selected_rows(ft, by="val_acc")


def _synthetic_store(workdir, rng):
  """Six models, one score, a 4-point fine-tune curve each with validation metrics."""
  store = results.Store(workdir)
  steps = [0, 1, 3, 10]
  for i in range(6):
    key = dict(source=f"s{i}", arch="a", seed=0, step=5, target="t")
    store.add_scores(
      [dict(key, probe="train", layer="l", score="logme", value=float(rng.normal()))]
    )
    rows = []
    for k, ft_step in enumerate(steps):
      rows.append(
        dict(key, mode="full", frozen_layers=0, ft_seed=0, ft_step=ft_step, ft_epoch=k,
             test_acc=float(rng.uniform()), test_loss=1.0, val_acc=float(rng.uniform()),
             val_loss=1.0)
      )  # fmt: skip
    store.add_finetune(rows)
  store.close()


def test_nc_comparison_reports_final_and_validation_selected(tmp_path):
  _synthetic_store(tmp_path, np.random.default_rng(3))
  neural_collapse.nc_comparison(tmp_path, auroc_targets=[], score_names=["logme"], n_boot=10)
  table = pd.read_csv(tmp_path / "nc_comparison.csv").set_index("checkpoint")
  scores = results.load(tmp_path, "scores").set_index("source")["value"]
  ft = results.load(tmp_path, "finetune")
  final, chosen = [], []
  for source in scores.index:
    g = ft[ft["source"] == source].sort_values("ft_step")
    final.append(g["test_acc"].iloc[-1])
    chosen.append(g["test_acc"].iloc[int(np.argmax(g["val_acc"].to_numpy()))])
  for name, perf in (("final", final), ("val_selected", chosen)):
    want = np.corrcoef(scores.to_numpy(np.float64), np.array(perf, np.float64))[0, 1]
    assert table.loc[name, "pearson"] == pytest.approx(want, abs=1e-9)
  assert table.loc["final", "pearson"] != pytest.approx(table.loc["val_selected", "pearson"])
  text = (tmp_path / "nc_comparison.md").read_text()
  assert "## t: test_acc (final checkpoint)" in text
  assert "## t: test_acc (val_selected checkpoint)" in text


def test_a_store_from_before_the_validation_columns_reads_and_compares(tmp_path):
  import sqlite3

  # The finetune table as written before val_acc / val_loss / val_auroc existed.
  old = [c for c in results.COLUMNS["finetune"] if not c.startswith("val_")]
  key = results.KEYS["finetune"]
  _synthetic_store(tmp_path / "new", np.random.default_rng(3))
  rows = results.load(tmp_path / "new", "finetune")[old]
  with sqlite3.connect(tmp_path / results.MAIN_FILE) as conn:
    conn.execute(f"CREATE TABLE finetune ({', '.join(old)}, PRIMARY KEY ({', '.join(key)}))")
    conn.executemany(
      f"INSERT INTO finetune VALUES ({', '.join('?' * len(old))})",
      [tuple(None if pd.isna(v) else v for v in r) for r in rows.itertuples(index=False)],
    )
  migrate.migrate(tmp_path)  # an unversioned workdir: the jobs and readers refuse it until then
  with results.Store(tmp_path) as store:
    store.add_scores(results.load(tmp_path / "new", "scores").to_dict("records"))
  ft = results.load(tmp_path, "finetune")
  assert len(ft) == 24 and ft["val_acc"].isna().all() and ft["val_auroc"].isna().all()
  neural_collapse.nc_comparison(tmp_path, auroc_targets=[], score_names=["logme"], n_boot=10)
  table = pd.read_csv(tmp_path / "nc_comparison.csv")
  assert table["checkpoint"].tolist() == ["final"]  # nothing to select on: final only
