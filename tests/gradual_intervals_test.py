"""Intervals on Fayek's drops, their slope against l and the asymmetry (resampling seeds)."""

import numpy as np
import pandas as pd
import pytest

from jtransfer.studies import gradual


def _gt(rng, noise, *, seeds=5):
  rows = []
  base = {"A": 0.95, "B": 0.85}
  slope = {("A", "B"): -0.03, ("B", "A"): -0.01}  # A→B degrades faster with l than B→A
  for src in ("A", "B"):
    for seed in range(seeds):
      for tgt in ("A", "B"):
        for frozen in range(4):
          v = base[tgt] + slope.get((src, tgt), 0.0) * frozen + noise * rng.normal()
          rows.append(dict(source=src, arch="cnn_fc1", seed=seed, step=3000, target=tgt,
                           setting=f"frozen={frozen}", frozen=frozen, final_acc=v,
                           log_auc=v))  # fmt: skip
  return pd.DataFrame(rows)


def test_noiseless_drops_and_slopes_are_exact_with_zero_width():
  drops, slopes = gradual.drop_intervals(_gt(np.random.default_rng(0), 0.0), n_boot=200)
  ab = drops[(drops.kind == "drop") & (drops.a == "A") & (drops.b == "B")].sort_values("frozen")
  np.testing.assert_allclose(ab["estimate"], [0.0, -0.03, -0.06, -0.09], atol=1e-12)
  np.testing.assert_allclose(ab["hi"] - ab["lo"], 0.0, atol=1e-12)
  s = slopes.set_index(["kind", "a", "b"])["estimate"]
  assert s["slope", "A", "B"] == pytest.approx(-0.03) and s["slope", "B", "A"] == pytest.approx(
    -0.01
  )
  assert s["slope_asymmetry", "A", "B"] == pytest.approx(-0.02)


def test_noisy_estimates_equal_seed_means_and_intervals_cover_them():
  gt = _gt(np.random.default_rng(1), 0.01)
  drops, slopes = gradual.drop_intervals(gt, n_boot=2_000, seed=3)
  cell = lambda s, t, f: gt[(gt.source == s) & (gt.target == t) & (gt.frozen == f)].final_acc  # noqa: E731
  for f in range(4):
    want = cell("A", "B", f).mean() - cell("B", "B", f).mean()
    row = drops[(drops.kind == "drop") & (drops.a == "A") & (drops.b == "B") & (drops.frozen == f)]
    assert row.estimate.item() == pytest.approx(want, abs=1e-12)
    assert row.lo.item() <= want <= row.hi.item() and row.hi.item() - row.lo.item() > 0.005
    asym = drops[(drops.kind == "asymmetry") & (drops.frozen == f)].estimate.item()
    other = cell("B", "A", f).mean() - cell("A", "A", f).mean()
    assert asym == pytest.approx(want - other, abs=1e-12)
  # The slope's interval is far narrower than the drop's spread and excludes 0 here.
  s = slopes[(slopes.kind == "slope") & (slopes.a == "A")].iloc[0]
  assert s.lo < -0.03 + 0.02 and s.hi < 0 and s.lo < s.estimate < s.hi


def test_faithful_variant_transfers_every_layer_but_the_output():

  from flax import nnx

  from jtransfer.cli import overrides as config_cli
  from jtransfer.models import base

  path = __import__("pathlib").Path(__file__).resolve().parents[1] / "configs"
  gradual_transfer = config_cli.load_module(path / "gradual_transfer.py")

  c = gradual_transfer.get_config("faithful")
  assert {s["arch"] for s in c.sources} == {"cnn_fc1"} and c.pretrain.num_seeds >= 5
  assert len(c.finetune.ft_seeds) >= 3
  model = base.get_model("cnn_fc1", num_classes=10, rngs=nnx.Rngs(0))
  assert model.backbone_layers == ("conv1", "conv2", "fc1") and model.head_layers == ("logits",)
  for t in c.finetune.targets:
    assert t["modes"] == ["frozen=0", "frozen=1", "frozen=2", "frozen=3"]
  # Same function as the thesis CNN: only which layers travel differs.
  x = np.random.default_rng(0).normal(size=(3, 28, 28, 1)).astype(np.float32)
  thesis = base.get_model("cnn", num_classes=10, rngs=nnx.Rngs(0))
  np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(thesis(x)))
