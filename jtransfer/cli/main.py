"""`python -m jtransfer`: what is registered, and a finished workdir's results and report.

  python -m jtransfer list datasets|models|scores
  python -m jtransfer export WORKDIR [--format parquet|csv] [--out DIR]
  python -m jtransfer report WORKDIR [--seeds average|keep] [--n_boot N] [--no-figures]
                             [--studies NAME,...]
  python -m jtransfer migrate WORKDIR
  python -m jtransfer [COMMAND] --help

`list scores` shows each score's direction (↑ higher is better, ↓ lower is better) and a
one-line description; `export` writes one file per results table (default `<WORKDIR>/export`);
`report` re-renders the analysis tables, figures and report.md/.html from the store, with the
studies and settings the workdir's evaluate stage recorded (the flags override them), through the
evaluate stage's own function (`studies.write_report`), so it writes the same files; `migrate`
upgrades a workdir of an older format (`jtransfer.jobs.migrate`). The first word names the
command; the rest are its positional arguments and absl flags, as the launchers' (`--verbose`:
tracebacks too). A bad argument ends in one line naming the problem (exit status 2), never a
traceback.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from absl import flags

from jtransfer import errors

PROG = "python -m jtransfer"
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


@dataclasses.dataclass(frozen=True)
class Command:
  summary: str
  args: tuple[str, ...]  # positional arguments, by name
  define: Callable[[flags.FlagValues], None] = lambda fv: None  # the command's own flags


def _export_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_enum("format", "parquet", ["parquet", "csv"], "Table file format.", flag_values=fv)
  flags.DEFINE_string("out", None, "Output folder (default WORKDIR/export).", flag_values=fv)


def _report_flags(fv: flags.FlagValues) -> None:
  # No defaults: a flag not given keeps what the workdir's evaluate stage recorded.
  flags.DEFINE_enum(
    "seeds", None, ["average", "keep"], "Average each run's seeds or keep them.", flag_values=fv
  )
  flags.DEFINE_integer(
    "n_boot", None, "Bootstrap resamples (0: none).", lower_bound=0, flag_values=fv
  )
  flags.DEFINE_bool(
    "figures", None, "Draw the figures (--nofigures or --no-figures: tables only).", flag_values=fv
  )
  flags.DEFINE_list(
    "studies", None, "Study modules (default: the workdir's recorded ones; '' for none).",
    flag_values=fv,
  )  # fmt: skip


COMMANDS = {
  "list": Command(f"list registered {', '.join(KINDS[:-1])} or {KINDS[-1]}", ("kind",)),
  "export": Command(
    "write a workdir's results tables as parquet or csv", ("workdir",), _export_flags
  ),
  "report": Command(
    "re-render a workdir's analysis tables, figures, report", ("workdir",), _report_flags
  ),
  "migrate": Command("upgrade a workdir of an older format to this one", ("workdir",)),
}


def flag_values(command: str) -> flags.FlagValues:
  """The absl flags of `command`: its own and `--verbose`, in a FlagValues of their own."""
  fv = flags.FlagValues()
  flags.DEFINE_bool("verbose", False, "Tracebacks for errors too.", flag_values=fv)
  COMMANDS[command].define(fv)
  return fv


def usage(command: str | None = None) -> str:
  """The `--help` text: of the program (the commands), or of one command (its flags)."""
  if command is None:
    lines = [f"usage: {PROG} COMMAND ARGS [--flags]", "", __doc__.splitlines()[0], "", "commands:"]
    lines += [f"  {name:<8} {c.summary}" for name, c in COMMANDS.items()]
    lines += ["", f"{PROG} COMMAND --help: the command's arguments and flags."]
    return "\n".join(lines)
  c = COMMANDS[command]
  args = " ".join(a.upper() for a in c.args)
  flag_help = flag_values(command).get_help(include_special_flags=False).splitlines()
  lines = [f"usage: {PROG} {command} {args} [--flags]", "", c.summary]
  if command == "list":
    lines += ["", f"KIND: one of {', '.join(KINDS)}"]
  lines += ["", "flags:", *(line for line in flag_help if line.startswith(" "))]
  return "\n".join(lines)


def _fail(where: str, message: str) -> NoReturn:
  """One line on stderr, then exit status 2 (`SystemExit`, as argparse and absl's app do)."""
  print(f"{where}: error: {message}", file=sys.stderr)
  raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
  """Runs one command, `argv` (default `sys.argv[1:]`): the first word names it, absl flags and
  its positional arguments follow. Returns 0; a bad argument raises SystemExit(2) after one line
  on stderr."""
  argv = list(sys.argv[1:] if argv is None else argv)
  words = [i for i, a in enumerate(argv) if not a.startswith("-")]
  if any(a in ("-h", "--help", "--helpfull") for a in argv[: words[0] if words else None]):
    print(usage())
    return 0
  if not words:
    _fail(PROG, f"name a command: {', '.join(COMMANDS)} (--help: what each does)")
  command = argv.pop(words[0])
  if command not in COMMANDS:
    _fail(PROG, f"unknown command {command!r}; valid: {', '.join(COMMANDS)}")
  where = f"{PROG} {command}"
  if any(a in ("-h", "--help", "--helpfull") for a in argv):
    print(usage(command))
    return 0
  fv = flag_values(command)
  is_bool = lambda name: name in fv and fv[name].boolean  # noqa: E731
  argv = [f"--no{a[5:]}" if a.startswith("--no-") and is_bool(a[5:]) else a for a in argv]
  try:
    args = fv([PROG, *argv])[1:]
  except flags.Error as e:
    _fail(where, errors.one_line(e))
  expected = COMMANDS[command].args
  if len(args) != len(expected):
    names = " ".join(a.upper() for a in expected)
    _fail(where, f"takes {names}, got {len(args)} argument(s) {args} (--help: usage)")
  args = dict(zip(expected, args, strict=True))
  try:
    if command == "list":
      print("\n".join(list_lines(args["kind"])))
    elif command == "export":
      for path in export(args["workdir"], fv.format, fv.out):
        print(path)
    elif command == "migrate":
      from jtransfer.jobs import migrate  # noqa: PLC0415

      print("\n".join(migrate.migrate(args["workdir"])))
    else:
      kwargs = dict(seeds=fv.seeds, n_boot=fv.n_boot, figures=fv.figures, studies=fv.studies)
      for path in report(args["workdir"], **kwargs):
        print(path)
  except Exception as e:
    message = errors.user_message(e, (ValueError, ImportError, FileNotFoundError))
    if message is None or errors.verbose(fv.verbose):
      raise
    _fail(where, message)
  return 0


if __name__ == "__main__":
  sys.exit(main())
