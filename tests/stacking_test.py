"""jtransfer.runtime.stacking: one vocabulary for how stacked models share devices, used by every
job."""

import pytest

from jtransfer.runtime import extract, stacking
from jtransfer.train import engine


@pytest.mark.parametrize(
  "backend, members, want",
  [
    ("gpu", 8, "vmap"),  # accelerators: one batched program
    ("tpu", 1, "vmap"),
    ("cpu", 8, "sequential"),  # CPU training: one member at a time, its batch on every device
    ("cpu", 1, "vmap"),  # one member: nothing to stack; the batch is data-parallel
  ],
)
def test_auto_picks_by_backend_and_members(backend, members, want):
  got = stacking.resolve("auto", backend=backend, members=members)
  assert got == want
  # The training jobs' name for the same rule.
  assert engine.resolve_seed_parallel("auto", backend=backend, num_seeds=members) == want


def test_auto_without_sequential_runs_one_model_at_a_time_in_one_program():
  # A caller that has no "sequential" (extraction) gets "loop" on CPU, never "devices".
  for supported in (("vmap", "loop"), ("vmap", "loop", "devices")):
    assert stacking.resolve("auto", backend="cpu", members=8, supported=supported) == "loop"


def test_explicit_modes_are_kept_and_map_is_loop():
  for mode in ("vmap", "loop", "devices", "sequential"):
    assert stacking.resolve(mode, backend="cpu", members=3) == mode
  assert stacking.resolve("map", backend="gpu", members=3) == "loop"
  assert stacking.canonical("map") == "loop"
  assert engine.SEED_PARALLEL == stacking.MODES


def test_extraction_runs_on_one_device():
  # "auto" never picks "devices" for extraction, whatever the device count.
  assert extract.resolve_parallel("auto", "cpu", members=5) == "loop"
  assert extract.resolve_parallel("auto", "gpu", members=5) == "vmap"
  assert extract.resolve_parallel("map", "cpu") == "loop"
  with pytest.raises(ValueError, match="parallel 'devices' is not available here; valid: vmap"):
    extract.resolve_parallel("devices", "cpu")


def test_sequential_is_a_training_mode_and_extraction_runs_it_as_loop():
  # Training keeps it (the jobs run one-member stacks); extraction, which has no such layout,
  # runs one model at a time inside one program: "loop", on any backend.
  assert engine.resolve_seed_parallel("sequential", backend="gpu", num_seeds=8) == "sequential"
  assert extract.resolve_parallel("sequential", "cpu", members=5) == "loop"
  assert extract.resolve_parallel("sequential", "gpu", members=5) == "loop"
  # A fallback is used only where the caller has it.
  with pytest.raises(ValueError, match="'sequential' is not available here; valid: vmap"):
    stacking.resolve("sequential", backend="cpu", members=2, supported=("vmap",))


def test_unknown_mode_names_the_valid_ones():
  with pytest.raises(
    ValueError, match=r"unknown seed_parallel 'pmap'; valid: auto, vmap, loop, devices, sequential"
  ):
    engine.resolve_seed_parallel("pmap", backend="cpu", num_seeds=2)
  with pytest.raises(ValueError, match="unknown parallel 'shard'"):
    extract.resolve_parallel("shard")
