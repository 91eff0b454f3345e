"""Pool-relative scores in the report: NCTI and ETran from their stored terms, per (target,
probe, layer), equal to `ncti_pool` / `etran_pool` over exactly the models stored there."""

import numpy as np
import pandas as pd

from jtransfer import scores
from jtransfer.analysis import pipeline, pooled, tables

TERMS = ("ncti_seli", "ncti_ncc", "ncti_vc", "etran_energy", "etran_lda")


def _stored(rng):
  rows = []
  for target in ("mnist", "fashion"):
    for layer in ("pool2", "fc1"):
      for source in ("a", "b"):
        for step in (0, 10, 100):
          model = dict(source=source, arch="cnn", seed=0, step=step)
          for term in TERMS:
            where = dict(target=target, probe="train", layer=layer, score=term)
            rows.append(dict(**model, **where, value=rng.normal()))
  df = pd.DataFrame(rows)
  # one model lacks a term at one layer (not finite): left out of that pool only
  bad = (df.target == "mnist") & (df.layer == "fc1") & (df.source == "b") & (df.step == 100)
  df.loc[bad & (df.score == "ncti_vc"), "value"] = np.nan
  return df


def test_pool_scores_are_the_pool_functions_over_each_target_probe_and_layer():
  df = _stored(np.random.default_rng(0))
  prepared = tables.prepare_scores(df)
  got = pooled.pool_scores(prepared)
  assert set(got["score"]) == {"ncti", "etran"}
  assert list(got.columns) == list(prepared.columns)
  keys = ["source", "arch", "seed", "step"]
  for (target, layer), grp in df.groupby(["target", "layer"]):
    wide = grp.pivot_table(index=keys, columns="score", values="value", dropna=False)
    for name, fn, terms in (("ncti", scores.ncti_pool, TERMS[:3]),
                            ("etran", scores.etran_pool, TERMS[3:])):  # fmt: skip
      sub = wide[list(terms)].dropna()
      want = pd.Series(fn({t: sub[t].to_numpy() for t in terms}), index=sub.index)
      mine = got[(got.score == name) & (got.target == target) & (got.layer == layer)]
      mine = mine.set_index(keys)["value"]
      assert len(mine) == len(sub), (target, layer, name)
      np.testing.assert_allclose(mine.loc[want.index].to_numpy(), want.to_numpy())
  # the model without a finite ncti_vc has no NCTI at mnist/fc1, but has its ETran there
  at = got[(got.target == "mnist") & (got.layer == "fc1") & (got.source == "b") & (got.step == 100)]
  assert set(at["score"]) == {"etran"}
  assert (got["oriented"] == got["value"]).all()  # both ↑


def test_the_report_frame_carries_them_with_a_note():
  df = _stored(np.random.default_rng(1))
  notes = []
  prepared = pipeline._prepare_scores(df, {}, 0.0, notes)
  assert {"ncti", "etran"} <= set(prepared["score"])
  assert any("pool-relative" in n for n in notes)
  # without every term stored, no pool score
  notes = []
  prepared = pipeline._prepare_scores(df[df.score != "etran_lda"], {}, 0.0, notes)
  assert "etran" not in set(prepared["score"]) and "ncti" in set(prepared["score"])
