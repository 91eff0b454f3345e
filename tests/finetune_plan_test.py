"""Fine-tune planning: the typed config, the seed streams, the units left and their groups."""

import json
import subprocess
import sys

import numpy as np
import pytest
from stage_calls import run_job

from jtransfer.jobs import finetune
from jtransfer.store import results
from jtransfer.store import workdir as workdir_files
from jtransfer.train import finetune_plan as plan


def test_config_fills_the_defaults_and_normalises_sequences():
  c = plan.FinetuneConfig(target="mnist", modes="head", ft_seeds=[np.int64(2), 0])
  assert c.modes == ("head",) and c.ft_seeds == (2, 0)
  assert all(type(s) is int for s in c.ft_seeds)
  assert c.duration == {"epochs": 100} and c.optimizer_kwargs == {"learning_rate": 1e-4}
  assert c.baseline_archs == () and c.model_kwargs is None and c.group_size == 16
  with pytest.raises(AttributeError):
    c.target = "cifar10"  # frozen
  # The record the job context writes to config.json: JSON-ready, nothing of the runtime.
  record = json.loads(json.dumps(workdir_files.config_record(c)))
  assert record["modes"] == ["head"] and record["ft_seeds"] == [2, 0] and "workdir" not in record
  assert "data_dir" not in record and "show_progress" not in record


@pytest.mark.parametrize(
  "kw, message",
  [
    (dict(ft_seeds=[0, 0]), r"ft_seeds must be distinct ints >= 0, got \[0, 0\]"),
    (dict(ft_seeds=[]), r"ft_seeds must be distinct ints >= 0, got \[\]"),
    (dict(ft_seeds=[-1]), r"ft_seeds must be distinct ints >= 0"),
    (dict(group_size=0), "group_size must be an int >= 1, got 0"),
    (dict(batch_size=True), "batch_size must be an int >= 1, got True"),
    (dict(eval_batch_size=2.5), "eval_batch_size must be an int >= 1, got 2.5"),
    (dict(seed_parallel="pmap"), "unknown seed_parallel 'pmap'; valid: auto, vmap"),
    (dict(val_fraction=1.0), r"val_fraction must be in \(0, 1\), 0 or None, got 1.0"),
  ],
)
def test_config_rejects_bad_input_in_one_line(kw, message):
  with pytest.raises(ValueError, match=message):
    plan.FinetuneConfig(target="mnist", **kw)


def test_run_checks_its_config_before_any_work(tmp_path):
  with pytest.raises(ValueError, match="group_size must be an int >= 1"):
    run_job(finetune, workdir=tmp_path / "w", target="mnist", group_size=0)
  assert not (tmp_path / "w" / "logs").exists()  # no log file: nothing started


def test_seed_streams_are_the_documented_seed_sequences_and_differ():
  streams = {
    plan.head_seed: 0x4EAD,
    plan.random_backbone_seed: 0xBA5E,
    plan.scratch_seed: 0x5C2A,
    plan.data_seed: 0xDA7A,
    plan.dropout_seed: 0xD20B,
  }
  for ft_seed in (0, 1, 7):
    got = [fn(ft_seed) for fn in streams]
    # NumPy's SeedSequence of [stream, ft_seed], 31 bits: the same on every machine.
    want = [
      int(np.random.SeedSequence([s, ft_seed]).generate_state(1, np.uint32)[0]) // 2
      for s in streams.values()
    ]
    assert got == want and len(set(got)) == len(got)
    assert all(0 <= s < 2**31 for s in got)
  assert plan.head_seed(0) != plan.head_seed(1)
  for bad in (-1, True, 1.0):
    with pytest.raises(ValueError, match="ft_seed must be an int >= 0"):
      plan.head_seed(bad)


def _member(source="mnist", seed=0, step=0, frozen=0, ft_seed=0, modes=("full",), arch="cnn"):
  path = None if source in plan.BASELINE_SOURCES else f"ckpt/{source}/{seed}/{step}"
  return plan.Member(source, arch, seed, step, path, frozen, ft_seed, modes)


def test_units_left_keep_only_the_modes_not_done():
  a = _member(step=7, frozen=1, modes=("last_block", "frozen"))
  b = _member(step=9)
  done = {results.key_str(plan.done_key("mnist", "cnn", 0, 7, "fashion", "frozen", 1, 0))}
  done.add(results.key_str(["mnist", "cnn", 0, 9, "fashion", "full", 0, 0]))  # as a list
  left = plan.units_left([a, b], done, "fashion")
  assert left == [_member(step=7, frozen=1, modes=("last_block",))]
  # Another target: nothing of it is done.
  assert plan.units_left([a, b], done, "mnist") == [a, b]


def test_groups_share_arch_ft_seed_and_freezing_and_keep_their_order():
  members = [
    _member(seed=s, frozen=f, ft_seed=t, arch=a)
    for s in range(5)  # the buckets interleaved
    for a in ("cnn", "vgg")
    for t in (0, 1)
    for f in (0, 2)
  ]
  groups = plan.group_members(members, 2)
  assert sum(groups, []) != members  # regrouped by bucket, ...
  assert sorted(sum(groups, []), key=members.index) == members  # ... every member once
  for g in groups:
    assert 1 <= len(g) <= 2
    assert len({(m.arch, m.ft_seed, m.frozen_layers) for m in g}) == 1
    assert [members.index(m) for m in g] == sorted(members.index(m) for m in g)
  assert len(groups) == 2 * 2 * 2 * 3  # 5 members a bucket: chunks of 2, 2, 1
  with pytest.raises(ValueError, match="group_size must be >= 1"):
    plan.group_members(members, 0)


def test_fine_tune_does_not_import_pre_training():
  code = (
    "import sys, jtransfer.jobs.finetune; "
    "print(sorted(m for m in sys.modules if m.startswith('jtransfer.train.')))"
  )
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  loaded = out.stdout.strip()
  assert "jtransfer.train.finetune_plan" in loaded and "jtransfer.train.transfer" in loaded
  assert "jtransfer.jobs.pretrain" not in loaded
