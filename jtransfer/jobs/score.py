"""The score job: probe every checkpoint of a zoo at every tap and score it.

  score_job.run(score_job.ScoreConfig(target="mnist", probe_per_class=50), "/tmp/zoo")
  results.load("/tmp/zoo", "scores")  # source arch seed step target probe layer score value

Planning (`_plan`) builds the probe once, takes this process's checkpoints, drops those whose
done markers cover the request and cuts the rest into chunks within the memory budget; execution
(`_execute`) restores each chunk stacked, extracts every tap in one pass and scores it.

The probe is the same samples of the target for every checkpoint, normalised as the target is
in fine-tuning, from the train split by default (the thesis' test-split probe leaks test data;
`heldout_probe` adds one from the other split). Scores without a layer (`leep`, `nce` on the
source head, `checkpoint_index`, `param_count`) are stored under layer "-". A corrupt checkpoint
is recorded in `failures` and skipped; a score failing for one checkpoint is stored as NULL with
its error, pinned down by `scores.compute.compute_isolated`. Rows of one (checkpoint, target,
probe) and their done marker, whose extra records the layers, scores and probe covered, are
written in one transaction, so a rerun computes only what is missing.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import pathlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jtransfer import data as datasets
from jtransfer.jobs import context as job
from jtransfer.models import base as models_base
from jtransfer.models import functional
from jtransfer.runtime import extract, stacking
from jtransfer.runtime.progress import progress
from jtransfer.scores import regimes, registry
from jtransfer.scores.compute import compute_isolated, default_chunk_size
from jtransfer.store import checkpointing, results, zoo
from jtransfer.store import workdir as workdir_files

JOB = "score"
NO_LAYER = results.NO_LAYER
HELDOUT = "heldout"
BASELINES = tuple(registry.CHECKPOINT_BASELINES)  # computed here from the checkpoint record
DEFAULT_MEMORY_BUDGET = 2 << 30

log = logging.getLogger("jtransfer.jobs.score")


# -- probe ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Probe:
  """A balanced probe of the target, normalised like the fine-tune job's inputs."""

  name: str
  split: str
  per_class: int
  seed: int
  inputs: np.ndarray
  labels: np.ndarray
  indices: np.ndarray

  def describe(self) -> dict[str, Any]:
    return {"split": self.split, "per_class": self.per_class, "seed": self.seed}


def build_probe(
  target: str, split: str, per_class: int, *, seed: int = 0, data_dir=None, name: str | None = None
) -> Probe:
  """`per_class` samples of every class of `target`'s `split`, normalised (target's values)."""
  inputs, labels, indices = datasets.probe_set(
    target, split, per_class, seed=seed, data_dir=None if data_dir is None else os.fspath(data_dir)
  )
  return Probe(
    name=name or split,
    split=split,
    per_class=int(per_class),
    seed=int(seed),
    inputs=datasets.normalize(target, inputs),
    labels=np.asarray(labels, np.int32),
    indices=np.asarray(indices),
  )


# -- scores ---------------------------------------------------------------------------------


def select_scores(names: Sequence[str] | None) -> tuple[list[str], list[str], list[str]]:
  """(feature scores, source-softmax scores, baselines) for `names` (None: every score
  computed by default, `ScoreSpec.by_default`, and the baselines)."""
  valid = [*registry.REGISTRY, *BASELINES]
  if names is None:
    names = [*(n for n, s in registry.REGISTRY.items() if s.by_default), *BASELINES]
  elif isinstance(names, str):
    names = [names]
  names = list(dict.fromkeys(names))
  unknown = [n for n in names if n not in valid]
  if unknown:
    raise ValueError(f"unknown scores {unknown}; valid scores: {', '.join(valid)}")
  if not names:
    raise ValueError("scores is empty; pass None for every score")
  feature = [n for n in names if n in registry.REGISTRY and registry.get(n).needs_features]
  probs = [n for n in names if n in registry.REGISTRY and registry.get(n).needs_source_probs]
  return feature, probs, [n for n in names if n in BASELINES]


def _softmax(logits: np.ndarray) -> np.ndarray:
  z = logits.astype(np.float64)
  z = np.exp(z - z.max(axis=-1, keepdims=True))
  return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


# -- bookkeeping ----------------------------------------------------------------------------


def done_key(ckpt: zoo.Entry, target: str, probe: str) -> tuple:
  """The done key of one (checkpoint, target, probe): the tuple of what names the unit."""
  return (*ckpt.key, target, probe)


def _covers(marker: dict, layers, names, probe: Probe, key) -> bool:
  """Whether a done marker covers the request; a different probe under one name is an error."""
  recorded = marker.get("probe")
  if recorded is not None and recorded != probe.describe():
    raise ValueError(
      f"done marker {key} was made with probe {recorded}, this run asks for "
      f"{probe.describe()} under the same probe name {probe.name!r}: use another workdir"
    )
  return set(layers) <= set(marker.get("layers", ())) and set(names) <= set(
    marker.get("scores", ())
  )


# -- the config -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ScoreConfig:
  """What one score run computes: the score stage's schema (types, defaults, checks).

  target: a registered dataset; its declared normalisation is applied to the probe.
  probe_per_class, probe_split, probe_seed: the balanced probe (thesis: 50 per class).
  heldout_probe: also score on a probe of the other split, named "heldout".
  layers: taps to score (None: every tap of each architecture).
  scores: registry names and/or "checkpoint_index", "param_count" (None: all).
  checkpoints: None (every checkpoint of the workdir's zoo) or checkpoint dirs / dicts /
    `zoo.Entry`s (`zoo.select`).
  model_kwargs: {arch: hyperparameters} of the checkpoints' models (default: their records).
  memory_budget_bytes: bound on one group's activations (and the score kernels' chunks).
  batch_size: probe samples per forward pass.
  parallel: how stacked models share a device in extraction (`jtransfer.runtime.stacking`: "auto",
    "vmap" or "loop").
  score_options: per-score option overrides (stored in every row's `extra`).
  """

  target: str
  probe_per_class: int = 50
  probe_split: str = "train"
  heldout_probe: bool = False
  layers: tuple[str, ...] | None = None
  scores: tuple[str, ...] | None = None
  checkpoints: tuple[Any, ...] | None = None
  model_kwargs: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
  memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET
  batch_size: int = 250
  parallel: str = "auto"
  probe_seed: int = 0
  score_options: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    set_ = functools.partial(object.__setattr__, self)
    set_("layers", _names(self.layers))
    set_("scores", _names(self.scores))
    if self.checkpoints is not None:
      set_("checkpoints", tuple(self.checkpoints))
    for name in ("model_kwargs", "score_options"):
      set_(name, {k: dict(v) for k, v in dict(getattr(self, name) or {}).items()})
    set_("memory_budget_bytes", int(self.memory_budget_bytes))
    if self.memory_budget_bytes < 1:
      raise ValueError(f"memory_budget_bytes must be positive, got {self.memory_budget_bytes}")
    unknown = sorted(set(self.score_options) - set(self.requested))  # also checks `scores`
    if unknown:
      raise ValueError(f"score_options given for scores not requested: {unknown}")
    stacking.canonical(self.parallel, name="parallel")
    if self.checkpoints is not None and not self.checkpoints:
      raise ValueError("checkpoints is empty: nothing to score")

  def score_names(self) -> tuple[list[str], list[str], list[str]]:
    """(feature scores, source-softmax scores, baselines) asked for."""
    return select_scores(self.scores)

  @property
  def requested(self) -> list[str]:
    feature, probs, baselines = self.score_names()
    return [*feature, *probs, *baselines]


def _names(value) -> tuple[str, ...] | None:
  if value is None:
    return None
  return (value,) if isinstance(value, str) else tuple(value)


# -- the job --------------------------------------------------------------------------------


def run(config: ScoreConfig, runtime: job.Runtime | str | os.PathLike) -> dict[str, Any]:
  """Scores every selected checkpoint on the config's target; a summary dict (module doc)."""
  t0 = time.time()
  runtime, target = job.runtime(runtime), config.target
  with (
    workdir_files.locked(runtime.workdir, JOB),
    job.open_context(runtime, JOB, config, logger=log) as ctx,
  ):
    plan = _plan(config, ctx)
    summary = {
      "target": target,
      "probes": [p.name for p in plan.probes],
      "checkpoints": plan.selected,
      "skipped": plan.selected - plan.pending,
      "scored": 0,
      "failed": 0,
      "groups": 0,
      "rows": 0,
    }
    if not plan.pending:
      log.info("score %s: all %d checkpoints already scored", target, plan.selected)
      return {**summary, "seconds": time.time() - t0}
    ctx.record_config()
    summary.update(_execute(config, ctx, plan))
  summary["seconds"] = time.time() - t0
  log.info("score %s done: %s", target, summary)
  return summary


# -- planning: probes, checkpoints, groups, done markers -> chunks --------------------------


@dataclasses.dataclass(frozen=True)
class _Model:
  """One group's architecture, built abstractly (shapes only)."""

  arch: str
  num_classes: int
  model_kwargs: dict
  graphdef: Any
  abstract_params: Any
  abstract_rest: Any
  layers: tuple[str, ...]  # the taps scored
  n_params: int


@dataclasses.dataclass(frozen=True)
class _Chunk:
  """Checkpoints of one model restored, extracted and scored together."""

  model: _Model
  checkpoints: tuple[zoo.Entry, ...]


@dataclasses.dataclass(frozen=True)
class _Plan:
  probes: list[Probe]
  inputs: np.ndarray  # the probes, concatenated
  num_target_classes: int
  markers: dict[str, dict]  # done markers already in the store
  selected: int  # this process's checkpoints
  chunks: list[_Chunk]  # the checkpoints whose markers do not cover this request

  @property
  def pending(self) -> int:
    return sum(len(c.checkpoints) for c in self.chunks)


def _plan(config: ScoreConfig, ctx: job.Context) -> _Plan:
  # Probe(s): built once, the same for every checkpoint.
  probes = _build_probes(config, ctx.data_dir)
  inputs = np.concatenate([p.inputs for p in probes])
  target_spec = datasets.get(config.target)
  # Checkpoints, grouped by model; those whose markers cover this request are skipped.
  ckpts = ctx.share(_select(ctx.workdir, config.checkpoints))
  markers = {k: e or {} for k, e in ctx.done().items()}
  chunks = []
  for group in _groups(ckpts, config.model_kwargs, target_spec):
    model = _abstract_model(group, config)

    def todo(c: zoo.Entry, layers=model.layers) -> bool:
      for p in probes:
        key = results.key_str(done_key(c, config.target, p.name))
        if key not in markers or not _covers(markers[key], layers, config.requested, p, key):
          return True
      return False

    pending = [c for c in group.checkpoints if todo(c)]
    if pending:
      size = _chunk_size(model, len(pending), inputs, config)
      chunks += [_Chunk(model, tuple(pending[i : i + size])) for i in range(0, len(pending), size)]
  return _Plan(probes, inputs, target_spec.num_classes, markers, len(ckpts), chunks)


def _build_probes(config: ScoreConfig, data_dir) -> list[Probe]:
  c = config
  probes = [build_probe(c.target, c.probe_split, c.probe_per_class, seed=c.probe_seed,
                        data_dir=data_dir)]  # fmt: skip
  if c.heldout_probe:
    other = "test" if c.probe_split != "test" else "train"
    probes.append(build_probe(c.target, other, c.probe_per_class, seed=c.probe_seed,
                              data_dir=data_dir, name=HELDOUT))  # fmt: skip
  if len({p.name for p in probes}) < len(probes):
    raise ValueError(f"probe names clash: {[p.name for p in probes]}")
  return probes


def _select(workdir: pathlib.Path, checkpoints) -> list[zoo.Entry]:
  ckpts = zoo.select(workdir, checkpoints)
  if not ckpts:
    raise ValueError(
      f"no checkpoints in {workdir}: run the pre-training job there first, or pass "
      "`checkpoints` explicitly"
    )
  return ckpts


@dataclasses.dataclass
class _Group:
  arch: str
  num_classes: int
  model_kwargs: dict
  checkpoints: list[zoo.Entry]


def _groups(ckpts, model_kwargs, target_spec) -> list[_Group]:
  """Checkpoints by (arch, number of source classes, hyperparameters), in first-seen order."""
  groups: dict[tuple, _Group] = {}
  for c in ckpts:
    nc = c.num_classes
    if nc is None:
      try:
        nc = datasets.get(c.source).num_classes
      except ValueError as e:
        raise ValueError(
          f"cannot tell the number of source classes of checkpoint {c.path}: source "
          f"{c.source!r} is not a registered dataset; pass num_classes in its record"
        ) from e
    kw = dict(model_kwargs.get(c.arch, c.model_kwargs or {}))
    # Input hyperparameters (an audio model's clip length, sample rate) follow the probe's data.
    kw = models_base.fit_to_data(c.arch, kw, target_spec)
    key = (c.arch, nc, json.dumps(kw, sort_keys=True, default=str))
    groups.setdefault(key, _Group(c.arch, nc, kw, [])).checkpoints.append(c)
  return list(groups.values())


def _abstract_model(group: _Group, config: ScoreConfig) -> _Model:
  graphdef, abstract_params, abstract_rest = functional.abstract_init(
    group.arch, num_classes=group.num_classes, **group.model_kwargs
  )
  model_taps = tuple(functional.merge(graphdef, abstract_params, abstract_rest).taps)
  layers = model_taps if config.layers is None else tuple(dict.fromkeys(config.layers))
  models_base.check_taps(layers, model_taps)
  if not layers and config.score_names()[0]:
    raise ValueError("layers is empty; pass None for every tap")
  return _Model(
    arch=group.arch,
    num_classes=group.num_classes,
    model_kwargs=group.model_kwargs,
    graphdef=graphdef,
    abstract_params=abstract_params,
    abstract_rest=abstract_rest,
    layers=layers,
    n_params=models_base.count_params(abstract_params),
  )


def _chunk_size(model: _Model, pending: int, inputs: np.ndarray, config: ScoreConfig) -> int:
  """Checkpoints per chunk: the largest number whose activations fit the memory budget, then
  balanced (48 at a cap of 29 is 2 x 24, not 29 + 19)."""
  taps = _taps(model.layers, bool(config.score_names()[1]))
  zeros = lambda tree: jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), tree)  # noqa: E731
  dims = extract.tap_dims(
    model.graphdef, zeros(model.abstract_params), zeros(model.abstract_rest), inputs.shape[1:], taps
  )
  per_model = extract.activation_bytes(dims, len(inputs))
  budget = config.memory_budget_bytes
  if per_model > budget:
    log.warning(
      "one %s checkpoint needs %.3g GB of activations, over the %.3g GB budget",
      model.arch, per_model / 1e9, budget / 1e9,
    )  # fmt: skip
  cap = max(1, budget // per_model)
  return -(-pending // -(-pending // cap))


def _taps(layers: Sequence[str], source_probs: bool) -> tuple[str, ...]:
  """The taps read: the scored layers, and the logits for the source-softmax scores."""
  return tuple(dict.fromkeys([*layers, *(["logits"] if source_probs else [])]))


# -- execution: restore, extract, score, mark done ------------------------------------------


def _execute(config: ScoreConfig, ctx: job.Context, plan: _Plan) -> dict[str, int]:
  """Runs every planned chunk; the summary's counts."""
  counts = {"scored": 0, "failed": 0, "groups": 0, "rows": 0}
  bar = None
  if ctx.show_progress:
    bar = progress(total=plan.pending, desc=f"score {config.target}", unit="ckpt")
  try:
    for chunk in plan.chunks:
      good, params, stored_rest, failures = _restore(chunk.model, chunk.checkpoints)
      _record_failures(ctx.store, failures, config.target)
      counts["failed"] += len(failures)
      if bar is not None:
        bar.update(len(failures))
      if not good:
        continue
      rest = _stacked_rest(chunk.model, good, stored_rest)
      per_probe = score_stacked(
        chunk.model.graphdef, params, rest, plan.inputs, [p.labels for p in plan.probes],
        num_classes=plan.num_target_classes, layers=chunk.model.layers,
        feature_names=config.score_names()[0], prob_names=config.score_names()[1],
        memory_budget_bytes=config.memory_budget_bytes, batch_size=config.batch_size,
        parallel=config.parallel, options=config.score_options, devices=ctx.devices,
      )  # fmt: skip
      counts["rows"] += _mark_done(config, ctx, plan, chunk.model, good, per_probe)
      counts["scored"] += len(good)
      counts["groups"] += 1
      if bar is not None:
        bar.update(len(good))
  finally:
    if bar is not None:
      bar.close()
  return counts


def _restore(model: _Model, ckpts: Sequence[zoo.Entry]):
  """(checkpoints read, stacked params, stacked stored batch-norm statistics or {}, failures).

  A corrupt checkpoint is left out and returned in `failures` as (entry, error message).
  """
  trees, good, failures = [], [], []
  for c in ckpts:
    try:
      trees.append(checkpointing.restore(c.path))
      good.append(c)
    except checkpointing.CorruptCheckpointError as e:
      failures.append((c, str(e)))
  if not good:
    return good, {}, {}, failures
  params, stored_rest = checkpointing.split_rest(checkpointing.stack(trees))
  want = jax.tree.map(lambda s: tuple(s.shape), model.abstract_params)
  try:
    got = jax.tree.map(lambda x: tuple(x.shape[1:]), params)
    same = jax.tree.structure(got) == jax.tree.structure(want) and got == want
  except ValueError:
    same = False
  if not same:
    raise ValueError(
      f"checkpoints {[c.path for c in good][:2]}... do not match {model.arch} with "
      f"num_classes={model.num_classes} and model_kwargs={model.model_kwargs}: pass the "
      "model_kwargs they were trained with"
    )
  return good, params, stored_rest, failures


def _stacked_rest(model: _Model, ckpts, stored_rest):
  if not jax.tree.leaves(model.abstract_rest):
    return {}
  if jax.tree.leaves(stored_rest):
    return stored_rest
  # Scoring on fresh statistics would score another model than the one trained.
  raise ValueError(
    f"{model.arch} has batch-norm statistics that checkpoints {[c.path for c in ckpts][:2]}... "
    "do not store: re-save them with their statistics (checkpointing.with_rest)"
  )


def _record_failures(store: results.Store, failures, target: str) -> None:
  """Stores and logs every checkpoint that could not be read; the job goes on without it."""
  for c, error in failures:
    log.error("score %s: skipping checkpoint %s: %s", target, c.path, error)
    store.record_failure(JOB, c.key, target=target, path=c.path, error=error)


def _mark_done(config, ctx, plan: _Plan, model: _Model, ckpts, per_probe) -> int:
  """Writes each (checkpoint, probe)'s rows with its done marker, in one transaction; the
  number of rows written."""
  requested, written = config.requested, 0
  for i, c in enumerate(ckpts):
    for p, res in zip(plan.probes, per_probe, strict=True):
      key = done_key(c, config.target, p.name)
      old = plan.markers.get(results.key_str(key), {})
      extra = {
        "probe": p.describe(),
        "layers": sorted(set(old.get("layers", ())) | set(model.layers)),
        "scores": sorted(set(old.get("scores", ())) | set(requested)),
      }
      rows = _rows(config, model, c, i, p, res)
      ctx.store.mark_done(JOB, key, {"scores": rows}, extra=extra)
      written += len(rows)
    ctx.store.clear_failure(JOB, c.key, target=config.target)
  return written


def _rows(config: ScoreConfig, model: _Model, c: zoo.Entry, i: int, probe: Probe, res) -> list:
  """The score rows of checkpoint `c` (model `i` of its chunk) on `probe`."""
  base = dict(source=c.source, arch=c.arch, seed=c.seed, step=c.step, target=config.target,
              probe=probe.name)  # fmt: skip
  options, baselines = config.score_options, config.score_names()[2]
  rows = []
  for (layer, name), (values, errors, seconds) in res.items():
    extra = {}
    if errors[i] is not None:
      extra["error"] = errors[i]
      if not errors[i].startswith("undefined"):  # a regime, known before the run: no warning
        log.warning("%s at %s of %s: stored as NULL: %s", name, layer, c.path, errors[i])
    if options.get(name):
      extra["options"] = options[name]
    rows.append(dict(base, layer=layer, score=name, value=values[i], seconds=seconds,
                     extra=extra or None))  # fmt: skip
  if "checkpoint_index" in baselines:
    rows.append(dict(base, layer=NO_LAYER, score="checkpoint_index", value=float(c.index)))
  if "param_count" in baselines:
    rows.append(dict(base, layer=NO_LAYER, score="param_count", value=float(model.n_params)))
  return rows


# -- the compute path -----------------------------------------------------------------------


def score_stacked(
  graphdef,
  params,
  rest,
  inputs: np.ndarray,
  probe_labels: Sequence[np.ndarray],
  *,
  num_classes: int,
  layers: Sequence[str],
  feature_names: Sequence[str],
  prob_names: Sequence[str] = (),
  memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
  batch_size: int = 250,
  parallel: str = "auto",
  options: Mapping[str, Mapping[str, Any]] | None = None,
  devices: Sequence[jax.Device] | None = None,
) -> list[dict[tuple[str, str], tuple[np.ndarray, list, float]]]:
  """Extract + score M stacked models in memory (no I/O): the job's compute path.

  `inputs` is the concatenation of the probes whose labels are `probe_labels` (in order). Returns
  one dict per probe: {(layer, score): ([M] values, [M] errors or None, seconds per model)};
  source-softmax scores (leep, nce) under layer `NO_LAYER`.
  """
  options = dict(options or {})
  m = len(next(iter(jax.tree.leaves(params))))
  taps = _taps(layers, bool(prob_names))
  acts = extract.extract(
    graphdef, params, rest, inputs, taps=taps, batch_size=batch_size, parallel=parallel
  )
  bounds = np.cumsum([0] + [len(y) for y in probe_labels])
  if bounds[-1] != len(inputs):
    raise ValueError(f"probe labels cover {bounds[-1]} samples, inputs have {len(inputs)}")
  out = []
  for labels, lo, hi in zip(probe_labels, bounds[:-1], bounds[1:], strict=True):
    res = {}
    for layer in layers if feature_names else ():
      feats = acts[layer][:, lo:hi]
      # depends on (N, D, budget, platform) only, never on M: batch-invariant scores
      chunk = default_chunk_size(
        hi - lo, feats.shape[-1], 4, memory_budget_bytes, platform=jax.default_backend()
      )
      t = time.perf_counter()
      vals = compute_isolated(
        feats, labels, num_classes=num_classes, names=feature_names, chunk_size=chunk,
        options=options, devices=devices,
      )  # fmt: skip
      per = (time.perf_counter() - t) / m
      for name in feature_names:
        d = feats.shape[-1]
        if reason := regimes.undefined_reason(name, n=hi - lo, d=d, options=options.get(name)):
          vals[name] = (np.full(m, np.nan), [reason] * m)
      res.update({(layer, n): (*vals[n], per) for n in feature_names})
    if prob_names:
      probs = _softmax(acts["logits"][:, lo:hi])
      t = time.perf_counter()
      vals = compute_isolated(
        None, labels, num_classes=num_classes, names=prob_names, source_probs=probs,
        options=options, devices=devices,
      )  # fmt: skip
      per = (time.perf_counter() - t) / m
      res.update({(NO_LAYER, n): (*vals[n], per) for n in prob_names})
    out.append(res)
  return out
