"""User errors: mistakes the user can fix, told in one line at the command line.

`UserError` (a ValueError, so existing handlers keep catching it) is raised at the edge that
knows the file or flag: a missing data dir, a weights file that cannot be read, a tensor that
cannot be a model weight. Launchers and `python -m jtransfer` end on one through `exit_on`:
`<prog>: error: <message>` on stderr and exit status 2; with `--verbose` or
$JTRANSFER_VERBOSE=1 the traceback is shown instead. A full or read-only disk is told the same
way, wherever in the error's chain it shows (orbax and SQLite wrap it). Errors that are not the
user's (bugs) keep their traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sqlite3
import sys
from collections.abc import Iterator

VERBOSE_ENV = "JTRANSFER_VERBOSE"


class UserError(ValueError):
  """Bad input the user can fix; the message names the file, flag or tensor and the fix."""


# What a command line reports in one line: ours (a corrupt checkpoint is one) and a file that
# is not there.
USER_ERRORS = (UserError, FileNotFoundError)


def verbose(flag: bool = False) -> bool:
  """Whether tracebacks are wanted: the `--verbose` flag or $JTRANSFER_VERBOSE."""
  return flag or os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def one_line(error: BaseException) -> str:
  """The error's message on one line (a multi-line message is joined with ' | ')."""
  text = " | ".join(line.strip() for line in str(error).splitlines() if line.strip())
  return text or type(error).__name__


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NOT_ALLOWED = (errno.EROFS, errno.EACCES, errno.EPERM)
_RERUN = "then rerun: finished units are kept and nothing half-written is read back"


def _no_space(what: str) -> str:
  return f"no space left {what}: free space or use another workdir, {_RERUN}"


def storage_message(error: BaseException) -> str | None:
  """One line for a disk that is full or may not be written, found anywhere in `error`'s chain
  of causes; None for anything else."""
  seen = set()
  e = error
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno in _NO_SPACE:
      return _no_space(f"on the device writing {e.filename}" if e.filename else "on the device")
    if "os_error_code='28'" in str(e):  # tensorstore (orbax's array writer): ENOSPC in words
      path = re.search(r'local file "([^"]+)"', str(e))
      return _no_space(f"on the device writing {path[1]}" if path else "on the device")
    if isinstance(e, sqlite3.OperationalError) and "disk is full" in str(e):
      return _no_space("for the results database")
    if isinstance(e, OSError) and e.errno in _NOT_ALLOWED and e.filename:
      return f"cannot write {e.filename} ({os.strerror(e.errno)}): choose a writable workdir"
    e = e.__cause__ or e.__context__
  return None


def user_message(error: BaseException, kinds=USER_ERRORS) -> str | None:
  """The one line a command prints for `error` if the user can fix it, else None (a bug)."""
  if isinstance(error, kinds):
    return one_line(error)
  return storage_message(error)


@contextlib.contextmanager
def exit_on(prog: str, *, show_traceback: bool = False, kinds=USER_ERRORS) -> Iterator[None]:
  """Turns a user error raised inside (or a full disk) into `prog: error: ...`, exit status 2."""
  try:
    yield
  except Exception as e:
    message = user_message(e, kinds)
    if message is None or verbose(show_traceback):
      raise
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2) from None
