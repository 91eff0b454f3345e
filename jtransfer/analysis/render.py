"""Renders independent figures in worker processes: matplotlib is single-threaded and the
report's figures do not depend on each other, so on a multi-core machine they draw side by side.

A task is (function, args, kwargs) naming a module-level function of `figures`; each returns a
PNG path, a list of them, or None. Results come back in task order, so the report is the same
whichever worker drew what.
"""

import concurrent.futures
import multiprocessing
import os
from collections.abc import Callable, Sequence

Task = tuple[Callable, tuple, dict]


def default_workers() -> int:
  """Two workers where two cores are free to use (the report's figures rarely fill more)."""
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return min(2, cores or 1)


def _call(task: Task):
  fn, args, kwargs = task
  return fn(*args, **kwargs)


def render(tasks: Sequence[Task], workers: int | None = None) -> list:
  """Each task's result, in order; `workers` processes (None: `default_workers()`, 1: here)."""
  workers = default_workers() if workers is None else workers
  if workers <= 1 or len(tasks) <= 1:
    return [_call(t) for t in tasks]
  # spawn: a fork of a process that has run JAX's threads can deadlock.
  context = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(min(workers, len(tasks)), mp_context=context) as ex:
    return list(ex.map(_call, tasks))
