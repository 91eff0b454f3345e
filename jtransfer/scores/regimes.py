"""Where a score stops measuring the features: its value is then fixed by the shapes alone.

The kernels still return the closed form there (the public functions document it); a job that
ranks models must not rank on it, so it stores the value as undefined with `undefined_reason`.
"""


def undefined_reason(name: str, *, n: int, d: int) -> str:
  """Why score `name` says nothing about N samples of dimension D ("" when it does)."""
  if name == "h_score" and n - 1 <= d:
    # The centred features span every direction orthogonal to 1: H = trace(P) − 1 = C − 1.
    return (
      f"undefined: N - 1 = {n - 1} <= D = {d}, where the H-score is C - 1 whatever the "
      "features (h_score_shrinkage is defined there)"
    )
  return ""
