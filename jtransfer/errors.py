"""User errors: mistakes the user can fix, told in one line at the command line.

`UserError` (a ValueError, so existing handlers keep catching it) is raised at the edge that
knows the file or flag: a missing data dir, a weights file that cannot be read, a tensor that
cannot be a model weight. Launchers and `python -m jtransfer` end on one through `exit_on`:
`<prog>: error: <message>` on stderr and exit status 2; with `--verbose` or
$JTRANSFER_VERBOSE=1 the traceback is shown instead. Errors that are not the user's (bugs)
keep their traceback.
"""

from __future__ import annotations

import contextlib
import os
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


@contextlib.contextmanager
def exit_on(prog: str, *, show_traceback: bool = False, kinds=USER_ERRORS) -> Iterator[None]:
  """Turns a user error raised inside into `prog: error: ...` and exit status 2."""
  try:
    yield
  except kinds as e:
    if verbose(show_traceback):
      raise
    print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
    raise SystemExit(2) from None
