"""One writer per run folder.

A run (``rnnreg train``, ``compare`` or ``sweep``) writes several files into its folder — model
files, a checkpoint, the history, ``sweep.json`` — and two runs writing into one folder at once
would leave a mix of both. :class:`FolderLock` holds an operating-system lock on
``FOLDER/.rnnreg.lock`` for the whole run: a second run into the same folder is refused with a
message naming the folder and the run that holds it (or waits for it, when asked). The lock
belongs to the process, so a run that is killed releases it at once; the file itself stays, and
says who held it last.
"""

import datetime
import json
import os
import socket
import sys

__all__ = ["FolderLock", "FolderBusy", "LOCK_NAME"]

#: The lock file a run keeps in its folder.
LOCK_NAME = ".rnnreg.lock"


class FolderBusy(RuntimeError):
    """Another run holds the folder."""


def _lock(fd, wait):
    """Take an exclusive lock on an open file; False when another process holds it (and
    ``wait`` is off)."""
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd):
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


class FolderLock:
    """Hold ``folder``'s lock for a ``with`` block (the folder is made if need be).

    Parameters
    ----------
    folder : str
        The run's folder.
    what : str
        What holds it, for the message a second run gets (``"rnnreg train"``).
    wait : bool
        Wait for the holder to finish instead of refusing.

    Raises
    ------
    FolderBusy
        When another process holds the folder (and ``wait`` is off): the message names the
        folder and the holder (its command, process id, host and start time).

    Examples
    --------
    >>> import tempfile
    >>> from rnnreg.folder_lock import FolderBusy, FolderLock
    >>> folder = tempfile.mkdtemp()
    >>> with FolderLock(folder, "a run"):
    ...     pass                                 # write the run's files here
    """

    def __init__(self, folder, what="an rnnreg run", wait=False):
        self.folder, self.what, self.wait = os.fspath(folder), what, bool(wait)
        self.path = os.path.join(self.folder, LOCK_NAME)
        self._fd = None

    def _holder(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                info = json.loads(f.read() or "{}")
        except (OSError, ValueError):
            return "another process"
        if not isinstance(info, dict):
            return "another process"
        return (
            f"{info.get('what', 'another run')} (process {info.get('pid', '?')} on "
            f"{info.get('host', '?')}, started {info.get('started', '?')})"
        )

    def __enter__(self):
        os.makedirs(self.folder, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _lock(fd, self.wait):
            os.close(fd)
            raise FolderBusy(
                f"{self.folder} is in use by {self._holder()}: one run writes into a folder at a "
                "time; wait for it to finish (--wait), or give another --out"
            )
        self._fd = fd
        info = {
            "what": self.what,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(info).encode())
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            _unlock(self._fd)
            os.close(self._fd)
            self._fd = None
        return False
