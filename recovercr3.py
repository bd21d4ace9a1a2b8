#!/usr/bin/env python3
"""recovercr3 - get photos and videos back from the raw dump of a camera memory card.

Usage::

    recovercr3 --input card.img --outdir recovered

The tool reads a dump (an image file made with dd or ddrescue, or a block device),
finds every file a camera writes in the ISO base media file format - Canon CR3 and
CRM, HEIF/HIF, MP4, MOV, 3GP - and copies each one, byte for byte, into the output
directory as img1.cr3, img2.mp4, ... It works without any file system: a card that is
corrupted, quick-formatted or unreadable by the camera still gives its files back, as
long as each file lies in one contiguous run of sectors (true for every file on a
card that was filled without deleting anything).

How a file is found and measured
--------------------------------
Every ISO-BMFF file begins with an ``ftyp`` box: a 32-bit big-endian size, the four
characters ``ftyp`` and a brand such as ``crx `` (Canon raw), ``heix`` (HEIF),
``qt  `` (QuickTime) or ``isom`` (MP4). The dump is searched for ``ftyp`` at every byte
offset, so files inside an image whose partition is not sector-aligned are found too.
From there the file is a chain of top-level boxes, each giving its own size: 32-bit,
or 64-bit when the size field is 1, or "to the end of the file" when it is 0 (allowed
for ``mdat`` only). The walk stops after ``mdat``, the box holding the pictures or
video, then keeps the boxes that cameras are known to write after it: ``moov`` or
``meta`` when the index comes last (most MP4 and MOV files), fragments (``moof``,
``mdat``, ``mfra``), ``free``/``skip`` and Canon's CNOP ``uuid`` (burst rolls and
files saved by Digital Photo Professional).

``--lastchunk NAME`` and ``--maxchunks N`` replace that rule with the original
recovercr3's: stop at the first box called NAME, or after at most N boxes.

Verdicts
--------
Each carved file gets a line in ``recovercr3-report.csv`` in the output directory
(columns file, type, offset, size, status, detail), with one of these statuses:

complete
    the chain of boxes is whole and holds what the format needs (an index - ``moov``,
    or ``meta`` for HEIF - and, for movies and raws, ``mdat``).
truncated
    the dump ends inside the file; the bytes up to the end of the dump are saved,
    since a cut photo often still shows its preview. An ``mdat`` of size 0 is reported
    this way too: its real end is unknown, so everything to the end of the dump is kept.
damaged
    the chain is whole but something the format needs is missing, or another file
    was found inside this one (detail says which). A file whose header is intact but
    whose data was written around deleted files (fragmented) looks whole to a carver;
    the files found over its extent give it away. The search therefore goes on inside
    every carved file: what lies there is saved too, noted "lies inside imgN".

Safety
------
The dump is opened read-only and never written. An existing output file is never
overwritten: the next free number is used. Each file is written to ``NAME.part`` and
renamed when complete, so an interrupted run never leaves a half file that looks
whole. Memory stays flat whatever the size of the dump or of a file. Ctrl-C stops,
removes the partial file and prints what was saved.

Exit status: 0 when the scan finished (also when nothing was found), 1 on an I/O
error (output disk full, file too large for the output file system, ...), 2 on bad
usage (missing or empty input, bad option), 130 when interrupted.

Block devices work (``--input /dev/sdX``), but reading a failing card directly can
crash on a bad sector: make an image first with ddrescue, and work on the image.
"""

import argparse
import collections
import csv
import errno
import io
import mmap
import os
import signal
import stat
import struct
import sys
from pathlib import Path
from typing import NamedTuple

__version__ = "0.1.0"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

COMPLETE = "complete"
TRUNCATED = "truncated"
DAMAGED = "damaged"


class FormatError(Exception):
    """The bytes at an offset are not (or no longer) a well-formed record."""


class TruncatedError(FormatError):
    """The dump ends inside the record."""


class InputError(Exception):
    """The input cannot be scanned (missing, a directory, empty, unreadable)."""


class OutputError(Exception):
    """A recovered file cannot be written (disk full, read-only, ...)."""


class Interrupted(Exception):
    """The user pressed Ctrl-C; raised where stopping leaves nothing half done."""


class StopRequest:
    """SIGINT handler: the first Ctrl-C asks for a clean stop, a second one is immediate.

    The work checks `check()` between chunks, so a stop never lands between creating
    a .part file and the code that removes it.
    """

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def check(self):
        if self.requested:
            raise Interrupted()


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def _box_name_arg(text):
    name = text.encode("ascii", "ignore")
    if len(text) != 4 or len(name) != 4 or not is_fourcc(name):
        raise argparse.ArgumentTypeError(
            "a box name is exactly four printable characters, got %r" % text)
    return name


def _positive_int_arg(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a whole number greater than zero")
    return value


def _types_arg(text):
    wanted = set()
    for word in text.lower().split(","):
        word = word.strip()
        if word in TYPE_ALIASES:
            wanted.add(TYPE_ALIASES[word])
        elif word == "all":
            wanted.update(ALL_TYPES)
        elif word:
            raise argparse.ArgumentTypeError(
                "unknown type %r (known: %s, all)" % (word, ", ".join(ALL_TYPES)))
    if not wanted:
        raise argparse.ArgumentTypeError("name at least one type")
    return frozenset(wanted)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="recovercr3",
        description="Recover Canon CR3 photos and other camera files from card dumps.")
    p.add_argument("-i", "--input", required=True, metavar="DUMP",
                   help="the dump to scan: an image file or a block device (never written)")
    p.add_argument("-o", "--outdir", required=True, metavar="DIR",
                   help="where recovered files go (created if missing)")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--lastchunk", type=_box_name_arg, metavar="NAME",
                      help="end each file at the first top-level box called NAME, as "
                           "the original recovercr3 (default: after mdat, keeping the "
                           "boxes cameras write after it)")
    stop.add_argument("--maxchunks", type=_positive_int_arg, metavar="N",
                      help="end each file after at most N top-level boxes")
    p.add_argument("--types", type=_types_arg, default=frozenset(ALL_TYPES), metavar="LIST",
                   help="comma-separated types to recover (default: all): "
                        + ", ".join(ALL_TYPES))
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print every candidate and every box with its size")
    p.add_argument("--version", action="version", version="%(prog)s " + __version__)
    return p.parse_args(argv)


# ---------------------------------------------------------------------------
# The dump
# ---------------------------------------------------------------------------

SCAN_WINDOW = 16 << 20      # bytes searched before the pages behind are let go
COPY_CHUNK = 8 << 20        # bytes written per write() call


class Dump:
    """The input, memory-mapped read-only.

    Pages the scan or a copy has passed are handed back with madvise, so the
    process's memory stays flat on a dump of any size (the page cache keeps them).
    """

    def __init__(self, path):
        self.path = path
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except OSError as e:
            raise InputError("cannot read %s: %s" % (path, e.strerror)) from None
        try:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise InputError("%s is a directory, not a dump" % path)
            self.size = os.lseek(fd, 0, os.SEEK_END)    # st_size is 0 for block devices
            if self.size == 0:
                raise InputError("%s is empty: nothing to recover" % path)
            try:
                self.map = mmap.mmap(fd, self.size, access=mmap.ACCESS_READ)
            except (OSError, OverflowError, ValueError) as e:
                raise InputError("cannot map %s (%d bytes): %s" % (path, self.size, e)) from None
        finally:
            os.close(fd)
        self._kept_from = 0             # pages below this offset were let go

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.map.close()

    def forget(self, start, end):
        """Drop [start, end) from this process's memory; the page cache keeps it."""
        if not hasattr(self.map, "madvise"):
            return
        start -= start % mmap.PAGESIZE
        if end > start:
            self.map.madvise(mmap.MADV_DONTNEED, start, end - start)

    def next_candidate(self, pos, checkpoint):
        """Offset >= pos of the next possible file start, or -1 at the end of the dump.

        Nothing before pos is read again, so the pages behind it are let go.
        """
        needle_len = len(FTYP)
        while pos < self.size:
            checkpoint()
            if pos - self._kept_from >= SCAN_WINDOW:
                self.forget(self._kept_from, pos)
                self._kept_from = pos
            stop = min(pos + SCAN_WINDOW, self.size)
            hit = self.map.find(FTYP, pos + FTYP_AT,
                                min(stop + FTYP_AT + needle_len, self.size))
            if hit >= 0:
                return hit - FTYP_AT
            pos = stop
        return -1

    def copy_to(self, fd, start, size, checkpoint):
        """Write dump[start:start+size] to fd in chunks straight from the map."""
        end = start + size
        with memoryview(self.map) as view:
            while start < end:
                checkpoint()
                stop = min(start + COPY_CHUNK, end)
                with view[start:stop] as chunk:
                    done = 0
                    while done < len(chunk):
                        done += os.write(fd, chunk[done:])
                self.forget(start, stop)
                start = stop


# ---------------------------------------------------------------------------
# ISO base media files (ISO/IEC 14496-12): CR3, CRM, HEIF/HIF, MP4, MOV, 3GP
# ---------------------------------------------------------------------------

BOX_HEADER = struct.Struct(">I4s")          # size, type
LARGESIZE = struct.Struct(">Q")             # follows the header when size == 1
FTYP_FIELDS = struct.Struct(">4sI")         # major brand, minor version
BRAND_SIZE = 4
UUID_SIZE = 16
FULLBOX_FIELDS_SIZE = 4                     # version and flags of a FullBox (meta)

BOX_SIZE_TO_END = 0
BOX_SIZE_LARGE = 1
MIN_BOX_SIZE = BOX_HEADER.size
MIN_LARGE_BOX_SIZE = BOX_HEADER.size + LARGESIZE.size

FTYP = b"ftyp"
FTYP_AT = 4                                 # the name sits after the 32-bit size
FTYP_MIN_SIZE = BOX_HEADER.size + FTYP_FIELDS.size
FTYP_MAX_SIZE = 4096
MAX_BOXES_BEFORE_MDAT = 1000                # real files have a dozen; bounds a garbage walk
CNCV_MAX_SIZE = 64

MDAT = b"mdat"
MOOV = b"moov"
META = b"meta"
MOOF = b"moof"

CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")       # holds CNCV, CMT1..4
CANON_CNOP_UUID = bytes.fromhex("210f1687914911e4811100242131fce4")  # after mdat in rolls/DPP
UUIDS_AFTER_MDAT = frozenset([CANON_CNOP_UUID])
BOXES_AFTER_MDAT = frozenset([b"free", b"skip", MOOF, b"mfra"])

TYPE_EXTENSIONS = {"cr3": "cr3", "crm": "crm", "heif": "heic",
                   "mp4": "mp4", "mov": "mov", "3gp": "3gp"}
ALL_TYPES = tuple(TYPE_EXTENSIONS)
TYPE_ALIASES = dict({t: t for t in ALL_TYPES}, heic="heif", hif="heif", avif="heif",
                    qt="mov", m4v="mp4", m4a="mp4", **{"3g2": "3gp"})

CANON_RAW_BRAND = b"crx "
HEIF_BRANDS = frozenset([b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx",
                         b"mif1", b"msf1", b"avif", b"avis"])
QUICKTIME_BRAND = b"qt  "
THIRD_GEN_PREFIXES = (b"3gp", b"3gg", b"3gs", b"3ge", b"3g2")


def is_fourcc(name):
    """True for four printable ASCII characters, as box names and brands are."""
    return all(0x20 <= c <= 0x7E for c in name)


class Box(NamedTuple):
    offset: int
    name: bytes
    size: int           # as declared (a size-0 box: up to the end of the dump)
    header_size: int
    usertype: bytes = b""   # the 16-byte id of a uuid box
    to_end: bool = False    # declared with size 0

    @property
    def body(self):
        return self.offset + self.header_size

    @property
    def end(self):
        return self.offset + self.size


def read_box(buf, offset, limit):
    """The box whose header starts at offset; limit is the end of the readable bytes.

    Raises TruncatedError when the header itself is cut by limit, FormatError when
    the bytes are not a box. A box whose body runs past limit is returned as is.
    """
    if limit - offset < BOX_HEADER.size:
        raise TruncatedError("the dump ends inside a box header")
    size, name = BOX_HEADER.unpack_from(buf, offset)
    if not is_fourcc(name):
        raise FormatError("box name %r is not four printable characters" % name)
    header_size = BOX_HEADER.size
    to_end = False
    if size == BOX_SIZE_LARGE:
        if limit - offset < MIN_LARGE_BOX_SIZE:
            raise TruncatedError("the dump ends inside a box header")
        (size,) = LARGESIZE.unpack_from(buf, offset + header_size)
        header_size = MIN_LARGE_BOX_SIZE
        if size < MIN_LARGE_BOX_SIZE:
            raise FormatError("box %r has a 64-bit size of %d" % (name, size))
    elif size == BOX_SIZE_TO_END:
        size = limit - offset
        to_end = True
    elif size < MIN_BOX_SIZE:
        raise FormatError("box %r has size %d" % (name, size))
    usertype = b""
    if name == b"uuid":
        usertype = bytes(buf[offset + header_size:min(offset + header_size + UUID_SIZE, limit)])
    return Box(offset, name, size, header_size, usertype, to_end)


def child_boxes(buf, start, end):
    """The boxes inside [start, end), up to the first that is not well formed."""
    while start < end:
        try:
            box = read_box(buf, start, end)
        except FormatError:
            return
        if box.end > end:
            return
        yield box
        start = box.end


class Ftyp(NamedTuple):
    box: Box
    major: bytes
    compatible: tuple


def read_ftyp(buf, start, limit):
    """The ftyp box that opens a file at start, or FormatError if it is not one."""
    box = read_box(buf, start, limit)
    if box.name != FTYP or box.to_end:
        raise FormatError("no ftyp box")
    if not FTYP_MIN_SIZE <= box.size <= FTYP_MAX_SIZE:
        raise FormatError("implausible ftyp size %d" % box.size)
    if box.end > limit:
        raise FormatError("the dump ends inside the ftyp box")
    major, _minor = FTYP_FIELDS.unpack_from(buf, box.body)
    if not is_fourcc(major):
        raise FormatError("brand %r is not four printable characters" % major)
    first = box.body + FTYP_FIELDS.size
    compatible = tuple(bytes(buf[i:i + BRAND_SIZE])
                       for i in range(first, box.end - BRAND_SIZE + 1, BRAND_SIZE))
    return Ftyp(box, major, compatible)


def brand_type(ftyp):
    """The type a file's brands announce ("cr3" stands for both CR3 and CRM)."""
    for brand in (ftyp.major,) + ftyp.compatible:
        if brand == CANON_RAW_BRAND:
            return "cr3"
        if brand in HEIF_BRANDS:
            return "heif"
        if brand == QUICKTIME_BRAND:
            return "mov"
        if brand.startswith(THIRD_GEN_PREFIXES):
            return "3gp"
    return "mp4"


def canon_compressor(buf, boxes, limit):
    """Canon's CNCV string (b"CanonCR3_001/...", b"CanonCRM...", b"CanonHEIF...") or b"".

    It sits in the Canon uuid box inside moov (CR3, CRM) or meta (HIF).
    """
    for box in boxes:
        if box.name == MOOV:
            first = box.body
        elif box.name == META:
            first = box.body + FULLBOX_FIELDS_SIZE
        else:
            continue
        for child in child_boxes(buf, first, min(box.end, limit)):
            if child.name == b"uuid" and child.usertype == CANON_UUID:
                for item in child_boxes(buf, child.body + UUID_SIZE, child.end):
                    if item.name == b"CNCV":
                        return bytes(buf[item.body:min(item.end, item.body + CNCV_MAX_SIZE)])
    return b""


def type_and_extension(kind, ftyp, compressor):
    """Refine the brand's type with Canon's CNCV mark and pick the file extension."""
    if kind == "cr3" and compressor.startswith(b"CanonCRM"):
        return "crm", "crm"
    if kind == "heif":
        if compressor.startswith(b"CanonHEIF"):
            return kind, "hif"
        if ftyp.major in (b"avif", b"avis"):
            return kind, "avif"
    if kind == "3gp" and ftyp.major.startswith(b"3g2"):
        return kind, "3g2"
    return kind, TYPE_EXTENSIONS[kind]


# The end-of-file rules. Each answers, from the boxes walked so far (and the set of
# their names): has the file ended (finished), may it end before the next box
# (after_end), and does the next box still belong to it (accepts)?

class StopAfterMdat:
    """The default end of a file: mdat, plus the boxes cameras write after it."""

    def finished(self, boxes):
        return False

    def after_end(self, seen):
        return MDAT in seen

    def accepts(self, box, boxes, seen):
        if MDAT not in seen:
            return True
        if box.name in (MOOV, META):                # the index written last
            return box.name not in seen
        if box.name == MDAT:                        # fragmented movie: moof, mdat, ...
            return boxes[-1].name == MOOF
        if box.name == b"uuid":
            return box.usertype in UUIDS_AFTER_MDAT
        return box.name in BOXES_AFTER_MDAT


class StopAtBox:
    """--lastchunk NAME: end at the first top-level box called NAME (upstream's rule)."""

    def __init__(self, name):
        self.name = name

    def finished(self, boxes):
        return bool(boxes) and boxes[-1].name == self.name

    def after_end(self, seen):
        return False

    def accepts(self, box, boxes, seen):
        return True


class StopAfterCount:
    """--maxchunks N: end after at most N top-level boxes (upstream's rule)."""

    def __init__(self, count):
        self.count = count

    def finished(self, boxes):
        return len(boxes) >= self.count

    def after_end(self, seen):
        return True             # any box may be the last: an unreadable next one ends the file

    def accepts(self, box, boxes, seen):
        return True


class Walk(NamedTuple):
    boxes: list
    end: int                    # where the carved bytes end (limit when truncated)
    truncated: bool


def walk_boxes(buf, start, limit, rule):
    """Follow the top-level boxes from start until rule says the file has ended.

    Raises FormatError when the chain breaks before the file's end.
    """
    boxes = []
    seen = set()
    pos = start
    while not rule.finished(boxes):
        try:
            box = read_box(buf, pos, limit)
        except TruncatedError:
            if rule.after_end(seen):
                return Walk(boxes, pos, False)
            return Walk(boxes, limit, True)
        except FormatError:
            if rule.after_end(seen):
                return Walk(boxes, pos, False)
            raise
        if not rule.accepts(box, boxes, seen):
            return Walk(boxes, pos, False)
        if box.to_end and box.name != MDAT:
            raise FormatError("box %r has size 0, which only mdat may have" % box.name)
        boxes.append(box)
        seen.add(box.name)
        if box.end > limit:
            return Walk(boxes, limit, True)
        pos = box.end
        if len(boxes) > MAX_BOXES_BEFORE_MDAT and not rule.after_end(seen):
            raise FormatError("more than %d boxes before the end" % MAX_BOXES_BEFORE_MDAT)
    return Walk(boxes, pos, False)


def isobmff_verdict(kind, walk, limit):
    """(status, detail) of a walked file, from its top-level boxes."""
    names = [box.name for box in walk.boxes]
    if walk.truncated:
        last = walk.boxes[-1] if walk.boxes else None
        if last is None or last.end <= limit:
            return TRUNCATED, "the dump ends before the file does"
        return TRUNCATED, "the dump ends inside %s (%d of %d bytes present)" % (
            last.name.decode("latin-1"), limit - last.offset, last.size)
    if any(box.to_end for box in walk.boxes):
        return TRUNCATED, "mdat has size 0: saved up to the end of the dump"
    needed = [META] if kind == "heif" else [MOOV, MDAT]
    missing = [n.decode() for n in needed if n not in names]
    if missing:
        status = TRUNCATED if walk.end == limit else DAMAGED
        return status, "no " + " and no ".join(missing)
    return COMPLETE, ""


class Carved(NamedTuple):
    offset: int
    size: int
    type: str
    ext: str
    status: str
    detail: str
    boxes: list

    @property
    def end(self):
        return self.offset + self.size


def carve_isobmff(buf, start, limit, rule, types):
    """The ISO-BMFF file at start, None if its type is not wanted; FormatError if none."""
    ftyp = read_ftyp(buf, start, limit)
    kind = brand_type(ftyp)
    if kind not in types and not (kind == "cr3" and "crm" in types):
        return None
    walk = walk_boxes(buf, start, limit, rule)
    kind, ext = type_and_extension(kind, ftyp, canon_compressor(buf, walk.boxes, limit))
    if kind not in types:
        return None
    status, detail = isobmff_verdict(kind, walk, limit)
    return Carved(start, walk.end - start, kind, ext, status, detail, walk.boxes)


# ---------------------------------------------------------------------------
# Writing and reporting
# ---------------------------------------------------------------------------

PART_SUFFIX = ".part"
REPORT_NAME = "recovercr3-report"
REPORT_FIELDS = ("file", "type", "offset", "size", "status", "detail")


class OutputDir:
    """The output directory: free names, write-then-rename, and the report."""

    def __init__(self, path):
        self.path = Path(path)
        self.counter = 0
        if self.path.exists() and not self.path.is_dir():
            raise OSError(errno.ENOTDIR, "it is a file, not a directory")
        self.path.mkdir(parents=True, exist_ok=True)
        self.report_path = self._free_report_path()
        self._report = open(self.report_path, "x", newline="", encoding="utf-8")
        self._write_row(REPORT_FIELDS)

    def _free_report_path(self):
        path = self.path / (REPORT_NAME + ".csv")
        number = 1
        while path.exists():
            number += 1
            path = self.path / ("%s-%d.csv" % (REPORT_NAME, number))
        return path

    def _write_row(self, row):
        """Write a report line in one call, so an interruption never leaves half a row."""
        line = io.StringIO()
        csv.writer(line).writerow(row)
        self._report.write(line.getvalue())
        self._report.flush()

    def close(self):
        self._report.close()

    def next_path(self, ext):
        """imgN.ext for the next N whose name (and .part name) is free."""
        while True:
            self.counter += 1
            path = self.path / ("img%d.%s" % (self.counter, ext))
            if not path.exists() and not Path(str(path) + PART_SUFFIX).exists():
                return path

    def save(self, dump, carved, path, checkpoint):
        """Copy carved's bytes to path through a .part file; nothing is left on failure."""
        part = str(path) + PART_SUFFIX
        fd = None
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                         | getattr(os, "O_BINARY", 0), 0o644)
            dump.copy_to(fd, carved.offset, carved.size, checkpoint)
            os.fsync(fd)
            os.close(fd)
            fd = None
            os.rename(part, path)
        except BaseException:
            if fd is not None:
                os.close(fd)
            if os.path.exists(part):        # next_path saw no .part: this one is ours
                os.unlink(part)
            raise

    def record(self, path, carved, status, detail):
        self._write_row((path.name, carved.type, carved.offset, carved.size, status, detail))


# ---------------------------------------------------------------------------
# The recovery run
# ---------------------------------------------------------------------------

class Log:
    """Log lines on stderr in the original recovercr3's format: "[INFO] ..."."""

    def __init__(self, stream, verbose=False):
        self.stream = stream
        self.verbose = verbose

    def _line(self, level, message):
        self.stream.write("[%s] %s\n" % (level, message))
        self.stream.flush()

    def debug(self, message):
        if self.verbose:
            self._line("DEBUG", message)

    def info(self, message):
        self._line("INFO", message)

    def warning(self, message):
        self._line("WARNING", message)

    def error(self, message):
        self._line("ERROR", message)


def stop_rule(args):
    if args.maxchunks is not None:
        return StopAfterCount(args.maxchunks)
    if args.lastchunk is not None:
        return StopAtBox(args.lastchunk)
    return StopAfterMdat()


class Saved:
    """A written file whose report row waits until the scan has passed its end.

    Only then is it known whether other files lie inside it: a whole file found
    inside another one means the outer one is fragmented (its header is intact but
    its data is not where it says) or, rarely, that one file is stored in another.
    """

    def __init__(self, path, carved):
        self.path = path
        self.carved = carved
        self.holds = []         # (name, offset from our start) of files inside this one
        self.inside = []        # (name, offset from its start) of files this one is in

    def verdict(self):
        status, detail = self.carved.status, self.carved.detail
        notes = [detail] if detail else []
        if self.holds:
            name, at = self.holds[0]
            more = " and %d more" % (len(self.holds) - 1) if len(self.holds) > 1 else ""
            notes.append("holds %s at +%d%s: fragmented, or a file stored inside it"
                         % (name, at, more))
            if status == COMPLETE:
                status = DAMAGED
        notes.extend("lies inside %s at +%d" % inside for inside in self.inside)
        return status, "; ".join(notes)


class Recovery:
    """One scan of one dump into one output directory."""

    def __init__(self, dump, outdir, rule, types, log, stop):
        self.dump = dump
        self.stop = stop
        self.outdir = outdir
        self.rule = rule
        self.types = types
        self.log = log
        self.pos = 0
        self.pending = collections.deque()      # Saved files, in offset order
        self.saved = collections.Counter()      # status -> files reported
        self.failed = 0

    def run(self):
        code = EXIT_OK
        try:
            self.scan()
        except (Interrupted, KeyboardInterrupt):
            self.log.warning("Interrupted at offset {:,d} of {:,d} B".format(
                self.pos, self.dump.size))
            code = EXIT_INTERRUPTED
        except OutputError as e:
            self.log.error(str(e))
            code = EXIT_ERROR
        try:
            self.settle()
        except OutputError as e:
            self.log.error(str(e))
            code = EXIT_ERROR
        self.summary()
        if code == EXIT_OK and self.failed:
            code = EXIT_ERROR
        return code

    def scan(self):
        """Try every candidate in offset order, inside carved files too (see Saved)."""
        while True:
            self.pos = self.dump.next_candidate(self.pos, self.stop.check)
            if self.pos < 0:
                return
            self.settle(self.pos)
            carved = self.carve(self.pos)
            if carved is not None:
                self.save(carved)
            self.pos += 1

    def carve(self, start):
        self.log.debug("found ftyp at offset %d" % start)
        try:
            carved = carve_isobmff(self.dump.map, start, self.dump.size, self.rule, self.types)
        except FormatError as e:
            self.log.debug("not a file: %s" % e)
            return None
        if carved is not None:
            for box in carved.boxes:
                self.log.debug("atom name = %r, size = %d" % (box.name, box.size))
        return carved

    def save(self, carved):
        path = self.outdir.next_path(carved.ext)
        self.log.info("Saving {}, size {:,d} B".format(path, carved.size))
        try:
            self.outdir.save(self.dump, carved, path, self.stop.check)
        except OSError as e:
            if e.errno != errno.EFBIG:
                raise OutputError("cannot write %s: %s" % (path, e.strerror or e)) from None
            self.failed += 1
            self.log.error("%s not saved: too large for the output file system "
                           "(FAT32 holds at most 4 GiB per file); use an exFAT, NTFS or "
                           "ext4 disk for --outdir" % path)
            return
        saved = Saved(path, carved)
        for outer in self.pending:
            if outer.carved.offset < carved.offset < outer.carved.end:
                at = carved.offset - outer.carved.offset
                outer.holds.append((path.name, at))
                saved.inside.append((outer.path.name, at))
        self.pending.append(saved)

    def settle(self, pos=None):
        """Report the saved files the scan has passed (all of them when pos is None)."""
        while self.pending and (pos is None or self.pending[0].carved.end <= pos):
            saved = self.pending.popleft()
            status, detail = saved.verdict()
            try:
                self.outdir.record(saved.path, saved.carved, status, detail)
            except OSError as e:
                raise OutputError("cannot write %s: %s" % (self.outdir.report_path,
                                                           e.strerror or e)) from None
            self.saved[status] += 1
            if status != COMPLETE:
                self.log.warning("%s is %s: %s" % (saved.path, status, detail))

    def summary(self):
        problems = [(self.saved[s], s) for s in (TRUNCATED, DAMAGED) if self.saved[s]]
        if problems:
            self.log.warning("%s: see %s" % (
                ", ".join("%d %s" % p for p in problems), self.outdir.report_path))
        if self.failed:
            self.log.error("%d file(s) could not be saved" % self.failed)
        self.log.info("Restored %d file(s)" % sum(self.saved.values()))


def _main(argv=None):
    args = parse_args(argv)
    log = Log(sys.stderr, args.verbose)
    try:
        dump = Dump(args.input)
    except InputError as e:
        log.error(str(e))
        return EXIT_USAGE
    with dump:
        log.info("Processing %s" % args.input)
        try:
            outdir = OutputDir(args.outdir)
        except OSError as e:
            log.error("cannot write to %s: %s" % (args.outdir, e.strerror or e))
            return EXIT_ERROR
        try:
            with StopRequest() as stop:
                return Recovery(dump, outdir, stop_rule(args), args.types, log, stop).run()
        finally:
            outdir.close()


if __name__ == "__main__":
    sys.exit(_main())
