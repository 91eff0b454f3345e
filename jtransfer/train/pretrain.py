"""Pre-training: a zoo of `num_seeds` models of one architecture on one source task.

  run(workdir="/tmp/zoo", source="mnist", arch="cnn", num_seeds=10, batch_size=64,
      duration={"epochs": 100}, optimizer="adam", optimizer_kwargs={"learning_rate": 1e-4})

One top-down loop (big_vision `train.py`): mesh -> data -> model and optimizer -> restore or
init -> step fn -> loop -> final save.

Seeds. All seeds train in ONE jitted step: params, optimizer state and `rest` are stacked on a
leading seed axis. Seed `s` gets its own init (`jax.random.key(s)`), its own data order
(`batches.epoch_permutation(s, epoch)`) and its own dropout keys (folded from `s` and the
step), so a seed trained in a batch equals the seed trained alone.

How the seeds share the hardware (`seed_parallel`):
- "vmap": the seed axis is vmapped; the batch axis is split over the local devices (`data`
  mesh axis, params replicated). Fastest on GPU/TPU.
- "loop": like "vmap" but the step holds one un-batched copy of the model per seed
  (`step.over_seeds(..., "unroll")`), so each convolution stays un-batched.
- "devices": the seed axis is split over the devices (`model` mesh axis, `shard_map`); each
  device runs its own seeds, un-batched on CPU ("unroll"), vmapped elsewhere. XLA:CPU lowers
  vmapped convolutions to slow grouped convolutions and one CPU device does not use all cores,
  so this is the fast choice on CPU (with several fake host devices,
  `--xla_force_host_platform_device_count`).
- "auto": "vmap" on GPU/TPU; on CPU "devices" when there are several seeds and devices, else
  "loop" for several seeds, else "vmap" (which data-parallelises the one seed).

Checkpoints. At `schedule.log_checkpoint_steps` (plus the final step) each seed's params go to
`<workdir>/zoo/<source>/<arch>/seed_<k>/<step>/` with their zoo record (`jtransfer.zoo.Entry`:
number of classes, model_kwargs, schedule index, metrics), train and test accuracy/loss are
evaluated and one `checkpoints` row per seed is written together with its done marker
(`pretrain`, `<source>/<arch>/seed_<k>/step_<step>`) in one transaction. A run first indexes
the zoo checkpoints of its seeds that the store does not know (the zoo on disk is the truth: a
lost `results.sqlite` is rebuilt, and seeds whose final checkpoint is on disk are not trained).

Resume. The full train state (params, rest, optimizer state) of every seed is saved at each
checkpoint step (and every `save_every_steps`) under
`<workdir>/train_state/<source>/<arch>/seed_<k>/` (only the latest is kept). A rerun restores
the latest step all seeds have, and the data order and dropout keys are functions of (seed,
step), so a resumed run equals an uninterrupted one.
Seeds whose final checkpoint is done are not trained again.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import pathlib
import shutil
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jtransfer import checkpointing, results, sharding, tracking, zoo
from jtransfer import data as datasets
from jtransfer import workdir as workdir_files
from jtransfer.models import base, functional
from jtransfer.progress import progress
from jtransfer.train import batches, optim, schedule
from jtransfer.train import step as step_lib

JOB = "pretrain"
SEED_PARALLEL = ("auto", "vmap", "loop", "devices")
_DROPOUT_STREAM = 0x5EED  # dropout keys: fold_in(key(seed), _DROPOUT_STREAM) then the step
_EVAL_SUBSET_SEED = 0  # the fixed train subset used to measure train accuracy

log = logging.getLogger("jtransfer.pretrain")


# -- small pieces ---------------------------------------------------------------------------


def done_key(source: str, arch: str, seed: int, step: int) -> str:
  return f"{source}/{arch}/seed_{seed}/step_{step}"


def train_state_dir(workdir, source: str, arch: str, seed: int) -> pathlib.Path:
  return pathlib.Path(workdir) / "train_state" / source / arch / f"seed_{seed}"


def resolve_seed_parallel(mode: str, *, backend: str, num_seeds: int, num_devices: int) -> str:
  if mode not in SEED_PARALLEL:
    raise ValueError(f"unknown seed_parallel {mode!r}; valid: {', '.join(SEED_PARALLEL)}")
  if mode != "auto":
    return mode
  if backend != "cpu":
    return "vmap"
  if num_seeds > 1 and num_devices > 1:
    return "devices"
  return "loop" if num_seeds > 1 else "vmap"


def _largest_divisor(n: int, at_most: int) -> int:
  return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def make_mesh(mode: str, *, num_seeds: int, batch_size: int, devices: Sequence) -> Mesh:
  """'devices': a `model` axis over seeds; else a `data` axis over the batch.

  Axis sizes divide the seed count / batch size; devices that do not fit stay idle.
  """
  if mode == "devices":
    m = _largest_divisor(num_seeds, len(devices))
    return sharding.make_mesh(("model",), devices[:m])
  d = _largest_divisor(batch_size, len(devices))
  return sharding.make_mesh(("data",), devices[:d])


def load_source(source: str, data_dir, train_examples: int | None):
  spec = datasets.get(source)
  train_x, train_y = datasets.load(source, "train", data_dir=data_dir)
  test_x, test_y = datasets.load(source, "test", data_dir=data_dir)
  train_x, test_x = datasets.normalize(source, train_x), datasets.normalize(source, test_x)
  if train_examples is not None:
    if not 0 < train_examples <= len(train_x):
      raise ValueError(f"train_examples must be in [1, {len(train_x)}], got {train_examples}")
    train_x, train_y = train_x[:train_examples], train_y[:train_examples]
  cast = lambda x, y: (np.asarray(x, np.float32), np.asarray(y, np.int32))
  return spec.num_classes, cast(train_x, train_y), cast(test_x, test_y)


def eval_arrays(
  x, y, *, examples: int | None, batch_size: int, subset_seed: int | None, multiple: int = 1
):
  """`[num_batches, batch_size, ...]` padded eval set and its mask (fixed shape, no recompile).

  The batch size is rounded up to a multiple of `multiple` (the data-parallel devices).
  """
  n = len(x) if examples is None else min(examples, len(x))
  if subset_seed is None:
    index = np.arange(n)
  else:
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([subset_seed])))
    index = np.sort(rng.permutation(len(x))[:n])
  bs = -(-min(batch_size, n) // multiple) * multiple
  nb = math.ceil(n / bs)
  pad = nb * bs - n
  xs = np.concatenate([x[index], np.zeros((pad, *x.shape[1:]), x.dtype)])
  ys = np.concatenate([y[index], np.zeros((pad,), y.dtype)])
  mask = np.arange(nb * bs) < n
  return (
    xs.reshape(nb, bs, *x.shape[1:]),
    ys.reshape(nb, bs),
    mask.reshape(nb, bs),
  )


# -- train state on disk (resume) -----------------------------------------------------------


def _save_train_state(workdir, source, arch, seeds, step, host_state) -> None:
  """Each seed's (params, rest, opt_state) leaves at `step`; older states are removed after."""
  for i, seed in enumerate(seeds):
    leaves = jax.tree.leaves(jax.tree.map(lambda a, i=i: a[i], host_state))
    root = train_state_dir(workdir, source, arch, seed)
    path = root / str(step)
    if not checkpointing.exists(path):
      checkpointing.save(
        path,
        {"leaves": {f"{j:05d}": leaf for j, leaf in enumerate(leaves)}},
        extra={"step": step, "seed": seed},
        process_local=jax.process_count() > 1,
      )
    for old in root.iterdir():
      if old.name != str(step) and old.name.isdigit() and int(old.name) < step:
        shutil.rmtree(old, ignore_errors=True)


def _latest_common_train_state(workdir, source, arch, seeds) -> int | None:
  common = None
  for seed in seeds:
    root = train_state_dir(workdir, source, arch, seed)
    steps = set()
    if root.is_dir():
      steps = {int(p.name) for p in root.iterdir() if p.name.isdigit() and checkpointing.exists(p)}
    common = steps if common is None else common & steps
  return max(common) if common else None


def _restore_train_state(workdir, source, arch, seeds, step, template):
  """Stacked host state from disk, checked against the fresh `template` (same config)."""
  flat_template, treedef = jax.tree.flatten(jax.tree.map(lambda a: a[0], template))
  per_seed = []
  for seed in seeds:
    restored = checkpointing.restore(train_state_dir(workdir, source, arch, seed) / str(step))
    leaves = restored["leaves"]
    if len(leaves) != len(flat_template):
      raise ValueError(
        f"train state of seed {seed} at step {step} has {len(leaves)} arrays, the model and "
        f"optimizer need {len(flat_template)}: the config changed; use a new workdir"
      )
    arrays = [np.asarray(leaves[f"{j:05d}"]) for j in range(len(flat_template))]
    for a, t in zip(arrays, flat_template, strict=True):
      if a.shape != t.shape:
        raise ValueError(
          f"train state of seed {seed} has an array of shape {a.shape} where {t.shape} is "
          "expected: the config changed; use a new workdir"
        )
    per_seed.append(jax.tree.unflatten(treedef, arrays))
  return jax.tree.map(lambda *xs: np.stack(xs), *per_seed)


def _index_zoo(store, workdir, source, arch, seeds) -> None:
  """Registers checkpoints that are in the zoo but not in the store (e.g. after the store was
  lost): the zoo on disk is the truth, the `checkpoints` table and done markers its index."""
  for entry in zoo.select(workdir, sources=[source], archs=[arch], seeds=seeds):
    key = done_key(source, arch, entry.seed, entry.step)
    if not store.is_done(JOB, key):
      store.mark_done(JOB, key, {"checkpoints": [entry.index_row(workdir)]})
      log.info("indexed zoo checkpoint %s", entry.path)


# -- compiled functions ---------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def build_fns(
  graphdef, optimizer_spec: tuple, mesh: Mesh, mode: str, backend: str, *, margins: bool = False
):
  """(train_fn, eval_fn) over the stacked state, sharded for `mode`.

  `margins`: the eval step also returns each example's two-class logit margin (`step_lib`).

  Cached on the (hashable) model graph, optimizer spec and mesh, so a second run with the same
  set-up in one process (other sources, a resume) reuses the compiled steps.
  """
  name, kwargs = optimizer_spec
  optimizer = optim.make_optimizer(name, **dict(kwargs))
  one_step = step_lib.make_train_step(graphdef, optimizer)
  one_eval = step_lib.make_eval_step(graphdef, margins=margins)

  def seed_train(params, rest, opt_state, seed, x, y, step):
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), _DROPOUT_STREAM), step)
    return one_step(params, rest, opt_state, x, y, key)

  def local_train(loop, state, train_x, train_y, idx, step):
    x, y = train_x[idx], train_y[idx]  # [S_local, B, ...], gathered on the device
    if mode != "devices":
      x = jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P(None, "data")))
    params, rest, opt_state, metrics = step_lib.over_seeds(
      lambda p, r, o, s, xx, yy: seed_train(p, r, o, s, xx, yy, step), loop
    )(state["params"], state["rest"], state["opt_state"], state["seed"], x, y)
    return {"params": params, "rest": rest, "opt_state": opt_state, "seed": state["seed"]}, metrics

  def local_eval(loop, state, x, y, mask):
    # One eval batch for every seed; the host loops over batches (a lax.scan over them would
    # put the convolutions in a loop body, which XLA:CPU runs far slower).
    fn = lambda p, r: one_eval(p, r, x, y, mask)
    return step_lib.over_seeds(fn, loop)(state["params"], state["rest"])

  if mode == "devices":
    loop = "unroll" if backend == "cpu" else "vmap"
    train = jax.shard_map(
      lambda *a: local_train(loop, *a),
      mesh=mesh,
      in_specs=(P("model"), P(), P(), P("model"), P()),
      out_specs=(P("model"), P("model")),
      check_vma=False,  # every value is per-device; no collectives to check
    )
    evaluate = jax.shard_map(
      lambda *a: local_eval(loop, *a),
      mesh=mesh,
      in_specs=(P("model"), P(), P(), P()),
      out_specs=P("model"),
      check_vma=False,
    )
    return jax.jit(train, donate_argnums=0), jax.jit(evaluate)

  loop = "vmap" if mode == "vmap" else "unroll"
  replicated = NamedSharding(mesh, P())
  train = jax.jit(
    lambda *a: local_train(loop, *a),
    donate_argnums=0,
    out_shardings=(replicated, replicated),
  )
  evaluate = jax.jit(lambda *a: local_eval(loop, *a), out_shardings=replicated)
  return train, evaluate


# -- the job --------------------------------------------------------------------------------


@workdir_files.holds_lock(JOB)
def run(
  *,
  workdir: str | os.PathLike,
  source: str,
  arch: str = "cnn",
  num_seeds: int = 1,
  seed_offset: int = 0,
  batch_size: int = 64,
  duration: Mapping[str, float] | None = None,
  optimizer: str = "adam",
  optimizer_kwargs: Mapping[str, Any] | None = None,
  model_kwargs: Mapping[str, Any] | None = None,
  eval_batch_size: int = 1000,
  eval_train_examples: int | None = 10_000,
  eval_test_examples: int | None = None,
  train_examples: int | None = None,
  data_dir: str | os.PathLike | None = None,
  seed_parallel: str = "auto",
  num_devices: int | None = None,
  save_every_steps: int | None = None,
  log_every_steps: int = 50,
  show_progress: bool = True,
  store_shard: str | None = None,
  tensorboard: bool = True,
  profile_steps: int = 0,
) -> dict[str, Any]:
  """Trains seeds `seed_offset .. seed_offset + num_seeds - 1`; returns a summary dict.

  duration: `{"epochs": x}`, `{"steps": n}` or `{"examples": n}` (default 100 epochs).
  optimizer_kwargs: for `optim.make_optimizer` (learning_rate, momentum, decay_every_epochs...).
  eval_*_examples: the fixed train subset / test prefix evaluated at checkpoints (None = all).
  train_examples: keep only the first n training examples (quick runs and tests).
  num_devices: use the first n local devices (None = all).
  save_every_steps: also save the train state this often, to bound work lost to a crash.
  log_every_steps: the batch loss and accuracy of every seed are recorded at these steps and at
    log-spaced ones (`tracking.record_steps`): store table `metrics`, and TensorBoard under
    `<workdir>/tensorboard/pretrain` unless `tensorboard=False`.
  profile_steps: > 0 writes a `jax.profiler` trace of that many steps (after the compiling
    one) to `<workdir>/profile/pretrain`.
  """
  t_start = time.time()
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  duration = dict(duration or {"epochs": 100})
  optimizer_kwargs = dict(optimizer_kwargs or {"learning_rate": 1e-4})
  model_kwargs = dict(model_kwargs or {})
  if num_seeds < 1 or seed_offset < 0:
    raise ValueError(f"need num_seeds >= 1 and seed_offset >= 0, got {num_seeds}, {seed_offset}")
  config = {k: v for k, v in locals().items() if k not in ("t_start",)}
  config["workdir"] = str(workdir)
  handler = workdir_files.file_logging(workdir, JOB, log)
  try:
    return _run(config, t_start=t_start)
  finally:
    log.removeHandler(handler)
    handler.close()


def _run(c: dict, *, t_start: float) -> dict[str, Any]:
  workdir, source, arch = pathlib.Path(c["workdir"]), c["source"], c["arch"]
  # Several processes (hosts): each trains its share of the seeds on its own devices and
  # writes its own store shard; nothing crosses hosts.
  nproc, pid = jax.process_count(), jax.process_index()

  # Data (host side): sizes decide the schedule, so it comes before the done check.
  num_classes, (train_x, train_y), (test_x, test_y) = load_source(
    source, c["data_dir"], c["train_examples"]
  )
  spe = batches.steps_per_epoch(len(train_x), c["batch_size"])
  total_steps = schedule.to_steps(c["duration"], steps_per_epoch=spe, batch_size=c["batch_size"])
  ckpt_steps = schedule.log_checkpoint_steps(spe, total_steps, include_final=True)

  shard = c["store_shard"] or (f"host{pid}" if nproc > 1 else None)
  store = results.Store(workdir, shard=shard)
  writer = None
  try:
    all_seeds = list(range(c["seed_offset"], c["seed_offset"] + c["num_seeds"]))[pid::nproc]
    _index_zoo(store, workdir, source, arch, all_seeds)
    seeds = [s for s in all_seeds if not store.is_done(JOB, done_key(source, arch, s, total_steps))]
    summary = {
      "source": source,
      "arch": arch,
      "seeds": all_seeds,
      "trained_seeds": seeds,
      "total_steps": total_steps,
      "steps_per_epoch": spe,
      "checkpoint_steps": ckpt_steps,
    }
    if not seeds:
      log.info("%s/%s: all %d seeds already done, nothing to do", source, arch, len(all_seeds))
      return {**summary, "seed_parallel": None, "steps_run": 0, "images_per_second": 0.0}
    if pid == 0:
      workdir_files.append_config(workdir, JOB, {k: v for k, v in c.items() if k != "workdir"})
    writer = tracking.MetricWriter(
      workdir, JOB, store, tensorboard=c["tensorboard"], process_index=pid
    )
    units = [f"{source}/{arch}/seed_{seed}" for seed in seeds]

    # Mesh.
    backend = jax.default_backend()
    devices = jax.local_devices()[: c["num_devices"]] if c["num_devices"] else jax.local_devices()
    mode = resolve_seed_parallel(
      c["seed_parallel"], backend=backend, num_seeds=len(seeds), num_devices=len(devices)
    )
    mesh = make_mesh(mode, num_seeds=len(seeds), batch_size=c["batch_size"], devices=devices)
    replicated = NamedSharding(mesh, P())
    state_sharding = NamedSharding(mesh, P("model")) if mode == "devices" else replicated
    idx_sharding = NamedSharding(mesh, P("model") if mode == "devices" else P(None, "data"))
    log.info(
      "%s/%s seeds %s: %d steps (%d/epoch), checkpoints at %s, seed_parallel=%s, mesh %s",
      source, arch, seeds, total_steps, spe, ckpt_steps, mode, dict(mesh.shape),
    )  # fmt: skip

    # Data (device side): the training set stays on the devices; steps send indices only.
    train_x_dev = jax.device_put(train_x, replicated)
    train_y_dev = jax.device_put(train_y, replicated)
    multiple = 1 if mode == "devices" else mesh.shape["data"]
    eval_sets = {
      "train": eval_arrays(
        train_x,
        train_y,
        examples=c["eval_train_examples"],
        batch_size=c["eval_batch_size"],
        subset_seed=_EVAL_SUBSET_SEED,
        multiple=multiple,
      ),
      "test": eval_arrays(
        test_x,
        test_y,
        examples=c["eval_test_examples"],
        batch_size=c["eval_batch_size"],
        subset_seed=None,
        multiple=multiple,
      ),
    }
    eval_sharding = replicated if mode == "devices" else NamedSharding(mesh, P("data"))
    eval_sets = {  # name -> list of (x, y, mask) batches on the devices
      k: [jax.device_put((xs[b], ys[b], m[b]), eval_sharding) for b in range(len(xs))]
      for k, (xs, ys, m) in eval_sets.items()
    }

    # Model and optimizer.
    # Input hyperparameters (an audio model's clip length, sample rate) follow the source.
    model_kwargs = base.fit_to_data(arch, c["model_kwargs"], datasets.get(source))
    graphdef, params, rest = functional.init_stacked(
      arch, num_classes=num_classes, seeds=seeds, **model_kwargs
    )
    optimizer_spec = (
      c["optimizer"],
      tuple(sorted({**c["optimizer_kwargs"], "steps_per_epoch": spe}.items())),
    )
    tx = optim.make_optimizer(optimizer_spec[0], **dict(optimizer_spec[1]))
    opt_state = jax.jit(jax.vmap(tx.init))(params)  # one compile, not one per eager op
    state = {
      "params": params,
      "rest": rest,
      "opt_state": opt_state,
      "seed": jnp.asarray(seeds, jnp.int32),
    }

    # Restore or init.
    start_step = 0
    latest = _latest_common_train_state(workdir, source, arch, seeds)
    if latest is not None:
      trainable = {k: v for k, v in state.items() if k != "seed"}
      restored = _restore_train_state(workdir, source, arch, seeds, latest, trainable)
      state = {**restored, "seed": state["seed"]}
      start_step = latest
      log.info("restored the train state of seeds %s at step %d", seeds, latest)
    state = jax.device_put(state, state_sharding)

    # Step functions.
    train_fn, eval_fn = build_fns(graphdef, optimizer_spec, mesh, mode, backend)

    def save_checkpoint(step: int, state) -> dict[str, list[float]]:
      metrics = {}
      for name, batches_ in eval_sets.items():
        parts = jax.device_get([eval_fn(state, *batch) for batch in batches_])
        loss, acc = step_lib.mean_loss_and_accuracy(parts)
        metrics[f"{name}_loss"], metrics[f"{name}_acc"] = loss.tolist(), acc.tolist()
      host = jax.device_get({k: v for k, v in state.items() if k != "seed"})
      for i, seed in enumerate(seeds):
        key = done_key(source, arch, seed, step)
        if store.is_done(JOB, key):
          continue
        path = checkpointing.checkpoint_path(workdir, source, arch, seed, step)
        if checkpointing.exists(path):  # a rerun after a crash recomputes the same params
          entry = zoo.read_entry(path, workdir=workdir)
        else:
          entry = zoo.write_entry(
            workdir,
            zoo.Entry(
              source=source, arch=arch, seed=seed, step=step, num_classes=num_classes,
              model_kwargs=model_kwargs, index=ckpt_steps.index(step), epoch=step / spe,
              metrics={k: v[i] for k, v in metrics.items()},
            ),
            checkpointing.with_rest(
              jax.tree.map(lambda a, i=i: a[i], host["params"]),
              jax.tree.map(lambda a, i=i: a[i], host.get("rest") or {}),
            ),
            process_local=nproc > 1,
          )  # fmt: skip
        store.mark_done(JOB, key, {"checkpoints": [entry.index_row(workdir)]})
      _save_train_state(workdir, source, arch, seeds, step, host)
      for i, unit in enumerate(units):
        writer.scalars(unit, step, {f"eval/{k}": v[i] for k, v in metrics.items()})
      writer.flush()
      log.info(
        "step %d (%.3g epochs): test acc %s",
        step,
        step / spe,
        ", ".join(f"seed {s}={a:.4f}" for s, a in zip(seeds, metrics["test_acc"], strict=True)),
      )
      return metrics

    def record(step: int, metrics) -> None:
      host = jax.device_get(metrics)  # [S] per name; a step that finished already: no stall
      for i, unit in enumerate(units):
        writer.scalars(
          unit, step, {"train/loss": host["loss"][i], "train/accuracy": host["accuracy"][i]}
        )
      if bar is not None:
        bar.set_postfix(loss=np.mean(host["loss"]), acc=np.mean(host["accuracy"]))

    # Loop.
    ckpt_set = set(ckpt_steps)
    if start_step in ckpt_set:
      with tracking.compile_note(None, "eval step (and the first checkpoint)", first=True):
        save_checkpoint(start_step, state)
    stream = batches.index_stream(
      seeds, num_examples=len(train_x), batch_size=c["batch_size"], start_step=start_step
    )
    t_loop, pending = time.time(), None
    record_at = tracking.record_steps(total_steps, c["log_every_steps"])
    steps = range(start_step, total_steps)
    bar = progress(steps, total=len(steps), desc=f"{JOB} {source}") if c["show_progress"] else None
    profiler = tracking.Profiler(workdir / "profile" / JOB, start_step + 1, c["profile_steps"])
    for step in bar or steps:
      idx = jax.device_put(next(stream), idx_sharding)
      profiler.step(step, state)
      with tracking.compile_note(bar, "train step", first=step == start_step):
        state, metrics = train_fn(state, train_x_dev, train_y_dev, idx, jnp.int32(step))
      # Record the previous record step's metrics: it is finished by now, so no pipeline stall.
      if pending is not None:
        record(*pending)
      pending = (step, metrics) if step in record_at else None
      done_steps = step + 1
      if done_steps in ckpt_set:
        save_checkpoint(done_steps, state)
      elif c["save_every_steps"] and done_steps % c["save_every_steps"] == 0:
        host = jax.device_get({k: v for k, v in state.items() if k != "seed"})
        _save_train_state(workdir, source, arch, seeds, done_steps, host)
    if pending is not None:
      record(*pending)
    profiler.stop(state)
    if bar is not None:
      bar.close()
    jax.block_until_ready(state)
    seconds = time.time() - t_loop
    steps_run = total_steps - start_step
    images = steps_run * c["batch_size"] * len(seeds)
    summary.update(
      seed_parallel=mode,
      mesh=dict(mesh.shape),
      start_step=start_step,
      steps_run=steps_run,
      seconds=seconds,
      images_per_second=images / seconds if seconds > 0 else 0.0,
      total_seconds=time.time() - t_start,
    )
    log.info("%s/%s done: %s", source, arch, summary)
    return summary
  finally:
    if writer is not None:
      writer.close()
    store.close()
