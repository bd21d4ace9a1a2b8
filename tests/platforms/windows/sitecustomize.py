"""Windows' Python, as far as recovercr3 can tell, on Linux: put on at start-up (this
folder on PYTHONPATH, so in every process, the spawned scan processes too).

What Windows' Python lacks is removed, and scan processes are spawned, not forked.
msvcrt.locking is a POSIX record lock (between processes). Not simulated: drive
letters and backslashes, NTFS's rules for names (the naming tests hold names to
those), and that a locked range cannot be read. The output drive has no hard links,
as a FAT32 or exFAT one on Windows."""

import fcntl as _fcntl
import importlib
import multiprocessing
import os
import signal
import sys
import types

for name in ("pread", "pwrite", "preadv", "sendfile", "posix_fadvise", "sched_getaffinity",
             "pipe2", "getuid", "geteuid", "getpgid", "setsid", "killpg", "pathconf",
             "O_NONBLOCK", "O_NOFOLLOW", "O_DIRECT"):
    if hasattr(os, name):
        delattr(os, name)
for name in ("SIGHUP", "SIGKILL", "SIGALRM"):
    if hasattr(signal, name):
        delattr(signal, name)
for name in ("fcntl", "resource", "termios"):
    sys.modules[name] = None            # import fails, as there


def _locking(fd, mode, nbytes):
    """msvcrt.locking: nbytes from the position, locked (LK_NBLCK: or OSError) or not.
    A POSIX record lock stands in for Windows' byte-range lock (between processes)."""
    at = os.lseek(fd, 0, os.SEEK_CUR)
    try:
        if mode == msvcrt.LK_UNLCK:
            _fcntl.lockf(fd, _fcntl.LOCK_UN, nbytes, at, os.SEEK_SET)
        else:                           # a descriptor open to read takes a shared one
            writable = _fcntl.fcntl(fd, _fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY
            _fcntl.lockf(fd, (_fcntl.LOCK_EX if writable else _fcntl.LOCK_SH)
                         | _fcntl.LOCK_NB, nbytes, at, os.SEEK_SET)
    except OSError as e:
        raise PermissionError(13, "Permission denied") from e


# modules that look for msvcrt to tell Windows are loaded first, as on Linux
for name in ("subprocess", "multiprocessing.connection", "concurrent.futures.process"):
    importlib.import_module(name)

msvcrt = types.ModuleType("msvcrt")
msvcrt.LK_UNLCK, msvcrt.LK_LOCK, msvcrt.LK_NBLCK, msvcrt.LK_RLCK, msvcrt.LK_NBRLCK = range(5)
msvcrt.locking = _locking
sys.modules["msvcrt"] = msvcrt


def _link(source, target, **kwargs):
    """An output drive of FAT32 or exFAT, as most card readers' sticks are: Windows
    has no hard links there, and says "Incorrect function"."""
    if os.path.lexists(target):
        raise FileExistsError(17, "File exists", target)
    raise OSError(22, "Incorrect function")


os.link = _link
multiprocessing.set_start_method("spawn", force=True)
