"""macOS's Python, as far as recovercr3 can tell, on Linux: put on at start-up (this
folder on PYTHONPATH). What it lacks is removed, and scan processes are spawned
(macOS's default since Python 3.8). Not simulated: APFS's and HFS+'s names (the
naming tests hold names to those) and F_NOCACHE."""

import errno
import multiprocessing
import os

for name in ("posix_fadvise", "sched_getaffinity", "pipe2", "O_DIRECT"):
    if hasattr(os, name):
        delattr(os, name)


def sendfile(out_fd, in_fd, offset, count):
    """macOS's sendfile writes to a socket only."""
    raise OSError(errno.ENOTSOCK, os.strerror(errno.ENOTSOCK))


os.sendfile = sendfile
multiprocessing.set_start_method("spawn", force=True)
