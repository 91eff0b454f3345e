"""The score job: probe every checkpoint of a zoo at every tap and score it.

  score_job.run(workdir="/tmp/zoo", target="mnist", probe_per_class=50)
  results.load("/tmp/zoo", "scores")  # source arch seed step target probe layer score value

Top-down: probe -> checkpoints -> groups -> per group: restore stacked -> extract -> score ->
one transaction per checkpoint.

Probe. Built ONCE per run (`data.probe_set`: `probe_per_class` samples of every target class,
the same samples on every call and machine) and fed unchanged to every checkpoint. It is
normalised with the TARGET dataset's declared normalisation, i.e. exactly the inputs a
transferred model sees when it is fine-tuned on the target. Sources trained with other values
(Fashion-MNIST's mean/std, the noise tasks' none, where the MNIST target uses 0.1307/0.3081) see
the probe shifted relative to their training inputs, as they see the target data in fine-tuning;
per-source normalisation would give every source a different probe and break "the same probe
for every checkpoint". Probe name
(`probe` column): the split it comes from ("train" by default). The thesis took the first 50 per
class of the TEST loader, so its scores saw test data; jtransfer's default train-split probe
avoids that leakage. `heldout_probe=True` adds a second probe of the same size from the other
split (train <-> test), named "heldout": the neural-collapse paper's "ideal measure" uses
validation data as well as training data; from the test split it reintroduces the leakage.

Checkpoints. `zoo.select`: by default every checkpoint of the workdir's zoo on disk; or an
explicit list of checkpoint directories, dicts with at least source, arch, seed and step, or
`zoo.Entry`s. Each entry's record gives the number of source classes, the model's constructor
arguments (unless `model_kwargs` names the arch) and the checkpoint index. A checkpoint whose
data does not match its content hash (`checkpointing.CorruptCheckpointError`) is never scored:
it is recorded in the store's `failures` table (job, checkpoint, target, error) and logged, and
the job goes on with the others; a rerun tries it again.

Groups. Checkpoints of one (arch, num source classes, hyperparameters) are restored together,
stacked, and run through one jitted forward pass that reads every needed tap at once
(`jtransfer.extract`). The group size adapts so that the group's float32 activations (all taps,
all probe samples) never exceed `memory_budget_bytes`; the score kernels' chunk size is derived
from the same budget.

Scores. Every requested feature score of the registry (default: all, including the
`knn_accuracy` baseline) for every layer through `scores.compute_batched` (one call per layer
and group). Scores with no layer are stored with layer "-" (the analysis spreads those over
every layer):
- `leep`, `nce`: on the source model's own head, softmax of its `logits` tap over the SOURCE
  classes, on the probe;
- `checkpoint_index`: the position of the checkpoint's step in its run's log-spaced schedule
  (the zoo record's `index`; 0 for the untrained step-0 model, which is scored like any other);
- `param_count`: parameters of the whole checkpoint (backbone and head).
A score that fails for one checkpoint (e.g. RSA on a layer with an all-zero sample, a score
value that is not finite) is stored as NULL with the error in `extra` and logged: one dead
layer never stops the job, and never becomes a silent NaN.

Resume. Rows of one (checkpoint, target, probe) and their done marker
`("score", (source, arch, seed, step, target, probe))` are written in ONE transaction, so a rerun
skips finished checkpoints and a `kill -9` loses nothing committed. The marker's `extra` records
the layers, scores and probe parameters it covers: a rerun asking for more layers or scores
computes the missing checkpoints again; one with a different probe under the same name fails.

Several processes (hosts): process k takes every nproc-th checkpoint and writes its own store
shard `results.host<k>.sqlite`, as the pre-training job does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jtransfer import checkpointing, extract, results, zoo
from jtransfer import data as datasets
from jtransfer import scores as scores_lib
from jtransfer import workdir as workdir_files
from jtransfer.models import base as models_base
from jtransfer.models import functional
from jtransfer.progress import progress
from jtransfer.scores import registry
from jtransfer.scores.compute import default_chunk_size

JOB = "score"
NO_LAYER = "-"  # layer of the scores that do not depend on a tap
HELDOUT = "heldout"
BASELINES = ("checkpoint_index", "param_count")  # computed here, not in the score registry
DEFAULT_MEMORY_BUDGET = 2 << 30

log = logging.getLogger("jtransfer.score_job")


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
  """(feature scores, source-softmax scores, baselines) for `names` (None: every one)."""
  valid = [*registry.REGISTRY, *BASELINES]
  if names is None:
    names = valid
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


def _score_models(features, labels, *, num_classes, names, source_probs, chunk_size, options):
  """{name: ([M] float64 values, [M] error message or None)}.

  One `compute_batched` call for all names. Only if that raises (a bad layer of some model) are
  the models retried one by one through the same compiled chunk program (so a good model's
  values do not depend on a bad batch-mate), and a model that still fails score by score.
  """
  m = (features if features is not None else source_probs).shape[0]

  def batched(which, lo=0, hi=m):
    out = scores_lib.compute_batched(
      None if features is None else features[lo:hi], labels, num_classes=num_classes,
      names=which, source_probs=None if source_probs is None else source_probs[lo:hi],
      chunk_size=chunk_size, options={n: options[n] for n in which if n in options},
    )  # fmt: skip
    return {n: np.asarray(v, np.float64) for n, v in out.items()}

  try:
    return {n: (v, [None] * m) for n, v in batched(names).items()}
  except ValueError:
    pass
  result = {n: (np.full(m, np.nan), [None] * m) for n in names}
  for i in range(m):
    try:
      one = batched(names, i, i + 1)
    except ValueError:
      one = {}
      for name in names:
        try:
          one.update(batched([name], i, i + 1))
        except ValueError as e:
          result[name][1][i] = str(e)
    for name, value in one.items():
      result[name][0][i] = value[0]
  return result


def _softmax(logits: np.ndarray) -> np.ndarray:
  z = logits.astype(np.float64)
  z = np.exp(z - z.max(axis=-1, keepdims=True))
  return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


# -- bookkeeping ----------------------------------------------------------------------------


def done_key(ckpt: zoo.Entry, target: str, probe: str) -> tuple:
  return (*ckpt.key, target, probe)


def _done_markers(workdir: pathlib.Path) -> dict[str, dict]:
  """{canonical done key: marker extra} of this job, over every store file of the workdir."""
  if not results.shard_paths(workdir):
    return {}
  done = results.load(workdir, "done")
  done = done[done["job"] == JOB]
  return {
    k: json.loads(e) if isinstance(e, str) else {}
    for k, e in zip(done["key"], done["extra"], strict=True)
  }


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


# -- the job --------------------------------------------------------------------------------


@dataclasses.dataclass
class _Group:
  arch: str
  num_classes: int
  model_kwargs: dict
  checkpoints: list[zoo.Entry]


def _groups(ckpts, model_kwargs, target_spec) -> list[_Group]:
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


def _restore(group: _Group, ckpts: Sequence[zoo.Entry], abstract_params):
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
  ckpts = good
  want = jax.tree.map(lambda s: tuple(s.shape), abstract_params)
  try:
    got = jax.tree.map(lambda x: tuple(x.shape[1:]), params)
    same = jax.tree.structure(got) == jax.tree.structure(want) and got == want
  except ValueError:
    same = False
  if not same:
    raise ValueError(
      f"checkpoints {[c.path for c in ckpts][:2]}... do not match {group.arch} with "
      f"num_classes={group.num_classes} and model_kwargs={group.model_kwargs}: pass the "
      "model_kwargs they were trained with"
    )
  return good, params, stored_rest, failures


def _stacked_rest(group: _Group, m: int, abstract_rest, stored_rest):
  if not jax.tree.leaves(abstract_rest):
    return {}
  if jax.tree.leaves(stored_rest):
    return stored_rest
  # Older checkpoints without stored batch statistics run on freshly initialised ones.
  log.warning(
    "%s has non-parameter state (batch-norm statistics) that these checkpoints do not store; "
    "extracting with initial statistics",
    group.arch,
  )
  _, _, rest = functional.init(
    group.arch, num_classes=group.num_classes, seed=0, **group.model_kwargs
  )
  return jax.tree.map(lambda x: np.repeat(np.asarray(x)[None], m, axis=0), rest)


@workdir_files.holds_lock(JOB)
def run(
  *,
  workdir: str | os.PathLike,
  target: str,
  probe_per_class: int = 50,
  probe_split: str = "train",
  heldout_probe: bool = False,
  layers: Sequence[str] | None = None,
  scores: Sequence[str] | None = None,
  checkpoints: Sequence[Any] | None = None,
  model_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
  memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
  batch_size: int = 250,
  parallel: str = "auto",
  data_dir: str | os.PathLike | None = None,
  probe_seed: int = 0,
  score_options: Mapping[str, Mapping[str, Any]] | None = None,
  show_progress: bool = True,
  store_shard: str | None = None,
) -> dict[str, Any]:
  """Scores every checkpoint on `target`; returns a summary dict. See the module docstring.

  Args:
    workdir: the zoo's workdir; rows go to its results store.
    target: a registered dataset name; its declared normalisation is applied to the probe.
    probe_per_class, probe_split, probe_seed: the balanced probe (thesis: 50 per class).
    heldout_probe: also score on a probe of the other split, named "heldout".
    layers: taps to score (default: every tap of each architecture).
    scores: registry names and/or "checkpoint_index", "param_count" (default: all).
    checkpoints: None (every checkpoint of the workdir's zoo) or a list of checkpoint dirs /
      dicts / `zoo.Entry`s (`zoo.select`).
    model_kwargs: {arch: hyperparameters} of the checkpoints' models (default: their records).
    memory_budget_bytes: bound on one group's activations (and the score kernels' chunks).
    batch_size: probe samples per forward pass.
    parallel: how stacked models share a device: "auto", "vmap" or "map" (`jtransfer.extract`).
    score_options: per-score option overrides (stored in every row's `extra`).
  """
  t0 = time.time()
  workdir = pathlib.Path(workdir)
  if int(memory_budget_bytes) < 1:
    raise ValueError(f"memory_budget_bytes must be positive, got {memory_budget_bytes}")
  feature_names, prob_names, baseline_names = select_scores(scores)
  requested = [*feature_names, *prob_names, *baseline_names]
  options = {k: dict(v) for k, v in dict(score_options or {}).items()}
  unknown_opts = sorted(set(options) - set(requested))
  if unknown_opts:
    raise ValueError(f"score_options given for scores not requested: {unknown_opts}")
  nproc, pid = jax.process_count(), jax.process_index()

  # Probe(s): built once, the same for every checkpoint.
  probes = [build_probe(target, probe_split, probe_per_class, seed=probe_seed, data_dir=data_dir)]
  if heldout_probe:
    other = "test" if probe_split != "test" else "train"
    probes.append(
      build_probe(target, other, probe_per_class, seed=probe_seed, data_dir=data_dir, name=HELDOUT)
    )
  if len({p.name for p in probes}) < len(probes):
    raise ValueError(f"probe names clash: {[p.name for p in probes]}")
  num_target_classes = datasets.get(target).num_classes
  inputs = np.concatenate([p.inputs for p in probes])

  # Checkpoints, grouped by model; those whose markers cover this request are skipped.
  ckpts = _select(workdir, checkpoints)[pid::nproc]
  markers = _done_markers(workdir)
  plans = []
  groups = _groups(ckpts, dict(model_kwargs or {}), datasets.get(target))
  for group in groups:
    graphdef, abstract_params, abstract_rest = functional.abstract_init(
      group.arch, num_classes=group.num_classes, **group.model_kwargs
    )
    model_taps = tuple(functional.merge(graphdef, abstract_params, abstract_rest).taps)
    use_layers = model_taps if layers is None else tuple(dict.fromkeys(layers))
    models_base.check_taps(use_layers, model_taps)
    if not use_layers and feature_names:
      raise ValueError("layers is empty; pass None for every tap")

    def todo(c: zoo.Entry, use_layers=use_layers) -> bool:
      for p in probes:
        key = results.key_str(done_key(c, target, p.name))
        if key not in markers or not _covers(markers[key], use_layers, requested, p, key):
          return True
      return False

    group.checkpoints = [c for c in group.checkpoints if todo(c)]
    if group.checkpoints:
      plans.append((group, graphdef, abstract_params, abstract_rest, use_layers))
  pending = sum(len(g.checkpoints) for g, *_ in plans)
  summary = {
    "target": target,
    "probes": [p.name for p in probes],
    "checkpoints": len(ckpts),
    "skipped": len(ckpts) - pending,
    "scored": 0,
    "failed": 0,
    "groups": 0,
    "rows": 0,
  }
  if not pending:
    log.info("score %s: all %d checkpoints already scored", target, len(ckpts))
    return {**summary, "seconds": time.time() - t0}
  store = results.Store(workdir, shard=store_shard or (f"host{pid}" if nproc > 1 else None))
  if pid == 0:
    config = {k: v for k, v in locals().items() if k in _CONFIG_KEYS}
    workdir_files.append_config(workdir, JOB, config)
  bar = progress(total=pending, desc=f"score {target}", unit="ckpt") if show_progress else None
  try:
    for group, graphdef, abstract_params, abstract_rest, use_layers in plans:
      taps = tuple(dict.fromkeys([*use_layers, *(["logits"] if prob_names else [])]))
      zeros = lambda tree: jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), tree)  # noqa: E731
      dims = extract.tap_dims(
        graphdef, zeros(abstract_params), zeros(abstract_rest), inputs.shape[1:], taps
      )
      per_model = extract.activation_bytes(dims, len(inputs))
      # Largest group within the budget, then balanced: 48 at a cap of 29 is 2 x 24, not 29 + 19.
      cap = max(1, int(memory_budget_bytes) // per_model)
      size = -(-len(group.checkpoints) // -(-len(group.checkpoints) // cap))
      if per_model > memory_budget_bytes:
        log.warning(
          "one %s checkpoint needs %.3g GB of activations, over the %.3g GB budget",
          group.arch, per_model / 1e9, memory_budget_bytes / 1e9,
        )  # fmt: skip
      n_params = models_base.count_params(abstract_params)
      for start in range(0, len(group.checkpoints), size):
        chunk, params, stored_rest, failures = _restore(
          group, group.checkpoints[start : start + size], abstract_params
        )
        _record_failures(store, failures, target)
        summary["failed"] += len(failures)
        if bar is not None:
          bar.update(len(failures))
        if not chunk:
          continue
        rows_by_ckpt = _score_chunk(
          group=group,
          chunk=chunk,
          params=params,
          stored_rest=stored_rest,
          graphdef=graphdef,
          abstract_params=abstract_params,
          abstract_rest=abstract_rest,
          layers=use_layers,
          inputs=inputs,
          probes=probes,
          target=target,
          num_target_classes=num_target_classes,
          feature_names=feature_names,
          prob_names=prob_names,
          baseline_names=baseline_names,
          n_params=n_params,
          options=options,
          memory_budget_bytes=int(memory_budget_bytes),
          batch_size=batch_size,
          parallel=parallel,
        )
        for c in chunk:
          for p in probes:
            key = done_key(c, target, p.name)
            old = markers.get(results.key_str(key), {})
            extra = {
              "probe": p.describe(),
              "layers": sorted(set(old.get("layers", ())) | set(use_layers)),
              "scores": sorted(set(old.get("scores", ())) | set(requested)),
            }
            rows = rows_by_ckpt[(c.key, p.name)]
            store.mark_done(JOB, key, {"scores": rows}, extra=extra)
            summary["rows"] += len(rows)
          store.clear_failure(JOB, c.key, target=target)
        summary["scored"] += len(chunk)
        summary["groups"] += 1
        if bar is not None:
          bar.update(len(chunk))
  finally:
    if bar is not None:
      bar.close()
    store.close()
  summary["seconds"] = time.time() - t0
  log.info("score %s done: %s", target, summary)
  return summary


def _select(workdir: pathlib.Path, checkpoints) -> list[zoo.Entry]:
  if checkpoints is not None and not list(checkpoints):
    raise ValueError("checkpoints is empty: nothing to score")
  ckpts = zoo.select(workdir, checkpoints)
  if not ckpts:
    raise ValueError(
      f"no checkpoints in {workdir}: run the pre-training job there first, or pass "
      "`checkpoints` explicitly"
    )
  return ckpts


def _record_failures(store: results.Store, failures, target: str) -> None:
  """Stores and logs every checkpoint that could not be read; the job goes on without it."""
  for c, error in failures:
    log.error("score %s: skipping checkpoint %s: %s", target, c.path, error)
    store.record_failure(JOB, c.key, target=target, path=c.path, error=error)


_CONFIG_KEYS = (
  "target", "probe_per_class", "probe_split", "heldout_probe", "layers", "scores",
  "model_kwargs", "memory_budget_bytes", "batch_size", "parallel", "probe_seed",
  "score_options",
)  # fmt: skip


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
) -> list[dict[tuple[str, str], tuple[np.ndarray, list, float]]]:
  """Extract + score M stacked models in memory (no I/O): the job's compute path.

  `inputs` is the concatenation of the probes whose labels are `probe_labels` (in order). Returns
  one dict per probe: {(layer, score): ([M] values, [M] errors or None, seconds per model)};
  source-softmax scores (leep, nce) under layer `NO_LAYER`.
  """
  options = dict(options or {})
  m = len(next(iter(jax.tree.leaves(params))))
  taps = tuple(dict.fromkeys([*layers, *(["logits"] if prob_names else [])]))
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
      vals = _score_models(
        feats, labels, num_classes=num_classes, names=feature_names, source_probs=None,
        chunk_size=chunk, options=options,
      )  # fmt: skip
      per = (time.perf_counter() - t) / m
      res.update({(layer, n): (*vals[n], per) for n in feature_names})
    if prob_names:
      probs = _softmax(acts["logits"][:, lo:hi])
      t = time.perf_counter()
      vals = _score_models(
        None, labels, num_classes=num_classes, names=prob_names, source_probs=probs,
        chunk_size=None, options=options,
      )  # fmt: skip
      per = (time.perf_counter() - t) / m
      res.update({(NO_LAYER, n): (*vals[n], per) for n in prob_names})
    out.append(res)
  return out


def _score_chunk(
  *,
  group,
  chunk,
  params,
  stored_rest,
  graphdef,
  abstract_params,
  abstract_rest,
  layers,
  inputs,
  probes,
  target,
  num_target_classes,
  feature_names,
  prob_names,
  baseline_names,
  n_params,
  options,
  memory_budget_bytes,
  batch_size,
  parallel,
) -> dict[tuple, list[dict]]:
  """Extract and score one restored chunk; {(checkpoint key, probe name): rows}."""
  rest = _stacked_rest(group, len(chunk), abstract_rest, stored_rest)
  per_probe = score_stacked(
    graphdef, params, rest, inputs, [p.labels for p in probes], num_classes=num_target_classes,
    layers=layers, feature_names=feature_names, prob_names=prob_names,
    memory_budget_bytes=memory_budget_bytes, batch_size=batch_size, parallel=parallel,
    options=options,
  )  # fmt: skip
  out = {}
  for p, res in zip(probes, per_probe, strict=True):
    for i, c in enumerate(chunk):
      base = dict(source=c.source, arch=c.arch, seed=c.seed, step=c.step, target=target,
                  probe=p.name)  # fmt: skip
      rows = []
      for (layer, name), (values, errors, seconds) in res.items():
        extra = {}
        if errors[i] is not None:
          extra["error"] = errors[i]
          log.warning("%s at %s of %s: stored as NULL: %s", name, layer, c.path, errors[i])
        if options.get(name):
          extra["options"] = options[name]
        rows.append(dict(base, layer=layer, score=name, value=values[i], seconds=seconds,
                         extra=extra or None))  # fmt: skip
      if "checkpoint_index" in baseline_names:
        rows.append(dict(base, layer=NO_LAYER, score="checkpoint_index", value=float(c.index)))
      if "param_count" in baseline_names:
        rows.append(dict(base, layer=NO_LAYER, score="param_count", value=float(n_params)))
      out[(c.key, p.name)] = rows
  return out
