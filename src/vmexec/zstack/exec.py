"""ExecuteGuestVmCommand's enumerations on the wire."""

from __future__ import annotations

import enum

API = "ExecuteGuestVmCommand"


class Platform(enum.StrEnum):
    LINUX = "Linux"
    WINDOWS = "Windows"


class Shell(enum.StrEnum):
    """vmexec extension ``params.shell``."""

    DEFAULT = "default"
    SH = "sh"
    BASH = "bash"
    CMD = "cmd"
    POWERSHELL = "powershell"
