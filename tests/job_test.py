"""jtransfer.job: the job context's share of work, shard name, config record and log file."""

import dataclasses
import json
import logging
import pathlib

import pytest

from jtransfer import job


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
