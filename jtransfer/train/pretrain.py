"""Pre-training: a zoo of `num_seeds` models of one architecture on one source task.

  run(workdir="/tmp/zoo", source="mnist", arch="cnn", num_seeds=10, batch_size=64,
      duration={"epochs": 100}, optimizer="adam", optimizer_kwargs={"learning_rate": 1e-4})

One top-down loop (big_vision `train.py`): mesh -> data -> model and optimizer -> restore or
init -> step fn -> loop -> final save.

Seeds. All seeds train in ONE jitted step: params, optimizer state and `rest` are stacked on a
leading seed axis. Seed `s` gets its own init (`jax.random.key(s)`), its own data order
(`batches.epoch_permutation(s, epoch)`) and its own dropout keys (folded from `s` and the
step: `s` is its dropout seed), so a seed trained in a batch equals the seed trained alone.

How the seeds share the hardware (`seed_parallel`: "auto", "vmap", "loop", "devices"): see
`jtransfer.train.engine`, which holds the mesh, the step builders and the eval sets this loop
shares with fine-tuning.

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

import logging
import os
import pathlib
import shutil
import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jtransfer import checkpointing, results, tracking, zoo
from jtransfer import data as datasets
from jtransfer import workdir as workdir_files
from jtransfer.models import base, functional
from jtransfer.progress import progress
from jtransfer.train import batches, engine, optim, schedule
from jtransfer.train import step as step_lib

JOB = "pretrain"

log = logging.getLogger("jtransfer.pretrain")


# -- small pieces ---------------------------------------------------------------------------


def done_key(source: str, arch: str, seed: int, step: int) -> str:
  return f"{source}/{arch}/seed_{seed}/step_{step}"


def train_state_dir(workdir, source: str, arch: str, seed: int) -> pathlib.Path:
  return pathlib.Path(workdir) / "train_state" / source / arch / f"seed_{seed}"


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
  first_process: int = 0,
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
  first_process: under several processes, seed i is trained by process
    `(first_process + i) % process_count` (the sweep counts on across sources, so its
    (source, seed) pairs spread evenly over the processes).
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
  num_classes, (train_x, train_y), (test_x, test_y) = engine.load_source(
    source, c["data_dir"], c["train_examples"]
  )
  spe = batches.steps_per_epoch(len(train_x), c["batch_size"])
  total_steps = schedule.to_steps(c["duration"], steps_per_epoch=spe, batch_size=c["batch_size"])
  ckpt_steps = schedule.log_checkpoint_steps(spe, total_steps, include_final=True)

  shard = c["store_shard"] or (f"host{pid}" if nproc > 1 else None)
  store = results.Store(workdir, shard=shard)
  writer = None
  try:
    all_seeds = list(range(c["seed_offset"], c["seed_offset"] + c["num_seeds"]))
    all_seeds = all_seeds[(pid - c["first_process"]) % nproc :: nproc]
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
    mode = engine.resolve_seed_parallel(
      c["seed_parallel"], backend=backend, num_seeds=len(seeds), num_devices=len(devices)
    )
    mesh = engine.make_mesh(mode, num_seeds=len(seeds), batch_size=c["batch_size"], devices=devices)
    place = engine.placement(mesh, mode)
    log.info(
      "%s/%s seeds %s: %d steps (%d/epoch), checkpoints at %s, seed_parallel=%s, mesh %s",
      source, arch, seeds, total_steps, spe, ckpt_steps, mode, dict(mesh.shape),
    )  # fmt: skip

    # Data (device side): the training set stays on the devices; steps send indices only.
    train_x_dev = jax.device_put(train_x, place.replicated)
    train_y_dev = jax.device_put(train_y, place.replicated)
    train_subset = (train_x, train_y, c["eval_train_examples"], engine.EVAL_SUBSET_SEED)
    eval_sets = engine.eval_sets(
      {"train": train_subset, "test": (test_x, test_y, c["eval_test_examples"], None)},
      batch_size=c["eval_batch_size"],
      place=place,
    )

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
    state = {"params": params, "rest": rest, "opt_state": opt_state}

    # Restore or init.
    start_step = 0
    latest = _latest_common_train_state(workdir, source, arch, seeds)
    if latest is not None:
      state = _restore_train_state(workdir, source, arch, seeds, latest, state)
      start_step = latest
      log.info("restored the train state of seeds %s at step %d", seeds, latest)
    state = jax.device_put(state, place.state)
    dropout_seeds = jax.device_put(np.asarray(seeds, np.int32), place.state)  # seed s: its own

    # Step functions.
    train_fn, eval_fn = engine.build_fns(graphdef, optimizer_spec, mesh, mode, backend)

    def save_checkpoint(step: int, state) -> dict[str, list[float]]:
      metrics = {}
      for name, eval_set in eval_sets.items():
        parts = engine.eval_outputs(eval_fn, state, eval_set.batches)
        loss, acc = step_lib.mean_loss_and_accuracy(parts)
        metrics[f"{name}_loss"], metrics[f"{name}_acc"] = loss.tolist(), acc.tolist()
      host = jax.device_get(state)
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
      idx = jax.device_put(next(stream), place.batch_index)
      profiler.step(step, state)
      with tracking.compile_note(bar, "train step", first=step == start_step):
        state, metrics = train_fn(
          state, dropout_seeds, train_x_dev, train_y_dev, idx, jnp.int32(step)
        )
      # Record the previous record step's metrics: it is finished by now, so no pipeline stall.
      if pending is not None:
        record(*pending)
      pending = (step, metrics) if step in record_at else None
      done_steps = step + 1
      if done_steps in ckpt_set:
        save_checkpoint(done_steps, state)
      elif c["save_every_steps"] and done_steps % c["save_every_steps"] == 0:
        host = jax.device_get(state)
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
