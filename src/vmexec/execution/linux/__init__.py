"""Linux guests: :class:`LinuxPlatform` and the shell scripts it sends (``*.sh`` here)."""

from vmexec.execution.linux.platform import INLINE_MAX, RUN_DIRS, LinuxPlatform

__all__ = ["INLINE_MAX", "RUN_DIRS", "LinuxPlatform"]
