"""Ground truth: the thesis' log-AUC on hand-computed curves, and the per-model table."""

import numpy as np
import pandas as pd
import pytest

from jtransfer.analysis import ground_truth, log_auc, truth


def test_log_auc_hand_computed():
  assert log_auc([0.0, 1.0]) == pytest.approx(0.5)
  # Trapezoids (.1+.5)/2 + (.5+.9)/2 + (.9+1)/2 = 1.95 over K-1 = 3 intervals.
  assert log_auc([0.1, 0.5, 0.9, 1.0]) == pytest.approx(0.65)
  assert log_auc([0.7] * 12) == pytest.approx(0.7)  # a flat curve reads as its accuracy
  # The thesis' unnormalised value is (K-1) times ours: in % on the 12-point schedule.
  curve = np.linspace(10, 99, 12)
  assert log_auc(curve) * 11 == pytest.approx(np.trapezoid(curve))


def test_log_auc_batched_over_leading_axes():
  curves = np.array([[0.0, 1.0, 1.0], [0.2, 0.2, 0.8]])
  np.testing.assert_allclose(log_auc(curves), [(0.5 + 1.0) / 2, (0.2 + 0.5) / 2])


@pytest.mark.parametrize("curve", [[0.5], [], [0.1, np.nan, 0.3]])
def test_log_auc_rejects_bad_curves(curve):
  with pytest.raises(ValueError):
    log_auc(curve)


def _ft_rows(source, step, accs_by_ft_seed, mode="full", frozen=0, target="mnist", seed=0):
  rows = []
  for ft_seed, accs in enumerate(accs_by_ft_seed):
    for ft_step, acc in zip((0, 1, 3, 10), accs, strict=False):
      rows.append(
        dict(source=source, arch="cnn", seed=seed, step=step, target=target, mode=mode,
             frozen_layers=frozen, ft_seed=ft_seed, ft_step=ft_step, test_acc=acc)
      )  # fmt: skip
  return rows


def test_ground_truth_averages_fine_tune_seeds_and_flags_incomplete_curves():
  rows = _ft_rows("mnist", 10, [[0.1, 0.5, 0.9, 1.0], [0.3, 0.5, 0.7, 0.8]])
  rows += _ft_rows("mnist", 10, [[0.2, 0.4, 0.6, 0.6]], mode="frozen", frozen=2)
  rows += _ft_rows("noise", 10, [[0.1, 0.2, 0.3]])  # a crashed run: 3 of 4 steps
  gt = ground_truth(pd.DataFrame(rows)).set_index(["source", "setting"])
  full = gt.loc[("mnist", "full")]
  mean_curve = [0.2, 0.5, 0.8, 0.9]
  assert full["log_auc"] == pytest.approx(((0.2 + 0.5) + (0.5 + 0.8) + (0.8 + 0.9)) / 2 / 3)
  assert full["final_acc"] == pytest.approx(0.9)
  assert full["best_acc"] == pytest.approx(max(mean_curve))
  assert full["n_ft_seeds"] == 2 and full["complete"] and full["frozen"] == 0
  frozen = gt.loc[("mnist", "frozen=2")]
  assert frozen["log_auc"] == pytest.approx((0.6 + 1.0 + 1.2) / 2 / 3) and frozen["frozen"] == 2
  assert not gt.loc[("noise", "full")]["complete"]


def test_setting_labels():
  assert truth.setting_label("full", 0) == "full"
  assert truth.setting_label("frozen", 3) == "frozen=3"
  assert truth.setting_label("frozen=2", float("nan")) == "frozen=2"
  assert truth.setting_label("head", 0) == "head"
  assert truth.setting_label("full", 2) == "full+frozen=2"
  with pytest.raises(ValueError, match="frozen layers"):
    truth.setting_label("frozen", None)
