"""Folders the server keeps files in (uploads waiting, pre-rendered tiles): its own, closed to others.

Their defaults are in the system's temporary folder, where any local user
may create a path first: a folder made by someone else, or a link to
another place, would let them read what is kept there or make the server
delete files elsewhere when it cleans up.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class UnsafeFolder(OSError):
    """A folder the server will not keep files in; the message says why."""


def private_folder(path: str | os.PathLike) -> Path:
    """``path``, created (mode 700) if missing; :class:`UnsafeFolder` unless it is a real folder owned by
    this user that nobody else may write to."""
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UnsafeFolder(f"{path} is a link or not a folder")
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise UnsafeFolder(f"{path} belongs to another user or others may write to it")
    return path
