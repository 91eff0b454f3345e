"""How stacked models share the devices: one vocabulary for every job.

Pre-training (the seeds of a zoo), fine-tuning (the checkpoints of a group), extraction and
scoring (the checkpoints of a score group) all run M models of one architecture at once, their
params stacked on a leading member axis. `mode` says how those M members use the devices:

- "vmap": the member axis is vmapped: one batched program. Fastest on GPU/TPU. Training splits
  each step's batch over the local devices (`data` mesh axis, params replicated).
- "loop": the members run one after another inside the same jitted program, each un-batched
  (training: `step.over_seeds(..., "unroll")`; extraction: `jax.lax.map`). XLA:CPU lowers
  vmapped convolutions over stacked kernels to slow grouped convolutions, so on CPU this is
  faster than "vmap" on one device. Extraction also accepts the old name "map".
- "devices": the member axis is split over the devices (`model` mesh axis, `jax.shard_map`);
  each device runs its own members ("loop" on CPU, "vmap" elsewhere). One CPU device does not
  use all cores, so with several (fake) host devices this is the fast choice on CPU. Training
  only: extraction runs on one device and takes "loop" instead.
- "auto": "vmap" on GPU/TPU; on CPU "devices" when there are several members and devices,
  else "loop" for several members, else "vmap" (one member: nothing to stack).

Scoring (`scores.compute_batched`) has no mode to pick: a model's scores must not depend on
its batch-mates, so its layout is fixed by the backend ("loop" on CPU: chunks of one model;
"vmap" chunks sized by a memory budget elsewhere) and the chunks are split over the local
devices as in "devices".

Every mode gives the same numbers up to float rounding (tests compare each with one member
run alone).
"""

from __future__ import annotations

MODES = ("auto", "vmap", "loop", "devices")
ALIASES = {"map": "loop"}  # extraction's name for "loop" before the vocabulary was shared


def canonical(mode: str, *, name: str = "mode") -> str:
  """`mode` in the shared vocabulary (aliases mapped); a one-line error for an unknown one."""
  mode = ALIASES.get(mode, mode)
  if mode not in MODES:
    raise ValueError(f"unknown {name} {mode!r}; valid: {', '.join(MODES)}")
  return mode


def resolve(
  mode: str,
  *,
  backend: str,
  members: int,
  devices: int,
  supported: tuple[str, ...] = ("vmap", "loop", "devices"),
  name: str = "mode",
) -> str:
  """The concrete mode ("vmap", "loop" or "devices") for `mode` and this set-up.

  `supported`: the concrete modes the caller implements; "auto" never picks another one (a
  caller without "devices" gets "loop" where "devices" would be chosen), an explicit request
  for another one is an error.
  """
  mode = canonical(mode, name=name)
  if mode == "auto":
    if backend != "cpu":
      mode = "vmap"
    elif members > 1 and devices > 1 and "devices" in supported:
      mode = "devices"
    else:
      mode = "loop" if members > 1 else "vmap"
    return mode
  if mode not in supported:
    raise ValueError(f"{name} {mode!r} is not available here; valid: {', '.join(supported)}")
  return mode
