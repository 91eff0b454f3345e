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
  each device runs its own members ("loop" on CPU, "vmap" elsewhere): for hosts with several
  accelerators, or CPU hosts where one device's step leaves cores idle (not this 2-core one,
  see below). Training only: extraction runs on one device and takes "loop" instead.
- "sequential": the members are trained one after another, each as its own one-member "vmap"
  run whose batch is split over every device (`data` mesh axis): pre-training runs its phases
  once per seed, fine-tuning trains groups of one. No member axis, so no grouped convolutions
  and no idle devices. It pays one run per member instead of one for all, so on GPU/TPU
  "vmap" wins. Training only: a caller without it (extraction: `supported=("vmap", "loop")`)
  gets "loop", which also runs one model at a time.
- "auto": "vmap" on GPU/TPU; on CPU, for several members, "sequential" where the caller has it
  (training), else "loop"; one member: "vmap" (nothing to stack).

Why "sequential" on CPU: one member's step is convolutions that XLA:CPU already spreads over
the cores, so stacking members only makes bigger programs, and more fake devices than cores
contend for them (the measurements: BENCHMARKS.md, "Numbers from the docstrings").

Scoring (`scores.compute_batched`) has no mode to pick: a model's scores must not depend on
its batch-mates, so its layout is fixed by the backend ("loop" on CPU: chunks of one model;
"vmap" chunks sized by a memory budget elsewhere) and the chunks are split over the local
devices as in "devices".

Every mode gives the same numbers up to float rounding (tests compare each with one member
run alone).
"""

from __future__ import annotations

MODES = ("auto", "vmap", "loop", "devices", "sequential")
ALIASES = {"map": "loop"}  # extraction's name for "loop" before the vocabulary was shared
# What a caller that does not implement a mode runs instead (the same one-model-at-a-time
# layout, in one program).
FALLBACKS = {"sequential": "loop"}


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
  supported: tuple[str, ...] = ("vmap", "loop", "devices", "sequential"),
  name: str = "mode",
) -> str:
  """The concrete mode ("vmap", "loop", "devices" or "sequential") for `mode` and this set-up.

  `supported`: the concrete modes the caller implements; "auto" never picks another one (on
  CPU a caller without "sequential" gets "loop"), an explicit request for another one is its
  `FALLBACKS` entry when the caller has that ("sequential" -> "loop"), else an error.
  """
  mode = canonical(mode, name=name)
  if mode == "auto":
    if backend != "cpu" or members == 1:
      return "vmap"
    return "sequential" if "sequential" in supported else "loop"
  if mode not in supported and FALLBACKS.get(mode) in supported:
    return FALLBACKS[mode]
  if mode not in supported:
    raise ValueError(f"{name} {mode!r} is not available here; valid: {', '.join(supported)}")
  return mode
