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
  for mode in ("vmap", "loop", "devices"):
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


def test_unknown_mode_names_the_valid_ones():
  with pytest.raises(ValueError, match=r"unknown seed_parallel 'pmap'; valid: auto, vmap, loop"):
    engine.resolve_seed_parallel("pmap", backend="cpu", num_seeds=2, num_devices=2)
  with pytest.raises(ValueError, match="unknown parallel 'shard'"):
    extract.resolve_parallel("shard")
