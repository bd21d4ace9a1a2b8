"""A read-only FUSE file system with one file whose bytes [bad_start, bad_end) fail
to read (EIO), as a dying card's bad sectors do: a test helper, run as a process.

    python3 failing_fuse.py BACKING MOUNTPOINT BAD_START BAD_END [BAD_START BAD_END ...]

FAILING_FUSE_DELAY (seconds) makes each failing read take that long first, as a
real card's bad sector takes the reader's timeout.

The kernel splits a large read into FUSE reads (128 KiB here); one that fails ends
the read short, with the bytes before it, as a block device's does."""

import errno
import os
import stat
import sys
import time

from fuse import FUSE, FuseOSError, Operations      # fusepy, with libfuse 2


class FailingFile(Operations):
    def __init__(self, backing, bad, delay=0.0):
        self.backing = backing
        self.size = os.path.getsize(backing)
        self.bad = bad                  # [(start, end)]
        self.fd = os.open(backing, os.O_RDONLY)
        self.delay = delay

    def getattr(self, path, fh=None):
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o555, "st_nlink": 2}
        if path == "/card.img":
            return {"st_mode": stat.S_IFREG | 0o444, "st_nlink": 1, "st_size": self.size}
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        return [".", "..", "card.img"]

    def read(self, path, size, offset, fh):
        if any(offset < end and offset + size > start for start, end in self.bad):
            time.sleep(self.delay)
            raise FuseOSError(errno.EIO)
        return os.pread(self.fd, size, offset)


if __name__ == "__main__":
    backing, mountpoint = sys.argv[1:3]
    bounds = [int(value) for value in sys.argv[3:]]
    delay = float(os.environ.get("FAILING_FUSE_DELAY", "0"))
    FUSE(FailingFile(backing, list(zip(bounds[::2], bounds[1::2])), delay), mountpoint,
         foreground=True, ro=True, nothreads=True)
