"""Selection / regret, baselines, breakdowns, seeds, penalty, stability, transfer matrix — on
small hand-made frames with hand-computed answers."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from jtransfer.analysis import breakdown, penalty, selection, signs, stability, tables
from jtransfer.analysis import stats as sa
from jtransfer.analysis import transfer_matrix as tm

CTX = dict(target="mnist", setting="full", probe="train", layer="pool2")


def _joint(score, oriented, truth, sources=None, **ctx):
  n = len(oriented)
  return pd.DataFrame(
    dict(
      {**CTX, **ctx},
      score=score,
      source=sources or [f"s{i}" for i in range(n)],
      arch="cnn",
      step=10,
      oriented=np.asarray(oriented, float),
      value=np.asarray(oriented, float),
      log_auc=np.asarray(truth, float),
    )
  )


def test_regret_pick_rank_and_top3_on_a_hand_case():
  j = _joint("rsa", [3, 1, 2, 0], [0.5, 0.9, 0.7, 0.6])
  r = selection.select(j, model_keys=["source", "arch", "step"]).iloc[0]
  assert r["pick"] == "s0/cnn/10" and r["best"] == "s1/cnn/10"
  assert r["regret"] == pytest.approx(0.4)
  assert r["pick_rank"] == 4  # the pick is the worst model by log-AUC
  assert bool(r["top3_hit"])  # s1 is third by score
  j = _joint("rsa", [3, 0, 2, 1], [0.5, 0.9, 0.7, 0.6])
  assert not selection.select(j, model_keys=["source"]).iloc[0]["top3_hit"]


def test_tied_top_scores_give_the_expected_regret():
  j = _joint("rsa", [2, 2, 0, 1], [0.5, 0.9, 0.6, 0.7])
  r = selection.select(j, model_keys=["source"]).iloc[0]
  assert r["n_tied"] == 2
  assert r["regret"] == pytest.approx(0.9 - (0.5 + 0.9) / 2)
  assert r["pick_rank"] == pytest.approx((4 + 1) / 2)


def test_a_constant_score_names_no_pick_and_hits_the_top_k_at_chance():
  # The unflattering case: 44 tied models used to give top3_hit = True and a named pick.
  n = 44
  j = _joint("h_score", np.full(n, 9.0), np.linspace(0.1, 0.9, n))
  r = selection.select(j, model_keys=["source"]).iloc[0]
  assert r["pick"] == f"tie of {n}" and r["n_tied"] == n
  assert r["top1_hit"] == pytest.approx(1 / n)
  assert r["top3_hit"] == pytest.approx(3 / n)
  assert np.isnan(r["wtau"])


def _top_k_by_enumeration(score, is_best, k):
  """Every tie-breaking order equally likely: the fraction of permutations with a hit."""
  import itertools

  hits = total = 0
  for perm in itertools.permutations(range(len(score))):
    # A permutation breaks ties: sort by (score desc, position in perm).
    pos = {m: p for p, m in enumerate(perm)}
    order = sorted(range(len(score)), key=lambda m: (-score[m], pos[m]))
    hits += any(is_best[m] for m in order[:k])
    total += 1
  return hits / total


@pytest.mark.parametrize(
  "score,best",
  [
    ([2, 2, 2, 1, 0, 0], [0, 0, 1, 0, 0, 0]),
    ([1, 1, 1, 1, 1, 0], [1, 1, 0, 0, 0, 0]),
    ([3, 2, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1]),
    ([3, 2, 1, 0, 0, 0], [0, 0, 0, 1, 0, 0]),
    ([0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0]),
  ],
)
def test_expected_top_k_equals_enumerating_every_tie_break(score, best):
  score, best = np.asarray(score, float), np.asarray(best, bool)
  for k in (1, 3):
    assert selection.expected_top_k_hit(score, best, k) == pytest.approx(
      _top_k_by_enumeration(score, best, k)
    )


def test_weighted_tau_equals_the_hyperbolic_pair_sum():
  rng = np.random.default_rng(3)
  truth, score = rng.normal(size=12), rng.normal(size=12)
  # Weights 1/(r + 1), r = 0 for the best model by truth; a pair weighs w_i + w_j.
  r = np.argsort(np.argsort(-truth))
  w = 1.0 / (r + 1)
  num = den = 0.0
  for i in range(12):
    for j in range(i + 1, 12):
      num += (w[i] + w[j]) * np.sign((truth[i] - truth[j]) * (score[i] - score[j]))
      den += w[i] + w[j]
  assert sa.weighted_tau(score, truth) == pytest.approx(num / den, rel=1e-12)
  # Errors at the top cost more than at the bottom: swap the best two vs the worst two.
  base = np.arange(10.0)
  top_swapped, bottom_swapped = base.copy(), base.copy()
  top_swapped[[8, 9]] = top_swapped[[9, 8]]
  bottom_swapped[[0, 1]] = bottom_swapped[[1, 0]]
  assert sa.weighted_tau(top_swapped, base) < sa.weighted_tau(bottom_swapped, base)


def test_orient_negates_lower_is_better_and_rejects_unknown_names():
  df = pd.DataFrame(dict(score=["two_nn", "rsa", "mine"], value=[12.0, 0.3, 1.0]))
  out = signs.orient(df, {"mine": False})
  np.testing.assert_allclose(out["oriented"], [-12.0, 0.3, -1.0])
  with pytest.raises(ValueError, match="mine"):
    signs.orient(df)
  assert signs.sign_table()["nc_score_eq2"] is False
  assert signs.sign_table()["checkpoint_index"] is True


def _scores_frame(seeds=(0, 1)):
  rows = []
  for src_i, src in enumerate(["a", "b", "c", "d", "e"]):
    for seed in seeds:
      for step in (0, 1, 3, 10):
        base = dict(source=src, arch="cnn", seed=seed, step=step, target="mnist", probe="train")
        q = src_i * 100 + step + 0.1 * seed
        rows.append(dict(base, layer="pool2", score="two_nn", value=1000 - q))
        rows.append(dict(base, layer="pool2", score="rsa", value=(q * 7) % 13))
        rows.append(dict(base, layer="-", score="param_count", value=1000.0))
  return pd.DataFrame(rows)


def _truth_frame(seeds=(0, 1)):
  rows = []
  for src_i, src in enumerate(["a", "b", "c", "d", "e"]):
    for seed in seeds:
      for step in (0, 1, 3, 10):
        rows.append(dict(source=src, arch="cnn", seed=seed, step=step, target="mnist",
                         setting="full", log_auc=src_i + step / 100 + seed / 1000))  # fmt: skip
  return pd.DataFrame(rows)


def test_prepare_spreads_layerless_baselines_and_derives_checkpoint_index():
  s = tables.prepare_scores(_scores_frame())
  pc = s[s["score"] == "param_count"]
  assert set(pc["layer"]) == {"pool2"} and len(pc) == 40
  ci = s[s["score"] == "checkpoint_index"].set_index(["source", "seed", "step", "layer"])
  assert ci.loc[("a", 0, 3, "pool2"), "value"] == 2.0  # steps 0, 1, 3, 10 -> index 0..3
  assert ci.loc[("e", 1, 10, "pool2"), "oriented"] == 3.0


def test_breakdowns_seeds_averaged_or_kept():
  s = tables.prepare_scores(_scores_frame())
  truth = _truth_frame()
  avg = tables.joint(s, truth, keep_seeds=False, truth_cols=["log_auc"])
  kept = tables.joint(s, truth, keep_seeds=True, truth_cols=["log_auc"])
  c_avg = breakdown.correlation_table(avg, n_boot=0).set_index("score")
  c_kept = breakdown.correlation_table(kept, n_boot=0).set_index("score")
  assert c_avg.loc["two_nn", "n"] == 20 and c_kept.loc["two_nn", "n"] == 40
  # two_nn = 1000 - quality (lower is better) ranks every model as the truth does.
  assert c_avg.loc["two_nn", "spearman"] == pytest.approx(1.0)
  # rsa: compare with scipy on the seed-averaged values directly.
  g = avg[avg["score"] == "rsa"]
  assert c_avg.loc["rsa", "spearman"] == pytest.approx(
    sps.spearmanr(g["value"], g["log_auc"]).statistic
  )
  per_source = breakdown.correlation_table(avg, by="source", n_boot=0)
  two_nn = per_source[per_source["score"] == "two_nn"]
  assert sorted(two_nn["group"]) == ["a", "b", "c", "d", "e"] and set(two_nn["n"]) == {4}
  per_step = breakdown.correlation_table(avg, by="step", n_boot=0)
  assert set(per_step.loc[per_step["score"] == "rsa", "n"]) == {5}
  # checkpoint_index is constant within one step: undefined there, flagged.
  ci = per_step[per_step["score"] == "checkpoint_index"]
  assert set(ci["flag"]) == {"constant score"}


def test_compare_to_baselines_flags():
  c = pd.DataFrame(
    dict(breakdown="all", **CTX, group="all",
         score=["rsa", "logme", "checkpoint_index", "knn_accuracy", "param_count"],
         spearman=[0.8, 0.5, 0.6, 0.7, np.nan])
  )  # fmt: skip
  out = selection.compare_to_baselines(c, metric="spearman").set_index("score")
  assert out.loc["rsa", "beats_checkpoint_index"] and out.loc["rsa", "beats_knn_accuracy"]
  assert not out.loc["logme", "beats_checkpoint_index"]
  assert out.loc["logme", "spearman_knn_accuracy"] == 0.7
  assert pd.isna(out.loc["rsa", "beats_param_count"])
  assert set(out.index) == {"rsa", "logme"}


def test_param_count_penalty_by_hand():
  rows = []
  for src, val, pc in (("small", 1.0, 1e5), ("mid", 2.0, 1e6), ("big", 3.0, 1e7)):
    base = dict(source=src, arch=src, seed=0, step=1, target="t", probe="train", layer="l")
    rows += [dict(base, score="rsa", value=val), dict(base, score="param_count", value=pc)]
  s = tables.prepare_scores(pd.DataFrame(rows))
  out = penalty.param_penalised(s, 2.0).set_index("source")
  z = np.array([-1.0, 0.0, 1.0]) / np.sqrt(2 / 3)  # z-scores of (1, 2, 3) and of log10 spaced pc
  expect = z - 2.0 * z
  np.testing.assert_allclose(out.loc[["small", "mid", "big"], "oriented"], expect)
  assert set(out["score"]) == {"rsa-pc2"}
  assert penalty.param_penalised(s, 0.0).empty


def test_model_ranking_and_winner_stability():
  rows = []
  for layer, vals in (("l1", [1, 2, 3, 4]), ("l2", [2, 4, 6, 8]), ("l3", [4, 3, 2, 1])):
    for i, v in enumerate(vals):
      rows.append(dict(source=f"s{i}", target="t", probe="p", layer=layer, score="x", oriented=v))
  out = stability.model_ranking_stability(pd.DataFrame(rows), model_keys=["source"])
  r = out[out["axis"] == "layer"].iloc[0]
  # Pairs: (l1,l2) tau 1, (l1,l3) -1, (l2,l3) -1 -> mean -1/3; top-1 agrees in 1 of 3.
  assert r["pairs"] == 3 and r["mean_kendall"] == pytest.approx(-1 / 3)
  assert r["top1_agreement"] == pytest.approx(1 / 3)

  corr = pd.DataFrame(
    dict(target="t", setting="full", probe="p", layer=["l1"] * 3 + ["l2"] * 3,
         score=["a", "b", "c"] * 2, spearman=[0.9, 0.5, 0.1, 0.2, 0.8, 0.1])
  )  # fmt: skip
  w = stability.winner_stability(corr).set_index("axis")
  assert w.loc["layer", "winner_flip_rate"] == 1.0
  assert w.loc["layer", "mean_kendall_of_score_order"] == pytest.approx(
    sps.kendalltau([0.9, 0.5, 0.1], [0.2, 0.8, 0.1]).statistic
  )
  rs = stability.rho_stability(corr).set_index(["axis", "score"])
  assert rs.loc[("layer", "a"), "mean_range"] == pytest.approx(0.7)


def test_transfer_matrix_and_asymmetry_by_hand():
  acc = {("A", "A"): [0.9, 0.85], ("B", "B"): [0.8, 0.78], ("A", "B"): [0.79, 0.70],
         ("B", "A"): [0.88, 0.86]}  # fmt: skip
  rows = []
  for (src, tgt), vals in acc.items():
    for frozen, v in enumerate(vals):
      for step, vv in ((1, 0.0), (10, v)):  # only the longest pre-training counts
        rows.append(dict(source=src, arch="cnn", seed=0, step=step, target=tgt,
                         setting="full" if frozen == 0 else f"frozen={frozen}",
                         frozen=float(frozen), final_acc=vv))  # fmt: skip
  m = tm.transfer_matrix(pd.DataFrame(rows))
  assert len(m) == 8
  assert m.set_index(["source", "target", "frozen"]).loc[("A", "B", 1.0), "final_acc"] == 0.70
  a = tm.asymmetry(m).set_index("frozen")
  # frozen 1: drop A->B = .70 - .78 = -.08, drop B->A = .86 - .85 = .01 -> asymmetry -.09
  assert a.loc[1.0, "drop_a_to_b"] == pytest.approx(-0.08)
  assert a.loc[1.0, "drop_b_to_a"] == pytest.approx(0.01)
  assert a.loc[1.0, "asymmetry"] == pytest.approx(-0.09)
  assert a.loc[0.0, "asymmetry"] == pytest.approx((0.79 - 0.8) - (0.88 - 0.9))


def test_asymmetry_without_pairs_keeps_its_header(tmp_path):
  """A study with no A->B / B->A pair still writes analysis_asymmetry.csv with named columns."""
  rows = [dict(source="A", arch="cnn", seed=0, step=10, target="B", setting="full", frozen=0.0,
               final_acc=0.7)]  # fmt: skip
  a = tm.asymmetry(tm.transfer_matrix(pd.DataFrame(rows)))
  assert a.empty
  a.to_csv(tmp_path / "a.csv", index=False)
  header = (tmp_path / "a.csv").read_text().splitlines()[0].split(",")
  assert header[:3] == ["a", "b", "frozen"] and header[-1] == "asymmetry"


def test_proportional_scores_are_named_as_one_ranking():
  rng = np.random.default_rng(0)
  base = rng.normal(size=8)
  frames = [
    _joint("nc_score", 4.5 * base, base),
    _joint("nc_score_eq2", base, base),
    _joint("rsa", base + rng.normal(scale=0.5, size=8), base),
    _joint("two_nn", base**3, base, layer="conv1"),  # monotone in another layer only
  ]
  groups = tables.same_rankings(pd.concat(frames, ignore_index=True))
  assert groups == [("nc_score", "nc_score_eq2")]
