"""Gradual transfer (configs/gradual_transfer.py): the tiny variant end to end through the sweep,
its matrix and asymmetry recomputed here from the stored fine-tune rows (float64 NumPy)."""

import pathlib

import numpy as np
import pandas as pd
import pytest

from jtransfer.cli import overrides as config_cli
from jtransfer.jobs import finetune, sweep
from jtransfer.store import results
from jtransfer.studies import gradual as gradual_report

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
gradual_transfer = config_cli.load_module(CONFIGS / "gradual_transfer.py")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_dir):
  workdir = tmp_path_factory.mktemp("gradual")
  c = gradual_transfer.get_config("tiny").to_dict()
  plan = sweep.plan(
    workdir=workdir,
    sources=c["sources"],
    pretrain={**c["pretrain"], "show_progress": False},
    score=c["score"],
    finetune={**c["finetune"], "show_progress": False},
    evaluate=c["evaluate"],
    stages=c["stages"],
    studies=c["studies"],
    data_dir=str(data_dir),
  )
  sweep.run(plan)
  return workdir, c


def _reference_matrix(ft: pd.DataFrame) -> dict:
  """{(source, target, l): (mean log-AUC, mean final acc, sd log-AUC, n)} over seeds, by hand."""
  per_seed = {}
  for (src, _seed, tgt, frozen), g in ft.groupby(["source", "seed", "target", "frozen_layers"]):
    acc = g.sort_values("ft_step")["test_acc"].to_numpy(np.float64)
    k = len(acc)
    area = sum((acc[i] + acc[i + 1]) / 2.0 for i in range(k - 1)) / (k - 1)
    per_seed.setdefault((src, tgt, int(frozen)), []).append((area, acc[-1]))
  out = {}
  for key, vals in per_seed.items():
    v = np.array(vals, np.float64)
    sd = float(np.sqrt(((v[:, 0] - v[:, 0].mean()) ** 2).sum() / (len(v) - 1)))
    out[key] = (v[:, 0].mean(), v[:, 1].mean(), sd, len(v))
  return out


@pytest.mark.slow
def test_every_source_target_pair_at_every_frozen_count(tiny_run):
  workdir, c = tiny_run
  ft = results.load(workdir, "finetune")
  for target in c["finetune"]["targets"]:
    rows = ft[ft["target"] == target["name"]]
    # Fine-tuned from itself, its partner and the baselines only (the per-target override).
    assert set(rows["source"]) == {*target["sources"], "scratch", "random_init"}
    models = rows[~rows["source"].isin(["scratch", "random_init"])]
    arch = models["arch"].iloc[0]
    info = finetune.arch_info(arch, num_classes=2, model_kwargs={})
    # l = 0 .. number of transferred (backbone) layers, as Fayek's 0 .. L_H.
    assert sorted(set(models["frozen_layers"])) == list(range(len(info.backbone_layers) + 1))
    assert gradual_transfer.TRANSFERRED_LAYERS[arch] == len(info.backbone_layers)
    # Each source's last checkpoint only, both seeds.
    last = {s["duration"]["steps"] for s in c["sources"] if s["arch"] == arch}
    assert set(models["step"]) == last
    assert set(models["seed"]) == {0, 1}


@pytest.mark.slow
def test_matrix_and_asymmetry_match_a_recomputation_from_the_rows(tiny_run):
  workdir, c = tiny_run
  ft = results.load(workdir, "finetune")
  ref = _reference_matrix(ft[~ft["source"].isin(["scratch", "random_init"])])
  m = pd.read_csv(workdir / "gradual_matrix.csv")
  assert len(m) == len(ref)
  for r in m.itertuples():
    auc, final, sd, n = ref[(r.source, r.target, int(r.frozen))]
    assert r.log_auc == pytest.approx(auc, abs=1e-12)
    assert r.final_acc == pytest.approx(final, abs=1e-12)
    assert r.log_auc_std == pytest.approx(sd, abs=1e-12)
    assert r.n == n
  asym = pd.read_csv(workdir / "gradual_asymmetry.csv")
  pairs = {tuple(sorted(t["sources"])) for t in c["finetune"]["targets"]}
  for value, col in (("log_auc", 0), ("final_acc", 1)):
    a_v = asym[asym["value"] == value]
    assert {(r.a, r.b) for r in a_v.itertuples()} == pairs
    for r in a_v.itertuples():
      f = int(r.frozen)
      mab, mba = ref[(r.a, r.b, f)][col], ref[(r.b, r.a, f)][col]
      maa, mbb = ref[(r.a, r.a, f)][col], ref[(r.b, r.b, f)][col]
      assert r.a_to_b == pytest.approx(mab, abs=1e-12)
      assert r.asymmetry == pytest.approx((mab - mbb) - (mba - maa), abs=1e-12)
    # Antisymmetry: the asymmetry is the (A, B) entry of D - D^T, D[s, t] = M[s→t] - M[t→t].
    tasks = sorted({t for p in pairs for t in p})
    for f in sorted(set(a_v["frozen"].astype(int))):
      d = np.full((len(tasks), len(tasks)), np.nan)
      for i, s in enumerate(tasks):
        for j, t in enumerate(tasks):
          if (s, t, f) in ref and (t, t, f) in ref:
            d[i, j] = ref[(s, t, f)][col] - ref[(t, t, f)][col]
      anti = d - d.T
      for r in a_v[a_v["frozen"] == f].itertuples():
        assert r.asymmetry == pytest.approx(anti[tasks.index(r.a), tasks.index(r.b)], abs=1e-12)


@pytest.mark.slow
def test_figures_written(tiny_run):
  workdir, _ = tiny_run
  for value in gradual_report.VALUES:
    for name in (f"gradual_transfer_{value}", f"gradual_matrix_{value}"):
      assert (workdir / "figures" / f"{name}.png").stat().st_size > 10_000
      assert (workdir / "figures" / f"{name}.pdf").is_file()


def test_empty_store_is_a_clear_error():
  with pytest.raises(ValueError, match="finetune table is empty"):
    gradual_report.tables(pd.DataFrame(columns=["source", "seed", "step", "target", "mode",
                                                "ft_step", "test_acc"]))  # fmt: skip


def test_sweep_targets_carry_their_own_overrides():
  section = {"targets": ["a", {"name": "b", "sources": ["x"], "lr": 2}], "lr": 1, "sources": None}
  assert sweep._targets("finetune", section) == [
    ("a", {"lr": 1, "sources": None}),
    ("b", {"lr": 2, "sources": ["x"]}),
  ]
  with pytest.raises(ValueError, match="needs a 'name'"):
    sweep._targets("finetune", {"targets": [{"sources": ["x"]}]})


@pytest.mark.parametrize("arch", sorted(gradual_transfer.TRANSFERRED_LAYERS))
def test_frozen_counts_span_the_transferred_layers(arch):
  info = finetune.arch_info(arch, num_classes=4, model_kwargs={})
  assert gradual_transfer.TRANSFERRED_LAYERS[arch] == len(info.backbone_layers)
  # The last mode freezes the whole backbone (Fayek's feature extractor), never a new layer.
  assert gradual_transfer.modes(arch)[-1] == f"frozen={len(info.backbone_layers)}"
  assert info.layers[len(info.backbone_layers)] not in info.backbone_layers
