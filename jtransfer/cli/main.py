"""`python -m jtransfer`: what is registered, and a finished workdir's results and report.

  python -m jtransfer list datasets|models|scores
  python -m jtransfer export WORKDIR [--format parquet|csv] [--out DIR]
  python -m jtransfer report WORKDIR [--seeds average|keep] [--n_boot N] [--no-figures]
                             [--studies NAME,...]
  python -m jtransfer migrate WORKDIR

`list scores` shows each score's direction (↑ higher is better, ↓ lower is better) and a
one-line description; `export` writes one file per results table (default `<WORKDIR>/export`);
`report` re-renders the analysis tables, figures and report.md/.html from the store, with the
studies and settings the workdir's evaluate stage recorded (the flags override them), through the
evaluate stage's own function (`studies.write_report`), so it writes the same files; `migrate`
upgrades a workdir of an older format (`jtransfer.jobs.migrate`). A bad
argument ends in one line naming the problem (exit status 2), never a traceback.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Sequence

from jtransfer import errors

KINDS = ("datasets", "models", "scores")


def _dataset_lines() -> list[str]:
  from jtransfer import data  # noqa: PLC0415  (imports are slow; only what the command needs)

  lines = []
  for name in data.names():
    spec = data.get(name)
    lines.append(f"{name:<26} {spec.num_classes:>4} classes  {spec.domain:<5}  {spec.description}")
  return lines


def _model_lines() -> list[str]:
  from jtransfer import models  # noqa: PLC0415

  return list(models.names())


def _score_lines() -> list[str]:
  from jtransfer import scores  # noqa: PLC0415

  lines = [
    f"{s.name:<20} {s.sign}  {s.description}"
    for s in (scores.get(name) for name in scores.REGISTRY)
  ]
  # Computed by the score job from the checkpoint itself (baselines, stored with layer "-").
  lines.append(f"{'checkpoint_index':<20} ↑  position of the checkpoint in its training schedule")
  lines.append(f"{'param_count':<20} ↑  parameters of the checkpoint (baseline)")
  return lines


def list_lines(kind: str) -> list[str]:
  """The lines `list <kind>` prints; an unknown kind is a ValueError naming the valid ones."""
  fns = {"datasets": _dataset_lines, "models": _model_lines, "scores": _score_lines}
  if kind not in fns:
    raise ValueError(f"unknown kind {kind!r}; valid: {', '.join(KINDS)}")
  return fns[kind]()


def _existing_workdir(path: str) -> pathlib.Path:
  workdir = pathlib.Path(path)
  from jtransfer.store import results  # noqa: PLC0415

  if not results.shard_paths(workdir):
    raise ValueError(f"{workdir} holds no results store ({results.MAIN_FILE})")
  return workdir


def export(workdir: str, fmt: str, out: str | None) -> list[pathlib.Path]:
  from jtransfer.store import results  # noqa: PLC0415

  root = _existing_workdir(workdir)
  tables = [t for t in results.TABLES if t != "done"]
  return results.export(root, out or root / "export", fmt=fmt, tables=tables)


def report(
  workdir: str,
  *,
  seeds: str | None = None,
  n_boot: int | None = None,
  figures: bool | None = None,
  studies: Sequence[str] | None = None,
) -> list[pathlib.Path]:
  """What the workdir's evaluate stage wrote, written again (the recorded `ReportConfig`, else
  the defaults and no studies), with the arguments given (not None) replacing its settings."""
  import dataclasses  # noqa: PLC0415

  from jtransfer import analysis  # noqa: PLC0415
  from jtransfer import studies as studies_lib  # noqa: PLC0415

  root = _existing_workdir(workdir)
  base = studies_lib.recorded(root) or studies_lib.ReportConfig(analysis.EvaluateConfig())
  given = {"keep_seeds": None if seeds is None else seeds == "keep", "n_boot": n_boot}
  given = {k: v for k, v in {**given, "with_figures": figures}.items() if v is not None}
  evaluate = base.evaluate
  if given or evaluate is not None:
    evaluate = dataclasses.replace(evaluate or analysis.EvaluateConfig(), **given)
  names = base.studies if studies is None else studies
  return studies_lib.write_report(root, studies_lib.ReportConfig(evaluate, tuple(names)))


def _names(text: str) -> tuple[str, ...]:
  return tuple(n for n in text.split(",") if n.strip())


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m jtransfer", description=__doc__.splitlines()[0])
  p.add_argument("--verbose", action="store_true", help="tracebacks for errors too")
  sub = p.add_subparsers(dest="command", required=True)
  ls = sub.add_parser("list", help="list registered datasets, models or scores")
  ls.add_argument("kind", choices=KINDS)
  ex = sub.add_parser("export", help="write a workdir's results tables as parquet or csv")
  ex.add_argument("workdir")
  ex.add_argument("--format", choices=("parquet", "csv"), default="parquet")
  ex.add_argument("--out", default=None, help="output folder (default WORKDIR/export)")
  rp = sub.add_parser("report", help="re-render a workdir's analysis tables, figures, report")
  rp.add_argument("workdir")
  rp.add_argument("--seeds", choices=("average", "keep"), default=None)
  rp.add_argument("--n_boot", type=int, default=None)
  rp.add_argument("--no-figures", dest="figures", action="store_const", const=False)
  rp.add_argument(
    "--studies", type=_names, default=None, help="comma-separated study modules (default: the "
    "workdir's recorded ones; '' for none)",
  )  # fmt: skip
  mg = sub.add_parser("migrate", help="upgrade a workdir of an older format to this one")
  mg.add_argument("workdir")
  return p


def main(argv: Sequence[str] | None = None) -> int:
  parser = _parser()
  args = parser.parse_args(argv)
  try:
    if args.command == "list":
      print("\n".join(list_lines(args.kind)))
    elif args.command == "export":
      for path in export(args.workdir, args.format, args.out):
        print(path)
    elif args.command == "migrate":
      from jtransfer.jobs import migrate  # noqa: PLC0415

      print("\n".join(migrate.migrate(args.workdir)))
    else:
      kwargs = dict(seeds=args.seeds, n_boot=args.n_boot, figures=args.figures)
      for path in report(args.workdir, studies=args.studies, **kwargs):
        print(path)
  except Exception as e:
    message = errors.user_message(e, (ValueError, ImportError, FileNotFoundError))
    if message is None or errors.verbose(args.verbose):
      raise
    parser.exit(2, f"{parser.prog} {args.command}: error: {message}\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
