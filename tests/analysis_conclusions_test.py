"""The report's conclusions on a constructed full-protocol study where pre-training length alone
predicts transfer best: baselines at every layer, the shared step-0 model once, per-checkpoint
groups by schedule position, findings without fine-tune baselines, and the power statement."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from jtransfer.analysis import breakdown, dependence, pipeline, power, report, tables, versus
from jtransfer.studies import thesis

# Epoch lengths of the full protocol: batch-64 sources, MNIST 0-4 and MNIST 5-9.
EPOCH = {"mnist": 937, "fashion_mnist": 937, "mnist_split_0_4": 956, "mnist_split_5_9": 918,
         "mnist_noise": 937, "mnist_noise_struct": 937}  # fmt: skip
EFFECT = {"mnist": 1.0, "fashion_mnist": 0.6, "mnist_split_0_4": 0.9, "mnist_split_5_9": 0.8,
          "mnist_noise": 0.1, "mnist_noise_struct": 0.2}  # fmt: skip
INDICES = (0, 1, 2, 3, 4)
SEEDS = (0, 1)
FT_STEPS = (0, 1, 3, 10)
LAYERS = ("conv1", "pool2")


def _curve(rate):
  return [0.1 + 0.8 * (1 - np.exp(-(j + 1) * rate)) for j in FT_STEPS]


def _model(src, idx, seed, rng, perfect=False):
  """(scores at real layers, layer-less scores, fine-tune curve) of one checkpoint. Step 0 is
  the same network for every source (depends on the seed only)."""
  if idx == 0:
    q, noise = 0.0, np.random.default_rng(100 + seed).normal(size=3)
  else:
    q, noise = idx + 0.3 * EFFECT[src], rng.normal(size=3)
  rsa = EFFECT[src] * (idx > 0) + 0.5 * noise[0]  # tracks the source, not the length
  two_nn = 10 + idx + 0.2 * noise[1]  # lower is better, yet grows with quality: wrong way
  layer = {"rsa": rsa, "two_nn": two_nn, "h_score": 1.0}
  if perfect:  # ranks models exactly as their fine-tune rate does
    layer["logme"] = q + 0.002 * (seed - 0.5)
  layerless = {"leep": -2 + 0.3 * noise[2], "nce": -1 + 0.3 * noise[1], "param_count": 1e5,
               "checkpoint_index": float(idx)}  # fmt: skip
  rate = 0.05 + 0.05 * q + 0.002 * (seed - 0.5)
  return layer, layerless, _curve(rate)


def _study(seed=0, perfect=False):
  rng = np.random.default_rng(seed)
  sc, ft = [], []
  for src in EPOCH:
    for s in SEEDS:
      for idx in INDICES:
        key = dict(source=src, arch="cnn", seed=s, step=idx * EPOCH[src], target="mnist")
        layer, layerless, curve = _model(src, idx, s, rng, perfect)
        for name, v in layer.items():
          sc += [dict(key, probe="train", layer=ly, score=name, value=v) for ly in LAYERS]
        sc += [dict(key, probe="train", layer="-", score=n, value=v) for n, v in layerless.items()]
        pts = zip(FT_STEPS, curve, strict=True)
        ft += [dict(key, mode="full", ft_step=f, test_acc=a) for f, a in pts]
  for s in SEEDS:  # Fine-tune baselines, worst of all; they have no scores.
    for base, rate in (("scratch", 0.02), ("random_init", 0.01)):
      key = dict(source=base, arch="cnn", seed=s, step=0, target="mnist", mode="full")
      curve = _curve(rate + 0.001 * s)
      ft += [dict(key, ft_step=f, test_acc=a) for f, a in zip(FT_STEPS, curve, strict=True)]
  return pd.DataFrame(sc), pd.DataFrame(ft)


@pytest.fixture(scope="module")
def study():
  sc, ft = _study()
  return sc, ft, pipeline.analyse(sc, ft, n_boot=300)


def test_layerless_baselines_reach_every_layer_despite_leep_and_nce(study):
  sc, _, a = study
  prepared = tables.prepare_scores(sc)
  assert "-" not in set(prepared["layer"])
  for name in ("checkpoint_index", "param_count", "leep", "nce"):
    assert set(prepared.loc[prepared["score"] == name, "layer"]) == set(LAYERS), name
  b = a.baselines[a.baselines["breakdown"] == "all"]
  assert set(b["layer"]) == set(LAYERS)
  assert np.isfinite(b["spearman_checkpoint_index"].to_numpy(dtype=float)).all()


def test_shared_step0_model_is_counted_once(study):
  _, _, a = study
  c = a.correlations
  rsa = c[(c["breakdown"] == "all") & (c["score"] == "rsa") & (c["layer"] == "pool2")].iloc[0]
  assert rsa["n"] == 6 * 4 + 1 and rsa["n_clusters"] == 7  # 6 sources + the shared init
  assert any("counted once" in n for n in a.notes)
  # The pooled ρ is scipy's on the seed-averaged models with the six step-0 copies made one.
  j = a.joint[(a.joint["score"] == "rsa") & (a.joint["layer"] == "pool2")]
  j = pd.concat([j[j["step"] > 0], j[j["step"] == 0].iloc[:1]])
  assert rsa["spearman"] == pytest.approx(sps.spearmanr(j["oriented"], j["log_auc"]).statistic)
  # Per source, every source keeps its own step-0 model.
  per_source = c[(c["breakdown"] == "per_source") & (c["score"] == "rsa") & (c["layer"] == "pool2")]
  assert set(per_source["n"]) == {5}


def test_report_says_no_score_beats_checkpoint_index(study, tmp_path):
  _, _, a = study
  line = next(x for x in report.baseline_sentences(a) if x.startswith("**mnist**"))
  assert "No score beats it" in line and "Beat it" not in line
  assert "h_score" in line.split("undefined (not counted as wins):")[1]  # constant score
  v = a.versus_checkpoint
  assert not v["verdict"].isin(["beats"]).any()
  two_nn = v[(v["score"] == "two_nn") & (v["layer"] == "pool2")].iloc[0]
  assert two_nn["diff"] < 0 and two_nn["diff_hi"] < 0  # resolved: worse than the baseline
  md = report.write(a, tmp_path).read_text()
  assert "No score beats it" in md and "beat every defined baseline" not in md
  # two_nn ranks models backwards: marked wrong direction, never starred.
  c = a.correlations
  row = c[(c["breakdown"] == "all") & (c["score"] == "two_nn") & (c["layer"] == "pool2")].iloc[0]
  assert row["wrong_direction"] and not row["significant"]
  assert report._rho_cell(row).startswith(f"{row['spearman']:.2f}†")


def test_per_checkpoint_groups_hold_every_source_on_a_full_schedule(study):
  _, _, a = study
  c = a.correlations
  pc = c[(c["breakdown"] == "per_checkpoint") & (c["score"] == "rsa") & (c["layer"] == "pool2")]
  assert sorted(pc["group"]) == ["0", "1", "2", "3", "4"]
  assert set(pc["n"]) == {6}
  one = pc[pc["group"] == "1"].iloc[0]
  assert one["steps"] == "918,937,956"
  sel = a.selection[
    (a.selection["breakdown"] == "per_checkpoint") & (a.selection["score"] == "rsa")
  ]
  assert set(sel["n"]) == {6} and len(sel) == 5 * len(LAYERS)


def test_stored_checkpoint_index_is_the_grouping_axis():
  sc, ft = _study()
  # Positions in a log-spaced schedule (not the rank of the step): 0, 3, 5, 7, 9.
  ci = sc["score"] == "checkpoint_index"
  sc.loc[ci, "value"] = sc.loc[ci, "value"].map({0: 0, 1: 3, 2: 5, 3: 7, 4: 9})
  a = pipeline.analyse(sc, ft, n_boot=0)
  pc = a.correlations[a.correlations["breakdown"] == "per_checkpoint"]
  assert set(pc["group"]) == {"0", "3", "5", "7", "9"} and set(pc["n"]) == {6}


def test_derived_checkpoint_index_ranks_steps_within_each_run():
  sc, _ = _study()
  sc = sc[sc["score"] != "checkpoint_index"]
  # One seed lacks a checkpoint: its later steps keep their own run's positions.
  sc = sc[~((sc["source"] == "mnist") & (sc["seed"] == 1) & (sc["step"] == 937))]
  p = tables.prepare_scores(sc)
  ci = p[(p["score"] == "checkpoint_index") & (p["source"] == "mnist")]
  got = ci.groupby(["seed", "step"])["value"].first()
  assert got.loc[(0, 1874)] == 2 and got.loc[(1, 1874)] == 1


def test_noise_finding_ignores_fine_tune_baselines(study):
  _, _, a = study
  gt = a.ground_truth
  worst = gt[gt["setting"] == "full"].groupby("source")["log_auc"].mean().idxmin()
  assert worst == "random_init"  # the unflattering case the check must not count as a source
  row = (
    thesis.compare(a)
    .set_index("finding")
    .loc["noise sources transfer worst (log-AUC, longest pre-training, target MNIST)"]
  )
  assert row["ours"].startswith("yes") and "random_init" not in row["ours"]


def test_power_numbers_by_hand(study):
  _, ft, a = study
  gt = a.ground_truth
  g = gt[~gt["source"].isin(["scratch", "random_init"])]
  sd = g.groupby(["source", "step"])["log_auc"].std(ddof=1).to_numpy()
  sigma = np.sqrt(np.mean(sd**2))
  s = a.power_seeds.iloc[0]
  assert s["sigma_s"] == pytest.approx(sigma) and s["k"] == 2
  assert s["resolvable_gap"] == pytest.approx(1.959963984540054 * sigma * np.sqrt(2 / 2))
  r = a.power_rho.set_index("score").loc["rsa"]
  c = a.correlations
  row = c[(c["breakdown"] == "all") & (c["score"] == "rsa") & (c["layer"] == "pool2")].iloc[0]
  assert r["rho_halfwidth"] == pytest.approx((row["cluster_ci_hi"] - row["cluster_ci_lo"]) / 2)
  lines = thesis.findings(a) + power.findings(a)
  assert any(x.startswith("noise sources transfer worst (MNIST): **decided**") for x in lines)
  assert any("scores vs checkpoint_index (mnist, pool2)" in x for x in lines)


def test_merge_shared_init_leaves_distinct_initialisations_alone():
  j = pd.DataFrame(
    dict(source=["a", "b", "c", "a"], arch="cnn", step=[0, 0, 0, 5], target="t", setting="full",
         probe="train", layer="l", score="rsa", oriented=[1.0, 1.0, 2.0, 3.0],
         log_auc=[0.5, 0.5, 0.5, 0.9])
  )  # fmt: skip
  out = dependence.merge_shared_init(j, ["source", "arch", "step"])
  assert sorted(out["source"]) == ["a", "c", dependence.SHARED_INIT]
  assert out.loc[out["source"] == dependence.SHARED_INIT, "n_shared"].item() == 2


def test_report_shows_each_schedule_position_with_its_steps(study):
  _, _, a = study
  t = report.per_checkpoint_table(a)
  assert list(t["position"]) == [0, 1, 2, 3, 4] and set(t["n"]) == {6}
  assert t.set_index("position").loc[2, "steps"] == "1836,1874,1912"
  c = a.correlations
  rsa = c[(c["breakdown"] == "per_checkpoint") & (c["score"] == "rsa") & (c["layer"] == "pool2")]
  assert t.set_index("position").loc[3, "rsa"] == pytest.approx(
    rsa.set_index("group").loc["3", "spearman"]
  )


def test_kept_seeds_resample_runs():
  sc, ft = _study()
  a = pipeline.analyse(sc, ft, n_boot=200, keep_seeds=True)
  c = a.correlations
  rsa = c[(c["breakdown"] == "all") & (c["score"] == "rsa") & (c["layer"] == "pool2")].iloc[0]
  # Each seed's step-0 network is shared by the 6 sources: 2 × (6 × 4 + 1) models in 6 × 2 runs
  # plus the 2 initialisations.
  assert rsa["n"] == 50 and rsa["n_clusters"] == 14
  v = a.versus_checkpoint.set_index(["layer", "score"]).loc[("pool2", "rsa")]
  assert v["n"] == 50 and v["n_clusters"] == 14 and v["verdict"] == "not higher"


def test_report_states_where_each_probe_came_from():
  text = report.probe_origin(["train", "heldout"])
  assert "training split" in text and "TEST loader" in text and "reintroduces" in text
  assert "origin not recorded" in report.probe_origin(["mine"])


def test_a_score_that_tracks_transfer_is_said_to_beat_checkpoint_index():
  sc, ft = _study(perfect=True)
  a = pipeline.analyse(sc, ft, n_boot=300)
  v = a.versus_checkpoint.set_index(["layer", "score"]).loc[("pool2", "logme")]
  assert v["rho"] == pytest.approx(1.0) and v["diff_lo"] > 0 and v["verdict"] == "beats"
  line = next(x for x in report.baseline_sentences(a) if x.startswith("**mnist**"))
  beaten = line.split("Beat it (interval above 0): ")[1].split(";")[0]
  assert beaten.startswith("logme +") and "rsa" not in beaten and "No score" not in line


def test_a_five_class_step_zero_copy_counts_the_same_in_every_table():
  # Three sources share one initialisation; "half" has a 5-class head, so at step 0 its LEEP
  # differs while its trunk (RSA) and fine-tune curve are those of the others. The pooled
  # correlations and the comparison with checkpoint_index must count the same models.
  rng = np.random.default_rng(0)
  rows = []
  for src in ("a", "b", "half"):
    for step in (0, 30, 100, 300, 1000):
      truth = 0.5 if step == 0 else 0.5 + 0.1 * np.log10(step) + rng.normal(scale=0.02)
      rsa_v = 0.1 if step == 0 else truth + rng.normal(scale=0.05)
      leep = (-2.3 if src != "half" else -1.6) if step == 0 else -2.3 + truth
      for score, value in (("rsa", rsa_v), ("leep", leep), ("checkpoint_index", float(step))):
        rows.append(dict(source=src, arch="cnn", step=step, target="t", setting="full",
                         probe="train", layer="pool2", score=score,
                         oriented=value, log_auc=truth))  # fmt: skip
  j = pd.DataFrame(rows)
  keys = ["source", "arch", "step"]
  corr = breakdown.all_breakdowns(j, None, n_boot=20, keep_seeds=False)
  corr = corr[corr["breakdown"] == "all"].set_index("score")
  vs = versus.versus_baseline(j, model_keys=keys, keep_seeds=False, n_boot=20).set_index("score")
  assert corr.loc["rsa", "n"] == 13  # 12 trained + one shared step 0
  assert corr.loc["leep", "n"] == 14  # the 5-class head is its own model for LEEP
  for score in ("rsa", "leep"):
    assert vs.loc[score, "n"] == corr.loc[score, "n"], score


def _positions_joint(rng, within_signal: float):
  rows = []
  for src in range(8):
    quality = rng.normal()
    for pos, step in enumerate((0, 30, 300, 3000)):
      truth = 0.2 * pos + 0.05 * quality + rng.normal(scale=0.01)
      score = 1.0 * pos + within_signal * quality + rng.normal(scale=0.3)
      rows.append(dict(source=f"s{src}", arch="cnn", step=step, ckpt_index=pos, target="t",
                       setting="full", probe="train", layer="pool2", score="rsa",
                       oriented=score, log_auc=truth))  # fmt: skip
  return pd.DataFrame(rows)


def test_within_position_rho_and_its_permutation_test_on_a_hand_built_zoo():
  rng = np.random.default_rng(1)
  keys = ["source", "arch", "step"]
  informed = _positions_joint(rng, within_signal=2.0)
  r = versus.within_position(informed, model_keys=keys, n_perm=400).iloc[0]
  # Independent reference: scipy's ρ within each position, weighted by the 8 models of each.
  ref = np.mean([
    sps.spearmanr(g["oriented"], g["log_auc"]).statistic for _, g in informed.groupby("ckpt_index")
  ])  # fmt: skip
  assert r["rho_within"] == pytest.approx(ref, abs=1e-12)
  assert r["n_positions"] == 4 and r["p_within"] < 0.01 and r["partial_rho"] > 0.5
  # The unflattering case: a score that only knows the position is strongly correlated over all
  # models but explains nothing within a position.
  blind = _positions_joint(rng, within_signal=0.0)
  assert sps.spearmanr(blind["oriented"], blind["log_auc"]).statistic > 0.8
  b = versus.within_position(blind, model_keys=keys, n_perm=400).iloc[0]
  assert b["p_within"] > 0.05 and abs(b["partial_rho"]) < 0.4


def test_permutation_hits_equal_the_per_permutation_scipy_loop_with_ties_and_a_constant_position():
  # Reference: the loop the vectorised count replaced (scipy's ρ per position, one permutation
  # at a time), on the same seed. Ties (rounded values), a constant position (ρ undefined) and
  # positions of different sizes.
  rng = np.random.default_rng(7)
  sizes = (5, 8, 4, 6)
  x = np.round(rng.normal(size=sum(sizes)), 1)
  y = x + rng.normal(scale=1.5, size=x.size)
  bounds = np.cumsum((0,) + sizes)
  strata = [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
  x[strata[2]] = 3.0  # constant score in one position
  observed = versus._pooled_within(x, y, strata)

  def loop_hits(seed):
    r, hits = np.random.default_rng(seed), 0
    for _ in range(500):
      xp = x.copy()
      for i in strata:
        xp[i] = x[r.permutation(i)]
      hits += versus._pooled_within(xp, y, strata) >= observed - 1e-12
    return hits

  for seed in (0, 1):
    got = versus._permutation_hits(x, y, strata, observed, 500, np.random.default_rng(seed))
    assert got == loop_hits(seed)
  assert 0 < got < 500


def test_partial_spearman_equals_the_residual_correlation_formula():
  rng = np.random.default_rng(2)
  z = rng.normal(size=30)
  x, y = z + rng.normal(size=30), z + rng.normal(size=30)
  rx, ry, rz = (sps.rankdata(v) for v in (x, y, z))
  r_xy, r_xz, r_yz = (np.corrcoef(a, b)[0, 1] for a, b in ((rx, ry), (rx, rz), (ry, rz)))
  ref = (r_xy - r_xz * r_yz) / np.sqrt((1 - r_xz**2) * (1 - r_yz**2))
  assert versus.partial_spearman(x, y, z) == pytest.approx(ref, abs=1e-12)


def test_holm_adjustment_by_its_definition():
  p = np.array([0.01, 0.04, np.nan, 0.03, 0.5])
  # Sorted 0.01, 0.03, 0.04, 0.5 (m = 4): 4·0.01, max(that, 3·0.03), max(.., 2·0.04), 1·0.5.
  want = np.array([0.04, 0.09, np.nan, 0.09, 0.5])
  np.testing.assert_allclose(versus.holm(p), want, rtol=0, atol=1e-15)
  assert versus.holm([0.6, 0.7])[0] == 1.0  # capped at 1


def test_within_position_counts_a_source_once_whatever_its_seeds():
  # Two seeds that are exact copies must not double the evidence: a permutation that treated
  # them as two models would see 16 "independent" models per position.
  rng = np.random.default_rng(3)
  one = _positions_joint(rng, within_signal=0.5)
  two = pd.concat([one.assign(seed=0), one.assign(seed=1)], ignore_index=True)
  a = versus.within_position(one, model_keys=["source", "arch", "step"], n_perm=300, seed=4)
  b = versus.within_position(two, model_keys=["source", "arch", "seed", "step"], n_perm=300, seed=4)
  cols = ["n", "n_within", "rho_within", "p_within", "partial_rho", "p_holm"]
  pd.testing.assert_frame_equal(a[cols], b[cols])


def test_within_position_sentences_name_only_holm_significant_scores():
  from types import SimpleNamespace

  from jtransfer.analysis import report

  rng = np.random.default_rng(5)
  informed = _positions_joint(rng, within_signal=2.0)
  blind = _positions_joint(rng, within_signal=0.0).assign(score="two_nn")
  w = versus.within_position(
    pd.concat([informed, blind]), model_keys=["source", "arch", "step"], n_perm=400
  )
  (text,) = report.within_position_sentences(SimpleNamespace(within_position=w, targets=["t"]))
  assert "32 models in 4 positions" in text and "ranked beyond pre-training length by rsa" in text
  assert "two_nn" not in text
  (none,) = report.within_position_sentences(
    SimpleNamespace(within_position=w[w["score"] == "two_nn"], targets=["t"])
  )
  assert "no score ranks them" in none and "best: two_nn" in none


def test_answer_cells_give_no_star_without_a_cluster_interval():
  from jtransfer.analysis import report

  base = dict(spearman=0.9, significant=True, wrong_direction=False, spearman_ci_lo=0.6,
              spearman_ci_hi=0.97, flag="")  # fmt: skip
  few = pd.Series(dict(base, cluster_ci_lo=np.nan, cluster_ci_hi=np.nan, n_clusters=4))
  assert report._answer_cell(few) == "0.90 (no interval: 4 clusters)"
  many = pd.Series(dict(base, cluster_ci_lo=0.41, cluster_ci_hi=0.95, n_clusters=17))
  assert report._answer_cell(many) == "0.90* [0.41, 0.95]"
