"""The commands that run the server side (``serve``, ``lab``) need ``vmexec[server]``.

``pip install vmexec`` gives the client and the CLI only; those commands import the server's
packages when they run, and say what to install when they are missing.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

INSTALL_HINT = "pip install 'vmexec[server]'"


def missing(exc: ImportError) -> NoReturn:
    """Exit with the one-line reason and the install hint (``exc``: the failed import)."""
    print(f"error: this command needs the server extra ({exc.name or exc}): {INSTALL_HINT}",
          file=sys.stderr)
    raise typer.Exit(2)
