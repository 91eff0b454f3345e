"""jtransfer.jobs.context: the job context's share of work, shard name, config record and log
file."""

import dataclasses
import json
import logging
import pathlib

import numpy as np
import pytest

from jtransfer.jobs import context as job


@dataclasses.dataclass(frozen=True)
class _Config:
  workdir: pathlib.Path
  target: str
  seeds: tuple[int, ...]


def test_share_splits_work_without_overlap_or_loss(tmp_path):
  items = list(range(11))
  shares = []
  for pid in range(3):
    ctx = job.Context(tmp_path, "x", None, pid, 3, (), None)
    shares.append(ctx.share(items))
  assert shares[0] == [0, 3, 6, 9] and shares[2] == [2, 5, 8]
  assert sorted(sum(shares, [])) == items


def test_share_starting_at_another_process_rotates_the_split(tmp_path):
  # Two lists of 2 items over 3 processes: the second list starts where the first ended.
  ctxs = [job.Context(tmp_path, "x", None, pid, 3, (), None) for pid in range(3)]
  first = [c.share(["a0", "a1"]) for c in ctxs]
  second = [c.share(["b0", "b1"], first_process=2) for c in ctxs]
  assert first == [["a0"], ["a1"], []]
  assert second == [["b1"], [], ["b0"]]


def test_default_shard_names_hosts_only_when_several():
  assert job.default_shard(None, 0, 1) is None
  assert job.default_shard(None, 1, 2) == "host1"
  assert job.default_shard("mine", 1, 2) == "mine"


def test_open_context_logs_records_config_and_closes_store(tmp_path):
  log = logging.getLogger("jtransfer.test_job")
  config = _Config(tmp_path / "w", "mnist", (0, 1))
  with job.open_context(tmp_path / "w", "score", config, logger=log, num_devices=1) as ctx:
    assert len(ctx.devices) == 1 and ctx.store_shard is None
    ctx.record_config()
    log.info("hello from the job")
    ctx.store.mark_done("score", "k", {})
  assert "hello from the job" in (tmp_path / "w/logs/score.log").read_text()
  entry = json.loads((tmp_path / "w/config.json").read_text())[-1]
  assert entry["job"] == "score" and entry["config"] == {"target": "mnist", "seeds": [0, 1]}
  assert not any(isinstance(h, logging.FileHandler) for h in log.handlers)
  assert ctx._store is None


def test_open_context_rejects_zero_devices(tmp_path):
  with pytest.raises(ValueError, match="num_devices"):
    with job.open_context(tmp_path, "x", None, logger=logging.getLogger("t"), num_devices=0):
      pass


def test_runtime_and_config_come_from_one_flat_mapping():
  @dataclasses.dataclass(frozen=True)
  class Config:
    target: str
    batch_size: int = 64

  config, rt = job.build(
    Config, {"target": "mnist", "show_progress": False}, what="score (mnist)", workdir="w"
  )
  assert config == Config("mnist") and rt == job.Runtime(pathlib.Path("w"), show_progress=False)
  with pytest.raises(ValueError) as e:
    job.build(Config, {"target": "mnist", "batch_sise": 3}, what="score (mnist)", workdir="w")
  assert str(e.value) == (
    "score (mnist): unknown key 'batch_sise'; valid: batch_size, num_devices, show_progress, "
    "store_shard, target"
  )
  with pytest.raises(ValueError, match=r"^score \(mnist\): num_devices must be an int >= 1"):
    job.build(Config, {"target": "mnist", "num_devices": 0}, what="score (mnist)", workdir="w")


def test_every_job_keys_its_units_by_one_tuple_shape():
  from jtransfer.jobs import pretrain  # noqa: PLC0415
  from jtransfer.jobs import score as score_job  # noqa: PLC0415
  from jtransfer.store import results  # noqa: PLC0415
  from jtransfer.train import finetune_plan  # noqa: PLC0415

  ckpt = type("Entry", (), {"key": ("mnist", "cnn", 1, 30)})()
  keys = [
    pretrain.done_key("mnist", "cnn", np.int64(1), np.int64(30)),
    score_job.done_key(ckpt, "fashion_mnist", "train"),
    finetune_plan.done_key("mnist", "cnn", 1, 30, "fashion_mnist", "full", 0, np.int64(2)),
  ]
  assert keys == [
    ("mnist", "cnn", 1, 30),
    ("mnist", "cnn", 1, 30, "fashion_mnist", "train"),
    ("mnist", "cnn", 1, 30, "fashion_mnist", "full", 0, 2),
  ]
  assert all(type(v) in (str, int) for key in keys for v in key)
  assert results.key_str(keys[0]) == '["mnist","cnn",1,30]'


def test_done_reads_the_job_markers_of_every_store_file(tmp_path):
  from jtransfer.store import results  # noqa: PLC0415

  ctx = job.Context(tmp_path, "score", None, 0, 1, (), None)
  assert ctx.done() == {}  # no store yet
  ctx.store.mark_done("score", ("a", 0), {}, extra={"layers": ["pool2"]})
  ctx.store.mark_done("finetune", ("a", 0), {})  # another job's
  other = results.Store(tmp_path, shard="host1")
  other.mark_done("score", ("b", 1), {})
  other.close()
  assert ctx.done() == {'["a",0]': {"layers": ["pool2"]}, '["b",1]': None}
  ctx.close()
