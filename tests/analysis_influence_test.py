"""Leave-one-source-out ρ against a direct recomputation."""

import numpy as np
import pandas as pd
import pytest
import scipy.stats as sps

from jtransfer.analysis import dependence, influence


def _joint(rng):
  rows = []
  for s in range(6):
    for step in (0, 100, 1000):
      far = s == 5  # one far source: low score and low truth at every trained step
      q = -3.0 if far and step else rng.normal() + 0.3 * np.log1p(step)
      base = dict(target="t", setting="full", probe="train", layer="pool2", arch="cnn", step=step)
      init = step == 0  # every source's step 0 is the same network (one copy kept)
      truth = 0.5 if init else 0.5 + 0.1 * q + 0.3 * rng.normal()
      rows.append(dict(base, source=f"s{s}", score="rsa", oriented=1.0 if init else q,
                       log_auc=truth))  # fmt: skip
  return pd.DataFrame(rows)


def test_loso_range_equals_recomputing_without_each_source():
  joint = _joint(np.random.default_rng(0))
  r = influence.leave_one_source_out(joint, model_keys=["source", "arch", "step"]).iloc[0]
  # Reference: drop step-0 duplicates by hand (one shared init), then scipy per subset.
  models = pd.concat([joint[joint.step > 0], joint[joint.step == 0].iloc[:1].assign(source="i")])
  rho = lambda m: sps.spearmanr(m.oriented, m.log_auc).statistic  # noqa: E731
  loso = {s: rho(models[models.source != s]) for s in sorted(set(joint.source))}
  assert r["rho"] == pytest.approx(rho(models), abs=1e-12)
  assert r["rho_min"] == pytest.approx(min(loso.values()), abs=1e-12)
  assert r["rho_max"] == pytest.approx(max(loso.values()), abs=1e-12)
  assert r["n_sources"] == 6 and dependence.SHARED_INIT not in (r["without_min"], r["without_max"])
  # The far source carries the pooled ρ: without it ρ is at its lowest.
  assert r["without_min"] == "s5" and r["rho_min"] < r["rho"] - 0.05


def test_loso_needs_three_sources():
  joint = _joint(np.random.default_rng(1))
  two = joint[joint.source.isin(["s0", "s1"])]
  r = influence.leave_one_source_out(two, model_keys=["source", "arch", "step"]).iloc[0]
  assert np.isnan(r["rho_min"]) and r["without_min"] == ""


def test_report_table_shows_the_range_and_the_sources():
  from types import SimpleNamespace

  from jtransfer.analysis import report

  joint = _joint(np.random.default_rng(0))
  t = influence.leave_one_source_out(joint, model_keys=["source", "arch", "step"])
  shown = report.leave_one_out_table(SimpleNamespace(leave_one_source_out=t))
  assert shown.iloc[0]["source out (lowest)"] == "s5"
  assert shown.iloc[0]["lowest ρ, one source out"] == t.iloc[0]["rho_min"]
