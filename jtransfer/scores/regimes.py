"""Where a score stops measuring the features: its value is then fixed by the shapes alone
(H-score) or by nothing but the basis a decomposition happens to pick (PARC).

The kernels still return the closed form there (the public functions document it); a job that
ranks models must not rank on it, so it stores the value as undefined with `undefined_reason`.
"""


def undefined_reason(name: str, *, n: int, d: int, options=None) -> str:
  """Why score `name` (with its `options`) says nothing about N samples of dimension D ("" when
  it does)."""
  if name == "h_score" and n - 1 <= d:
    # The centred features span every direction orthogonal to 1: H = trace(P) − 1 = C − 1.
    return (
      f"undefined: N - 1 = {n - 1} <= D = {d}, where the H-score is C - 1 whatever the "
      "features (h_score_shrinkage is defined there)"
    )
  if name == "parc":
    k = min(dict(options or {}).get("pca_dim", 32), d)
    if n - 1 <= k:
      # The standardised components span every direction orthogonal to 1 (whitened data):
      # Σ_d q_id q_jd = N δ_ij − 1, only the components' signs and basis move the RDM.
      return (
        f"undefined: N - 1 = {n - 1} <= min(pca_dim, D) = {k}, where PARC's standardised PCA "
        "coordinates are the whitened data, the same for any features up to a rotation"
      )
  return ""
