"""Store → tables, figures and report: `analyse` works on DataFrames, `run` reads a workdir."""

import dataclasses
import pathlib
import sqlite3

import pandas as pd

from jtransfer.analysis import (
  breakdown,
  dependence,
  figures,
  influence,
  penalty,
  power,
  render,
  selection,
  stability,
  tables,
  taps,
  versus,
)
from jtransfer.analysis import pooled as pool_lib
from jtransfer.analysis import transfer_matrix as tm
from jtransfer.store import workdir as workdir_files

TABLES = ("checkpoints", "scores", "finetune")


@dataclasses.dataclass
class Analysis:
  """Everything the report shows; every DataFrame is also written as CSV."""

  keep_seeds: bool
  n_boot: int
  param_penalty: float
  setting: str
  probe: str
  focus_layer: str
  layers: list
  targets: list
  settings: list
  probes: list
  model_keys: list
  overrides: dict
  checkpoints: pd.DataFrame
  scores: pd.DataFrame
  ground_truth: pd.DataFrame
  curves: pd.DataFrame
  joint: pd.DataFrame
  correlations: pd.DataFrame
  baselines: pd.DataFrame
  selection: pd.DataFrame
  selection_baselines: pd.DataFrame
  stability_models: pd.DataFrame
  stability_rho: pd.DataFrame
  stability_winner: pd.DataFrame
  transfer_matrix: pd.DataFrame
  asymmetry: pd.DataFrame
  versus_checkpoint: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
  power_rho: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
  power_seeds: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
  source_gaps: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
  within_position: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
  leave_one_source_out: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
  notes: list = dataclasses.field(default_factory=list)
  figures: dict = dataclasses.field(default_factory=dict)


def load_tables(workdir) -> dict[str, pd.DataFrame]:
  """The three tables through `jtransfer.store.results.load` (else straight from results.sqlite)."""
  workdir = pathlib.Path(workdir)
  try:
    from jtransfer.store.results import load  # noqa: PLC0415 (built by the results-store module)
  except ImportError:
    load = None
  out = {}
  if load is not None:
    for name in TABLES:
      out[name] = load(workdir, name)
    return out
  path = workdir / "results.sqlite"
  if not path.exists():
    raise ValueError(f"no results store at {path}")
  with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
    have = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    for name in TABLES:
      out[name] = (
        pd.read_sql_query(f"SELECT * FROM {name}", con) if name in have else pd.DataFrame()
      )
  return out


def _pick(options, preferred, what):
  options = list(options)
  if preferred is not None:
    if preferred not in options:
      raise ValueError(f"{what} {preferred!r} not in the store; have {options}")
    return preferred
  return options[0]


def _prepare_scores(scores, overrides: dict, param_penalty: float, notes: list) -> pd.DataFrame:
  """The oriented scores (+ the parameter-penalised ones, whose signs join `overrides`)."""
  prepared = tables.prepare_scores(scores, overrides=overrides)
  pooled = pool_lib.pool_scores(prepared)
  if not pooled.empty:
    prepared = pd.concat([prepared, pooled], ignore_index=True)
    notes.extend(pool_lib.note(pooled))
  notes.extend(tables.undefined_notes(scores))
  if prepared.attrs.get("dropped_non_finite"):
    notes.append(f"{prepared.attrs['dropped_non_finite']} non-finite score values were dropped.")
  if "checkpoint_index" not in set(scores["score"]):
    notes.append("checkpoint_index was not stored; derived from the rank of the pre-train step.")
  for group in tables.same_rankings(prepared):
    notes.append(
      f"{' and '.join(group)} rank every model identically wherever both are stored: one "
      "ranking under several names (every correlation and pick of one is the other's)."
    )
  if param_penalty:
    pen = penalty.param_penalised(prepared, param_penalty)
    if pen.empty:
      notes.append("parameter-count penalty requested but no param_count rows are stored.")
    else:
      overrides.update({name: True for name in set(pen["score"])})
      prepared = pd.concat([prepared, pen], ignore_index=True)
  return prepared


def _ground_truth(finetune, notes: list) -> tuple[pd.DataFrame, pd.DataFrame]:
  """(complete per-model ground truth, per-ft-step curves)."""
  gt, cur = tables.ground_truth_tables(finetune)
  all_gt = tables.gt_lib.ground_truth(finetune)
  if len(all_gt) > len(gt):
    notes.append(f"{len(all_gt) - len(gt)} incomplete fine-tune curves were left out.")
  if gt.empty:
    raise ValueError("no complete fine-tune curve (>= 2 fine-tune steps) in the finetune table")
  return gt, cur


def _context(joint, prepared, setting, probe, focus_layer) -> dict:
  """The run's settings, probes and layers, and the main setting, probe and focus layer."""
  settings = sorted(set(joint["setting"]), key=lambda s: (s != "full", s))
  probes = sorted(set(joint["probe"]), key=lambda p: (p != "train", p))
  layers = taps.layer_order(prepared["layer"], prepared["arch"])
  if focus_layer is None:
    focus_layer = taps.default_focus_layer(prepared["arch"], layers)
  elif focus_layer not in layers:
    raise ValueError(f"focus layer {focus_layer!r} not in the store; have {layers}")
  return dict(
    settings=settings,
    probes=probes,
    layers=layers,
    setting=_pick(settings, setting, "setting"),
    probe=_pick(probes, probe, "probe"),
    focus_layer=focus_layer,
  )


def _correlations(joint, joint_ft, ctx, *, detail_all_settings, notes, **kwargs):
  """Every breakdown's correlations; the undefined ones counted in `notes`."""
  corr = breakdown.all_breakdowns(
    joint,
    joint_ft,
    settings_for_detail=None if detail_all_settings else [ctx["setting"]],
    probes_for_detail=None if detail_all_settings else [ctx["probe"]],
    **kwargs,
  )
  flagged = corr[corr["flag"] != ""]
  if not flagged.empty:
    counts = flagged.groupby(["breakdown", "flag"]).size()
    notes.append(
      "correlations left undefined (NaN): "
      + "; ".join(f"{b}: {n} × {f}" for (b, f), n in counts.items())
    )
  return corr


def _selection(joint, main, keys, notes) -> tuple[pd.DataFrame, pd.DataFrame]:
  """(top-1 selection over all models and per checkpoint, its comparison with the baselines)."""
  pooled = dependence.merge_shared_init(joint, keys)
  if shared := dependence.shared_summary(pooled):
    notes.append(shared)
  sel = pd.concat(
    [
      selection.select(pooled, model_keys=keys).assign(breakdown="all"),
      selection.select(main, model_keys=keys, by="ckpt_index").assign(breakdown="per_checkpoint"),
    ],
    ignore_index=True,
  )
  return sel, selection.compare_to_baselines(sel, metric="regret", better="lower")


def _stability(prepared, corr, keys) -> dict:
  per_model = prepared.groupby([*keys, "target", "probe", "layer", "score"])["oriented"].mean()
  corr_all = corr[corr["breakdown"] == "all"]
  return dict(
    stability_models=stability.model_ranking_stability(per_model.reset_index(), model_keys=keys),
    stability_rho=stability.rho_stability(corr_all),
    stability_winner=stability.winner_stability(corr_all),
  )


def analyse(
  scores: pd.DataFrame,
  finetune: pd.DataFrame,
  checkpoints: pd.DataFrame | None = None,
  *,
  detail_all_settings: bool = False,
  **settings,
) -> Analysis:
  """All statistics from the three tables (see the module docs of each step).

  settings: fields of `EvaluateConfig` (keep_seeds, n_boot, seed, param_penalty,
  higher_is_better, setting, probe, focus_layer), whose defaults are the only ones; the focus
  layer defaults to the tap the classifier head reads (`taps.default_focus_layer`)."""
  c = EvaluateConfig(**settings)
  keep_seeds, n_boot, seed, param_penalty = c.keep_seeds, c.n_boot, c.seed, c.param_penalty
  higher_is_better, setting, probe, focus_layer = (
    c.higher_is_better,
    c.setting,
    c.probe,
    c.focus_layer,
  )
  if scores is None or scores.empty:
    raise ValueError("the scores table is empty: run the score job first")
  if finetune is None or finetune.empty:
    raise ValueError("the finetune table is empty: run the fine-tune job first")
  notes, overrides = [], dict(higher_is_better or {})
  prepared = _prepare_scores(scores, overrides, param_penalty, notes)
  gt, cur = _ground_truth(finetune, notes)
  keys = tables.model_keys(keep_seeds)
  joint = tables.joint(
    prepared, gt, keep_seeds=keep_seeds, truth_cols=["log_auc", "final_acc", "best_acc"]
  )
  if joint.empty:
    raise ValueError("no model has both scores and fine-tune results (check source/arch/seed/step)")
  joint_ft = tables.joint(
    prepared, cur[cur["source"] != "scratch"], keep_seeds=keep_seeds, truth_cols=["test_acc"]
  )
  ctx = _context(joint, prepared, setting, probe, focus_layer)
  stats = dict(n_boot=n_boot, seed=seed, overrides=overrides, keep_seeds=keep_seeds)
  corr = _correlations(joint, joint_ft, ctx, detail_all_settings=detail_all_settings,
                       notes=notes, **stats)  # fmt: skip
  main = joint[(joint["setting"] == ctx["setting"]) & (joint["probe"] == ctx["probe"])]
  sel, sel_base = _selection(joint, main, keys, notes)
  matrix = tm.transfer_matrix(gt)
  return Analysis(
    keep_seeds=keep_seeds,
    n_boot=n_boot,
    param_penalty=param_penalty,
    **ctx,
    targets=sorted(set(joint["target"])),
    model_keys=keys,
    overrides=overrides,
    checkpoints=checkpoints if checkpoints is not None else pd.DataFrame(),
    scores=prepared,
    ground_truth=gt,
    curves=cur,
    joint=joint,
    correlations=corr,
    baselines=selection.compare_to_baselines(corr, metric="spearman"),
    selection=sel,
    selection_baselines=sel_base,
    **_stability(prepared, corr, keys),
    transfer_matrix=matrix,
    asymmetry=tm.asymmetry(matrix),
    **_conclusions(
      main,
      corr,
      gt,
      keys=keys,
      keep_seeds=keep_seeds,
      n_boot=n_boot,
      seed=seed,
      context=(ctx["setting"], ctx["probe"], ctx["focus_layer"]),
    ),  # fmt: skip
    notes=notes,
  )


def _conclusions(main, corr, gt, *, keys, keep_seeds, context, n_boot, seed) -> dict:
  """The comparison with checkpoint_index and the power tables, on the main setting and probe
  (`main`: the joint restricted to them; `corr`: every correlation; context: setting, probe,
  focus layer)."""
  setting, probe, focus_layer = context
  vs = versus.versus_baseline(
    main, model_keys=keys, keep_seeds=keep_seeds, n_boot=n_boot, seed=seed
  )
  focus_all = corr[
    (corr["breakdown"] == "all")
    & (corr["setting"] == setting)
    & (corr["probe"] == probe)
    & (corr["layer"] == focus_layer)
  ]
  return dict(
    versus_checkpoint=vs,
    power_rho=power.correlation_resolution(
      focus_all, vs[vs["layer"] == focus_layer] if not vs.empty else vs
    ),
    power_seeds=power.seed_spread(gt, setting=setting),
    source_gaps=power.source_gaps(gt, setting=setting),
    leave_one_source_out=influence.leave_one_source_out(
      main[main["layer"] == focus_layer], model_keys=keys
    ),
    within_position=versus.within_position(
      main[main["layer"] == focus_layer],
      model_keys=keys,
      n_perm=versus.WITHIN_PERMUTATIONS,
      seed=seed,
    ),
  )


def make_figures(a: Analysis, out_dir, *, workers: int | None = None) -> dict[str, list]:
  """Every figure of the report, drawn in `workers` processes (`render.render`)."""
  out_dir = pathlib.Path(out_dir)
  common = dict(setting=a.setting, probe=a.probe, overrides=a.overrides)
  tasks = {
    "score_vs_layer": [
      (figures.score_vs_layer, (a.scores, out_dir), dict(layers=a.layers, probe=a.probe,
                                                        overrides=a.overrides))
    ],
    "finetune_curves": [(figures.finetune_curves, (a.curves, out_dir), dict(setting=a.setting))],
    "delta_to_scratch": [(figures.delta_to_scratch, (a.curves, out_dir), dict(setting=a.setting))],
    "rho_per_layer": [
      (figures.rho_per_layer, (a.correlations, out_dir),
       dict(breakdown=name, target=target, layers=a.layers, **common))
      for target in a.targets
      for name in breakdown.BREAKDOWNS
    ],
    "scatter": [
      (figures.scatter, (a.joint, out_dir), dict(target=target, layer=a.focus_layer, **common))
      for target in a.targets
    ],
    "transfer_matrix": [(figures.transfer_heatmap, (a.transfer_matrix, out_dir), {})],
  }  # fmt: skip
  # The rho-per-layer grids are the slowest: first, so the other worker takes the short ones.
  order = sorted(tasks, key=lambda k: k != "rho_per_layer")
  flat = [(kind, task) for kind in order for task in tasks[kind]]
  done = render.render([task for _, task in flat], workers)
  figs: dict[str, list] = {kind: [] for kind in tasks}
  for (kind, _), out in zip(flat, done, strict=True):
    if isinstance(out, list):
      figs[kind].extend(out)
    elif out is not None:
      figs[kind].append(out)
  return figs


CSV_TABLES = (
  "ground_truth",
  "correlations",
  "baselines",
  "selection",
  "selection_baselines",
  "stability_models",
  "stability_rho",
  "stability_winner",
  "transfer_matrix",
  "asymmetry",
  "versus_checkpoint",
  "power_rho",
  "power_seeds",
  "source_gaps",
  "within_position",
  "leave_one_source_out",
)


def write_outputs(
  a: Analysis,
  workdir,
  *,
  with_figures: bool = True,
  parts=(),
  figure_workers: int | None = None,
) -> pathlib.Path:
  """CSV tables, figures (PNG + PDF in figures/), report.md and report.html; returns report.md.
  `parts`: what the studies add to the report (`report.Part`s); `figure_workers`: processes
  drawing the figures (None: `render.default_workers()`)."""
  from jtransfer.analysis import report  # noqa: PLC0415 (report imports run's Analysis)

  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  report.remove(workdir)
  for name in CSV_TABLES:
    with workdir_files.replaced_whole(workdir / f"analysis_{name}.csv") as tmp:
      getattr(a, name).to_csv(tmp, index=False)
  if with_figures:
    a.figures = make_figures(a, workdir / "figures", workers=figure_workers)
  return report.write(a, workdir, parts=parts)


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
  """What the evaluate stage computes from a workdir's store: its schema (types, defaults).

  keep_seeds: one point per seed instead of the seed mean; n_boot: bootstrap resamples of the
  correlations' intervals (0: none); seed: their random seed; param_penalty, higher_is_better,
  setting, probe, focus_layer: see `analyse`; with_figures: also write figures/.
  """

  keep_seeds: bool = False
  n_boot: int = 1000
  seed: int = 0
  param_penalty: float = 0.0
  higher_is_better: dict | None = None
  setting: str | None = None
  probe: str | None = None
  focus_layer: str | None = None
  with_figures: bool = True

  def __post_init__(self):
    if isinstance(self.n_boot, bool) or not isinstance(self.n_boot, int) or self.n_boot < 0:
      raise ValueError(f"n_boot must be an int >= 0, got {self.n_boot!r}")
    if self.higher_is_better is not None:
      object.__setattr__(self, "higher_is_better", dict(self.higher_is_better))


def analyse_tables(tables: dict[str, pd.DataFrame], config: EvaluateConfig) -> Analysis:
  """`analyse` of a workdir's store tables (`load_tables`) with `config`'s settings."""
  settings = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
  return analyse(tables["scores"], tables["finetune"], tables.get("checkpoints"), **settings)


def run(config: EvaluateConfig | None, workdir) -> pathlib.Path:
  """The standard report alone: reads the workdir's store, writes analysis_*.csv, figures/ and
  report.md/.html (`config` None: the defaults). Studies add theirs through
  `jtransfer.studies.write_report`."""
  c = EvaluateConfig() if config is None else config
  a = analyse_tables(load_tables(workdir), c)
  return write_outputs(a, workdir, with_figures=c.with_figures)
