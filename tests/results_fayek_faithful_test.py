"""The published Fayek study (docs/results/fayek_faithful): its drops, slopes and findings
recomputed from the committed seed-level cells with plain NumPy/pandas."""

import pathlib

import numpy as np
import pandas as pd
import pytest

D = pathlib.Path(__file__).resolve().parents[1] / "docs" / "results" / "fayek_faithful"
RELATED = ("mnist_split_0_4", "mnist_split_5_9")
UNRELATED = ("fashion_mnist", "mnist")


@pytest.fixture(scope="module")
def means():
  t = pd.read_csv(D / "per_seed.csv")
  t = t[t["value"] == "final_acc"]
  return t.groupby(["source", "target", "frozen"])["y"].mean()


def test_matrix_is_the_seed_mean(means):
  m = pd.read_csv(D / "gradual_matrix.csv").set_index(["source", "target", "frozen"])
  joined = m.join(means.rename("recomputed"), how="inner")
  assert len(joined) == len(means) >= 4 * 2 * 4  # 4 sources x 2 targets x l = 0..3
  np.testing.assert_allclose(joined["final_acc"], joined["recomputed"], atol=1e-12)


def test_drops_and_slopes_recomputed(means):
  drops = pd.read_csv(D / "gradual_drops.csv")
  drops = drops[(drops["value"] == "final_acc") & (drops["kind"] == "drop")]
  slopes = pd.read_csv(D / "gradual_slopes.csv")
  slopes = slopes[(slopes["value"] == "final_acc") & (slopes["kind"] == "slope")]
  assert len(slopes) == 4
  for r in slopes.itertuples():
    ls = np.array(sorted(drops.loc[(drops["a"] == r.a) & (drops["b"] == r.b), "frozen"]))
    y = np.array([means[(r.a, r.b, f)] - means[(r.b, r.b, f)] for f in ls])
    got = drops[(drops["a"] == r.a) & (drops["b"] == r.b)].sort_values("frozen")["estimate"]
    np.testing.assert_allclose(got, y, atol=1e-12)
    np.testing.assert_allclose(r.estimate, np.polyfit(ls, y, 1)[0], atol=1e-12)
    assert r.lo <= r.estimate <= r.hi


def _seeds():
  t = pd.read_csv(D / "per_seed.csv")
  t = t[t["value"] == "final_acc"]
  return {k: g.sort_values("seed")["y"].to_numpy() for k, g in t.groupby(["source", "target",
                                                                          "frozen"])}  # fmt: skip


def _pair_drop(m, pair, f):
  a, b = pair
  return 0.5 * ((m(a, b, f) - m(b, b, f)) + (m(b, a, f) - m(a, a, f)))


def test_relatedness_row_recomputed():
  """Point estimate exactly, the interval by an independent resampling (another RNG stream)."""
  cells = _seeds()
  top = max(f for _, _, f in cells)
  stat = lambda m: _pair_drop(m, RELATED, top) - _pair_drop(m, UNRELATED, top)  # noqa: E731
  point = stat(lambda s, t, f: cells[(s, t, f)].mean())
  rng = np.random.default_rng(12345)
  sources = sorted({s for s, _, _ in cells})
  n = {s: len(cells[(s, s, top)]) for s in sources}
  boot = []
  for _ in range(2_000):
    idx = {s: rng.choice(n[s], n[s]) for s in sources}
    boot.append(stat(lambda s, t, f, idx=idx: cells[(s, t, f)][idx[s]].mean()))
  lo, hi = np.percentile(boot, [2.5, 97.5])
  row = pd.read_csv(D / "findings.csv")
  row = row[row["claim"].str.contains("relatedness")].iloc[0]
  assert f"difference {point:+.4f}" in row["jtransfer"]
  text = row["jtransfer"].rsplit("[", 1)[1].rstrip("]")
  pub_lo, pub_hi = (float(x) for x in text.split(","))
  width = hi - lo
  assert abs(pub_lo - lo) < 0.15 * width and abs(pub_hi - hi) < 0.15 * width
  decided = pub_lo > 0 or pub_hi < 0
  assert row["decided"] == ("yes" if decided else "no")
  assert row["agrees"] == ("yes" if pub_lo > 0 else "no" if pub_hi < 0 else "–")


def test_slope_row_follows_its_intervals():
  slopes = pd.read_csv(D / "gradual_slopes.csv")
  s = slopes[(slopes["value"] == "final_acc") & (slopes["kind"] == "slope")]
  row = pd.read_csv(D / "findings.csv").iloc[0]
  assert "slope" in row["claim"]
  falling, rising = (s["hi"] < 0).sum(), (s["lo"] > 0).sum()
  assert row["decided"] == ("yes" if falling + rising == len(s) else "no")
  for r in s.itertuples():
    assert f"{r.a}→{r.b} {r.estimate:+.4f}" in row["jtransfer"]


def test_findings_markdown_matches_csv():
  t = pd.read_csv(D / "findings.csv", keep_default_na=False)
  md = (D / "findings.md").read_text()
  assert len(t) == 5
  for r in t.itertuples(index=False):
    assert f"| {r.claim} | {r.paper} | {r.jtransfer} | {r.decided} | {r.agrees} |" in md
