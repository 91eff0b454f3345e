"""jtransfer.stacking: one vocabulary for how stacked models share devices, used by every job."""

import pytest

from jtransfer import extract, stacking
from jtransfer.train import engine


@pytest.mark.parametrize(
  "backend, members, devices, want",
  [
    ("gpu", 8, 4, "vmap"),  # accelerators: one batched program
    ("tpu", 1, 1, "vmap"),
    ("cpu", 8, 4, "devices"),  # several members and devices: members over devices
    ("cpu", 8, 1, "loop"),  # one device: un-batched convolutions, one member after another
    ("cpu", 1, 8, "vmap"),  # one member: nothing to stack; the batch is data-parallel
  ],
)
def test_auto_picks_by_backend_members_and_devices(backend, members, devices, want):
  got = stacking.resolve("auto", backend=backend, members=members, devices=devices)
  assert got == want
  # The training jobs' name for the same rule.
  assert (
    engine.resolve_seed_parallel("auto", backend=backend, num_seeds=members, num_devices=devices)
    == want
  )


def test_explicit_modes_are_kept_and_map_is_loop():
  for mode in ("vmap", "loop", "devices", "sequential"):
    assert stacking.resolve(mode, backend="cpu", members=3, devices=2) == mode
  assert stacking.resolve("map", backend="gpu", members=3, devices=2) == "loop"
  assert stacking.canonical("map") == "loop"
  assert engine.SEED_PARALLEL == stacking.MODES


def test_extraction_runs_on_one_device():
  # "auto" never picks "devices" for extraction, whatever the device count.
  assert extract.resolve_parallel("auto", "cpu", members=5) == "loop"
  assert extract.resolve_parallel("auto", "gpu", members=5) == "vmap"
  assert extract.resolve_parallel("map", "cpu") == "loop"
  with pytest.raises(ValueError, match="parallel 'devices' is not available here; valid: vmap"):
    extract.resolve_parallel("devices", "cpu")


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
@pytest.mark.parametrize("members, devices", [(1, 1), (10, 4), (8, 1)])
def test_auto_never_picks_sequential(backend, members, devices):
  # "sequential" is opt-in: the default layouts stay as they are.
  assert stacking.resolve("auto", backend=backend, members=members, devices=devices) != (
    "sequential"
  )


def test_sequential_is_a_training_mode_and_extraction_runs_it_as_loop():
  # Training keeps it (the jobs run one-member stacks); extraction, which has no such layout,
  # runs one model at a time inside one program: "loop", on any backend.
  assert (
    engine.resolve_seed_parallel("sequential", backend="gpu", num_seeds=8, num_devices=4)
    == "sequential"
  )
  assert extract.resolve_parallel("sequential", "cpu", members=5) == "loop"
  assert extract.resolve_parallel("sequential", "gpu", members=5) == "loop"
  # A fallback is used only where the caller has it.
  with pytest.raises(ValueError, match="'sequential' is not available here; valid: vmap"):
    stacking.resolve("sequential", backend="cpu", members=2, devices=1, supported=("vmap",))


def test_unknown_mode_names_the_valid_ones():
  with pytest.raises(
    ValueError, match=r"unknown seed_parallel 'pmap'; valid: auto, vmap, loop, devices, sequential"
  ):
    engine.resolve_seed_parallel("pmap", backend="cpu", num_seeds=2, num_devices=2)
  with pytest.raises(ValueError, match="unknown parallel 'shard'"):
    extract.resolve_parallel("shard")
