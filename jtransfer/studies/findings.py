"""The findings table of a published study (docs/results/<study>/): one row per claim of a paper,
columns claim | paper | jtransfer | decided | agrees | why_not, written as findings.csv and
findings.md."""

import pathlib

import pandas as pd


def range_verdict(lo: float, hi: float, claim_lo: float, claim_hi: float) -> tuple[str, str]:
  """(decided, agrees) for a claim that a statistic with interval [lo, hi] lies in
  [claim_lo, claim_hi]: decided once the interval is inside the claim's range or outside it."""
  if hi < claim_lo or lo > claim_hi:
    return "yes", "no"
  if claim_lo <= lo and hi <= claim_hi:
    return "yes", "yes"
  return "no", "–"


def write(table: pd.DataFrame, d: pathlib.Path, title: str) -> None:
  """findings.csv and findings.md (a markdown table under `# title`) in d."""
  table.to_csv(d / "findings.csv", index=False)
  head = "| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns) + "\n"
  body = "".join(
    "| " + " | ".join(str(x) for x in r) + " |\n" for r in table.itertuples(index=False)
  )
  (d / "findings.md").write_text(f"# {title}\n\n" + head + body)
