#!/usr/bin/env python3
"""recovercr3 - get photos and videos back from the raw dump of a camera memory card.

Usage::

    recovercr3 --input card.img --outdir recovered

This file, top to bottom (each section uses only what the ones before it define)::

     1. Start-up
     2. Basics
     3. Sizes and inputs
     4. TIFF tags (Exif): camera model, date and serial number
     5. What a carver returns
     6. RIFF: AVI, WAV, WebP
     7. JPEG
     8. ISO base media files (ISO/IEC 14496-12): CR3, CRM, HEIF/HIF, MP4, MOV, 3GP
     9. TIFF and the raws built on it: CR2, NEF, ARW, DNG, ORF, RW2, PEF, SRW, GPR
    10. CRW: Canon's CIFF raw (EOS D30 to 300D)
    11. RAF: Fujifilm's raw
    12. X3F: Sigma's raw
    13. MPEG transport streams: AVCHD's MTS and M2TS, and TS
    14. MXF (SMPTE 377M): a run of KLV packets
    15. 7z
    16. The formats
    17. The card's file system: what is left of it says where clusters lie
    18. Scanning
    19. Reading the dump
    20. Putting a split file back together: its own tables say where its bytes lie
    21. Writing and reporting
    22. The contact sheet: index.html, a tile per file
    23. The log
    24. What a run does with a file
    25. The recovery run
    26. Command line
    27. Main

The tool reads a dump (an image file made with dd or ddrescue, or a block device),
finds every file a camera writes - Canon CR3 and CRM, HEIF/HIF, MP4, MOV, 3GP, and
beside them JPEG, AVI/WAV/WebP, TIFF and the raws built on it (CR2, NEF, ARW, DNG,
ORF, RW2, PEF, SRW, GPR), Canon's CRW, Fujifilm's RAF, Sigma's X3F, AVCHD's MTS/M2TS
and other transport streams, MXF and 7z archives - and copies each one, byte for byte,
into the output directory as img1.cr3, img2.mp4, ... (or as the card's folders
named them, where they still say: --name-by original). It works without any file
system: a card that is corrupted, quick-formatted or unreadable by the camera still
gives its files back; a file the camera wrote in pieces around others is put back
together where its own structure proves where each piece lies.

Every file's end comes from its own structure, never from a maximum size: the box
chain of ISO-BMFF files (below), a JPEG's markers and scans, a RIFF's size, every
IFD of a TIFF and what it points at, a CRW's heap table, a RAF's header, an X3F's
directory, a transport stream's packets and counters, an MXF's KLVs and partitions,
a 7z's start header. Files other than ISO-BMFF are looked for at sector boundaries
(--align).

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
``mdat``, ``mfra``), ``free``/``skip``, ``udta`` and ``uuid`` boxes of any vendor
(Canon's CNOP in burst rolls and files saved by Digital Photo Professional, Adobe's
XMP). A name that no ISO-BMFF or QuickTime file has at its top level is not a box of
the file: before ``mdat`` the chain breaks there, after it the file ends.

``--lastchunk NAME`` and ``--maxchunks N`` replace that rule with the original
recovercr3's: stop at the first box called NAME, or after at most N boxes.

Verdicts
--------
Each file is checked against its own tables (sample offsets and sizes, Canon's CTBO,
THMB and PRVW, HEIF item locations), and the tables against the data they point at
(a raw picture's CRX header, the NAL units of every AVC/HEVC sample and HEIF item, a
JPEG decoded to its frame's MCU count, a WAV's samples staying sound): the checks of
each format are in its section, and listed in docs/reference.rst. Each file gets a row
in recovercr3-report.csv in the output directory (file, type, offset, size, status,
detail, model, datetime, serial, pieces - the byte runs start-end in the dump, joined
with + for a file put back together -, the card's name for it in original_name,
name_source and fs_time, and the sha256 of what was written) and one of these
verdicts (the README quotes them):

complete
    every check of the file against its own tables, and of them against its data, passed.
truncated
    the dump ends inside the file: what it holds is saved, the rest is missing.
damaged
    something the format needs is missing or inconsistent, or other files lie inside it.
repaired
    a movie the tool rebuilt from one cut before its camera wrote its index: it plays.
not saved
    found, but not written (disk full, too large, a read error, a stop): its row says why.

Complete files go to the output directory itself, the others to truncated/, damaged/
and repaired/. A file that runs to the end of the dump is cut where the next file
found inside it begins (its extent holds that file's bytes), so every byte of the
dump is written once. The search goes on inside every carved file: a whole file
found there is saved too ("lies inside imgN"), and the outer one, which holds it, is
damaged - unless it is put back together: around the whole files inside it, through
its FAT chain, or from its own tables or MCUs, complete only when its checks read
across every join. The best whole picture inside a broken CR3 or CRM is written
beside it (damaged/img3.cr3.jpg); a cut 7z's first LZMA stream is decoded and carved
in turn (imgN.7z.salvaged, imgN.7z.salvaged.files/). A movie whose camera stopped
before writing its index (a dead battery, a pulled card) is rebuilt on the index of
a complete movie of the card with the same brands and coding:
repaired/img2.repaired.mp4 holds its whole pictures, and its sound where it is PCM;
img2.mp4 stays as carved.

Options
-------
``recovercr3 --help`` lists them, and says what each does. Scan processes search and
carve the dump (--jobs, one per CPU by default) while this process decides and names
and a thread copies; the output is the same for any number of jobs. JPEG data is
decoded by libjpeg-turbo's TurboJPEG library where the system has it (through ctypes;
RECOVERCR3_TURBOJPEG names another file, or "none"), else by the decoder built in.

The same command run again into the same output directory resumes the last run:
after one cut short (Ctrl-C, a full disk, a read error), from the first offset whose
rows were not final, with its names' numbers, so that the new report is that of a
run never stopped; after one that searched the whole dump, from the start. Either
way, a file found where an earlier row says one was saved, whose bytes in the dump
have that row's sha256 and whose copy is still there, is kept, not written again.
``--restart`` starts over, into new names.

Safety
------
The dump is opened read-only and never written; an output directory on the device
being read, or on the file system of an image still being written, is refused. No
existing entry in the output directory is ever replaced: a name is claimed by
creating NAME.part exclusively, and given with a hard link (a checked rename where
there are none), so another run, a symlink or the dump itself stays as it is. Each
file is written to NAME.part and named when complete, so an interrupted run never
leaves a half file that looks whole. Files are not forced to disk one by one (fsync
would make every run as slow as the disk): after a power cut, the same command reads
back every file the killed run's report names, and keeps only those whose sha256 is
their row's. Memory stays flat whatever the size of
the dump or of a file, and no table a file declares is believed beyond the bytes
that hold it. Ctrl-C, SIGTERM and SIGHUP stop, remove the partial file and print what
was saved. The memory-mapped search runs in scan processes: a read error under the
map (SIGBUS) kills one of them, and the run ends with the error and a full report.

Exit status
-----------
0 when the scan finished (also when nothing was found); 1 when something could not
be written or read (output disk full, a file over 4 GiB on FAT32, a read error);
2 for bad usage or an input that cannot be scanned; 128 + the signal's number when
stopped by one (130 for Ctrl-C).

Block devices work (``--input /dev/sdX``), read carefully: a sector that cannot be
read is zeros, and the files over it are damaged (so is an image file, from its
first read that fails). Still, an image made first with ddrescue spares the card.
"""

# 1. Start-up --------------------------------------------------------------------------
# Stop signals noted from the first line on, and the hand-over to a fresh interpreter
# that runs this file as the module recovercr3.

import signal

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP",
                                                        "SIGBREAK")     # Ctrl-Break
                     if hasattr(signal, name))
EARLY_STOPS = []            # stop signals that came while the script was starting


def _note_early_stop(signum, frame):
    EARLY_STOPS.append(signum)


if __name__ == "__main__":      # a Ctrl-C during the imports below is noted, not fatal
    for _signum in STOP_SIGNALS:
        signal.signal(_signum, _note_early_stop)


# Run as a script, this file hands over to a fresh interpreter that runs its code as
# the module recovercr3: Python keeps the syntax tree of the script it runs (some 17 MB
# of this one) until the script ends, and every scan process forked from it would hold
# it too. The code goes over compiled (marshal, in an unlinked file), so it is not
# compiled twice. The process stays the same one (exec), and the stop signals stay
# blocked across it, so one that comes meanwhile is noted, as one during the
# script's own start-up is (EARLY_STOPS).
AS_MODULE = """\
import marshal, os, signal, sys, types
early = []
stops = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
         if hasattr(signal, name)]
for signum in stops:
    signal.signal(signum, lambda signum, frame: early.append(signum))
signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
with os.fdopen(int(sys.argv[2]), "rb") as compiled:
    code = marshal.load(compiled)
module = types.ModuleType("recovercr3")
module.__file__ = sys.argv[1]
sys.modules["recovercr3"] = module
exec(code, module.__dict__)
module.EARLY_STOPS.extend(early)
sys.exit(module._main(sys.argv[3:]))
"""


def _hand_over_to_module():
    """exec a fresh interpreter running the code of the caller (this script) as a
    module (POSIX, where scan processes are forked: on Windows an exec is a new
    process, and a spawned process finds the script by its path); where that cannot
    be done, go on as the script."""
    import marshal
    import multiprocessing
    import os
    import subprocess
    import sys
    import tempfile
    if (os.name != "posix" or not sys.executable
            or multiprocessing.get_start_method() != "fork"):
        return                  # spawned scan processes import the script by its path
    code = sys._getframe(1).f_code
    flags = subprocess._args_from_interpreter_flags()
    if not {"sitecustomize", "usercustomize"} & set(sys.modules):
        flags.append("-S")      # the standard library is all it needs: no site start-up
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        if not EARLY_STOPS:
            with tempfile.TemporaryFile() as compiled:
                marshal.dump(code, compiled)
                compiled.seek(0)
                os.set_inheritable(compiled.fileno(), True)
                os.execv(sys.executable, [sys.executable] + flags
                         + ["-c", AS_MODULE, os.path.abspath(__file__),
                            str(compiled.fileno())] + sys.argv[1:])
    except (OSError, ValueError, AttributeError):
        pass
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


if __name__ == "__main__":      # before the imports below: the module's run makes them
    _hand_over_to_module()

import argparse  # noqa: E402 (the imports come after the handler above on purpose)
import array
import base64
import bisect
import collections
import concurrent.futures
import contextlib
import csv
import datetime
import errno
import filecmp
try:
    import fcntl        # a report's lock (flock): POSIX
except ImportError:
    fcntl = None
try:
    import msvcrt       # a report's lock (a locked byte): Windows
except ImportError:
    msvcrt = None
import hashlib
import heapq
import html
import io
import itertools
import lzma
import math
import mmap
import operator
import os
import re
import shlex
import stat
import struct
import sys
import tempfile
import threading
import time
import unicodedata
import urllib.parse
import zlib
from pathlib import Path
from typing import NamedTuple


# 2. Basics ----------------------------------------------------------------------------
# The imports, what differs between systems (pread, O_* flags, Windows devices),
# exit codes, verdicts, the exceptions, and the stop request.

__version__ = "0.1.0"
# What tests and users may import (tests/test_project.py holds the tests to it).
__all__ = ["ALL_TYPES", "BASELINE_FRAMES", "baseline_scan", "boot_geometry", "boot_volume",
           "Box", "brand_type", "Budget", "build_parser", "BYTES_PER_BOX", "Candidates",
           "candidates_in", "CANON_UUID", "card_geometry", "card_path",
           "CANON_METADATA_ENTRY", "CARD_PREFIX", "carve_again", "carve_isobmff",
           "carve_jpeg", "carve_mts", "carve_mxf", "carve_plain_ts", "carve_raf",
           "carve_tiff", "carve_x3f", "Carved", "_carving", "chain_pieces", "child_boxes",
           "clear_of_foreign", "CLEAR_LINE", "Coded", "ctmd_record_starts", "COMPLETE",
           "COPY_CHUNK", "CRW_MAGIC", "crx_geometry", "crx_header_problem", "DAMAGED",
           "DATA_MARKER", "DECODE_CHUNK", "decode_coded", "decode_from", "decode_mcus",
           "directory_sieve", "DirEntry", "dot_folders", "Dump", "EarlierRun",
           "exfat_checksum", "exfat_entries", "exfat_sets", "exif_tags", "fat_chain",
           "FAT_DIRECTORY", "fat_entries", "FileSystem", "find_pieces", "fitted", "Folder",
           "folder_paths", "folders_geometry", "Format", "free_runs", "FormatError",
           "FORMATS", "FTYP", "Ftyp", "FTYP_SEARCH", "gap_explained", "Geometry",
           "grid_search", "hash_carved", "Holes", "InputError", "intervals", "iso_marks",
           "ISOBMFF_CHECKS", "IsoFile", "jpeg_decodes", "JPEG_EOI",
           "JPEG_MARKER_AFTER_DATA", "Known", "known_digest", "last_checkpoint", "Layout",
           "LFN_ATTRIBUTES", "lfn_checksum", "likely_split", "Log", "_main",
           "MAPPED_AROUND", "Mark", "MAX_BOXES_BEFORE_MDAT", "MAX_MAPFILE_BYTES",
           "MAX_NAME_BYTES", "mcu_problem", "MIN_CARD_CLUSTER", "MEMMEM", "Meta",
           "mpeg_crc", "MXF_PARTITION_KEY", "nal_units_problem", "NAME_ROOM", "Naming",
           "newest_report", "Options", "OutputDir", "PageGuard", "pages_to_let_go",
           "PART_SUFFIX", "path_room", "pread", "RAF_MAGIC", "read_box", "read_ftyp",
           "read_mapfile", "read_state", "Recovery", "Report", "report_cell",
           "RESERVED_TOP", "RESTART_MARKER", "restart_problem", "run_checks", "salvage_7z",
           "same_name", "_scan", "SCAN_FINISHED", "SCAN_INTERRUPTED", "SCAN_REGION",
           "_scan_region", "search_chunked", "section_whole", "SECTOR_FORMATS",
           "shared_grid", "shortened", "Spans", "_start_scan_process", "STATE_NAME",
           "StopAfterCount", "StopAfterMdat", "StopAtBox", "STUFFED_FF", "tail_checked",
           "times_agree", "TRUNCATED", "TruncatedError", "TURBOJPEG", "TurboJpeg",
           "type_and_extension", "Unproven", "unreserved", "unstuff", "UsageError",
           "__version__", "walk_boxes", "walk_jpeg", "walk_tiff", "windows_device",
           "write_state", "X3F_MAGIC",
           # a movie cut before its moov
           "BOX_HEADER", "MDAT", "MOOV", "NAL_CONFIGS", "NAL_SAMPLE_ENTRIES", "REPAIRED",
           "U32", "VideoCoding", "key_rhythm", "movie_reference", "pcm_track",
           "presentation_order", "repair_plan", "repaired_movie_header", "rhythms_agree",
           "sound_chunks", "walk_cut_movie",
           # a verdict in plain words
           "meaning", "ROW_STATUSES", "STILL_USABLE", "VERDICT_WORDS",
           # the contact sheet
           "PNG_SIGNATURE", "tiff_picture"]

# What differs between systems is chosen here, once: Windows has no pread, no
# O_NONBLOCK or O_NOFOLLOW (and wants O_BINARY); the rest is looked for where used.
O_BINARY = getattr(os, "O_BINARY", 0)
O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# \\.\PhysicalDrive1, \\.\E:, \\?\E:, \\?\Volume{...}: a device; \\?\C:\x.img is a file
WINDOWS_DEVICE = re.compile(r"[\\/]{2}(\.[\\/]|\?[\\/]([A-Za-z]:[\\/]?\Z|Volume\{|"
                            r"PhysicalDrive|GLOBALROOT))", re.IGNORECASE)


def windows_device(path):
    """True for a Windows device path (a physical drive, a volume): not a file."""
    return WINDOWS_DEVICE.match(str(path)) is not None


def open_here(path, flags, mode=0o644):
    """os.open(path, flags), never through a symbolic link at path: O_NOFOLLOW, or
    where there is none (Windows) a look first (ELOOP, as O_NOFOLLOW says)."""
    if not O_NOFOLLOW and os.path.islink(path):
        raise OSError(errno.ELOOP, "a symbolic link", str(path))
    return os.open(str(path), flags | O_NOFOLLOW | O_BINARY, mode)


if hasattr(os, "pread"):
    pread = os.pread
else:
    _SEEK_LOCK = threading.Lock()       # a descriptor's position is shared by threads

    def pread(fd, size, offset):
        """size bytes of fd at offset (fewer at its end), as os.pread gives them."""
        with _SEEK_LOCK:
            os.lseek(fd, offset, os.SEEK_SET)
            return os.read(fd, size)

def write_all(fd, data):
    """os.write until all of data is written (a write may take only part of it)."""
    with memoryview(data) as view:
        done = 0
        while done < len(view):
            with view[done:] as rest:           # released even when write fails
                done += os.write(fd, rest)


EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

COMPLETE = "complete"
TRUNCATED = "truncated"
DAMAGED = "damaged"
REPAIRED = "repaired"       # a movie rebuilt from a cut one's pictures: not the camera's file


class FormatError(Exception):
    """The bytes at an offset are not (or no longer) a well-formed record."""


class TruncatedError(FormatError):
    """The dump ends inside the record."""


class InputError(Exception):
    """The input cannot be scanned (missing, a directory, a FIFO, empty, unreadable)."""


class UsageError(Exception):
    """The command asks for something that cannot be done safely (exit status 2)."""


class ReadError(Exception):
    """The dump could not be read any further (a read error, or it shrank)."""


class DumpShrank(ReadError):
    """The dump is shorter now than when the run began: the scan ends at its end."""


class BrokenRegion(Exception):
    """A scan process died while this region (index) was queued or being scanned."""

    def __init__(self, index):
        super().__init__(index)
        self.index = index


class OutputError(Exception):
    """Nothing more can be written (disk full, read-only, ...): the run stops."""


class Interrupted(Exception):
    """A stop was asked for; raised where stopping leaves nothing half done."""


class StopRequest:
    """Ctrl-C, SIGTERM and SIGHUP: the first asks for a clean stop, a second one is
    immediate (KeyboardInterrupt, wherever the program is).

    The work checks `check()` between chunks, so a stop never lands between creating
    a .part file and the code that removes it.
    """

    def __init__(self):
        self.signum = None
        self._previous = {}

    @property
    def requested(self):
        return self.signum is not None

    def request(self, signum=signal.SIGINT):
        if self.signum is None:
            self.signum = signum

    def exit_code(self):
        """128 + the signal's number, as a shell reports a process stopped by it."""
        return 128 + int(self.signum or signal.SIGINT)

    def __enter__(self):
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        if EARLY_STOPS:
            self.request(EARLY_STOPS[0])
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.request(signum)

    def check(self):
        if self.requested:
            raise Interrupted()


# 3. Sizes and inputs ------------------------------------------------------------------
# How much is read, searched and kept at a time, and the inputs that are no raw
# dump (an E01, a VMDK, a compressed image): named, with the way to a raw one.

SECTOR_SIZE = 512
# Without a boot sector (or enough files) to say, a card's clusters are taken to be at
# least this large: the SD Association's formats use 16 to 128 KiB, FAT32 4 KiB from
# 256 MB on. Bytes nothing checks around a join, or skipped as a file's last cluster,
# are judged by it, never by a larger size merely tried (see next_gap, Reassembly);
# a file's coded data is compared on it (check_no_repeated_cluster).
MIN_CARD_CLUSTER = 4096
SCAN_REGION = 16 << 20      # searched and carved in one go, by one scan process
MAX_KEPT_CANDIDATES = 1 << 20   # from the first pass to the second: 9 bytes each
MAX_REGION_CANDIDATES = 1 << 12     # a region denser with magic is searched again
REGIONS_AHEAD = 2           # regions queued per scan process: bounds what waits in memory
COPY_CHUNK = 1 << 20        # bytes written per write() call
READ_CHECK_STEP = 1 << 20   # where a scan process died, the region is read again in steps
# Careful reading (a block device, or --careful-read): the main process reads every
# region with pread before the scan processes map it (the page cache then serves
# them, and the copies). A read that fails is tried again in smaller blocks, down to
# a sector; a sector that still fails is zeros, and noted. In the scan processes the
# map's pages that hold such sectors are replaced by ones holding what could be read
# of them (see PageGuard), so that touching them is no SIGBUS.
CAREFUL_BLOCK = 1 << 20
CAREFUL_RETRY_BLOCKS = (1 << 16, 1 << 12, SECTOR_SIZE)
LET_GO_EVERY = 0.002        # seconds: a scan process gives back what carving mapped
MAPPED_AROUND = 2 << 20     # a page touched in a map brings its neighbours (fault-around,
                            # a large folio): let go of this much past the last one
PREFETCH_AHEAD = 8          # regions read ahead when a carving ran into a bad sector
MAX_SENT_PATCHES = 1024     # guarded pages sent with every region; with more, those near
PATCHES_BEFORE, PATCHES_AFTER = 16 << 20, 256 << 20     # it (what its files may reach)


# Images that are not a card's bytes as they lie: a container or a compressed file.
# Carving them finds nothing (or the wrong bytes), so each is named, with the way to
# a raw image. (where, magic, what it is, how to make a raw image of it)
NOT_RAW = [
    (0, b"EVF\x09\x0d\x0a\xff\x00", "an EWF (E01) evidence file",
     "ewfexport -t raw -f raw IMAGE.E01 (libewf-tools), or ewfmount IMAGE.E01 DIR and scan "
     "DIR/ewf1"),
    (0, b"EVF2\x0d\x0a\x81\x00", "an EWF2 (Ex01) evidence file",
     "ewfexport -t raw -f raw IMAGE.Ex01 (libewf-tools)"),
    (0, b"KDMV", "a VMDK virtual disk", "qemu-img convert -O raw IMAGE.vmdk card.img"),
    (0, b"# Disk DescriptorFile", "a VMDK descriptor (the data is in its extent files)",
     "qemu-img convert -O raw IMAGE.vmdk card.img"),
    (0, b"conectix", "a dynamic VHD virtual disk", "qemu-img convert -O raw IMAGE.vhd card.img"),
    (0, b"vhdxfile", "a VHDX virtual disk", "qemu-img convert -O raw IMAGE.vhdx card.img"),
    (0, b"QFI\xfb", "a QCOW2 virtual disk", "qemu-img convert -O raw IMAGE.qcow2 card.img"),
    (0, b"\xfd7zXZ\x00", "xz-compressed", "xz -dk IMAGE.xz (it needs the card's size free)"),
    (0, b"\x1f\x8b\x08", "gzip-compressed", "gunzip -k IMAGE.gz (it needs the card's size free)"),
    (0, b"\x28\xb5\x2f\xfd", "zstd-compressed", "zstd -d IMAGE.zst (it needs the card's size free)"),
    (0, b"BZh91AY&SY", "bzip2-compressed", "bunzip2 -k IMAGE.bz2 (it needs the card's size free)"),
    (0, b"\x04\x22\x4d\x18", "lz4-compressed", "lz4 -d IMAGE.lz4 (it needs the card's size free)"),
    # Archives: an image sent zipped. Their headers move every file inside off the
    # sector grid, and compression hides them, so unpack first. (A 7z is carved and
    # salvaged instead: alone, it is most often an archive cut short, section 15.)
    (0, b"PK\x03\x04", "a ZIP archive",
     "unzip IMAGE.zip (or 7z x IMAGE.zip), then give recovercr3 the card image it holds"),
    (0, b"PK\x05\x06", "an empty ZIP archive", "nothing: it holds no card image"),
    (0, b"PK\x07\x08", "a split ZIP archive",
     "zip -s 0 IMAGE.zip --out whole.zip, then unzip whole.zip"),
    (0, b"Rar!\x1a\x07", "a RAR archive",
     "unrar x IMAGE.rar (or 7z x IMAGE.rar), then give recovercr3 the card image it holds"),
    (257, b"ustar", "a tar archive",
     "tar -xf IMAGE.tar, then give recovercr3 the card image it holds"),
    (32769, b"CD001", "an ISO 9660 optical disc image, not a memory card's",
     "mount it (mount -o loop,ro IMAGE.iso DIR) and copy its files"),
]
NOT_RAW_HEAD = max(at + len(magic) for at, magic, _, _ in NOT_RAW)


def not_raw(head):
    """What the first bytes of an input say it is when it is no raw dump, with the way
    to make one: "" for a raw dump."""
    for at, magic, what, how in NOT_RAW:
        if head[at:at + len(magic)] == magic:
            return "%s, not a raw dump: make a raw image first, e.g. %s" % (what, how)
    return ""


def unscannable(mode):
    """What a file of this mode is, when it is not something a dump can be ("")."""
    if stat.S_ISREG(mode) or stat.S_ISBLK(mode):
        return ""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


# 4. TIFF tags (Exif): camera model, date and serial number ----------------------------
# The few Exif tags a file is named and sorted by (Make, Model, DateTimeOriginal,
# its offset, BodySerialNumber), read from any TIFF: a JPEG's APP1, a raw, a CR3's CMT1.

TIFF_BYTE_ORDERS = {b"II": "<", b"MM": ">"}
TIFF_MAGIC = 42
# Olympus's ORF writes "RO" (or "RS"; "OR" big-endian) where TIFF has 42, Panasonic's
# RW2 0x55: the same header and IFDs otherwise
RAW_TIFF_MAGICS = (0x4F52, 0x5352, 0x0055)
TIFF_HEADER_SIZE = 8
IFD_ENTRY_SIZE = 12
MAX_IFD_ENTRIES = 1000
TIFF_ASCII = 2
TIFF_SHORT = 3
TIFF_LONG = 4

TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_EXIF_IFD = 0x8769
TAG_DATETIME_ORIGINAL = 0x9003
TAG_OFFSET_TIME_ORIGINAL = 0x9011
TAG_BODY_SERIAL = 0xA431


def tiff_order(buf, start, end):
    """The struct byte-order prefix of the TIFF header at start, and its IFD0 offset."""
    if end - start < TIFF_HEADER_SIZE:
        raise FormatError("no room for a TIFF header")
    order = TIFF_BYTE_ORDERS.get(bytes(buf[start:start + 2]))
    if order is None:
        raise FormatError("no TIFF byte order mark")
    magic, ifd0 = struct.unpack_from(order + "HI", buf, start + 2)
    if magic != TIFF_MAGIC and magic not in RAW_TIFF_MAGICS:
        raise FormatError("no TIFF magic number")
    return order, ifd0


TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8,
                   11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
TIFF_IFD_TYPE = 13
TIFF_INTEGER_FORMATS = {TIFF_SHORT: "H", TIFF_LONG: "I", TIFF_IFD_TYPE: "I", 16: "Q"}
IFD_ENTRY = "HHI4s"                          # tag, type, count, value or offset


class IfdEntry(NamedTuple):
    tag: int
    kind: int
    count: int
    value_at: int       # where the value lies in the buffer (in the entry when it fits)
    size: int           # bytes of the value
    inline: bool


def ifd_entries(buf, base, end, order, offset):
    """The entries of the IFD at base + offset, and the offset of the next IFD.

    Offsets inside a TIFF count from its header (base). Raises FormatError when the
    table does not fit or holds an unknown type: random bytes rarely pass."""
    at = base + offset
    if offset < TIFF_HEADER_SIZE or at + 2 > end:
        raise FormatError("IFD at +%d lies outside the TIFF" % offset)
    (count,) = struct.unpack_from(order + "H", buf, at)
    table_end = at + 2 + count * IFD_ENTRY_SIZE + 4
    if not 0 < count <= MAX_IFD_ENTRIES or table_end > end:
        raise FormatError("IFD at +%d is cut or empty" % offset)
    entries = []
    for i in range(count):
        entry_at = at + 2 + i * IFD_ENTRY_SIZE
        tag, kind, n, raw = struct.unpack_from(order + IFD_ENTRY, buf, entry_at)
        if kind not in TIFF_TYPE_SIZES:
            raise FormatError("IFD at +%d: tag 0x%04x has unknown type %d" % (offset, tag, kind))
        size = n * TIFF_TYPE_SIZES[kind]
        if size <= 4:
            entries.append(IfdEntry(tag, kind, n, entry_at + 8, size, True))
        else:
            (pointer,) = struct.unpack(order + "I", raw)
            entries.append(IfdEntry(tag, kind, n, base + pointer, size, False))
    (next_ifd,) = struct.unpack_from(order + "I", buf, table_end - 4)
    return entries, next_ifd


def ifd_numbers(buf, entry, order, end, most=None):
    """The integers of a SHORT/LONG/IFD entry, the first `most` of them (() if not
    integers or out of reach)."""
    fmt = TIFF_INTEGER_FORMATS.get(entry.kind)
    if fmt is None or entry.value_at + entry.size > end:
        return ()
    count = entry.count if most is None else min(entry.count, most)
    return struct.unpack_from("%s%d%s" % (order, count, fmt), buf, entry.value_at)


ARRAY_TYPECODES = {2: "H", 4: next(code for code in "IL" if array.array(code).itemsize == 4),
                   8: "Q"}          # unsigned integers of 2, 4, 8 bytes


def integers(data, width, order):
    """The unsigned integers of `width` bytes in data, byte order "<" or ">", as an
    array: read at C speed, 2 to 8 bytes an entry in memory (a Python int takes 28)."""
    numbers = array.array(ARRAY_TYPECODES[width], data)
    if (order == ">") == (sys.byteorder == "little"):
        numbers.byteswap()
    return numbers


def ifd_furthest(buf, offsets, lengths, order, end):
    """max(offset + length) over two SHORT/LONG entries, at C speed (a table of
    millions of strips takes a second in a Python loop)."""
    tables = []
    for entry in (offsets, lengths):
        if entry.kind not in (TIFF_SHORT, TIFF_LONG) or entry.value_at + entry.size > end:
            return 0
        tables.append(integers(buf[entry.value_at:entry.value_at + entry.size],
                               TIFF_TYPE_SIZES[entry.kind], order))
    return max(map(operator.add, *tables), default=0)


def read_ifd(buf, base, end, order, offset):
    """{tag: value} of the IFD at base + offset: text for ASCII tags, a number for a
    single SHORT or LONG."""
    values = {}
    for entry in ifd_entries(buf, base, end, order, offset)[0]:
        if entry.kind == TIFF_ASCII and entry.value_at + entry.size <= end:
            data = bytes(buf[entry.value_at:entry.value_at + entry.size])
            values[entry.tag] = data.split(b"\0", 1)[0].decode("latin-1").strip()
        elif entry.kind in (TIFF_SHORT, TIFF_LONG) and entry.count == 1:
            values[entry.tag] = ifd_numbers(buf, entry, order, end)[0]
    return values


def exif_tags(buf, start, end):
    """The tags of IFD0 and, when IFD0 points to one, of the Exif IFD."""
    order, ifd0 = tiff_order(buf, start, end)
    tags = read_ifd(buf, start, end, order, ifd0)
    exif = tags.get(TAG_EXIF_IFD)
    if isinstance(exif, int):
        tags.update(read_ifd(buf, start, end, order, exif))
    return tags


class Meta(NamedTuple):
    model: str = ""
    datetime: str = ""      # ISO 8601, with the UTC offset when the camera wrote one
    serial: str = ""


EXIF_DATETIME = re.compile(r"(\d{4}):(\d\d):(\d\d) (\d\d):(\d\d):(\d\d)$")
UTC_OFFSET = re.compile(r"[+-]\d\d:\d\d$")


def exif_meta(tags):
    """Meta from Exif tags: Model, DateTimeOriginal (+ OffsetTimeOriginal), BodySerialNumber."""
    datetime_text = ""
    found = EXIF_DATETIME.match(str(tags.get(TAG_DATETIME_ORIGINAL, "")))
    if found and found.group(1) != "0000":
        datetime_text = "%s-%s-%sT%s:%s:%s" % found.groups()
        offset = str(tags.get(TAG_OFFSET_TIME_ORIGINAL, ""))
        if UTC_OFFSET.match(offset):
            datetime_text += offset
    model = tags.get(TAG_MODEL, "")
    serial = tags.get(TAG_BODY_SERIAL, "")
    return Meta(model if isinstance(model, str) else "", datetime_text,
                serial if isinstance(serial, str) else "")


TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


# 5. What a carver returns -------------------------------------------------------------
# Every format has a carve(buf, start, limit, options) that measures the file from its
# own structure and returns a Carved, None (a type not wanted) or raises FormatError
# (not such a file); FORMATS (section 16) says where a file of each type starts.

def wanted(types, options):
    return any(kind in options.types for kind in types)


# The pictures inside a CR3 or CRM that is not whole: its full-size JPEG, its preview
# and its thumbnail are often whole still, and a photographer wants them.
class Picture(NamedTuple):
    offset: int
    size: int
    what: str               # "the full-size JPEG", ...
    status: str             # complete when it walks whole and its data decodes
    detail: str


class Carved(NamedTuple):
    offset: int
    size: int
    type: str
    ext: str
    status: str
    detail: str
    boxes: list
    meta: Meta = Meta()
    # (start, end) of its own parts that look like files (previews, Exif TIFFs): what
    # its walk went through, and what its pointers say when every check passed (the
    # pointers of a broken file may cover other files)
    embedded: list = ()
    pictures: list = ()     # the whole Pictures inside a broken file, best first
    pieces: tuple = ()      # (offset, size) of each piece, when put back together
    # (offset, size, sha256) of the bytes a scan process hashed where it carved them:
    # the digest of this file only while offset and size are still these (see known_digest)
    sha256: tuple = ()
    # of a file put together and damaged only past its checks' reach: the bytes from
    # its start they prove its own (see tail_checked); no other file's piece is there
    checked: int = 0

    @property
    def end(self):
        return self.offset + self.size


class Options(NamedTuple):
    rule: object            # where an ISO-BMFF file ends (StopAfterMdat, ...)
    types: frozenset
    align: int = SECTOR_SIZE    # files other than ISO-BMFF start at multiples of this
    jobs: int = 1           # processes that search for candidates
    explain: bool = False   # send back why each candidate is not a file (-v): a dense
                            # dump has a million of them, and memory must stay flat
    decode: bool = True     # decode every JPEG's data to its MCU count (--no-decode)
    strict: bool = False    # with the built-in decoder alone (the proof of a join chosen)
    phase: int = 0          # where the sector grid lies: a partition off it moves it
    file_system: str = ""   # the card's ("FAT32", "exFAT"): whose folders are sieved for
    digest: bool = False    # hash each carved file where it is carved (see hash_carved)


TABLE_BUDGET = 1000         # chunks, and samples looked at, a file may have: this many plus
BYTES_PER_SAMPLE = 256      # one per this many of its bytes (an AMR frame is 32 bytes, but
                            # many go in a chunk): more is no camera's file, and would cost
                            # seconds of work per MB


def table_budget(size):
    return TABLE_BUDGET + size // BYTES_PER_SAMPLE


def is_fourcc(name):
    """True for four printable ASCII characters, as box names and brands are."""
    return all(0x20 <= c <= 0x7E for c in name)


def fourcc_text(name):
    """A box name for a message: 'mdat', or its hex when it is not printable."""
    return "'%s'" % name.decode("ascii") if is_fourcc(name) else "0x" + name.hex()


# 6. RIFF: AVI, WAV, WebP --------------------------------------------------------------
# A RIFF says its size in its header; its chunks, walked, say whether it is whole.

RIFF_HEADER = struct.Struct("<4sI4s")       # "RIFF", size of what follows, form type
CHUNK_HEADER = struct.Struct("<4sI")
RIFF_MAGIC = b"RIFF"
RIFF_FORMS = {b"AVI ": "avi", b"WAVE": "wav", b"WEBP": "webp"}
RIFF_FIRST_CHUNKS = {b"AVI ": (b"LIST",), b"WAVE": (b"fmt ", b"JUNK", b"bext", b"LIST", b"PAD "),
                     b"WEBP": (b"VP8 ", b"VP8L", b"VP8X")}
AVI_EXTENSION_FORM = b"AVIX"                # OpenDML: the RIFFs after the first (> 1 GB)
AVI_MOVIE_LIST = b"movi"


MAX_RIFF_CHUNKS = 1000         # top-level chunks: an AVI or WAV has a handful
# Sound is smooth: from one 16-bit PCM sample to the next a channel moves far less than
# its level (ratio of mean |step| to mean |level| below 1, pink noise included), while
# another file's compressed bytes read as samples jump about (ratio near 1.33, that
# of independent values). Where sampled blocks of a WAV's data turn so, they are not
# its sound: the WAV ran into another file.
WAVE_FORMAT = struct.Struct("<HHIIHH")      # format, channels, rate, byte rate, align, bits
PCM_FORMATS = (1, 0xFFFE)                   # PCM, and WAVE_FORMAT_EXTENSIBLE (PCM inside)
PCM_BLOCK = 4096                            # one sample run looked at per this many bytes
PCM_SAMPLED = 1024                          # ... of this many bytes
NOT_SOUND = 1.15
AVI_FRAME_HEADER = re.compile(rb"\d\d(dc|db)")   # the chunk of an AVI's video frame


def riff_chunks(buf, first, end, limit, most=MAX_RIFF_CHUNKS):
    """[(id, start, end)] of the chunks in [first, end); stops at the first bad one,
    or after `most`.

    Returns the chunks and where the walk stopped (end when they tile it exactly)."""
    chunks = []
    pos = first
    while pos + CHUNK_HEADER.size <= min(end, limit) and len(chunks) < most:
        name, size = CHUNK_HEADER.unpack_from(buf, pos)
        if not is_fourcc(name):
            break
        chunk_end = pos + CHUNK_HEADER.size + size + (size & 1)
        chunks.append((name, pos, chunk_end))
        pos = chunk_end
    return chunks, pos


def not_sound_at(buf, chunks):
    """Where a 16-bit PCM WAV's data stops being sound (see NOT_SOUND), or None; None
    too for other encodings, which this does not read."""
    found = {name: (first, last) for name, first, last in chunks}
    fmt, data = found[b"fmt "], found[b"data"]
    if fmt[1] - fmt[0] < CHUNK_HEADER.size + WAVE_FORMAT.size:
        return None
    kind, channels, _, _, _, bits = WAVE_FORMAT.unpack_from(buf, fmt[0] + CHUNK_HEADER.size)
    if kind not in PCM_FORMATS or bits != 16 or not channels:
        return None
    for at in range(data[0] + CHUNK_HEADER.size, data[1] - PCM_SAMPLED, PCM_BLOCK):
        samples = array.array("h", bytes(buf[at:at + PCM_SAMPLED]))
        if sys.byteorder == "big":
            samples.byteswap()
        channel = samples[::channels]
        level = sum(map(abs, channel))
        steps = sum(map(abs, map(operator.sub, channel[1:], channel[:-1])))
        if level and steps * len(channel) > NOT_SOUND * level * (len(channel) - 1):
            return at
    return None


def carve_riff(buf, start, limit, options):
    """A RIFF file: its size field is its extent; OpenDML AVIs chain AVIX RIFFs after it."""
    if limit - start < RIFF_HEADER.size:
        raise FormatError("no room for a RIFF header")
    _, size, form = RIFF_HEADER.unpack_from(buf, start)
    kind = RIFF_FORMS.get(form)
    if kind is None:
        raise FormatError("unknown RIFF form %s" % fourcc_text(form))
    riff_end = end = start + CHUNK_HEADER.size + size + (size & 1)
    chunks, stop = riff_chunks(buf, start + RIFF_HEADER.size, riff_end, limit)
    if not chunks or chunks[0][0] not in RIFF_FIRST_CHUNKS[form]:
        raise FormatError("a %s RIFF must start with %s" % (kind, RIFF_FIRST_CHUNKS[form]))
    if not wanted([kind], options):
        return None
    while form == b"AVI " and end + RIFF_HEADER.size <= limit:
        magic, more, extension = RIFF_HEADER.unpack_from(buf, end)
        if magic != RIFF_MAGIC or extension != AVI_EXTENSION_FORM:
            break
        end += CHUNK_HEADER.size + more + (more & 1)
    embedded = []
    broken_movie = ""
    for name, first, last in chunks:            # MJPEG frames are JPEGs: not files
        if name == b"LIST" and bytes(buf[first + 8:first + 12]) == AVI_MOVIE_LIST:
            # its frames are the file's only when they tile it: a size in the first
            # piece of a split AVI covers whatever lies where the rest should be
            frames, frames_end = riff_chunks(buf, first + RIFF_HEADER.size, last, limit,
                                             most=table_budget(last - first))
            if frames_end == last:
                embedded.append((first, last))
                continue
            if len(frames) > 1:                 # a frame followed by another is the AVI's
                embedded.append((first, frames[-1][1]))
            if not broken_movie and last <= limit:
                broken_movie = "the frames in movi break at +%d" % (frames_end - start)
    if form == b"AVI ":
        embedded.append((riff_end, end))                            # the AVIX extensions
    names = {name for name, _, _ in chunks}
    whole_wave = (form == b"WAVE" and {b"fmt ", b"data"} <= names and end <= limit
                  and stop == riff_end)
    not_sound = not_sound_at(buf, chunks) if whole_wave else None
    if end > limit:
        status, detail = TRUNCATED, "the dump ends inside the RIFF (%d of %d bytes present)" % (
            limit - start, end - start)
    elif stop != riff_end:
        status, detail = DAMAGED, "the chunk at +%d is not a chunk" % (stop - start)
    elif broken_movie:
        status, detail = DAMAGED, broken_movie
    elif form == b"WAVE" and not {b"fmt ", b"data"} <= names:
        status, detail = DAMAGED, "no fmt or no data chunk"
    elif not_sound is not None:
        status, detail = DAMAGED, ("the samples at +%d are not sound but another file's "
                                   "bytes" % (not_sound - start))
    else:
        status, detail = COMPLETE, ""
    return Carved(start, min(end, limit) - start, kind, kind, status, detail, [], Meta(),
                  embedded)


# 7. JPEG ------------------------------------------------------------------------------
# A JPEG's markers and segments, then its coded data decoded to the MCU count its
# frame declares (TurboJPEG where the system has it, else the decoder below).

JPEG_SOI = b"\xff\xd8"
JPEG_EOI = b"\xff\xd9"
MAX_JPEG_PADDING = 3                        # containers pad a JPEG to 2 or 4 bytes
JPEG_MAGIC = b"\xff\xd8\xff"
MARKER_SOI = 0xD8
MARKER_EOI = 0xD9
MARKER_SOS = 0xDA
MARKER_APP1 = 0xE1
MARKER_APP2 = 0xE2
MARKER_TEM = 0x01
RESTART_MARKERS = range(0xD0, 0xD8)
FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}   # SOF0..SOF15
SEGMENT_MARKERS = frozenset(range(0xC0, 0xFF)) - {MARKER_SOI, MARKER_EOI} - set(RESTART_MARKERS)
EXIF_HEADER = b"Exif\0\0"
MPF_HEADER = b"MPF\0"
SEGMENT_HEADER = 4                          # FF, marker, 16-bit length
TAG_MP_ENTRY = 0xB002
MP_ENTRY_SIZE = 16                          # attribute, size, offset, two dependents


class JpegWalk(NamedTuple):
    end: int
    status: str
    detail: str
    segments: list          # (marker, start, end) of the segments before the first scan
    scans: list             # (SOS segment start, entropy-coded data start, its end)
    start: int = 0          # where its SOI is


# In entropy-coded data FF is followed by 00 (a stuffed byte), a restart marker or
# another FF (fill): anything else is the marker that ends the data.
JPEG_MARKER_AFTER_DATA = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
MAX_JPEG_SEGMENTS = 4096            # real files have dozens; a run of empty ones is garbage


def jpeg_scan_end(buf, pos, limit):
    """Where the entropy-coded data starting at pos ends: the next marker, or -1."""
    found = next(search_chunked(JPEG_MARKER_AFTER_DATA, buf, pos, limit), None)
    return found.start() if found else -1


def search_chunked(pattern, buf, pos, end):
    """pattern's matches (two bytes, FF and one that is not) in buf[pos:end], in
    order, searched a DECODE_CHUNK at a time: one search holds the interpreter, and
    a file's scratch map is given back between two (see pages_given_back)."""
    while pos < end:
        stop = min(pos + DECODE_CHUNK, end)
        after = stop
        for found in pattern.finditer(buf, pos, min(stop + 1, end)):
            if found.start() >= stop:
                break                           # the next chunk's
            yield found
            after = max(stop, found.end())
        pos = after


def walk_jpeg(buf, start, limit):
    """Follow a JPEG's markers from SOI to EOI, through every scan (progressive too).

    FormatError until the first scan: before it, a broken structure means this was
    never a JPEG. After it, a break is a damaged or truncated JPEG."""
    pos = start + 2
    segments = []
    scans = []

    def ended(end, status, detail):
        return JpegWalk(end, status, detail, segments, scans, start)

    seen_frame = seen_scan = False
    for _ in range(MAX_JPEG_SEGMENTS):
        if pos + 2 > limit:
            return ended(limit, TRUNCATED, "the dump ends inside the JPEG")
        if buf[pos] != 0xFF:
            if not seen_scan:
                raise FormatError("no JPEG marker at +%d" % (pos - start))
            return ended(pos, DAMAGED, "no marker at +%d" % (pos - start))
        marker = buf[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker == MARKER_EOI:
            if not (seen_frame and seen_scan):
                raise FormatError("EOI before any image")
            return ended(pos + 2, COMPLETE, "")
        if marker == MARKER_TEM or marker in RESTART_MARKERS:
            pos += 2
            continue
        if marker not in SEGMENT_MARKERS:
            if not seen_scan:
                raise FormatError("marker FF%02X at +%d" % (marker, pos - start))
            what = "another JPEG starts" if marker == MARKER_SOI else "marker FF%02X" % marker
            return ended(pos, DAMAGED, "%s at +%d before EOI" % (what, pos - start))
        if pos + SEGMENT_HEADER > limit:
            return ended(limit, TRUNCATED, "the dump ends inside the JPEG")
        (length,) = struct.unpack_from(">H", buf, pos + 2)
        if length < 2:
            if not seen_scan:
                raise FormatError("segment FF%02X has length %d" % (marker, length))
            return ended(pos, DAMAGED, "a segment of length %d at +%d" % (
                length, pos - start))
        segment_end = pos + 2 + length
        if segment_end > limit:
            return ended(limit, TRUNCATED, "the dump ends inside the JPEG")
        if not seen_scan:
            segments.append((marker, pos, segment_end))
        seen_frame = seen_frame or marker in FRAME_MARKERS
        if marker == MARKER_SOS:
            if not seen_frame:
                raise FormatError("a scan before any frame header")
            seen_scan = True
            pos = jpeg_scan_end(buf, segment_end, limit)
            scans.append((segment_end - 2 - length, segment_end, pos))
            if pos < 0:
                return ended(limit, TRUNCATED, "the dump ends inside the JPEG")
        else:
            pos = segment_end
    if not seen_scan:
        raise FormatError("more than %d segments before any image" % MAX_JPEG_SEGMENTS)
    return ended(pos, DAMAGED, "more than %d segments" % MAX_JPEG_SEGMENTS)


# Is the entropy-coded data whole? Only decoding tells: the Huffman codes of a baseline
# JPEG must give exactly the frame's number of MCUs, each of 64 coefficients per block,
# and end at EOI (bar fill bits); with a restart interval, every interval holds that
# many MCUs and the RSTn markers count 0..7 over and over. A JPEG split in pieces
# walks whole when its first piece is followed by the tail of another JPEG (its EOI
# ends both): nothing but the count shows it. It is done for every JPEG up to
# MAX_DECODED_JPEG: by TurboJPEG where the system has it (about 100 MB/s a core),
# else in Python (about 8 MB/s a core).
MARKER_DHT = 0xC4
MARKER_DRI = 0xDD
BASELINE_FRAMES = (0xC0, 0xC1)              # sequential Huffman: what cameras write
RESTART_MARKER = re.compile(b"\xff[\xd0-\xd7]")
STUFFED_FF = b"\xff\x00"
ONES = b"\xff" * 4
HUFFMAN_PEEK = 16                           # bits: the longest Huffman code
DECODE_CHUNK = 1 << 20                      # coded data decoded (or searched) at a time
FAR_FROM_END = 64                           # bits: more than a code reads ahead
BLOCK_COEFFICIENTS = 64
MAX_DECODED_JPEG = 64 << 20
HUFFMAN_BITS = 31                           # an entry: bits a code and its value take,
HUFFMAN_STEP_AT = 5                         # then the coefficients it advances (0: EOB)
ZERO_RUN_LENGTH = 0xF0                      # AC symbol: sixteen zeros


class JpegScan(NamedTuple):
    mcus: int               # in the frame
    blocks: list            # (DC table, AC table) per block of an MCU, in order
    restart: int            # MCUs per restart interval (0: none)
    data: tuple             # (start, end) of the entropy-coded data in the dump
    jpeg: tuple = None      # (SOI, end of EOI) of the whole JPEG, when it walked whole
    plain: bool = True      # every AC symbol one a baseline coder writes (see TurboJpeg)


def huffman_entry(length, symbol, ac):
    """What decoding a code of length bits for symbol does: the bits it and the value
    after it take, and (AC) how many coefficients it covers; 0 for no such symbol."""
    if not ac:
        return length + symbol | 1 << HUFFMAN_STEP_AT
    run, size = symbol >> 4, symbol & 15
    if size:
        return length + size | (run + 1) << HUFFMAN_STEP_AT
    if symbol == ZERO_RUN_LENGTH:
        return length | 16 << HUFFMAN_STEP_AT
    return length if symbol == 0 else 0     # end of block; other size-0 symbols: none


def huffman_lookup(counts, symbols, ac):
    """A 2**16 table from the next 16 bits to the huffman_entry of the code they start
    with; 0 where no code starts so."""
    table = [0] * (1 << HUFFMAN_PEEK)
    code = index = 0
    for length in range(1, HUFFMAN_PEEK + 1):
        for _ in range(counts[length - 1]):
            if code >= 1 << length or index >= len(symbols):
                raise FormatError("a Huffman table with too many codes")
            shift = HUFFMAN_PEEK - length
            entry = huffman_entry(length, symbols[index], ac)
            table[code << shift:(code + 1) << shift] = [entry] * (1 << shift)
            code += 1
            index += 1
        code <<= 1
    return table


def baseline_scan(buf, walk):
    """The JpegScan of a one-scan baseline JPEG, None for any other (progressive,
    arithmetic, several scans: not checked). FormatError when its tables are broken."""
    if len(walk.scans) != 1:
        return None
    tables, odd, frame, restart = {}, {}, None, 0
    for marker, first, end in walk.segments:
        body = first + SEGMENT_HEADER
        if marker == MARKER_DHT:
            pos = body
            while pos + 17 <= end:
                kind, counts = buf[pos], bytes(buf[pos + 1:pos + 17])
                symbols = bytes(buf[pos + 17:pos + 17 + sum(counts)])
                tables[kind] = huffman_lookup(counts, symbols, ac=kind >> 4)
                odd[kind] = kind >> 4 and any(not symbol & 15 and symbol not in
                                              (0, ZERO_RUN_LENGTH) for symbol in symbols)
                pos += 17 + sum(counts)
        elif marker in FRAME_MARKERS:
            if marker not in BASELINE_FRAMES or end - body < 6:
                return None
            _bits, height, width, count = struct.unpack_from(">BHHB", buf, body)
            frame = (width, height, {buf[body + 6 + 3 * i]: buf[body + 7 + 3 * i]
                                     for i in range(count) if body + 8 + 3 * i < end})
        elif marker == MARKER_DRI and end - body >= 2:
            (restart,) = struct.unpack_from(">H", buf, body)
    if frame is None or not frame[0] or not frame[1] or not frame[2]:
        return None
    width, height, sampling = frame
    sos, data_start, data_end = walk.scans[0]
    count = buf[sos + SEGMENT_HEADER]
    if count != len(sampling):
        return None                         # one component per scan: not checked
    h_max = max(f >> 4 for f in sampling.values())
    v_max = max(f & 15 for f in sampling.values())
    if not h_max or not v_max:
        raise FormatError("a frame component with no sampling factor")
    blocks, plain = [], True
    for i in range(count):
        component, selectors = buf[sos + 5 + 2 * i], buf[sos + 6 + 2 * i]
        dc, ac = tables.get(selectors >> 4), tables.get(16 | selectors & 15)
        if component not in sampling or dc is None or ac is None:
            raise FormatError("the scan names a table or component it lacks")
        factors = sampling[component]
        blocks.extend([(dc, ac)] * ((factors >> 4) * (factors & 15)))
        plain = plain and not odd[16 | selectors & 15]
    mcus = -(-width // (8 * h_max)) * -(-height // (8 * v_max))
    whole = (walk.start, walk.end) if walk.status == COMPLETE else None
    return JpegScan(mcus, blocks, restart, (data_start, data_end), whole, plain)


class Decoded(NamedTuple):
    bits: int           # where the last whole MCU decoded ends, in bits
    mcus: int           # how many whole MCUs were decoded
    problem: str        # what stopped the decoding, or None
    stop: int = 0       # where it stopped, in bits


def decode_mcus(data, mcus, blocks, skip=0, first_mcu=0):
    """Decode mcus MCUs from unstuffed data, from bit skip on (below 8): a Decoded
    (whose words number the MCUs from first_mcu).

    The hot loop of the tool: the constants are local names, and the bits are read
    32 at a time into a 64-bit window."""
    size = len(data) * 8
    # past the end, ones: what a fill would be (read there alone: data is not copied)
    last = len(data) - 4                    # the last position with 4 bytes to read
    acc, nbits, pos = int.from_bytes((data[:4] + ONES)[:4], "big"), 32 - skip, 4
    done = skip
    window, peek, mask = (1 << 64) - 1, HUFFMAN_PEEK, (1 << HUFFMAN_PEEK) - 1
    bits, step_at, coefficients = HUFFMAN_BITS, HUFFMAN_STEP_AT, BLOCK_COEFFICIENTS
    from_bytes = int.from_bytes
    for mcu in range(mcus):
        for dc, ac in blocks:
            if nbits < 32:
                word = data[pos:pos + 4] if pos <= last else (data[pos:pos + 4] + ONES)[:4]
                acc = (acc << 32 | from_bytes(word, "big")) & window
                pos += 4
                nbits += 32
            entry = dc[(acc >> (nbits - peek)) & mask]
            if not entry:
                return Decoded(done, mcu, "no Huffman code in MCU %d" % (first_mcu + mcu), pos * 8 - nbits)
            nbits -= entry & bits
            k = 1
            while k < coefficients:
                if nbits < 32:
                    word = (data[pos:pos + 4] if pos <= last
                            else (data[pos:pos + 4] + ONES)[:4])
                    acc = (acc << 32 | from_bytes(word, "big")) & window
                    pos += 4
                    nbits += 32
                entry = ac[(acc >> (nbits - peek)) & mask]
                if not entry:
                    return Decoded(done, mcu, "no Huffman code in MCU %d" % (first_mcu + mcu),
                                   pos * 8 - nbits)
                nbits -= entry & bits
                step = entry >> step_at
                if not step:                # end of block
                    break
                k += step
            if k > coefficients:
                return Decoded(done, mcu, "more than 64 coefficients in MCU %d" % (first_mcu + mcu),
                               pos * 8 - nbits)
        if pos * 8 - nbits > size:
            return Decoded(done, mcu, "the data ends in MCU %d" % (first_mcu + mcu), size)
        done = pos * 8 - nbits
    return Decoded(done, mcus, None, done)


def intervals(buf, start, end):
    """(first, end) of the entropy-coded data between restart markers."""
    first = start
    for marker in search_chunked(RESTART_MARKER, buf, start, end):
        yield first, marker.start()
        first = marker.end()
    yield first, end


def unstuffed_chunks(buf, first, end):
    """buf[first:end], coded data, without its stuffed zeros, DECODE_CHUNK bytes at a
    time: never cut after an FF, so that no FF 00 is cut in two."""
    with memoryview(buf) as view:
        pos = first
        while pos < end:
            stop = min(pos + DECODE_CHUNK, end)
            while stop < end and buf[stop - 1] == 0xFF:
                stop += 1
            yield bytes(view[pos:stop]).replace(STUFFED_FF, b"\xff")
            pos = stop


def span_problem(buf, first, end, mcus, blocks):
    """What decoding mcus MCUs from the coded data buf[first:end] finds wrong, or
    None: the words decode_mcus says of the whole of it, from a chunk of it at a
    time (memory stays flat whatever the size of a JPEG). Each chunk goes on from
    the last whole MCU of the one before; what fails within FAR_FROM_END bits of a
    chunk's end may be the end of the chunk, so it is decoded again with the next."""
    chunks = unstuffed_chunks(buf, first, end)
    chunk, carry, skip, done = next(chunks, b""), b"", 0, 0
    while True:
        following = next(chunks, None)
        data = carry + chunk
        decoded = decode_mcus(data, mcus - done, blocks, skip, done)
        if decoded.problem is None:             # then only fill may follow
            fill = not data[-(-decoded.bits // 8):].strip(b"\xff")
            after = len(data) - decoded.bits // 8
            for more in itertools.chain([following] if following else [], chunks):
                fill = fill and not more.strip(b"\xff")
                after += len(more)
            return None if fill else "%d bytes after the last MCU" % after
        if following is None or decoded.stop + FAR_FROM_END <= len(data) * 8:
            return decoded.problem
        done += decoded.mcus
        carry, skip = data[decoded.bits // 8:], decoded.bits % 8
        chunk = following


def restart_problem(buf, scan):
    """The restart markers must number the intervals 0..7 over and over, one fewer than
    the intervals the frame has; cheap (no decoding), so checked on every JPEG."""
    data_start, data_end = scan.data
    markers = [buf[m.start() + 1] - 0xD0 for m in
               search_chunked(RESTART_MARKER, buf, data_start, data_end)]
    if not scan.restart:
        return "restart markers without a restart interval" if markers else None
    want = -(-scan.mcus // scan.restart) - 1
    if len(markers) != want:
        return "%d restart markers, the frame needs %d" % (len(markers), want)
    for index, number in enumerate(markers):
        if number != index % 8:
            return "restart marker %d is RST%d" % (index, number)
    return None


def mcu_problem(buf, scan, strict=False):
    """What decoding finds wrong with the scan's data, or None when it is whole:
    TurboJPEG's word where it says whole, decode_mcus' everywhere else (and alone
    when strict)."""
    if (not strict and scan.jpeg is not None and scan.plain
            and TURBOJPEG.decodes_whole(buf, *scan.jpeg)):
        return None
    left = scan.mcus
    for first, end in intervals(buf, *scan.data):
        count = min(left, scan.restart) if scan.restart else left
        problem = span_problem(buf, first, end, count, scan.blocks)
        if problem:
            return problem
        left -= count
    return "%d MCUs missing" % left if left else None


# libjpeg-turbo counts the MCUs in C, some twelve times faster, where the system has
# its TurboJPEG library (libturbojpeg0 on Debian and Ubuntu, jpeg-turbo in Homebrew,
# turbojpeg.dll on Windows; RECOVERCR3_TURBOJPEG names another file, or "none"). It
# decodes at 1/8 scale, so the entropy decoding is nearly all it does, and stops at
# its first warning: a bad code it meets outside its fast path, data that ends before
# the last MCU, bytes after it, an RSTn out of place. What it decodes whole is whole;
# what it refuses, or cannot read (CMYK, 12 bits, a missing quantization table), is
# decoded by decode_mcus, whose words go in the report. The two read a table the same
# way when its AC symbols are all a baseline coder writes (decode_mcus refuses the
# others, libjpeg ends the block), and differ on two things only: a code that no
# table has, which libjpeg's fast path reads as an end of block, and a run past the
# 64th coefficient, which it drops; decode_mcus calls both a break. Where a card
# splits a file - another file's clusters, zeros, another JPEG's data after a cluster
# of this one - they agreed on each of 1,112 tried (test_jpeg_decoders holds them to
# it); where bytes of the JPEG itself are lost or changed in place, libjpeg can
# resynchronise and decode whole what decode_mcus refuses (7 of 594 lost sectors).
# So a join chosen among many (putting a file back together) is proven by
# decode_mcus alone (strict).
def buffer_address(ctypes, buf):
    """Where the bytes of buf (a buffer, even a read-only one) lie in memory."""
    class PyBuffer(ctypes.Structure):
        _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p),
                    ("len", ctypes.c_ssize_t), ("itemsize", ctypes.c_ssize_t),
                    ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                    ("format", ctypes.c_void_p), ("shape", ctypes.c_void_p),
                    ("strides", ctypes.c_void_p), ("suboffsets", ctypes.c_void_p),
                    ("internal", ctypes.c_void_p)]
    view = PyBuffer()
    get = ctypes.pythonapi.PyObject_GetBuffer
    get.argtypes = [ctypes.py_object, ctypes.POINTER(PyBuffer), ctypes.c_int]
    release = ctypes.pythonapi.PyBuffer_Release
    release.argtypes = [ctypes.POINTER(PyBuffer)]
    if get(buf, ctypes.byref(view), 0) != 0:
        raise ValueError("no buffer")
    try:
        return view.buf
    finally:
        release(ctypes.byref(view))


TURBOJPEG_NAMES = ("libturbojpeg.so.0", "libturbojpeg.0.dylib", "libturbojpeg.dylib",
                   "/opt/homebrew/opt/jpeg-turbo/lib/libturbojpeg.dylib",
                   "/usr/local/opt/jpeg-turbo/lib/libturbojpeg.dylib", "turbojpeg.dll",
                   "turbojpeg")
TJPF_GRAY = 6
TJFLAG_STOPONWARNING = 8192
TJ_SCALE = 8                                # 1/8: one pixel (the DC) per block
MAX_TURBO_PIXELS = 4 << 20                  # a larger frame is decoded in Python


class TurboJpeg:
    """TurboJPEG's decoder, loaded on first use in each process (a handle does not
    cross a fork), or the reason it is not there."""

    def __init__(self):
        self.pid = None
        self.lib = self.handle = None
        self.name = ""
        self.missing = "not looked for yet"
        self.lock = threading.Lock()

    def _load(self):
        self.pid, self.handle = os.getpid(), None
        wanted = os.environ.get("RECOVERCR3_TURBOJPEG", "")
        if wanted.lower() == "none":
            self.missing = "RECOVERCR3_TURBOJPEG=none"
            return
        try:
            import ctypes
            import ctypes.util
        except ImportError:
            self.missing = "no ctypes"
            return
        self.ctypes = ctypes
        names = (wanted,) if wanted else TURBOJPEG_NAMES
        for name in names:
            try:
                lib = ctypes.CDLL(name if "/" in name or "." in name
                                  else ctypes.util.find_library(name) or name)
                init = lib.tjInitDecompress
            except (OSError, AttributeError):
                continue
            init.restype = ctypes.c_void_p
            size = ctypes.POINTER(ctypes.c_int)
            lib.tjDecompressHeader3.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                                ctypes.c_ulong, size, size, size, size]
            lib.tjDecompress2.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulong,
                                          ctypes.c_void_p] + [ctypes.c_int] * 5
            self.handle = init()
            if self.handle:
                self.lib, self.name = lib, name
                return
        self.missing = "%s not found" % (wanted or "libturbojpeg")

    def available(self):
        if self.pid != os.getpid():
            self._load()
        return self.handle is not None

    def describe(self):
        """Which decoder checks JPEG data, for the log."""
        if self.available():
            return "JPEG data is decoded by TurboJPEG (%s), and by the built-in decoder " \
                   "where it finds a break" % self.name
        return "JPEG data is decoded by the built-in decoder (%s)" % self.missing

    def decodes_whole(self, buf, first, last):
        """True when TurboJPEG decodes the JPEG at [first, last) of buf without a
        warning; False when it does not, or cannot say."""
        if not self.available():
            return False
        ctypes = self.ctypes
        try:
            address = buffer_address(ctypes, buf) + first
        except ValueError:
            return False
        width, height = ctypes.c_int(), ctypes.c_int()
        sub, space = ctypes.c_int(), ctypes.c_int()
        with self.lock:
            if self.lib.tjDecompressHeader3(self.handle, address, last - first,
                                            ctypes.byref(width), ctypes.byref(height),
                                            ctypes.byref(sub), ctypes.byref(space)):
                return False
            columns = -(-width.value // TJ_SCALE)
            rows = -(-height.value // TJ_SCALE)
            if columns * rows > MAX_TURBO_PIXELS:
                return False
            pixels = ctypes.create_string_buffer(max(1, columns * rows))
            return self.lib.tjDecompress2(self.handle, address, last - first, pixels,
                                          columns, 0, rows, TJPF_GRAY,
                                          TJFLAG_STOPONWARNING) == 0


TURBOJPEG = TurboJpeg()


AVI_FRAME = "a video frame of an AVI"


def avi_frame(buf, start, end):
    """Why a whole JPEG is a video frame, not a file: the chunk header of an AVI frame
    of its size lies right before it (the AVI itself was not found around it)."""
    if start < CHUNK_HEADER.size:
        return None
    name, size = CHUNK_HEADER.unpack_from(buf, start - CHUNK_HEADER.size)
    if AVI_FRAME_HEADER.fullmatch(name) and 0 <= size - (end - start) <= MAX_JPEG_PADDING:
        return AVI_FRAME + " (its chunk header lies before it), not a file"
    return None


def entropy_problem(buf, start, walk, decode=True, strict=False):
    scan = baseline_scan(buf, walk)
    if scan is None:
        return None
    problem = restart_problem(buf, scan)
    if problem is None and decode and walk.end - start <= MAX_DECODED_JPEG:
        problem = mcu_problem(buf, scan, strict)
    return problem


def jpeg_app_data(buf, segments, marker, header):
    """(start, end) of the first APPn segment's data after its identifying header."""
    for kind, first, end in segments:
        body = first + SEGMENT_HEADER
        if kind == marker and bytes(buf[body:body + len(header)]) == header:
            return body + len(header), end
    return None


def mpf_images(buf, segments):
    """(start, size) of the extra images an MPF segment (APP2) lists after the first."""
    found = jpeg_app_data(buf, segments, MARKER_APP2, MPF_HEADER)
    if found is None:
        return []
    base, end = found
    order, ifd0 = tiff_order(buf, base, end)
    images = []
    for entry in ifd_entries(buf, base, end, order, ifd0)[0]:
        if entry.tag == TAG_MP_ENTRY and entry.value_at + entry.size <= end:
            for at in range(entry.value_at, entry.value_at + entry.size - MP_ENTRY_SIZE + 1,
                            MP_ENTRY_SIZE):
                _attribute, size, offset = struct.unpack_from(order + "III", buf, at)
                if offset:                  # 0 marks the first image, this one
                    images.append((base + offset, size))
    return images


def carve_jpeg(buf, start, limit, options):
    """A JPEG, with the extra images of a multi-picture (MPF) file after its EOI."""
    if not wanted(["jpg"], options):
        return None
    walk = walk_jpeg(buf, start, limit)
    end, status, detail = walk.end, walk.status, walk.detail
    if status == COMPLETE:
        try:
            problem = (entropy_problem(buf, start, walk, options.decode, options.strict)
                       or avi_frame(buf, start, walk.end))
        except FormatError as e:
            problem = str(e)
        if problem:
            status, detail = DAMAGED, problem
    embedded = [(first, last) for kind, first, last in walk.segments
                if kind in range(0xE0, 0xF0)]          # EXIF thumbnail, FlashPix, ...
    if status == COMPLETE:
        try:
            images = mpf_images(buf, walk.segments)
        except FormatError as e:
            images, status, detail = [], DAMAGED, "MPF: %s" % e
        for image_at, size in images:
            if image_at < walk.end or image_at + 2 > limit:
                status, detail = (TRUNCATED if image_at + 2 > limit else DAMAGED,
                                  "MPF image at +%d lies outside the file" % (image_at - start))
                break
            if bytes(buf[image_at:image_at + 2]) != JPEG_SOI:
                status, detail = DAMAGED, "MPF image at +%d is not a JPEG" % (image_at - start)
                break
            embedded.append((image_at, image_at + size))
            end = max(end, min(image_at + size, limit))
            if image_at + size > limit:
                status, detail = TRUNCATED, "the dump ends inside an MPF image"
    return Carved(start, end - start, "jpg", "jpg", status, detail, [],
                  segments_meta(buf, walk.segments), embedded)


def segments_meta(buf, segments):
    """Meta from the Exif segment among a JPEG's segments (Meta() when it has none)."""
    exif = jpeg_app_data(buf, segments, MARKER_APP1, EXIF_HEADER)
    if exif is not None:
        try:
            return exif_meta(exif_tags(buf, exif[0], exif[1]))
        except (FormatError, struct.error):
            pass
    return Meta()


# 8. ISO base media files (ISO/IEC 14496-12): CR3, CRM, HEIF/HIF, MP4, MOV, 3GP --------
# The box walk (where a CR3's end is computed: walk_boxes and the stop rules), then
# the checks of each file's tables against the data they point at.

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
BYTES_PER_BOX = 4096        # past the first boxes, a walk may take one box per this many bytes:
                            # fragmented movies have fragments of hundreds of KB, and a run
                            # of 8-byte boxes would cost seconds per MB to walk
CNCV_MAX_SIZE = 64

MDAT = b"mdat"
MOOV = b"moov"
META = b"meta"
MOOF = b"moof"

CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")       # holds CNCV, CMT1..4
# The top-level boxes of ISO/IEC 14496-12 and QuickTime: a walk that meets any other
# name has left the file (its rest is elsewhere, or it never was one).
TOP_LEVEL_BOXES = frozenset([FTYP, b"pdin", MOOV, MOOF, b"mfra", MDAT, b"free", b"skip", META,
                             b"meco", b"styp", b"sidx", b"ssix", b"prft", b"emsg", b"uuid",
                             b"imda", b"wide", b"pnot", b"udta"])
# What may follow mdat and still be the file's (moov and meta once, mdat after moof):
# Canon's CNOP uuid in rolls and DPP files, Adobe's XMP uuid, padding, fragments
BOXES_AFTER_MDAT = frozenset([b"free", b"skip", MOOF, b"mfra", b"uuid", b"udta", b"sidx",
                              b"ssix", b"prft", b"emsg", b"meco", b"wide"])

HEIF_EXTENSION = "heic"     # a HEIF's, but Canon's (.hif) and AVIF's (.avif)

CANON_RAW_BRAND = b"crx "
HEIF_BRANDS = frozenset([b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx",
                         b"mif1", b"msf1", b"avif", b"avis"])
QUICKTIME_BRAND = b"qt  "
THIRD_GEN_PREFIXES = (b"3gp", b"3gg", b"3gs", b"3ge", b"3g2")


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
        raise FormatError("box name %s is not four printable characters" % fourcc_text(name))
    header_size = BOX_HEADER.size
    to_end = False
    if size == BOX_SIZE_LARGE:
        if limit - offset < MIN_LARGE_BOX_SIZE:
            raise TruncatedError("the dump ends inside a box header")
        (size,) = LARGESIZE.unpack_from(buf, offset + header_size)
        header_size = MIN_LARGE_BOX_SIZE
        if size == 0 and name == MDAT:      # a camera's placeholder, never written:
            size, to_end = limit - offset, True     # the movie was cut (as size 0)
        elif size < MIN_LARGE_BOX_SIZE:
            raise FormatError("box %s has a 64-bit size of %d" % (fourcc_text(name), size))
    elif size == BOX_SIZE_TO_END:
        size = limit - offset
        to_end = True
    elif size < MIN_BOX_SIZE:
        raise FormatError("box %s has size %d" % (fourcc_text(name), size))
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
        raise FormatError("brand %s is not four printable characters" % fourcc_text(major))
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
    return kind, HEIF_EXTENSION if kind == "heif" else kind


# The end-of-file rules. Each answers, from the boxes walked so far (and the set of
# their names): has the file ended (finished), may it end before the next box
# (after_end), and does the next box still belong to it (accepts)?

class StopAfterMdat:
    """The default end of a file: mdat, plus the boxes cameras write after it."""

    def finished(self, boxes):
        return False

    def after_end(self, seen):
        return MDAT in seen

    def breaks(self, box):
        """Why box cannot be the file's next box, or "": a name no format puts at the
        top (four printable characters of a foreign file's bytes are not a box)."""
        if box.name not in TOP_LEVEL_BOXES:
            return "box %s is no top-level box" % fourcc_text(box.name)
        return ""

    def accepts(self, box, boxes, seen):
        if MDAT not in seen:
            return True
        if box.name in (MOOV, META):                # the index written last
            return box.name not in seen
        if box.name == MDAT:                        # fragmented movie: moof, mdat, ...
            return boxes[-1].name == MOOF
        return box.name in BOXES_AFTER_MDAT


class StopAtBox:
    """--lastchunk NAME: end at the first top-level box called NAME (upstream's rule)."""

    def __init__(self, name):
        self.name = name

    def finished(self, boxes):
        return bool(boxes) and boxes[-1].name == self.name

    def after_end(self, seen):
        return False

    def breaks(self, box):
        return ""                   # upstream walked boxes of any name

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

    def breaks(self, box):
        return ""

    def accepts(self, box, boxes, seen):
        return True


class Walk(NamedTuple):
    boxes: list
    end: int                    # where the carved bytes end (limit when truncated)
    truncated: bool
    broken: str = ""            # why the chain broke before the file's end, if it did


def walk_boxes(buf, start, limit, rule):
    """Follow the top-level boxes from start until rule says the file has ended.

    When the chain breaks before the file's end (the next bytes are no box: the file
    is fragmented or overwritten), the walk ends after the last whole box, saying why.
    A second ftyp is another file's start, never a box of this one.
    """
    boxes = []
    seen = set()
    pos = start
    while not rule.finished(boxes):
        try:
            box = read_box(buf, pos, limit)
            if boxes and box.name == FTYP:
                raise FormatError("another file's ftyp")
            why = rule.breaks(box)
            if why:
                raise FormatError(why)
        except TruncatedError:
            if rule.after_end(seen):
                return Walk(boxes, pos, False)
            return Walk(boxes, limit, True)
        except FormatError as e:
            if rule.after_end(seen):
                return Walk(boxes, pos, False)
            return Walk(boxes, pos, False, "the boxes break at +%d: %s (fragmented or "
                                           "overwritten)" % (pos - start, e))
        if not rule.accepts(box, boxes, seen):
            return Walk(boxes, pos, False)
        if box.to_end and box.name != MDAT:
            return Walk(boxes, pos, False, "the boxes break at +%d: box %s has size 0, "
                                           "which only mdat may have" % (
                                               pos - start, fourcc_text(box.name)))
        if len(boxes) >= MAX_BOXES_BEFORE_MDAT + (pos - start) // BYTES_PER_BOX:
            return Walk(boxes, pos, False, "more than %d boxes in the first %d bytes: no "
                                           "camera writes that" % (len(boxes), pos - start))
        boxes.append(box)
        seen.add(box.name)
        if box.end > limit:
            return Walk(boxes, limit, True)
        pos = box.end
    return Walk(boxes, pos, False)


def walk_verdict(kind, walk, limit):
    """(status, detail) from the top-level boxes alone."""
    names = [box.name for box in walk.boxes]
    if walk.broken:
        return DAMAGED, walk.broken
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


# A carved file's own tables: sample tables, Canon's boxes, HEIF item locations.

CHUNK_OFFSETS_32 = b"stco"
CHUNK_OFFSETS_64 = b"co64"
SAMPLE_ENTRY_CHILDREN_AT = {b"CRAW": 90, b"avc1": 86, b"avc3": 86, b"hvc1": 86, b"hev1": 86}
CANON_RAW_ENTRY = b"CRAW"
CANON_METADATA_ENTRY = b"CTMD"
JPEG_SAMPLE_ENTRIES = frozenset([b"jpeg", b"mjpa", b"mjpb", b"MJPG", b"AVDJ"])
CTMD_RECORD = struct.Struct("<IH")          # size, type (little-endian, unlike the boxes)
THMB_FIELDS = struct.Struct(">BxxxHHI")      # version, (flags), width, height, JPEG size
THMB_JPEG_AT = 16                            # after version 0's fields
PRVW_JPEG_SIZE_AT = 12                       # in the PRVW box body
PRVW_JPEG_AT = 16
XMP_UUID = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")
PRVW_UUID = bytes.fromhex("eaf42b5e1c984b88b9fbb7dc406e4d16")
PRVW_UUID_FIELDS_SIZE = 8                    # a 64-bit field before the PRVW box
CTBO_ENTRY = struct.Struct(">IQQ")           # index, offset, size
CTBO_BOXES = {1: (b"uuid", XMP_UUID), 2: (b"uuid", PRVW_UUID), 3: (MDAT, b"")}
MAX_TABLE_ENTRIES = 1 << 24
QUICKTIME_EPOCH = datetime.datetime(1904, 1, 1)
CANON_VIDEO_MARKS = (b"CNCV", b"CAEP")


class Track(NamedTuple):
    number: int                 # 1, 2, ... in moov order
    entry: bytes                # the sample entry type: CRAW, CTMD, avc1, mp4a, ...
    entry_boxes: dict           # name -> Box inside the sample entry (CMP1, JPEG, avcC, hvcC)
    chunks: list                # [(offset from the file start, length, first sample, samples)]
    sizes: object               # the sample sizes: an array, or one int when all are equal
    self_contained: bool        # False when the media data lives in another file

    def samples(self):
        """(offset, size) of every sample, in file order within each chunk."""
        for offset, _length, first, count in self.chunks:
            for index in range(first, first + count):
                size = self.sizes if isinstance(self.sizes, int) else self.sizes[index]
                yield offset, size
                offset += size


def read_table(buf, box, entry, first_field=4, most=MAX_TABLE_ENTRIES):
    """The entries of a FullBox table: a 32-bit count at body+first_field, then records."""
    at = box.body + first_field
    if at + 4 > box.end:
        raise FormatError("%s is cut" % box.name.decode("latin-1"))
    (count,) = struct.unpack_from(">I", buf, at)
    if count > most or at + 4 + count * entry.size > box.end:
        raise FormatError("%s declares %d entries it does not hold"
                          % (box.name.decode("latin-1"), count))
    return [entry.unpack_from(buf, at + 4 + i * entry.size) for i in range(count)]


def read_numbers(buf, box, width, first_field=4):
    """A FullBox table of big-endian integers of `width` bytes, as an array."""
    at = box.body + first_field
    if at + 4 > box.end:
        raise FormatError("%s is cut" % box.name.decode("latin-1"))
    (count,) = struct.unpack_from(">I", buf, at)
    if at + 4 + count * width > box.end:
        raise FormatError("%s declares %d entries it does not hold"
                          % (box.name.decode("latin-1"), count))
    return integers(buf[at + 4:at + 4 + count * width], width, ">")


def chunk_table(offsets, sizes, sample_count, stsc):
    """[(offset, length, first sample, samples)] per chunk, from stco/co64, stsz and stsc."""
    chunks = []
    sample = 0
    for i, (first, per_chunk, _description) in enumerate(stsc):
        if first < 1 or (i and first <= stsc[i - 1][0]):
            raise FormatError("stsc is out of order")
        last = stsc[i + 1][0] - 1 if i + 1 < len(stsc) else len(offsets)
        for chunk in range(first, min(last, len(offsets)) + 1):
            if sample + per_chunk > sample_count:
                raise FormatError("stsc names more samples than stsz holds")
            if isinstance(sizes, int):
                length = sizes * per_chunk
            else:
                length = sum(sizes[sample:sample + per_chunk])
            chunks.append((offsets[chunk - 1], length, sample, per_chunk))
            sample += per_chunk
    return chunks


U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")
STSC_ENTRY = struct.Struct(">III")


class IsoFile:
    """A walked ISO-BMFF file and the tables inside it, read on demand.

    Offsets in the file's own tables count from its first byte; `start` is where
    that byte lies in the dump.
    """

    def __init__(self, buf, start, end, boxes, ftyp):
        self.buf = buf
        self.start = start
        self.end = end
        self.size = end - start
        self.boxes = boxes
        self.ftyp = ftyp
        self._tracks = None

    def top(self, name):
        return next((box for box in self.boxes if box.name == name), None)

    def children(self, box, skip=0):
        return child_boxes(self.buf, box.body + skip, min(box.end, self.end))

    def child(self, box, *path):
        """The box at path below box (FullBox meta's 4 bytes are skipped)."""
        for name in path:
            if box is None:
                return None
            skip = FULLBOX_FIELDS_SIZE if box.name == META else 0
            box = next((b for b in self.children(box, skip) if b.name == name), None)
        return box

    def canon_items(self):
        """{name: Box} inside Canon's uuid in moov (CR3, CRM, movies) or meta (HIF)."""
        for index in (self.top(MOOV), self.top(META)):
            if index is None:
                continue
            skip = FULLBOX_FIELDS_SIZE if index.name == META else 0
            for box in self.children(index, skip):
                if box.name == b"uuid" and box.usertype == CANON_UUID:
                    return {item.name: item for item in self.children(box, UUID_SIZE)}
        return {}

    def compressor(self):
        """Canon's CNCV string (b"CanonCR3_001/...", b"CanonCRM...", b"CanonHEIF...")."""
        cncv = self.canon_items().get(b"CNCV")
        if cncv is None:
            return b""
        return bytes(self.buf[cncv.body:min(cncv.end, cncv.body + CNCV_MAX_SIZE)])

    def mdat_spans(self):
        """(start, end) of every top-level mdat's payload, from the file start."""
        return [(box.body - self.start, box.end - self.start)
                for box in self.boxes if box.name == MDAT]

    def tracks(self):
        if self._tracks is None:
            moov = self.top(MOOV)
            traks = [b for b in self.children(moov) if b.name == b"trak"] if moov else []
            self._tracks = [self._read_track(n, trak) for n, trak in enumerate(traks, 1)]
        return self._tracks

    def _read_track(self, number, trak):
        stbl = self.child(trak, b"mdia", b"minf", b"stbl")
        if stbl is None:
            raise FormatError("trak %d has no sample table" % number)
        tables = {box.name: box for box in self.children(stbl)}
        entry, entry_boxes = self._sample_entry(tables.get(b"stsd"))
        offsets_box = tables.get(CHUNK_OFFSETS_64) or tables.get(CHUNK_OFFSETS_32)
        stsz, stsc = tables.get(b"stsz"), tables.get(b"stsc")
        if offsets_box is None or stsz is None or stsc is None:
            raise FormatError("trak %d lacks stco/co64, stsz or stsc" % number)
        offsets = read_numbers(self.buf, offsets_box,
                               U64.size if offsets_box.name == CHUNK_OFFSETS_64 else U32.size)
        if len(offsets) > table_budget(self.size):
            raise FormatError("trak %d: %d chunks in %d bytes, more than a camera writes"
                              % (number, len(offsets), self.size))
        if stsz.body + 12 > stsz.end:
            raise FormatError("stsz is cut")
        (size,) = U32.unpack_from(self.buf, stsz.body + 4)
        if size:
            (count,) = U32.unpack_from(self.buf, stsz.body + 8)
            sizes = size
        else:
            sizes = read_numbers(self.buf, stsz, U32.size, first_field=8)
            count = len(sizes)
        runs = read_table(self.buf, stsc, STSC_ENTRY, most=len(offsets))   # a run per chunk at most
        chunks = chunk_table(offsets, sizes, count, runs)
        return Track(number, entry, entry_boxes, chunks, sizes, self._self_contained(trak))

    def _sample_entry(self, stsd):
        if stsd is None or stsd.body + 8 > stsd.end:
            return b"", {}
        entry = next(child_boxes(self.buf, stsd.body + 8, stsd.end), None)
        if entry is None:
            return b"", {}
        skip = SAMPLE_ENTRY_CHILDREN_AT.get(entry.name)
        if skip is None:
            return entry.name, {}
        inner = child_boxes(self.buf, entry.offset + skip, entry.end)
        return entry.name, {box.name: box for box in inner}

    def _self_contained(self, trak):
        dref = self.child(trak, b"mdia", b"minf", b"dinf", b"dref")
        if dref is None:
            return True
        return all(self.buf[box.body + 3] & 1 for box in child_boxes(
            self.buf, dref.body + 8, dref.end) if box.body + 4 <= box.end)

    def at(self, offset, size):
        """The bytes at offset (from the file start), cut at the file's end."""
        first = self.start + offset
        return bytes(self.buf[first:min(first + size, self.end)])


# The data inside, checked against the tables: a table can be whole while the bytes
# it points at are another file's (the file is fragmented, or written over).

# CMP1, in a CRAW sample entry, describes the CRX pictures of its track (LibRaw's crx
# decoder and lclevy/canon_cr3 document it): picture and tile size, planes, wavelet
# levels, and the size of the header that starts every picture.
CMP1_FIELDS = struct.Struct(">4xH2xIIIIBBBBI")  # version, width, height, tile width and
                                                # height, bits, planes|cfa, enc|levels,
                                                # flags, header size
# The CRX header: per tile an FF01/FF11 record, then per plane an FF02/FF12 record
# followed by one FF03/FF13 record per subband (3 per wavelet level, plus one). Each
# record: tag, the size of what follows the first 4 bytes (8, or 16 in newer ones),
# then the size of its data.
CRX_RECORD = struct.Struct(">HHI")
CRX_TILE, CRX_PLANE, CRX_SUBBAND = 0xFF01, 0xFF02, 0xFF03
CRX_NEWER = 0x0010                          # FF11, FF12, FF13: the same records, newer
CRX_RECORD_SIZES = {CRX_TILE: (8, 16), CRX_PLANE: (8,), CRX_SUBBAND: (8, 16)}
CRX_TILE_EXTRA = struct.Struct(">IH")       # in a 16-byte tile record: QP data, extra data
CRX_QP_TAIL = 0x4000                        # what a 16-byte tile record has at +10
MAX_CRX_RECORDS = 1 << 16                   # cameras write a few hundred at most
MAX_CRX_PADDING = 64                        # zeros between the last record and the data


def crx_geometry(buf, cmp1):
    """(header size, tiles, planes, subbands) from CMP1; 0 where a value is not usable
    (the bench's synthetic CR3s lay CMP1 out differently: then the records alone)."""
    if cmp1.body + CMP1_FIELDS.size > cmp1.end:
        return 0, 0, 0, 0
    (_version, width, height, tile_width, tile_height, _bits, planes, levels, _flags,
     header_size) = CMP1_FIELDS.unpack_from(buf, cmp1.body)
    planes, levels = planes >> 4, levels & 15
    tiles = 0
    if 0 < tile_width <= width and 0 < tile_height <= height:
        tiles = -(-width // tile_width) * -(-height // tile_height)
    return header_size, tiles, planes if planes in (1, 2, 4) else 0, 3 * levels + 1


def crx_records(buf, first, end):
    """[(tile size, QP and extra bytes, [(plane size, [subband sizes])])] and where the
    records end; FormatError where they are out of order."""
    tiles = []
    pos = first
    for _ in range(MAX_CRX_RECORDS):
        if pos + CRX_RECORD.size > end or buf[pos] != 0xFF:
            return tiles, pos
        tag, size, data = CRX_RECORD.unpack_from(buf, pos)
        kind = tag & ~CRX_NEWER
        if kind not in CRX_RECORD_SIZES:
            return tiles, pos
        if size not in CRX_RECORD_SIZES[kind] or pos + 4 + size > end:
            raise FormatError("a CRX record FF%02X of size %d at +%d" % (
                tag & 0xFF, size, pos - first))
        number = buf[pos + 8] >> 4
        if kind == CRX_TILE:
            (number,) = struct.unpack_from(">H", buf, pos + 8)
            (tail,) = struct.unpack_from(">H", buf, pos + 10)
            extra = 0
            if size == 16:
                qp, more = CRX_TILE_EXTRA.unpack_from(buf, pos + 12)
                extra = qp + more
            if number != len(tiles) or tail != (CRX_QP_TAIL if size == 16 else 0):
                raise FormatError("tile record %d at +%d is out of order" % (
                    number, pos - first))
            tiles.append((data, extra, []))
        elif kind == CRX_PLANE:
            if not tiles or number != len(tiles[-1][2]):
                raise FormatError("plane record at +%d is out of order" % (pos - first))
            tiles[-1][2].append((data, []))
        else:
            if not tiles or not tiles[-1][2] or number != len(tiles[-1][2][-1][1]):
                raise FormatError("subband record at +%d is out of order" % (pos - first))
            tiles[-1][2][-1][1].append(data)
        pos += 4 + size
    raise FormatError("more than %d CRX records" % MAX_CRX_RECORDS)


def crx_header_problem(geometry, buf, first, size):
    """What is wrong with the CRX picture of `size` bytes at first, or None; buf may
    hold only its header.

    Its header must hold the tiles, planes and subbands CMP1 describes (geometry, from
    crx_geometry), and their sizes must add up: the tiles fill the sample after the
    header (as stsz says), the planes fill their tile, the subbands fit in their plane."""
    header_size, want_tiles, want_planes, want_subbands = geometry
    if not CRX_RECORD.size <= header_size <= size:
        header_size = 0
    try:
        tiles, records_end = crx_records(buf, first,
                                         min(len(buf), first + (header_size or size)))
    except FormatError as e:
        return str(e)
    if not tiles:
        return "no CRX header"
    if header_size:
        padding = first + header_size - records_end
        if padding > MAX_CRX_PADDING or bytes(buf[records_end:first + header_size]).strip(b"\0"):
            return "the CRX header ends at +%d, CMP1 says +%d" % (
                records_end - first, header_size)
    else:
        header_size = records_end - first
    if want_tiles and len(tiles) != want_tiles:
        return "%d tiles, CMP1 says %d" % (len(tiles), want_tiles)
    data = sum(tile for tile, _, _ in tiles)
    if header_size + data != size:
        return "its header and tiles add up to %d bytes, stsz says %d" % (
            header_size + data, size)
    for number, (tile, extra, planes) in enumerate(tiles):
        if want_planes and len(planes) != want_planes:
            return "tile %d has %d planes, CMP1 says %d" % (number, len(planes), want_planes)
        if extra + sum(plane for plane, _ in planes) != tile:
            return "the planes of tile %d do not fill it" % number
        for plane, subbands in planes:
            if (want_planes and len(subbands) != want_subbands) or sum(subbands) > plane:
                return "a plane of tile %d has the wrong subbands" % number
    return None


# AVC and HEVC samples (and HEIF image items) are runs of NAL units, each behind a
# big-endian length of 1, 2 or 4 bytes, as the avcC or hvcC configuration says.
NAL_CONFIGS = {b"avcC": (4, False), b"hvcC": (21, True)}   # where the length size is; HEVC?
NAL_SAMPLE_ENTRIES = frozenset([b"avc1", b"avc3", b"hvc1", b"hev1"])
NAL_IMAGE_ITEMS = frozenset([b"avc1", b"hvc1"])
# Inside a NAL unit an encoder escapes 00 00 00, 00 00 01 and 00 00 02 (as 00 00 03
# 00 ...), and writes 00 00 03 only before 00 to 03 (H.264 and H.265, 7.4.2): where
# another sequence appears, the bytes are not the unit's. Another stream's 4-byte
# lengths start so, and so does almost any file's header; and a unit's last byte is
# never 0 (it ends with a stop bit, or with an escaped cabac_zero_word).
NAL_FOREIGN_BYTES = re.compile(b"\x00\x00(?:[\x00-\x02]|\x03[\x04-\xff])")
AVC_RESERVED_TYPES = frozenset([0, 16, 17, 18, 22, 23])
HEVC_RESERVED_TYPES = range(41, 48)     # 48..63 are unspecified, and used (Dolby Vision)


def nal_coding(buf, config):
    """(length size, HEVC?) from an avcC or hvcC box."""
    at, hevc = NAL_CONFIGS[config.name]
    if config.body + at >= config.end:
        raise FormatError("%s is cut" % config.name.decode())
    length_size = (buf[config.body + at] & 3) + 1
    if length_size == 3:
        raise FormatError("%s declares 3-byte NAL lengths" % config.name.decode())
    return length_size, hevc


def nal_header_valid(first, second, hevc):
    if first & 0x80:                        # forbidden_zero_bit
        return False
    if hevc:
        return (first >> 1) & 0x3F not in HEVC_RESERVED_TYPES and second & 7 != 0
    return first & 0x1F not in AVC_RESERVED_TYPES


class Spans:
    """Bytes of the dump read as one run: a sample, or a HEIF item's extents."""

    def __init__(self, buf, spans):
        self.buf = buf
        self.spans = spans
        self.starts = list(itertools.accumulate([0] + [end - start for start, end in spans]))
        self.size = self.starts[-1]

    def read(self, pos, count):
        out = b""
        index = bisect.bisect_right(self.starts, pos) - 1
        while count and index < len(self.spans):
            start, end = self.spans[index]
            first = start + pos - self.starts[index]
            piece = bytes(self.buf[first:min(end, first + count)])
            out += piece
            count -= len(piece)
            pos += len(piece)
            index += 1
        return out

    def search(self, pattern, pos, end):
        """Whether pattern matches in [pos, end) (within one span: not across two)."""
        index = bisect.bisect_right(self.starts, pos) - 1
        while pos < end and index < len(self.spans):
            start, stop = self.spans[index]
            first = start + pos - self.starts[index]
            last = min(stop, first + end - pos)
            if pattern.search(self.buf, first, last):
                return True
            pos += last - first
            index += 1
        return False


def nal_units_problem(data, length_size, hevc, budget):
    """(what is wrong with the NAL units that should fill data exactly, or None;
    how many units were read). FormatError past budget units."""
    pos = units = 0
    header = 2 if hevc else 1
    while pos < data.size:
        units += 1
        if units > budget:
            raise FormatError("more NAL units than a camera writes")
        head = data.read(pos, length_size + header)
        if len(head) < length_size + header:
            return "a NAL unit is cut at +%d" % pos, units
        length = int.from_bytes(head[:length_size], "big")
        if length < header or pos + length_size + length > data.size:
            return "a NAL unit of %d bytes at +%d does not fit" % (length, pos), units
        if not nal_header_valid(head[length_size], head[-1], hevc):
            return "no NAL unit header at +%d" % pos, units
        payload = pos + length_size
        if (not data.read(payload + length - 1, 1)[0]
                or data.search(NAL_FOREIGN_BYTES, payload, payload + length)):
            return "the NAL unit at +%d holds bytes that are not its own" % pos, units
        pos += length_size + length
    return None, units


# A movie cut before its moov was written (the battery died while it recorded) is an
# mdat alone. Its video samples are access units: one picture's NAL units, each behind
# its length; another track's chunk (sound, metadata) lies between some of them. A
# new picture begins with an access unit delimiter, parameter sets or SEI after the
# last picture's slices, or with a slice whose first_mb_in_slice (H.264) or
# first_slice_segment_in_pic_flag (HEVC) says it is the picture's first: the first
# bit after the header, 1 in both (ue(v) 0 is the bit 1).
AVC_VCL, AVC_IDR = frozenset([1, 5]), 5
AVC_NEW_PICTURE = frozenset([6, 7, 8, 9, 14, 15, 16, 17, 18])
HEVC_VCL = range(0, 32)
HEVC_KEY = range(16, 24)        # IRAP pictures: IDR, CRA, BLA (and reserved IRAP types)
HEVC_NEW_PICTURE = frozenset([32, 33, 34, 35, 39, 41, 42, 43, 44] + list(range(48, 56)))
MAX_NAL_UNIT = 16 << 20         # no camera's picture has a larger one
MAX_CUT_GAP = 4 << 20           # the most of other tracks' bytes between two pictures
CUT_GAP_SLACK = 4 << 10         # past twice the most a reference has (see movie_reference)
MAX_PICTURE_GROWTH = 4          # a NAL unit of a cut movie: at most this many times
                                # the reference's largest picture
ZEROS_AFTER_CUT = 64 << 10      # zeros read after a cut picture's bytes: the rest of
                                # its cluster, never written


SLICE_HEADER_READ = 16          # bytes of a slice's header read for its first fields


class VideoCoding(NamedTuple):
    """What walking a track's NAL units needs from its sample entry."""
    length_size: int            # 1, 2 or 4 bytes before each NAL unit
    hevc: bool
    pps: frozenset              # the pic_parameter_set_ids its configuration holds
    # learnt from a reference movie's samples (see learnt_coding): the NAL unit headers
    # they hold, and the one every sample begins with (b"" for any)
    headers: frozenset = frozenset()
    lead: bytes = b""
    sps: object = None          # an AvcSps, or HevcOrder: for its pictures' order
    sps_body: bytes = b""       # its SPS's bytes after the NAL header
    gap: int = MAX_CUT_GAP      # the most bytes of other tracks between two pictures
    least_gap: int = 1          # the fewest, when there are some (half the reference's)
    largest: int = MAX_NAL_UNIT // 4    # its largest picture
    poc_step: int = 0           # the step between its pictures' order counts (0: unknown)
    slices: int = 0             # the slices each of its pictures has (0: not always as many)


LEARNT_SAMPLES = 600            # a reference's samples read for what its headers are


def learnt_coding(read, samples, coding):
    """coding with the NAL unit headers of a reference movie's samples (offset, size:
    read(offset, size) gives their bytes) and the one each begins with, if they share
    one: a cut movie from the same camera writes the same, and bytes of other tracks
    seldom look so. Only each unit's length and header are read."""
    headers, leads, heads, counts = set(), set(), [], set()
    header = 2 if coding.hevc else 1
    field = coding.length_size + header
    for offset, size in itertools.islice(samples, LEARNT_SAMPLES):
        pos, end, sliced = offset, offset + size, 0
        while pos + field <= end:
            head = read(pos, field + SLICE_HEAD)
            if len(head) < field:
                break
            headers.add(head[coding.length_size:field])
            if pos == offset:
                leads.add(head[coding.length_size:field])
            kind = (head[coding.length_size] >> 1) & 0x3F if coding.hevc \
                else head[coding.length_size] & 0x1F
            if kind in (HEVC_VCL if coding.hevc else AVC_VCL):
                if not sliced:
                    heads.append(SliceHead(kind, head[coding.length_size:field], head[field:]))
                sliced += 1
            pos += coding.length_size + int.from_bytes(head[:coding.length_size], "big")
        counts.add(sliced)
    try:
        order = order_counts(heads, coding)
    except (FormatError, IndexError):
        order = None
    return coding._replace(headers=frozenset(headers),
                           lead=leads.pop() if len(leads) == 1 else b"",
                           poc_step=count_step(order) if order else 0,
                           slices=counts.pop() if len(counts) == 1 else 0)


def video_coding(buf, config):
    """The VideoCoding of an avcC or hvcC box (FormatError when it is cut)."""
    length_size, hevc = nal_coding(buf, config)
    data = bytes(buf[config.body:config.end])
    ids, pos = set(), 0
    try:
        if hevc:
            pos, sets = 23, {}
            for _ in range(data[22]):
                kind, count = data[pos] & 0x3F, int.from_bytes(data[pos + 1:pos + 3], "big")
                pos += 3
                for _ in range(count):
                    size = int.from_bytes(data[pos:pos + 2], "big")
                    sets.setdefault(kind, data[pos + 4:pos + 2 + size])
                    if kind == 34:
                        ids.add(parameter_set_id(data[pos + 4:pos + 2 + size]))
                    pos += 2 + size
        else:
            pos = 6
            for _ in range(data[5] & 0x1F):
                pos += 2 + int.from_bytes(data[pos:pos + 2], "big")
            count, pos = data[pos], pos + 1
            for _ in range(count):
                size = int.from_bytes(data[pos:pos + 2], "big")
                ids.add(parameter_set_id(data[pos + 3:pos + 2 + size]))
                pos += 2 + size
        sps, sps_body = None, b""
        if hevc and 33 in sets and 34 in sets:
            sps_body = sets[33]
            sps = HevcOrder(*hevc_sps_order(sps_body), *reversed(hevc_pps_order(sets[34])))
        if not hevc and data[5] & 0x1F:
            size = int.from_bytes(data[6:8], "big")
            sps_body = data[9:8 + size]
            sps = avc_sps(sps_body)
    except IndexError:
        raise FormatError("%s is cut" % config.name.decode())
    return VideoCoding(length_size, hevc, frozenset(ids) - {-1}, sps=sps, sps_body=sps_body)


def parameter_set_id(body):
    """A PPS's own id: the ue(v) after its NAL header; -1 when it cannot be read."""
    found = exp_golomb("".join(format(byte, "08b") for byte in body[:8]), 0)
    return found[0] if found is not None else -1


class NalUnit(NamedTuple):
    at: int
    end: int
    kind: int                   # nal_unit_type
    first: bool                 # its first bit after the header: a picture's first slice
    pps: int = -1               # a first slice's pic_parameter_set_id (-1: not read)


class Bits:
    """A NAL unit's RBSP (its escapes taken out), read bit by bit: H.264 7.2."""

    def __init__(self, data):
        self.bits = "".join(format(byte, "08b") for byte in data.replace(b"\0\0\3", b"\0\0"))
        self.pos = 0

    def u(self, count):
        if self.pos + count > len(self.bits):
            raise FormatError("a NAL unit's header is cut")
        value = int(self.bits[self.pos:self.pos + count] or "0", 2)
        self.pos += count
        return value

    def ue(self):
        found = exp_golomb(self.bits, self.pos)
        if found is None:
            raise FormatError("a NAL unit's header is cut")
        self.pos = found[1]
        return found[0]

    def se(self):
        value = self.ue()
        return (value + 1) // 2 if value % 2 else -(value // 2)


class AvcSps(NamedTuple):
    """What an H.264 slice header's picture order count needs of its SPS."""
    frame_num_bits: int
    poc_type: int
    poc_lsb_bits: int
    frame_mbs_only: bool
    colour_planes: bool


HIGH_PROFILES = frozenset([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135])


def avc_sps(body):
    """The AvcSps of an SPS NAL unit's bytes after its header (7.3.2.1.1)."""
    bits = Bits(body[:256])
    profile = bits.u(8)
    bits.u(16)                          # constraint flags, level_idc
    bits.ue()                           # seq_parameter_set_id
    planes = False
    if profile in HIGH_PROFILES:
        chroma = bits.ue()
        if chroma == 3:
            planes = bool(bits.u(1))
        bits.ue(), bits.ue(), bits.u(1)     # bit depths, qpprime_y_zero_transform_bypass
        if bits.u(1):                       # seq_scaling_matrix_present_flag
            for index in range(12 if chroma == 3 else 8):
                if bits.u(1):
                    last = following = 8
                    for _ in range(16 if index < 6 else 64):
                        if following:
                            following = (last + bits.se() + 256) % 256
                        last = following or last
    frame_num_bits = bits.ue() + 4
    poc_type = bits.ue()
    lsb_bits = 0
    if poc_type == 0:
        lsb_bits = bits.ue() + 4
    elif poc_type == 1:
        bits.u(1), bits.se(), bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue(), bits.u(1), bits.ue(), bits.ue()  # ref frames, gaps, width, height
    return AvcSps(frame_num_bits, poc_type, lsb_bits, bool(bits.u(1)), planes)


class HevcOrder(NamedTuple):
    """What an HEVC first slice's picture order count needs of its SPS and PPS."""
    poc_lsb_bits: int
    colour_planes: bool
    extra_bits: int             # num_extra_slice_header_bits
    output_flag: bool           # output_flag_present_flag


def hevc_sps_order(body):
    """(log2_max_pic_order_cnt_lsb, separate_colour_plane) of an HEVC SPS's bytes
    after its NAL header (7.3.2.2)."""
    bits = Bits(body[:256])
    bits.u(4)
    sub_layers = bits.u(3)
    bits.u(1)
    bits.u(96)                          # the general profile, tier and level
    present = [(bits.u(1), bits.u(1)) for _ in range(sub_layers)]
    if sub_layers:
        bits.u(2 * (8 - sub_layers))
    for profile, level in present:
        bits.u(88 * profile + 8 * level)
    bits.ue()                           # sps_seq_parameter_set_id
    planes = bits.ue() == 3 and bool(bits.u(1))
    bits.ue(), bits.ue()                # width, height
    if bits.u(1):                       # conformance_window_flag
        bits.ue(), bits.ue(), bits.ue(), bits.ue()
    bits.ue(), bits.ue()                # bit depths
    return bits.ue() + 4, planes


def hevc_pps_order(body):
    """(output_flag_present_flag, num_extra_slice_header_bits) of an HEVC PPS's
    bytes after its NAL header (7.3.2.3.1)."""
    bits = Bits(body[:64])
    bits.ue(), bits.ue()                # its id, its SPS's
    bits.u(1)                           # dependent_slice_segments_enabled_flag
    return bool(bits.u(1)), bits.u(3)


HEVC_IDR = (19, 20)                     # IDR_W_RADL, IDR_N_LP: order count 0
HEVC_RESET = range(16, 21)              # BLA and IDR: the counting starts again


def hevc_poc_lsb(body, order, kind):
    """slice_pic_order_cnt_lsb of an HEVC picture's first slice (the bytes after its
    NAL header): 0 for an IDR picture."""
    if kind in HEVC_IDR:
        return 0
    bits = Bits(body[:64])
    bits.u(1)                           # first_slice_segment_in_pic_flag
    if kind in HEVC_KEY:
        bits.u(1)                       # no_output_of_prior_pics_flag
    bits.ue()                           # slice_pic_parameter_set_id
    bits.u(order.extra_bits)
    bits.ue()                           # slice_type
    if order.output_flag:
        bits.u(1)
    if order.colour_planes:
        bits.u(2)
    return bits.u(order.poc_lsb_bits)


def avc_poc_lsb(body, sps, idr):
    """pic_order_cnt_lsb of a first slice (the bytes after its NAL header), for an
    SPS whose poc_type is 0; None for a field (its pair is not counted here)."""
    bits = Bits(body[:64])
    bits.ue(), bits.ue(), bits.ue()     # first_mb_in_slice, slice_type, pps id
    if sps.colour_planes:
        bits.u(2)
    bits.u(sps.frame_num_bits)
    if not sps.frame_mbs_only and bits.u(1):
        return None                     # field_pic_flag
    if idr:
        bits.ue()                       # idr_pic_id
    return bits.u(sps.poc_lsb_bits)


def exp_golomb(bits, pos):
    """(the ue(v) value at bit pos of the string of '0'/'1' bits, the bit after it);
    None past the end or past 31 leading zeros."""
    zeros = bits.find("1", pos) - pos
    if zeros < 0 or zeros > 31 or pos + 2 * zeros + 1 > len(bits):
        return None
    value = int(bits[pos + zeros:pos + 2 * zeros + 1], 2) - 1
    return value, pos + 2 * zeros + 1


def first_slice_pps(header, hevc, kind):
    """The pic_parameter_set_id of a picture's first slice, from the bytes after its
    NAL header (escapes taken out), or -1 when its fields cannot be (a slice_type
    that does not exist)."""
    bits = "".join(format(byte, "08b") for byte in header.replace(b"\0\0\3", b"\0\0"))
    if hevc:                # first_slice_segment_in_pic_flag, for IRAP no_output_of_prior_pics
        pos = 2 if kind in HEVC_KEY else 1
        found = exp_golomb(bits, pos)
        return found[0] if found is not None and found[0] < 64 else -1
    found = exp_golomb(bits, 1)                     # first_mb_in_slice 0 is the bit 1
    if found is None or found[0] > 9 or (kind == AVC_IDR and found[0] % 5 != 2):
        return -1                                   # slice_type: an IDR's is I
    found = exp_golomb(bits, found[1])
    return found[0] if found is not None and found[0] < 256 else -1


def nal_unit_at(buf, pos, end, coding, scan=True):
    """The NAL unit whose length field begins at pos, when a whole and valid one does
    (its header, no larger than MAX_PICTURE_GROWTH times the coding's largest
    picture, its last byte not 0, no bytes inside that an encoder escapes (not
    looked for unless scan); a picture's first slice naming one of the coding's
    parameter sets); else None."""
    length_size, hevc = coding.length_size, coding.hevc
    header = 2 if hevc else 1
    if pos + length_size + header + 1 > end:
        return None
    length = int.from_bytes(buf[pos:pos + length_size], "big")
    payload = pos + length_size
    if (length <= header or length > MAX_PICTURE_GROWTH * coding.largest
            or payload + length > end):
        return None
    first, second = buf[payload], buf[payload + 1]
    if not nal_header_valid(first, second, hevc) or not buf[payload + length - 1]:
        return None
    if coding.headers and bytes(buf[payload:payload + header]) not in coding.headers:
        return None
    kind = (first >> 1) & 0x3F if hevc else first & 0x1F
    unit = NalUnit(pos, payload + length, kind, bool(buf[payload + header] & 0x80))
    if unit.first and is_slice(unit, hevc):
        read = bytes(buf[payload + header:min(payload + length, payload + header
                                               + SLICE_HEADER_READ)])
        unit = unit._replace(pps=first_slice_pps(read, hevc, kind))
        if (unit.pps not in coding.pps or (not hevc and kind == AVC_IDR
                                           and not first & 0x60)):
            return None                 # no slice's header (an IDR is a reference)
    if scan and NAL_FOREIGN_BYTES.search(buf, payload, payload + length):
        return None
    return unit


def is_slice(unit, hevc):
    return unit.kind in (HEVC_VCL if hevc else AVC_VCL)


def begins_picture(unit, hevc):
    """True when unit, after a picture's slices, begins the next access unit."""
    return (unit.kind in (HEVC_NEW_PICTURE if hevc else AVC_NEW_PICTURE)
            or (is_slice(unit, hevc) and unit.first))


def access_unit_at(buf, pos, end, coding):
    """(its end, a key picture?) of the access unit beginning at pos: NAL units up to
    the one that begins the next picture, or up to bytes that are no NAL unit (the
    next chunk is another track's). None unless it holds a picture's first slice."""
    hevc = coding.hevc
    lead = coding.lead
    if lead and buf[pos + coding.length_size:pos + coding.length_size + len(lead)] != lead:
        return None
    sliced = key = False
    while True:
        unit = nal_unit_at(buf, pos, end, coding)
        if unit is None or (sliced and begins_picture(unit, hevc)):
            break
        if is_slice(unit, hevc):
            if not sliced and not unit.first:
                return None             # the rest of a picture whose start is not here
            sliced = True
            key = key or (unit.kind in HEVC_KEY if hevc else unit.kind == AVC_IDR)
        pos = unit.end
    return (pos, key) if sliced else None


# Between two pictures of a cut movie lie other tracks' chunks (sound, timecode, GPS):
# bytes that may read, by chance, as the start of a picture - a length, a NAL
# header, a first slice's fields. A picture the walk takes after such a gap must
# also count on the frame numbers (H.264: one more than the last reference
# picture's, 7.4.3), begin no nearer than the fewest bytes the reference has there,
# and, when a later start lies inside its first unit, be the one that the next
# picture follows.


class CutPicture(NamedTuple):
    at: int
    end: int
    key: bool
    head: object                # its SliceHead
    sps: bytes                  # the SPS it repeats (after its NAL header), or b""
    last_ref: object            # the frame_num of the last reference picture, with it


def counts_on(head, coding, last_ref):
    """(True when an H.264 picture's frame_num counts on from last_ref, the frame
    number of the last reference picture (None: not known yet); the last_ref after
    it). Always True for HEVC, or without an SPS."""
    sps = coding.sps
    if coding.hevc or sps is None:
        return True, None
    number = avc_frame_num(head.body, sps)
    if head.kind == AVC_IDR:
        fits = number == 0
    else:
        fits = last_ref is None or number == (last_ref + 1) % (1 << sps.frame_num_bits)
    return fits, number if head.header[0] & 0x60 else last_ref


def picture_at(buf, pos, end, coding, last_ref):
    """The CutPicture beginning at pos; None when no access unit does; False when one
    does whose frame number does not count on from last_ref."""
    unit = nal_unit_at(buf, pos, end, coding, scan=False)
    if unit is None:
        return None
    if unit.first and is_slice(unit, coding.hevc) and coding.sps is not None:
        header = 2 if coding.hevc else 1    # the frame number first: a chance start
        payload = pos + coding.length_size  # may claim megabytes to scan
        head = SliceHead(unit.kind, bytes(buf[payload:payload + header]), bytes(
            buf[payload + header:min(unit.end, payload + header + SLICE_HEAD)]))
        try:
            if not counts_on(head, coding, last_ref)[0]:
                return False
        except FormatError:
            return None
    found = access_unit_at(buf, pos, end, coding)
    if found is None:
        return None
    stop, key = found
    try:
        head, sps = slice_head(buf, pos, stop - pos, coding)
        fits, after = counts_on(head, coding, last_ref)
    except FormatError:
        return None
    return CutPicture(pos, stop, key, head, sps, after) if fits else False


def starts(buf, pos, last, coding, least):
    """Where a picture may begin: pos, then from pos + least on, before last (a
    4-byte length below 16 MiB begins with a 0 byte)."""
    yield pos
    at = pos + max(1, least)
    while at < last:
        if coding.length_size == 4:
            at = buf.find(b"\0", at, last)
            if at < 0:
                return
        yield at
        at += 1


def next_picture(buf, pos, end, coding, last_ref, first=False, careful=True):
    """(the first CutPicture at pos or after it, past other tracks' chunks (coding.gap
    bytes at most; MAX_CUT_GAP for the first), or None; True when an access unit
    right at pos has frame numbers that do not count on: the walk reads the
    pictures with another SPS than theirs)."""
    gap, least = (MAX_CUT_GAP, 1) if first else (coding.gap, coding.least_gap)
    last = min(end, pos + gap)
    for at in starts(buf, pos, last, coding, least):
        picture = picture_at(buf, at, end, coding, last_ref)
        if picture is False and at == pos:
            return None, True
        if picture:
            if at > pos and careful:
                picture = overlapped(buf, picture, pos, last, end, coding, last_ref, least)
            return picture, False
    return None, False


def overlapped(buf, picture, pos, last, end, coding, last_ref, least):
    """picture, found past a gap, or another that begins inside its first NAL unit:
    the one the next picture follows, when only that one is followed (a start
    read by chance in other tracks' bytes may have a first unit that swallows the
    true picture)."""
    unit = nal_unit_at(buf, picture.at, end, coding)
    for at in starts(buf, picture.at + 1, min(unit.end, last), coding, 1):
        if at - pos < least:
            continue
        other = picture_at(buf, at, end, coding, last_ref)
        if other:
            if not followed(buf, picture, end, coding) and followed(buf, other, end, coding):
                return other
            return picture
    return picture


def followed(buf, picture, end, coding):
    """True when another picture follows picture, or nothing does (buf ends)."""
    return picture.end >= end or next_picture(buf, picture.end, end, coding,
                                              picture.last_ref, careful=False)[0] is not None


# A cut mdat may be gigabytes: it is walked a window at a time, each window's walk
# ending where a picture beginning there could reach past it (another track's chunk,
# then two of the largest NAL units the reference allows), the window 4 times that.
MIN_WALK_WINDOW, WALK_WINDOW = 8 << 20, 64 << 20
SLICE_HEAD = 64                 # bytes of a picture's first slice kept for its order


class SliceHead(NamedTuple):
    """A picture's first slice, as its order and frame number are read from it."""
    kind: int
    header: bytes               # its NAL unit header (1 or 2 bytes)
    body: bytes                 # the first SLICE_HEAD bytes after it


class CutWalk(NamedTuple):
    pictures: list              # [(offset, size, key?)], in the dump
    heads: list                 # the SliceHead of each
    own_sps: bytes              # the SPS the first picture repeats (after its header), or b""
    end: int                    # where the walk ended: the end of its last picture
    why: str                    # why it ended there
    misfit: bool = False        # it ended at a picture whose frame number does not fit


def slice_head(buf, offset, size, coding):
    """The SliceHead of the access unit (offset, size) in buf, and the SPS body it
    repeats (b"" if none); FormatError when it holds no slice."""
    header = 2 if coding.hevc else 1
    pos, sps = offset, b""
    while pos < offset + size:
        unit = nal_unit_at(buf, pos, offset + size, coding._replace(headers=frozenset()))
        if unit is None:
            break
        payload = pos + coding.length_size
        if unit.kind == (33 if coding.hevc else 7) and not sps:
            sps = bytes(buf[payload + header:unit.end])
        if is_slice(unit, coding.hevc):
            return SliceHead(unit.kind, bytes(buf[payload:payload + header]), bytes(
                buf[payload + header:min(unit.end, payload + header + SLICE_HEAD)])), sps
        pos = unit.end
    raise FormatError("the picture at %d has no slice" % offset)


def cut_picture_at(buf, pos, coding):
    """True when a picture cut by the end of buf begins at pos: its units before a
    slice whole, then a unit of the coding that runs past the end, or into zeros
    (its first slice's header read as one, its length one of a picture of the
    reference's)."""
    header = 2 if coding.hevc else 1
    lead = coding.lead
    if lead and buf[pos + coding.length_size:pos + coding.length_size + len(lead)] != lead:
        return False
    begun = False                       # by units that come before a picture's slices
    unit = nal_unit_at(buf, pos, len(buf), coding)
    while unit is not None and not is_slice(unit, coding.hevc):
        pos, begun = unit.end, True
        unit = nal_unit_at(buf, pos, len(buf), coding)
    payload = pos + coding.length_size
    if unit is not None or payload + header + 1 > len(buf):
        return begun and pos == len(buf)
    length = int.from_bytes(buf[pos:payload], "big")
    first, second = buf[payload], buf[payload + 1]
    if (length > MAX_PICTURE_GROWTH * coding.largest
            or not nal_header_valid(first, second, coding.hevc)
            or (coding.headers and bytes(buf[payload:payload + header]) not in coding.headers)):
        return False
    # cut: by the end of buf, or by zeros (a cluster's slack, never written)
    foreign = NAL_FOREIGN_BYTES.search(buf, payload, min(len(buf), payload + length))
    if foreign is None:
        if payload + length <= len(buf):
            return False
    elif foreign.start() < payload + header + 1 or bytes(
            buf[foreign.start():foreign.start() + ZEROS_AFTER_CUT]).strip(b"\0"):
        return False
    kind = (first >> 1) & 0x3F if coding.hevc else first & 0x1F
    unit = NalUnit(pos, len(buf), kind, bool(buf[payload + header] & 0x80))
    if is_slice(unit, coding.hevc):
        read = bytes(buf[payload + header:payload + header + SLICE_HEADER_READ])
        return unit.first and first_slice_pps(read, coding.hevc, kind) in coding.pps
    return begun or begins_picture(unit, coding.hevc)


def slices_of(buf, picture, base, coding):
    """How many slices the picture (offset, size, key?) has, its bytes in buf from
    base on."""
    pos, end, count = picture[0] - base, picture[0] - base + picture[1], 0
    while pos < end:
        unit = nal_unit_at(buf, pos, end, coding._replace(headers=frozenset()), scan=False)
        if unit is None:
            break
        count += is_slice(unit, coding.hevc)
        pos = unit.end
    return count


def goes_on(buf, pos, coding, last):
    """True when the next slice of the picture whose first slice's SliceHead is last
    begins at pos: a slice that is not a picture's first, of last's NAL type, and
    with its frame number (H.264) - the picture has more slices, there."""
    header = 2 if coding.hevc else 1
    payload = pos + coding.length_size
    if payload + header + 1 > len(buf):
        return False
    if bytes(buf[payload:payload + header]) != last.header or buf[payload + header] & 0x80:
        return False
    if coding.hevc or coding.sps is None:
        return True
    body = bytes(buf[payload + header:payload + header + SLICE_HEAD])
    try:
        bits = Bits(body)
        if bits.ue() == 0 or bits.ue() > 9 or bits.ue() not in coding.pps:
            return False        # first_mb_in_slice, slice_type, pic_parameter_set_id
        return avc_frame_num(body, coding.sps) == avc_frame_num(last.body, coding.sps)
    except FormatError:
        return False


def zeros_follow(buf, pos, coding):
    """True when, within twice coding.gap of pos, zeros begin that run
    ZEROS_AFTER_CUT bytes or to the end of buf, a sector of them at least: where the
    camera stopped writing (a card or cluster never written, or erased). A picture
    cut there would run into them, and no NAL unit holds such zeros: the units
    before them are whole."""
    last = min(len(buf), pos + 2 * coding.gap)     # (a movie's last chunk may be longer)
    at = buf.find(bytes(SECTOR_SIZE), pos, last + SECTOR_SIZE)
    return at >= 0 and not bytes(buf[at:at + ZEROS_AFTER_CUT]).strip(b"\0")


def ends_whole(buf, pos, coding, last, slices):
    """True when the last picture of a walk (last: its SliceHead; slices: how many
    it has), ending at pos in buf, is proven whole: the next picture follows it, cut
    by the end of buf or by zeros, right after it or after as many bytes of other
    tracks as the reference has between two pictures; or nothing does, or zeros do
    (zeros_follow), and it has all the slices the reference's pictures have (a
    picture cut where one of its slices ends has fewer). A picture cut by the dead
    battery that the bytes after the cut (old data, on a used card) seem to go on
    is followed by none of these."""
    if cut_picture_at(buf, pos, coding):
        return True
    if goes_on(buf, pos, coding, last):
        return False                    # its next slice is cut
    if (pos == len(buf) or zeros_follow(buf, pos, coding)) and (
            coding.slices == 1 or (coding.slices and slices >= coding.slices)):
        return True
    at, last = pos + coding.least_gap, min(len(buf), pos + coding.gap)
    while at < last:
        if cut_picture_at(buf, at, coding):
            return True
        at += 1
        if coding.length_size == 4:
            at = buf.find(b"\0", at, last)
            if at < 0:
                return False
    return False


def walk_cut_movie(read, start, end, coding, most):
    """The CutWalk of the pictures of a cut mdat's payload [start, end) (read(offset,
    size) gives the dump's bytes): each access unit right after the last, or past
    another track's chunk, in order, at most most; it ends where no picture follows.
    The first must be a key picture (a player starts there): the pictures before it
    are passed over."""
    pictures, heads, own_sps, last_ref, misfit = [], [], b"", None, False
    base, buf, pos = start, bytearray(), start
    margin = min(MAX_CUT_GAP, coding.gap) + 2 * MAX_PICTURE_GROWTH * coding.largest
    window = min(WALK_WINDOW, max(MIN_WALK_WINDOW, 4 * margin))
    why, again = "no picture follows", False
    while len(pictures) < most:
        if (pos - base >= len(buf) - margin or again) and base + len(buf) < end:
            del buf[:pos - base]        # the next window, from where the walk is
            buf += read(pos + len(buf), min(end, pos + window) - pos - len(buf))
            base = pos
        whole = base + len(buf) >= end
        picture, misfit = next_picture(buf, pos - base, len(buf), coding, last_ref,
                                       first=not pictures)
        if picture is None:
            if misfit:
                why = "the frame numbers of the next picture do not count on"
            elif not whole and len(buf) < min(end, base + window) - base:
                why = "the card could not be read there"
            elif pictures and not ends_whole(buf, pos - base, coding, heads[-1],
                                             slices_of(buf, pictures[-1], base, coding)):
                del pictures[-1], heads[-1]
                why = ("the picture after it is left out: no picture follows that one, "
                       "which may run into bytes that are not the movie's")
            break
        if not whole and picture.end + margin - coding.gap > len(buf):
            if again:                   # its next unit may lie past the window,
                why = "a picture larger than a camera writes"
                break                   # even one that begins with it
            again = True
            continue
        again = False
        pos = base + picture.end
        if not pictures and not picture.key:
            continue
        own_sps = own_sps if pictures else picture.sps
        last_ref = picture.last_ref
        pictures.append((base + picture.at, picture.end - picture.at, picture.key))
        heads.append(picture.head)
    else:
        why = "the most pictures a movie is given"
    return CutWalk(pictures, heads, own_sps, pictures[-1][0] + pictures[-1][1]
                   if pictures else start, why, misfit)


def presentation_order(heads, coding):
    """For each picture of an H.264 or HEVC track (its SliceHead), how many places
    its picture is shown after (positive) or before its decoding (the ctts table, in
    sample durations), from the picture order counts of its slices (8.2.1.1, counts
    of type 0: cameras with B pictures write them; HEVC 8.3.1); all 0 where the
    pictures are shown as they are decoded (H.264 type 2), or their order is not known.
    FormatError where a count cannot be read."""
    counts = order_counts(heads, coding)
    if counts is None:
        return [0] * len(heads)
    # a picture's place: its count's distance from the first of its IDR period, in
    # steps between two pictures (the reference's: a picture cut off leaves its
    # place empty)
    step = coding.poc_step or count_step(counts)
    offsets, start, place = [], 0, 0
    for index in range(len(counts) + 1):
        if index == len(counts) or (index > start and counts[index][0]):
            period = [count for _, count in counts[start:index]]
            first = min(period)
            places = [place + (count - first) // step for count in period]
            offsets.extend(at - number for at, number in zip(places, range(start, index)))
            place, start = max(places) + 1, index
    return offsets


def count_step(counts):
    """The least step between two picture order counts (reset?, count), 1 for none."""
    ordered = sorted(count for _, count in counts)
    return min([b - a for a, b in zip(ordered, ordered[1:]) if b > a] or [1])


def order_counts(heads, coding):
    """[(a reset?, its picture order count)] of the pictures whose SliceHeads are
    heads; None where the order is the decoding order (H.264 counts of type 1 and
    2, or no SPS known). FormatError where a count cannot be read."""
    sps = coding.sps
    if sps is None or (not coding.hevc and sps.poc_type != 0):
        return None
    half, whole = 1 << (sps.poc_lsb_bits - 1), 1 << sps.poc_lsb_bits
    counts, prev_msb, prev_lsb = [], 0, 0
    for number, (kind, header, body) in enumerate(heads):
        if coding.hevc:
            reset = kind in HEVC_RESET or (not number and kind in HEVC_KEY)
            lsb = hevc_poc_lsb(body, sps, kind)
            # what the next one counts from: a picture of temporal layer 0 that is
            # not a leading picture nor a sub-layer non-reference one
            counted = (header[1] & 7 == 1 and kind not in range(6, 10)
                       and not (kind <= 14 and kind % 2 == 0))
        else:
            reset = kind == AVC_IDR
            lsb = avc_poc_lsb(body, sps, reset)
            counted = bool(header[0] & 0x60)        # a reference picture
        if lsb is None:
            raise FormatError("field pictures")
        if reset:
            prev_msb = prev_lsb = 0
        if lsb < prev_lsb and prev_lsb - lsb >= half:
            msb = prev_msb + whole
        elif lsb > prev_lsb and lsb - prev_lsb > half:
            msb = prev_msb - whole
        else:
            msb = prev_msb
        if reset:
            msb = 0
        counts.append((reset, msb + lsb))
        if counted:
            prev_msb, prev_lsb = msb, lsb
    return counts


def avc_frame_num(body, sps):
    """frame_num of an H.264 first slice (the bytes after its NAL header)."""
    bits = Bits(body[:64])
    bits.ue(), bits.ue(), bits.ue()     # first_mb_in_slice, slice_type, pps id
    if sps.colour_planes:
        bits.u(2)
    return bits.u(sps.frame_num_bits)


class MovieReference(NamedTuple):
    """A complete movie of the card whose index a cut one may be given."""
    f: object                   # its IsoFile, over its header (header_file)
    track: object               # its video Track
    coding: object              # its VideoCoding, learnt from its samples
    delta: int                  # its pictures' duration, in its track's timescale
    # the picture_sizes and key_rhythm of each complete movie of its coding: a mode's
    # movies of other scenes have pictures of other sizes
    sizes: tuple
    rhythms: tuple


MAX_MOVIE_HEADER = 64 << 20     # a movie's boxes other than mdat: its moov and ftyp


def header_file(read, start, size):
    """An IsoFile of the movie [start, start + size) of the dump over its top-level
    boxes but mdat, read into memory, each mdat a header alone after them: what
    its tables say, in memory however large its data (their offsets still count
    from the movie's first byte). None when its boxes do not walk to its end."""
    kept, mdats, pos = [], [], 0
    while pos < size:
        head = read(start + pos, MIN_LARGE_BOX_SIZE)
        try:
            box = read_box(head, 0, min(len(head), size - pos))
        except FormatError:
            return None
        if box.to_end or pos + box.size > size:
            return None
        (mdats if box.name == MDAT else kept).append((pos, box))
        pos += box.size
    if sum(box.size for _, box in kept) > MAX_MOVIE_HEADER:
        return None
    parts, boxes, at = [], [], 0
    for pos, box in kept:
        parts.append(read(start + pos, box.size))
        boxes.append(box._replace(offset=at))
        at += box.size
    for pos, box in mdats:
        parts.append(read(start + pos, box.header_size))
        boxes.append(box._replace(offset=at))
        at += box.header_size
    buf = b"".join(parts)
    if len(buf) != at:
        return None
    try:
        return IsoFile(buf, 0, size, boxes, read_ftyp(buf, 0, len(buf)))
    except FormatError:
        return None


def reference_key(reference):
    """What makes two movies references of the same coding: the sample entries of
    all their tracks (stsd), and their pictures' duration."""
    f = reference.f
    traks = [box for box in f.children(f.top(MOOV)) if box.name == b"trak"]
    entries = [f.child(trak, b"mdia", b"minf", b"stbl", b"stsd") for trak in traks]
    return b"".join(bytes(f.buf[box.offset:box.end]) for box in entries if box is not None) \
        + U32.pack(reference.delta)


def median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else 0


def picture_sizes(sizes, keys):
    """(the median size of the key pictures, that of the others (0 for none), how
    many others)."""
    others = [size for size, key in zip(sizes, keys) if not key]
    return median(size for size, key in zip(sizes, keys) if key), median(others), len(others)


def movie_reference(read, start, size):
    """The MovieReference of a complete movie [start, start + size) of the dump, or
    None: one AVC or HEVC track, whose pictures all last as long."""
    f = header_file(read, start, size)
    if f is None:
        return None
    try:
        tracks = [track for track in f.tracks() if track.entry in NAL_SAMPLE_ENTRIES]
        if len(tracks) != 1:
            return None
        track = tracks[0]
        config = next((track.entry_boxes[name] for name in NAL_CONFIGS
                       if name in track.entry_boxes), None)
        trak = [box for box in f.children(f.top(MOOV)) if box.name == b"trak"][
            track.number - 1]
        stbl = f.child(trak, b"mdia", b"minf", b"stbl")
        stts, stss = f.child(stbl, b"stts"), f.child(stbl, b"stss")
        if config is None or stts is None:
            return None
        runs = read_table(f.buf, stts, struct.Struct(">II"))
        if len({delta for _, delta in runs}) != 1:
            return None
        samples = [(start + offset, length) for offset, length in track.samples()]
        chunks = sorted((offset, length) for offset, length, _, _ in track.chunks)
        gaps = [b - a - length for (a, length), (b, _) in zip(chunks, chunks[1:])]
        gap = max(gaps + [0])
        least = min([size for size in gaps if size > 0] or [MAX_CUT_GAP])
        keys = set(read_numbers(f.buf, stss, U32.size)) if stss else None
        flags = [keys is None or n in keys for n in range(1, len(samples) + 1)]
        sizes = picture_sizes([length for _, length in samples], flags)
        coding = learnt_coding(read, samples, video_coding(f.buf, config)._replace(
            gap=min(MAX_CUT_GAP, 2 * gap + CUT_GAP_SLACK), least_gap=least // 2,
            largest=max([length for _, length in samples] + [1])))
        return MovieReference(f, track, coding, runs[0][1], (sizes,), (key_rhythm(flags),))
    except (FormatError, struct.error, IndexError):
        return None


# A cut movie's pictures read with the parameter sets of a movie of another size
# still walk as NAL units; what tells them apart: an SPS of its own (cameras that
# repeat it), frame numbers that do not count (other field widths), or pictures of
# another size. A key picture is coded alone: its size follows its pixels and the
# mode's quality more than the scene (ffmpeg's 1280x720 ones are 5 times its
# 320x240 ones, its 640x480 ones twice: not told apart), though a scene harder to
# code gives larger ones (1.6 times, on the bench's cards); the others follow the
# motion too, and count only when there are many of them.
MAX_KEY_RATIO = 2.0
MAX_OTHER_RATIO = 3.0
MIN_OTHERS = 20


PROBE = 150                     # pictures of a cut movie read with each reference


def repair_plan(read, ftyp, first, last, references, most):
    """(the reference, its CutWalk) a movie cut before its moov is rebuilt with: of
    the references with the same ftyp (its bytes: brands and version), the one
    whose coding walks furthest in its mdat [first, last) (over PROBE pictures at
    most; the one taken then walks it all), its H.264 frame numbers counting on past
    its first key period, its own SPS, if it repeats one, the same, its pictures of
    the reference's sizes and its key pictures as often; the first of those that
    walk as far (references come nearest first); (None, why) when none fits."""
    best, why = (None, None), "no complete movie of the card has its ftyp"
    for reference in references:
        box = reference.f.boxes[0]
        if bytes(reference.f.buf[box.offset:box.end]) != bytes(ftyp):
            continue
        try:                    # its first pictures tell: the rest is walked once
            walk = walk_cut_movie(read, first, last, reference.coding, min(most, PROBE))
        except FormatError:
            walk = None
        if walk is None or not walk.pictures:
            why = "no picture coded as a movie of the card with its ftyp begins its data"
        elif walk.own_sps and reference.coding.sps_body \
                and walk.own_sps != reference.coding.sps_body:
            why = "its own parameter sets are not those of the movies of the card with its ftyp"
        elif walk.misfit and sum(key for _, _, key in walk.pictures) < 2:
            why = "its pictures are not coded with the parameters of a movie with its ftyp"
        elif not any(sizes_agree(walk, sizes) for sizes in reference.sizes):
            why = ("its pictures are not of the size of those of the movies with its ftyp "
                   "(another mode)")
        elif not any(rhythms_agree(key_rhythm([key for _, _, key in walk.pictures]), rhythm)
                     for rhythm in reference.rhythms):
            why = ("its key pictures do not come as often as in the movies with its ftyp "
                   "(another mode)")
        elif best[1] is None or len(walk.pictures) > len(best[1].pictures):
            best = (reference, walk)
    if best[0] is None:
        return None, why
    if len(best[1].pictures) == PROBE < most:
        best = (best[0], walk_cut_movie(read, first, last, best[0].coding, most))
    return best


def key_rhythm(keys):
    """(how many pictures there are from a key picture to the next, when at least
    three come as regularly, else 0; the most pictures from a key one on without
    another) of pictures whose key flags are keys: a camera's mode puts a key
    picture every so many, always (an encoder that places them by the scene, as
    x264 and x265 do, gives no interval)."""
    at = [index for index, key in enumerate(keys) if key]
    steps = [b - a for a, b in zip(at, at[1:])]
    interval = steps[0] if len(steps) >= 2 and len(set(steps)) == 1 else 0
    return interval, max(steps + [len(keys) - at[-1]] if at else [0])


def rhythms_agree(mine, theirs):
    """True unless two key_rhythms show other modes: other intervals, or one going
    longer without a key picture than the other's interval."""
    (mine_every, mine_run), (their_every, their_run) = mine, theirs
    if mine_every and their_every:
        return mine_every == their_every
    return not (mine_every and their_run > mine_every) and not (
        their_every and mine_run > their_every)


def sizes_agree(walk, sizes):
    """True when the pictures walked are of about the sizes (picture_sizes) of the
    reference's: the key ones, and the others when both have many."""
    keys, others, count = picture_sizes([size for _, size, _ in walk.pictures],
                                        [key for _, _, key in walk.pictures])
    within = lambda a, b, most: not a or not b or 1 / most <= a / b <= most  # noqa: E731
    return within(keys, sizes[0], MAX_KEY_RATIO) and (
        min(count, sizes[2]) < MIN_OTHERS or within(others, sizes[1], MAX_OTHER_RATIO))


def plain_box(name, *parts):
    """An ISO-BMFF box of parts (bytes), with a 32-bit size (a 64-bit one past 4 GiB)."""
    size = BOX_HEADER.size + sum(len(part) for part in parts)
    if size > 0xFFFFFFFF:
        return U32.pack(1) + name + U64.pack(size + 8) + b"".join(parts)
    return BOX_HEADER.pack(size, name) + b"".join(parts)


def patched(body, at, value, wide):
    """body (bytearray) with a 32-bit (or, wide, 64-bit) field at at set to value."""
    (U64 if wide else U32).pack_into(body, at, value)
    return body


PCM_ENTRIES = frozenset([b"sowt", b"twos", b"lpcm", b"in24", b"in32", b"fl32", b"fl64",
                         b"raw ", b"ipcm", b"fpcm"])


def pcm_track(f):
    """(the Track, bytes per frame) of a reference's PCM sound, when it has one track
    of it, every frame of one size: its chunks between the pictures of a cut movie
    are whole frames, in their order. None otherwise (AAC frames have no marks)."""
    sound = [track for track in f.tracks() if track.entry in PCM_ENTRIES]
    if len(sound) != 1 or not isinstance(sound[0].sizes, int) or sound[0].sizes < 1:
        return None
    return sound[0], sound[0].sizes


def sound_chunks(first, pictures, frame):
    """The chunks [(offset, size)] of a cut movie's PCM sound, frame bytes a frame:
    the bytes before its first picture from first (its mdat's payload) and between
    its pictures, when each run of them is whole frames; None when one is not (a
    track the reference does not have lies there)."""
    chunks, pos = [], first
    for offset, size, _ in pictures:
        if offset > pos:
            if (offset - pos) % frame:
                return None
            chunks.append((pos, offset - pos))
        pos = offset + size
    return chunks


def repaired_movie_header(f, track, samples, delta, shown=None, sound=None):
    """(ftyp + moov + the mdat's header, as bytes; the byte runs [(offset, size)] its
    mdat holds, in order) of a movie rebuilt from a cut one: its pictures samples
    (offset, size, key?) of the reference f's video track, each its own chunk, and
    sound: (the reference's PCM Track, its frame size, its chunks) or None. It has
    the reference's ftyp, movie and track headers, handlers and sample entries,
    durations for delta (a picture's duration in the video's timescale), tables for
    what it holds, and shown: each picture's place in presentation order against
    decoding (presentation_order)."""
    buf = f.buf
    whole = lambda box: bytes(buf[box.offset:box.end])  # noqa: E731
    moov = f.top(MOOV)
    traks = [box for box in f.children(moov) if box.name == b"trak"]
    mvhd = f.child(moov, b"mvhd")
    if mvhd is None:
        raise FormatError("the reference's moov has no mvhd")
    movie_ts = U32.unpack_from(buf, mvhd.body + (20 if buf[mvhd.body] else 12))[0]

    def header_box(box, duration_at, duration, id_at=None, new_id=1):
        wide = buf[box.body] == 1
        body = bytearray(buf[box.body:box.end])
        patched(body, duration_at[wide], duration, wide)
        if id_at is not None:
            patched(body, id_at[wide], new_id, False)
        return plain_box(box.name, bytes(body))

    def parts(track):
        """The boxes of track's trak that are kept, and its media timescale."""
        trak = traks[track.number - 1]
        mdia = f.child(trak, b"mdia")
        tkhd, mdhd = f.child(trak, b"tkhd"), f.child(mdia, b"mdhd")
        hdlr, minf = f.child(mdia, b"hdlr"), f.child(mdia, b"minf")
        stbl = f.child(minf, b"stbl")
        if None in (tkhd, mdhd, hdlr, stbl):
            raise FormatError("the reference's trak %d lacks a header" % track.number)
        media_ts = U32.unpack_from(buf, mdhd.body + (20 if buf[mdhd.body] else 12))[0]
        stsd = [whole(box) for box in f.children(stbl) if box.name == b"stsd"]
        rest = [whole(box) for box in f.children(minf) if box.name != b"stbl"]
        return tkhd, mdhd, hdlr, rest, stsd, max(1, media_ts)

    def trak_box(track, new_id, media_duration, tables, edts=()):
        tkhd, mdhd, hdlr, rest, stsd, media_ts = parts(track)
        movie_duration = media_duration * movie_ts // media_ts
        return movie_duration, lambda co64: plain_box(
            b"trak", header_box(tkhd, (20, 28), movie_duration, (12, 20), new_id), *edts,
            plain_box(b"mdia", header_box(mdhd, (16, 24), media_duration), whole(hdlr),
                      plain_box(b"minf", *rest, plain_box(b"stbl", *stsd, *tables, co64))))

    # the pictures
    places = [number + offset for number, offset in enumerate(shown or [0] * len(samples))]
    keys = [index for index, (_, _, key) in enumerate(samples, 1) if key]
    tables = [plain_box(b"stts", U32.pack(0), U32.pack(1), U32.pack(len(samples)),
                        U32.pack(delta)),
              plain_box(b"stss", U32.pack(0), U32.pack(len(keys)),
                        b"".join(U32.pack(index) for index in keys)),
              plain_box(b"stsz", U32.pack(0), U32.pack(0), U32.pack(len(samples)),
                        b"".join(U32.pack(size) for _, size, _ in samples)),
              plain_box(b"stsc", U32.pack(0), U32.pack(1), U32.pack(1), U32.pack(1),
                        U32.pack(1))]
    media_duration = delta * (max(places, default=-1) + 1)
    shift = max([0] + [-offset for offset in shown or []])
    edts = []
    if shown and any(shown):
        runs = [[1, offset + shift] for offset in shown[:1]]
        for offset in shown[1:]:
            if runs[-1][1] == offset + shift:
                runs[-1][0] += 1
            else:
                runs.append([1, offset + shift])
        tables.insert(1, plain_box(b"ctts", U32.pack(0), U32.pack(len(runs)), b"".join(
            U32.pack(count) + U32.pack(offset * delta) for count, offset in runs)))
        # the first picture shown at time 0: the edit list skips the shift
        movie_duration = media_duration * movie_ts // parts(track)[-1]
        edts = [plain_box(b"edts", plain_box(b"elst", U32.pack(0), U32.pack(1),
                                             U32.pack(movie_duration),
                                             U32.pack(shift * delta), U32.pack(0x10000)))]
    durations, builders = [], []
    duration, build = trak_box(track, 1, media_duration, tables, edts)
    durations.append(duration)
    builders.append((build, [(offset, size) for offset, size, _ in samples]))
    if sound:
        sound_track, frame, chunks = sound
        frames = [size // frame for _, size in chunks]
        stsc = [(number, count) for number, count in enumerate(frames, 1)
                if number == 1 or count != frames[number - 2]]
        tables = [plain_box(b"stts", U32.pack(0), U32.pack(1), U32.pack(sum(frames)),
                            U32.pack(1)),
                  plain_box(b"stsz", U32.pack(0), U32.pack(frame), U32.pack(sum(frames))),
                  plain_box(b"stsc", U32.pack(0), U32.pack(len(stsc)), b"".join(
                      U32.pack(number) + U32.pack(count) + U32.pack(1)
                      for number, count in stsc))]
        duration, build = trak_box(sound_track, 2, sum(frames), tables)
        durations.append(duration)
        builders.append((build, chunks))
    mvhd_body = bytearray(header_box(mvhd, (16, 24), max(durations))[8:])
    patched(mvhd_body, len(mvhd_body) - 4, len(builders) + 1, False)      # next_track_ID
    order = sorted(run for _, runs in builders for run in runs)
    ftyp = whole(f.boxes[0])

    def header(first):
        placed, pos = {}, first
        for offset, size in order:
            placed[offset] = pos
            pos += size
        return ftyp + plain_box(MOOV, plain_box(b"mvhd", bytes(mvhd_body)), *(
            build(plain_box(CHUNK_OFFSETS_64, U32.pack(0), U32.pack(len(runs)),
                            b"".join(U64.pack(placed[offset]) for offset, _ in runs)))
            for build, runs in builders))

    payload = sum(size for _, size in order)
    mdat_header = 16 if payload + 8 > 0xFFFFFFFF else 8
    start = len(header(0)) + mdat_header                # co64 keeps its size for any offset
    mdat = (U32.pack(1) + MDAT + U64.pack(payload + 16) if mdat_header == 16
            else BOX_HEADER.pack(payload + 8, MDAT))
    return header(start) + mdat, order


REPAIRABLE_MOVIES = frozenset(["mp4", "mov", "3gp"])   # CRM's pictures are CRX, no NAL units


class RepairPlan(NamedTuple):
    """A movie rebuilt from a cut one: what ByProducts writes, and its row's words."""
    header: bytes               # the rebuilt movie's ftyp, moov and mdat header
    runs: list                  # the (offset, size) of the dump's bytes after it, in order
    pictures: int
    seconds: float
    reference: str              # the reference's name in OUT
    sound: str                  # what became of the cut movie's other tracks
    stop: str                   # where its pictures end, and why


def track_timescale(f, track):
    """The media timescale of track (a Track of the IsoFile f), 0 when unknown."""
    trak = [box for box in f.children(f.top(MOOV)) if box.name == b"trak"][track.number - 1]
    mdhd = f.child(trak, b"mdia", b"mdhd")
    if mdhd is None or mdhd.body + 24 > mdhd.end:
        return 0
    return U32.unpack_from(f.buf, mdhd.body + (20 if f.buf[mdhd.body] else 12))[0]


def repair_movie(reference, walk, start, first, last, name):
    """The RepairPlan of the cut movie at start whose mdat payload [first, last) was
    walked (walk), on reference (a MovieReference, called name): its pictures in
    their order, and its PCM sound where the bytes between them are whole frames.
    FormatError when its pictures' order cannot be read."""
    shown = presentation_order(walk.heads, reference.coding)
    found, sound, said = pcm_track(reference.f), None, ""
    chunks = found and sound_chunks(first, walk.pictures, found[1])
    if chunks:
        sound, said = found + (chunks,), ", and its sound"
    elif len(reference.f.tracks()) > 1:
        said = (", without its sound and other tracks (only PCM sound is found between "
                "the pictures, as whole frames)")
    header, runs = repaired_movie_header(reference.f, reference.track, walk.pictures,
                                         reference.delta, shown, sound)
    scale = track_timescale(reference.f, reference.track)
    seconds = len(walk.pictures) * reference.delta / scale if scale else 0.0
    stop = ("its last whole picture ends at +{:,d}: {}".format(walk.end - start, walk.why)
            if walk.end < last else "its last picture ends where the carved file does")
    return RepairPlan(header, runs, len(walk.pictures), seconds, name, said, stop)


# The checks. Each takes an IsoFile and returns what is wrong, or None. They run on
# files whose boxes are whole; the first problems found make the file "damaged".

ISOBMFF_CHECKS = {}


def check(*types):
    """Register a check for the given types."""
    def register(function):
        for kind in types:
            ISOBMFF_CHECKS.setdefault(kind, []).append(function)
        return function
    return register


def jpeg_is_whole(buf, first, last):
    """An embedded JPEG at [first, last): SOI first, EOI last (bar a little padding)."""
    if last - first < 4 or bytes(buf[first:first + 2]) != JPEG_SOI:
        return False
    return jpeg_ends(bytes(buf[max(first, last - JPEG_TAIL):last]))


JPEG_TAIL = len(JPEG_EOI) + MAX_JPEG_PADDING


def jpeg_ends(tail):
    """True when the last JPEG_TAIL bytes of an embedded JPEG hold its EOI."""
    eoi = tail.rfind(JPEG_EOI)
    return eoi >= 0 and not tail[eoi + 2:].strip(b"\0\xff")


@check("cr3", "crm")
def check_canon_uuid(f):
    if not f.compressor().startswith((b"CanonCR3", b"CanonCRM")):
        return "no Canon uuid with CNCV in moov"


@check("cr3", "crm", "mp4", "mov", "3gp")
def check_samples_inside_mdat(f):
    spans = f.mdat_spans()
    for track in f.tracks():
        if not track.self_contained:
            continue
        for offset, length, _first, _count in track.chunks:
            if not any(start <= offset and offset + length <= end for start, end in spans):
                return "trak %d: data at +%d (%d bytes) lies outside mdat" % (
                    track.number, offset, length)


@check("cr3")
def check_last_sample_ends_mdat(f):
    ends = [offset + length for track in f.tracks() for offset, length, _, _ in track.chunks]
    mdat_end = f.mdat_spans()[-1][1]
    if ends and max(ends) != mdat_end:
        return "the last sample ends at +%d, mdat at +%d" % (max(ends), mdat_end)


def samples_of(f, entries):
    """(track, offset, size) of every sample, within the file, of the tracks whose
    sample entry is one of entries (samples past its end are check_samples_inside_mdat's).
    FormatError past the table budget: no camera's file has that many."""
    budget = table_budget(f.size)
    for track in f.tracks():
        if track.entry not in entries:
            continue
        for offset, size in track.samples():
            budget -= 1
            if budget < 0:
                raise FormatError("more samples in %d bytes than a camera writes" % f.size)
            if offset + size <= f.size:
                yield track, offset, size


@check("cr3", "crm")
def check_raw_samples(f):
    for track, offset, size in samples_of(f, [CANON_RAW_ENTRY]):
        if b"JPEG" in track.entry_boxes:
            if not jpeg_is_whole(f.buf, f.start + offset, f.start + offset + size):
                return "trak %d: the JPEG at +%d is not whole" % (track.number, offset)
        elif b"CMP1" in track.entry_boxes:
            problem = crx_header_problem(crx_geometry(f.buf, track.entry_boxes[b"CMP1"]),
                                         f.buf, f.start + offset, size)
            if problem:
                return "trak %d: the CRX picture at +%d: %s" % (track.number, offset, problem)


@check("cr3", "crm", "mp4", "mov", "3gp")
def check_nal_samples(f):
    budget = table_budget(f.size)
    for track, offset, size in samples_of(f, NAL_SAMPLE_ENTRIES):
        config = next((track.entry_boxes[name] for name in NAL_CONFIGS
                       if name in track.entry_boxes), None)
        if config is None:
            return "trak %d: %s without its configuration box" % (
                track.number, fourcc_text(track.entry))
        length_size, hevc = nal_coding(f.buf, config)
        data = Spans(f.buf, [(f.start + offset, f.start + offset + size)])
        problem, units = nal_units_problem(data, length_size, hevc, budget)
        if problem:
            return "trak %d: the sample at +%d: %s" % (track.number, offset, problem)
        budget -= units


@check("cr3", "crm")
def check_ctmd_records(f):
    for track, offset, size in samples_of(f, [CANON_METADATA_ENTRY]):
        if not ctmd_fills(f.at(offset, size), size):
            return "trak %d: the CTMD records at +%d are broken" % (track.number, offset)


def ctmd_fills(data, size):
    """True when CTMD records (each led by its little-endian size) fill size bytes."""
    pos = 0
    while pos + CTMD_RECORD.size <= len(data):
        length, _kind = CTMD_RECORD.unpack_from(data, pos)
        if length < CTMD_RECORD.size:
            break
        pos += length
    return pos == size == len(data)


@check("mov", "mp4")
def check_jpeg_samples(f):
    """MJPEG frames (a camera's movies before H.264) are whole JPEGs."""
    for track, offset, size in samples_of(f, JPEG_SAMPLE_ENTRIES):
        if not jpeg_is_whole(f.buf, f.start + offset, f.start + offset + size):
            return "trak %d: the JPEG frame at +%d is not whole" % (track.number, offset)


@check("cr3", "crm")
def check_ctbo(f):
    ctbo = f.canon_items().get(b"CTBO")
    if ctbo is None:
        return None
    boxes = {box.offset - f.start: box for box in f.boxes}
    for index, offset, size in read_table(f.buf, ctbo, CTBO_ENTRY, first_field=0):
        if not size:
            continue
        box = boxes.get(offset)
        name, usertype = CTBO_BOXES.get(index, (None, b""))
        if (box is None or box.size != size or (name and box.name != name)
                or (usertype and box.usertype != usertype)):
            return "CTBO entry %d (+%d, %d bytes) does not match a box" % (index, offset, size)


def thmb_jpeg(f):
    """(start, end) in the dump of the THMB thumbnail (version 0 holds a JPEG), or None."""
    thmb = f.canon_items().get(b"THMB")
    if thmb is None or thmb.body + THMB_FIELDS.size > thmb.end:
        return None
    version, _w, _h, size = THMB_FIELDS.unpack_from(f.buf, thmb.body)
    first = thmb.body + THMB_JPEG_AT
    return (first, min(first + size, thmb.end)) if version == 0 else None


def prvw_jpeg(f):
    """(start, end) of the PRVW preview, None without a PRVW uuid; FormatError when its
    box is missing from the uuid."""
    for box in f.boxes:
        if box.name == b"uuid" and box.usertype == PRVW_UUID:
            prvw = next(child_boxes(f.buf, box.body + UUID_SIZE + PRVW_UUID_FIELDS_SIZE,
                                    box.end), None)
            if prvw is None or prvw.name != b"PRVW" or prvw.body + PRVW_JPEG_AT > prvw.end:
                raise FormatError("the PRVW preview box is missing")
            (size,) = U32.unpack_from(f.buf, prvw.body + PRVW_JPEG_SIZE_AT)
            first = prvw.body + PRVW_JPEG_AT
            return first, min(first + size, prvw.end)
    return None


@check("cr3", "crm")
def check_thumbnail_and_preview(f):
    thmb = thmb_jpeg(f)
    if thmb is not None and not jpeg_is_whole(f.buf, *thmb):
        return "the THMB thumbnail is not a whole JPEG"
    prvw = prvw_jpeg(f)
    if prvw is not None and not jpeg_is_whole(f.buf, *prvw):
        return "the PRVW preview is not a whole JPEG"


def read_iloc(buf, iloc):
    """[(item id, construction method, data reference, [(offset, length)])], base applied."""
    pos = iloc.body
    version = buf[pos]
    if version > 2 or pos + 8 > iloc.end:
        raise FormatError("iloc version %d" % version)
    offset_size, length_size = buf[pos + 4] >> 4, buf[pos + 4] & 15
    base_size, index_size = buf[pos + 5] >> 4, (buf[pos + 5] & 15 if version else 0)
    pos += 6

    def number(width):
        nonlocal pos
        if pos + width > iloc.end:
            raise FormatError("iloc is cut")
        value = int.from_bytes(buf[pos:pos + width], "big")
        pos += width
        return value

    items = []
    for _ in range(number(4 if version == 2 else 2)):
        item_id = number(4 if version == 2 else 2)
        method = number(2) & 15 if version else 0
        reference = number(2)
        base = number(base_size)
        extents = []
        count = number(2)
        record = index_size + offset_size + length_size
        if count > 1 and (not record or count * record > iloc.end - pos):  # empty: one at most
            raise FormatError("iloc item %d declares %d extents it does not hold"
                              % (item_id, count))
        for _ in range(count):
            number(index_size)
            extents.append((base + number(offset_size), number(length_size)))
        items.append((item_id, method, reference, extents))
    return items


@check("heif")
def check_item_locations(f):
    iloc = f.child(f.top(META), b"iloc")
    if iloc is None:
        return "no iloc in meta"
    ends = []
    for item_id, method, reference, extents in read_iloc(f.buf, iloc):
        if method or reference:
            continue                        # inside idat, another item, or another file
        for offset, length in extents:
            end = offset + length if length else f.size
            if end > f.size:
                return "item %d: data at +%d (%d bytes) lies past the end" % (
                    item_id, offset, end - offset)
            ends.append(end)
    if ends and max(ends) != f.size:
        return "the last item ends at +%d, the file at +%d" % (max(ends), f.size)


def item_properties(f):
    """{item id: [property Box]} from a HEIF's ipco and ipma."""
    iprp = f.child(f.top(META), b"iprp")
    ipco, ipma = f.child(iprp, b"ipco"), f.child(iprp, b"ipma")
    if ipco is None or ipma is None or ipma.body + 8 > ipma.end:
        return {}
    boxes = list(f.children(ipco))
    version, wide = f.buf[ipma.body], f.buf[ipma.body + 3] & 1
    pos = ipma.body + 8
    found = {}
    for _ in range(U32.unpack_from(f.buf, ipma.body + 4)[0]):
        id_size = 4 if version else 2
        if pos + id_size + 1 > ipma.end:
            raise FormatError("ipma is cut")
        item_id = int.from_bytes(f.buf[pos:pos + id_size], "big")
        count = f.buf[pos + id_size]
        pos += id_size + 1
        width = 2 if wide else 1
        if pos + count * width > ipma.end:
            raise FormatError("ipma is cut")
        for at in range(pos, pos + count * width, width):
            index = int.from_bytes(f.buf[at:at + width], "big") & ((1 << (8 * width - 1)) - 1)
            if 0 < index <= len(boxes):
                found.setdefault(item_id, []).append(boxes[index - 1])
        pos += count * width
    return found


@check("heif")
def check_image_items(f):
    """Every coded picture of the file is what its item says: NAL units that fill
    its extents, or a whole JPEG."""
    iloc = f.child(f.top(META), b"iloc")
    if iloc is None:
        return None                             # check_item_locations says so
    types = heif_item_types(f)
    properties = item_properties(f)
    budget = table_budget(f.size)
    for item_id, method, reference, extents in read_iloc(f.buf, iloc):
        kind = types.get(item_id)
        if method or reference or not extents or kind not in NAL_IMAGE_ITEMS | {b"jpeg"}:
            continue
        spans = [(f.start + o, f.start + o + (n or f.size - o)) for o, n in extents]
        if any(end > f.end for _, end in spans):
            continue                            # check_item_locations says so
        if kind == b"jpeg":
            if len(spans) == 1 and not jpeg_is_whole(f.buf, *spans[0]):
                return "item %d: the JPEG is not whole" % item_id
            continue
        config = next((box for box in properties.get(item_id, ())
                       if box.name in NAL_CONFIGS), None)
        if config is None:
            return "item %d: %s without its configuration" % (item_id, fourcc_text(kind))
        length_size, hevc = nal_coding(f.buf, config)
        problem, units = nal_units_problem(Spans(f.buf, spans), length_size, hevc, budget)
        if problem:
            return "item %d: %s" % (item_id, problem)
        budget -= units


@check("heif")
def check_no_repeated_cluster(f):
    """No cluster of a picture's coded data is the same as an earlier one of it.

    Inside one NAL unit nothing checks the bytes: a picture split there, whose
    clusters after the split are another copy of the same picture (a card holds
    copies), has NAL units that still fill its items. A coder never writes the
    same 4 KiB of a picture twice, and a file starts on a cluster, so its clusters
    are compared on the smallest cluster grid of a card from its first byte."""
    iloc = f.child(f.top(META), b"iloc")
    if iloc is None:
        return None                             # check_item_locations says so
    types = heif_item_types(f)
    seen = {}
    for item_id, method, reference, extents in read_iloc(f.buf, iloc):
        if method or reference or types.get(item_id) not in NAL_IMAGE_ITEMS:
            continue
        for offset, length in extents:
            end = min(offset + length if length else f.size, f.size)
            for at in range(offset + -offset % MIN_CARD_CLUSTER, end - MIN_CARD_CLUSTER + 1,
                            MIN_CARD_CLUSTER):
                block = f.at(at, MIN_CARD_CLUSTER)
                if not block.strip(block[:1]):
                    continue                    # a run of one byte: padding, not data
                earlier = seen.setdefault(hash(block), at)
                if earlier != at and f.at(earlier, MIN_CARD_CLUSTER) == block:
                    return ("item %d: the %d bytes at +%d are those at +%d: another copy "
                            "of the picture follows where it was split"
                            % (item_id, MIN_CARD_CLUSTER, at, earlier))


def run_checks(kind, f):

    """What the checks for kind find wrong in f (an unreadable table counts too)."""
    problems = []
    for function in ISOBMFF_CHECKS.get(kind, ()):
        try:
            problem = function(f)
        except (FormatError, struct.error, IndexError) as e:
            problem = str(e) or "unreadable tables"
        if problem and problem not in problems:     # two checks may meet one fault
            problems.append(problem)
    return problems


# What the file says about itself: camera, date, serial number.

def heif_exif_tags(f):
    """The tags of a HEIF's Exif item (its data: a 32-bit offset, then the TIFF)."""
    iloc = f.child(f.top(META), b"iloc")
    if iloc is None:
        return {}
    exif_ids = {item for item, kind in heif_item_types(f).items() if kind == b"Exif"}
    for item_id, method, reference, extents in read_iloc(f.buf, iloc):
        if item_id in exif_ids and not method and not reference and extents:
            offset, length = extents[0]
            start = f.start + offset
            end = min(start + length, f.end)
            if start + 4 <= end:
                (tiff_at,) = U32.unpack_from(f.buf, start)
                return exif_tags(f.buf, start + 4 + tiff_at, end)
    return {}


def movie_created(f):
    """mvhd's creation time as ISO 8601 (the camera's clock; often local time)."""
    mvhd = f.child(f.top(MOOV), b"mvhd")
    if mvhd is None or mvhd.body + 12 > mvhd.end:
        return ""
    if f.buf[mvhd.body] == 1:
        (seconds,) = U64.unpack_from(f.buf, mvhd.body + 4)
    else:
        (seconds,) = U32.unpack_from(f.buf, mvhd.body + 4)
    if not seconds:
        return ""
    try:
        return (QUICKTIME_EPOCH + datetime.timedelta(seconds=seconds)).isoformat()
    except OverflowError:
        return ""


def has_canon_mark(f):
    """Canon movies carry a CNCV or CAEP box (moov/udta), a Canon uuid or a CAEP brand."""
    if f.compressor().startswith(b"Canon") or b"CAEP" in (f.ftyp.major,) + f.ftyp.compatible:
        return True
    udta = f.child(f.top(MOOV), b"udta")
    return udta is not None and any(b.name in CANON_VIDEO_MARKS for b in f.children(udta))


def isobmff_meta(kind, f):
    tags = {}
    items = f.canon_items()
    for name in (b"CMT1", b"CMT2"):
        if name in items:
            try:
                tags.update(exif_tags(f.buf, items[name].body, items[name].end))
            except (FormatError, struct.error):
                pass
    if kind == "heif" and not tags:
        try:
            tags = heif_exif_tags(f)
        except (FormatError, struct.error, IndexError):
            tags = {}
    meta = exif_meta(tags)
    if not meta.datetime and f.top(MOOV) is not None:
        meta = meta._replace(datetime=movie_created(f))
    if not meta.model and kind in ("mp4", "mov", "crm") and has_canon_mark(f):
        meta = meta._replace(model="Canon")
    return meta


def embedded_jpeg(buf, first, last, what):
    """The Picture a container stores at [first, last) (bar padding), or None when it
    is no JPEG that walks whole to there."""
    if not jpeg_is_whole(buf, first, last):
        return None
    try:
        walk = walk_jpeg(buf, first, last)
    except FormatError:
        return None
    if walk.status != COMPLETE or last - walk.end > MAX_JPEG_PADDING:
        return None
    try:
        problem = entropy_problem(buf, first, walk)     # about to be vouched for: decode it
    except FormatError as e:
        problem = str(e)
    return Picture(first, walk.end - first, what, DAMAGED if problem else COMPLETE,
                   problem or "")


def cr3_pictures(f):
    """The whole pictures inside f, best first: the full-size JPEG track, PRVW, THMB."""
    places = []
    try:
        for track in f.tracks():
            if b"JPEG" in track.entry_boxes:
                for offset, size in itertools.islice(track.samples(), 1):
                    places.append((f.start + offset, f.start + offset + size,
                                   "the full-size JPEG"))
    except (FormatError, struct.error, IndexError):
        pass
    for find, what in ((prvw_jpeg, "the preview JPEG"), (thmb_jpeg, "the thumbnail JPEG")):
        try:
            found = find(f)
        except (FormatError, struct.error):
            found = None
        if found is not None:
            places.append(found + (what,))
    pictures = [embedded_jpeg(f.buf, first, last, what) for first, last, what in places
                if f.start <= first and last <= f.end]
    return [picture for picture in pictures if picture is not None]


HEIF_EMBEDDED_ITEMS = frozenset([b"Exif", b"mime", b"jpeg"])  # JPEG thumbnails (Sony)


def heif_pictures(f):
    """The whole JPEG items inside a HEIF (a Sony HIF's thumbnail), largest first."""
    iloc = f.child(f.top(META), b"iloc")
    if iloc is None:
        return []
    try:
        types = heif_item_types(f)
        places = [(f.start + extents[0][0], f.start + extents[0][0] + extents[0][1])
                  for item_id, method, reference, extents in read_iloc(f.buf, iloc)
                  if types.get(item_id) == b"jpeg" and not method and not reference
                  and len(extents) == 1]
    except (FormatError, struct.error, IndexError):
        return []
    pictures = [embedded_jpeg(f.buf, first, last, "the JPEG thumbnail")
                for first, last in places if f.start <= first and last <= f.end]
    return sorted((p for p in pictures if p is not None), key=lambda p: -p.size)



def heif_item_types(f):
    """{item id: item type} from a HEIF's iinf."""
    iinf = f.child(f.top(META), b"iinf")
    if iinf is None:
        return {}
    first = iinf.body + 4 + (4 if f.buf[iinf.body] else 2)
    types = {}
    for infe in child_boxes(f.buf, first, iinf.end):
        version = f.buf[infe.body]
        if version >= 2 and infe.body + 12 <= infe.end:
            id_size = 4 if version == 3 else 2
            item_id = int.from_bytes(f.buf[infe.body + 4:infe.body + 4 + id_size], "big")
            types[item_id] = bytes(f.buf[infe.body + 6 + id_size:infe.body + 10 + id_size])
    return types


EMBEDDING_BOXES = frozenset([MOOV, META, b"uuid"])   # they hold previews and Exif, not padding


def isobmff_embedded(kind, f, status, pictures):
    """What inside the file looks like a file of its own but is part of it: moov,
    meta and uuid boxes (Canon's CMT TIFFs, THMB and PRVW JPEGs, XMP), JPEG-coded
    track chunks (the CR3's full-size JPEG, MJPEG frames), Canon's timed metadata
    (its records hold Exif TIFFs) and HEIF's Exif, XMP and JPEG items (a Sony HIF's
    thumbnail). Never mdat, free, skip or padding: a file found there is not the
    file's own but evidence that its bytes were written over, or that it is
    fragmented."""
    ranges = [(box.offset, min(box.end, f.end)) for box in f.boxes
              if box.name in EMBEDDING_BOXES]
    if status != COMPLETE:
        # Its bytes may be another file's: a camera writing on a used card puts a
        # file on a cluster start, maybe inside this one's moov or uuid boxes. So only
        # the parts it names, that lie whole in it, are its own: its whole pictures,
        # and the items of Canon's uuid (the CMT Exif TIFFs, THMB).
        parts = [(p.offset, p.offset + p.size) for p in pictures]
        try:
            parts.extend((item.offset, item.end) for item in f.canon_items().values()
                         if item.end <= f.end)
        except (FormatError, struct.error, IndexError):
            pass
        return parts
    try:
        for track in f.tracks():
            if (track.entry in JPEG_SAMPLE_ENTRIES or b"JPEG" in track.entry_boxes
                    or track.entry == CANON_METADATA_ENTRY):
                ranges.extend((f.start + offset, f.start + offset + length)
                              for offset, length, _, _ in track.chunks)
        iloc = f.child(f.top(META), b"iloc")
        if kind == "heif" and iloc is not None:
            types = heif_item_types(f)
            for item_id, method, reference, extents in read_iloc(f.buf, iloc):
                if types.get(item_id) in HEIF_EMBEDDED_ITEMS and not method and not reference:
                    ranges.extend((f.start + o, f.start + o + n) for o, n in extents)
    except (FormatError, struct.error, IndexError):
        pass
    return ranges


def carve_isobmff(buf, start, limit, rule, types):
    """The ISO-BMFF file at start, None if its type is not wanted; FormatError if none."""
    ftyp = read_ftyp(buf, start, limit)
    kind = brand_type(ftyp)
    if kind not in types and not (kind == "cr3" and "crm" in types):
        return None
    walk = walk_boxes(buf, start, limit, rule)
    if walk.broken and not {MOOV, META} & {box.name for box in walk.boxes}:
        raise FormatError("%s, with no moov or meta before: no header worth saving"
                          % walk.broken)
    f = IsoFile(buf, start, walk.end, walk.boxes, ftyp)
    kind, ext = type_and_extension(kind, ftyp, f.compressor())
    if kind not in types:
        return None
    status, detail = walk_verdict(kind, walk, limit)
    if status == COMPLETE:
        problems = run_checks(kind, f)
        if problems:
            status, detail = DAMAGED, "; ".join(problems)
    pictures = [] if status == COMPLETE else cr3_pictures(f) if kind in ("cr3", "crm") \
        else heif_pictures(f) if kind == "heif" else []
    return Carved(start, walk.end - start, kind, ext, status, detail, walk.boxes,
                  isobmff_meta(kind, f), isobmff_embedded(kind, f, status, pictures),
                  pictures)


def carve_ftyp(buf, start, limit, options):
    return carve_isobmff(buf, start, limit, options.rule, options.types)


# 9. TIFF and the raws built on it: CR2, NEF, ARW, DNG, ORF, RW2, PEF, SRW, GPR --------
# Every IFD and what it points at (strips, tiles, SubIFDs, maker notes) gives the end.

TIFF_MAGICS = (b"II*\0", b"MM\0*", b"IIRO", b"IIRS", b"MMOR", b"IIU\0")
ORF_MAGICS = (b"IIRO", b"IIRS", b"MMOR")
RW2_MAGIC = b"IIU\0"
CR2_MARK = b"CR"                            # at byte 8 of a CR2
CR2_MARK_AT = 8
MAX_TIFF_SPAN = 1 << 30                     # no raw is larger; a pointer past it is garbage
MAX_IFDS = 64
MAX_TIFF_DATA_RANGES = 1 << 16      # strips or tiles: a scan of 65,536 rows has that many
TAG_STRIP_OFFSETS, TAG_STRIP_BYTE_COUNTS = 0x0111, 0x0117
TAG_TILE_OFFSETS, TAG_TILE_BYTE_COUNTS = 0x0144, 0x0145
TAG_JPEG_OFFSET, TAG_JPEG_LENGTH = 0x0201, 0x0202
TAG_SUB_IFDS = 0x014A
TAG_GPS_IFD, TAG_INTEROP_IFD = 0x8825, 0xA005
TAG_MAKER_NOTE = 0x927C
TAG_DNG_VERSION = 0xC612
IFD_POINTER_TAGS = (TAG_EXIF_IFD, TAG_GPS_IFD, TAG_INTEROP_IFD)
DATA_PAIRS = ((TAG_STRIP_OFFSETS, TAG_STRIP_BYTE_COUNTS), (TAG_TILE_OFFSETS, TAG_TILE_BYTE_COUNTS),
              (TAG_JPEG_OFFSET, TAG_JPEG_LENGTH))
NIKON_MAKER_NOTE = b"Nikon\0"
NIKON_TIFF_AT = 10                          # "Nikon\0", version, 2 bytes, then a TIFF header
# An ORF's maker note: a header, then an IFD whose offsets count from the note's start
# (from the TIFF's, in the oldest); its sub-IFDs (Equipment, CameraSettings, ...) hold
# the preview JPEG's place (0x0101, 0x0102 in CameraSettings) and the raw's settings.
# (how it starts, where its IFD is, where its byte order is: None when its offsets
# count from the TIFF's start, in the TIFF's order)
OLYMPUS_NOTES = ((b"OLYMPUS\0", 12, 8), (b"OM SYSTEM\0", 16, 12), (b"OLYMP\0", 8, None))
OLYMPUS_SUB_IFDS = (0x2010, 0x2020, 0x2030, 0x2031, 0x2040, 0x2050, 0x3000, 0x4000, 0x5000)
OLYMPUS_PREVIEW = (0x0101, 0x0102)          # start, length: in CameraSettings
# An RW2's IFD0: the raw data at RawDataOffset (its StripOffsets is unused, often all
# ones), StripByteCounts long; the full-size JPEG whole in JpgFromRaw (an undefined
# value holding a JPEG with its own Exif)
TAG_RAW_DATA_OFFSET = 0x0118
TAG_JPG_FROM_RAW = 0x002E
RW2_DATA_PAIRS = ((TAG_RAW_DATA_OFFSET, TAG_STRIP_BYTE_COUNTS), (TAG_JPEG_OFFSET, TAG_JPEG_LENGTH))

RAW_MAKES = (("NIKON", "nef"), ("SONY", "arw"), ("PENTAX", "pef"), ("RICOH", "pef"),
             ("OLYMPUS", "orf"), ("PANASONIC", "rw2"), ("SAMSUNG", "srw"))
DNG_MAKES = (("GOPRO", "gpr"),)             # a DNG under its own name (GoPro's is VC-5 coded)
TIFF_TYPES = ("tif", "cr2", "nef", "arw", "dng", "orf", "rw2", "pef", "srw", "gpr")


def follow_maker_note(buf, note, start, order, end, follow, flags):
    """Queue (with follow) the IFDs of a maker note that holds some: Nikon's (a TIFF of
    its own), Olympus's (an IFD, then its sub-IFDs, the preview's place among them)."""
    head = bytes(buf[note.value_at:note.value_at + 16])
    if head.startswith(NIKON_MAKER_NOTE):
        inner = note.value_at + NIKON_TIFF_AT
        try:
            inner_order, inner_ifd = tiff_order(buf, inner, end)
            follow(inner, [inner_ifd], inner_order)
        except FormatError:
            flags.append("the Nikon MakerNote header")
        return
    for mark, ifd_at, order_at in OLYMPUS_NOTES:
        if head.startswith(mark):
            base = start if order_at is None else note.value_at
            note_order = order if order_at is None else \
                TIFF_BYTE_ORDERS.get(head[order_at:order_at + 2], order)
            follow(base, [note.value_at + ifd_at - base], note_order, "olympus")
            return



class TiffWalk(NamedTuple):
    end: int                # the largest end of anything the file's IFDs point at
    data: list              # (start, end) of strips, tiles and JPEG previews
    flags: list             # pointers that were bounded and ignored
    tags: dict              # IFD0's tags (text and single numbers)
    ifd0_tags: frozenset    # the numbers of all IFD0's tags
    maker_note: tuple       # (start, end) or ()
    plain: list             # (start, end, samples per pixel, bits, order) of plain strips
    short: list             # (IFD offset, bytes, bytes its size takes) of uncompressed
                            # raw data (CFA or linear raw) whose strips are too few


def walk_tiff(buf, start, limit):
    """Every IFD of a TIFF (chain, SubIFDs, Exif, GPS, Interop, a Nikon MakerNote) and
    everything they point at. A pointer beyond MAX_TIFF_SPAN is flagged, not followed."""
    order, ifd0 = tiff_order(buf, start, min(limit, start + MAX_TIFF_SPAN))
    span_end = start + MAX_TIFF_SPAN
    end = start + TIFF_HEADER_SIZE
    data, flags, maker_note, plain, short = [], [], (), [], []
    rw2 = bytes(buf[start:start + 4]) == RW2_MAGIC
    queue = collections.deque([(start, ifd0, order, "")])
    queued = 1
    seen = set()
    tags = None
    ifd0_tags = frozenset()

    too_many = "more than %d IFDs" % MAX_IFDS

    def follow(base, offsets, ifd_order, kind=""):
        nonlocal queued
        for pointer in offsets:
            if queued >= MAX_IFDS:
                if too_many not in flags:
                    flags.append(too_many)
                return
            queue.append((base, pointer, ifd_order, kind))
            queued += 1

    while queue:
        base, offset, ifd_order, kind = queue.popleft()
        if (base, offset) in seen or not offset:
            continue
        seen.add((base, offset))
        if base + offset >= span_end:
            flags.append("an IFD at +%d" % (base + offset - start))
            continue
        try:
            entries, next_ifd = ifd_entries(buf, base, min(limit, span_end), ifd_order, offset)
        except FormatError:
            if tags is None:
                raise
            if base + offset + 2 > limit:
                end = max(end, limit + 1)       # the dump ends before this IFD
            else:
                flags.append("the IFD at +%d" % (base + offset - start))
            continue
        if tags is None:
            tags = read_ifd(buf, base, limit, ifd_order, offset)
            ifd0_tags = frozenset(entry.tag for entry in entries)
        end = max(end, base + offset + 2 + len(entries) * IFD_ENTRY_SIZE + 4)
        by_tag = {entry.tag: entry for entry in entries}
        for entry in entries:
            if entry.inline:
                continue
            if entry.value_at + entry.size > span_end:
                flags.append("tag 0x%04x points at +%d" % (entry.tag, entry.value_at - start))
            else:
                end = max(end, entry.value_at + entry.size)
        if kind != "olympus" and not rw2:
            lacking = raw_data_short(buf, by_tag, ifd_order, limit)
            if lacking:
                short.append((base + offset - start,) + lacking)
        pairs = (OLYMPUS_PREVIEW,) if kind == "olympus" else RW2_DATA_PAIRS if rw2 \
            else DATA_PAIRS
        jpeg_from_raw = by_tag.get(TAG_JPG_FROM_RAW) if rw2 else None
        if jpeg_from_raw is not None and not jpeg_from_raw.inline \
                and jpeg_from_raw.value_at + jpeg_from_raw.size <= span_end:
            data.append((jpeg_from_raw.value_at, jpeg_from_raw.value_at + jpeg_from_raw.size))
        for offsets_tag, lengths_tag in pairs:
            if offsets_tag in by_tag and lengths_tag in by_tag:
                if by_tag[offsets_tag].count > MAX_TIFF_DATA_RANGES:
                    end = max(end, base + ifd_furthest(buf, by_tag[offsets_tag],
                                                       by_tag[lengths_tag], ifd_order, limit))
                    flags.append("tag 0x%04x lists %d parts" % (offsets_tag,
                                                                by_tag[offsets_tag].count))
                    continue
                offsets = ifd_numbers(buf, by_tag[offsets_tag], ifd_order, limit)
                lengths = ifd_numbers(buf, by_tag[lengths_tag], ifd_order, limit)
                layout = plain_layout(buf, by_tag, ifd_order, limit) \
                    if offsets_tag not in (TAG_JPEG_OFFSET, OLYMPUS_PREVIEW[0]) else None
                for first, length in zip(offsets, lengths):
                    if base + first + length > span_end:
                        flags.append("tag 0x%04x points at +%d" % (offsets_tag, base + first - start))
                    elif length:
                        data.append((base + first, base + first + length))
                        end = max(end, base + first + length)
                        if layout is not None:
                            plain.append((base + first, base + first + length) + layout
                                         + (ifd_order,))
        pointers = OLYMPUS_SUB_IFDS if kind == "olympus" else IFD_POINTER_TAGS + (TAG_SUB_IFDS,)
        for tag in pointers:
            if tag in by_tag:
                follow(base, ifd_numbers(buf, by_tag[tag], ifd_order, limit, MAX_IFDS), ifd_order,
                       kind)
        note = by_tag.get(TAG_MAKER_NOTE)
        if note is not None and not note.inline and note.value_at + note.size <= span_end:
            maker_note = (note.value_at, note.value_at + note.size)
            follow_maker_note(buf, note, start, ifd_order, min(limit, span_end), follow, flags)
        if next_ifd and kind != "olympus":
            follow(base, [next_ifd], ifd_order, kind)

    return TiffWalk(end, data, flags, tags or {}, ifd0_tags, maker_note, plain, short)


# A picture is smooth: from one pixel to the next a channel moves little (a photo's
# mean step is a few levels in 256), while another file's compressed bytes read as
# pixels jump about (a mean step of 85 in 256: that of independent values). Where
# sampled blocks of an uncompressed image's strips turn so, they are not its picture:
# the file ran into another one. Compressed raws check nothing here.
TAG_BITS_PER_SAMPLE, TAG_COMPRESSION, TAG_SAMPLES_PER_PIXEL = 0x0102, 0x0103, 0x0115
TAG_PLANAR_CONFIGURATION = 0x011C
TAG_IMAGE_WIDTH, TAG_IMAGE_LENGTH = 0x0100, 0x0101

UNCOMPRESSED = 1
PIXEL_BLOCK = 4096                          # one run of pixels looked at per this many bytes
PIXEL_SAMPLED = 1024                        # ... of this many bytes
NOT_PICTURE = 0.75                          # of the mean step of independent values


def ifd_number(buf, by_tag, tag, default, order, limit):
    """The first integer of an IFD's tag, default when the IFD has none (None when
    its value is no integer or out of reach)."""
    entry = by_tag.get(tag)
    values = ifd_numbers(buf, entry, order, limit, 1) if entry is not None else (default,)
    return values[0] if values else None


def plain_layout(buf, by_tag, order, limit):
    """(samples per pixel, bits per sample) of an IFD whose strips are uncompressed,
    interleaved 8- or 16-bit samples; None for any other (unread) layout."""
    def number(tag, default):
        return ifd_number(buf, by_tag, tag, default, order, limit)

    samples = number(TAG_SAMPLES_PER_PIXEL, 1)
    bits = number(TAG_BITS_PER_SAMPLE, 1)
    if (number(TAG_COMPRESSION, UNCOMPRESSED) != UNCOMPRESSED or bits not in (8, 16)
            or not samples or samples > 8 or (samples > 1 and number(TAG_PLANAR_CONFIGURATION, 1) != 1)):
        return None
    # only strips that hold exactly what the size says are read as pixels: Olympus
    # writes Compression 1 over its own compressed data, a quarter smaller
    if strip_bytes(buf, by_tag, order, limit) != uncompressed_size(
            buf, by_tag, order, limit, samples, bits):
        return None
    return samples, bits


RAW_PHOTOMETRICS = (32803, 34892)           # CFA, LinearRaw: a raw's own picture data
TAG_PHOTOMETRIC = 0x0106


def raw_data_short(buf, by_tag, order, limit):
    """(bytes, bytes its size takes) when an IFD's uncompressed raw data (its
    Photometric says CFA or LinearRaw) has fewer strip bytes than its width, height,
    samples and bits take; None otherwise."""
    def number(tag, default):
        return ifd_number(buf, by_tag, tag, default, order, limit)

    if number(TAG_PHOTOMETRIC, 0) not in RAW_PHOTOMETRICS \
            or number(TAG_COMPRESSION, UNCOMPRESSED) != UNCOMPRESSED:
        return None
    have = strip_bytes(buf, by_tag, order, limit)
    need = uncompressed_size(buf, by_tag, order, limit, number(TAG_SAMPLES_PER_PIXEL, 1) or 1,
                             number(TAG_BITS_PER_SAMPLE, 1) or 1)
    return (have, need) if have is not None and need and have < need else None


def strip_bytes(buf, by_tag, order, limit):
    """The bytes an IFD's StripByteCounts add up to (None without them)."""
    counts = by_tag.get(TAG_STRIP_BYTE_COUNTS)
    if counts is None or counts.count > MAX_TIFF_DATA_RANGES:
        return None
    return sum(ifd_numbers(buf, counts, order, limit))


def uncompressed_size(buf, by_tag, order, limit, samples, bits):
    """What an IFD's picture takes uncompressed: width x height x samples x bits / 8."""
    width = ifd_number(buf, by_tag, TAG_IMAGE_WIDTH, 0, order, limit)
    height = ifd_number(buf, by_tag, TAG_IMAGE_LENGTH, 0, order, limit)
    return width * height * samples * bits // 8 if width and height else None


def not_picture_at(buf, plain):
    """Where an uncompressed image's strips stop being a picture (see NOT_PICTURE),
    or None."""
    for first, last, samples, bits, order in plain:
        width = bits // 8
        independent = ((1 << bits) ** 2 - 1) / (3 << bits)         # mean |x - y|
        for at in range(first, last - PIXEL_SAMPLED + 1, PIXEL_BLOCK):
            values = integers(buf[at:at + PIXEL_SAMPLED], width, order) if width > 1 \
                else bytes(buf[at:at + PIXEL_SAMPLED])
            channel = values[::samples]
            steps = sum(map(abs, map(operator.sub, channel[1:], channel[:-1])))
            if steps > NOT_PICTURE * independent * (len(channel) - 1):
                return at
    return None


def tiff_type(buf, start, tags, tag_ids):
    magic = bytes(buf[start:start + 4])
    if magic in ORF_MAGICS:
        return "orf"
    if magic == RW2_MAGIC:
        return "rw2"
    if bytes(buf[start + CR2_MARK_AT:start + CR2_MARK_AT + 2]) == CR2_MARK:
        return "cr2"
    make = str(tags.get(TAG_MAKE, "")).upper()
    if TAG_DNG_VERSION in tag_ids:
        return next((kind for prefix, kind in DNG_MAKES if make.startswith(prefix)), "dng")
    for prefix, kind in RAW_MAKES:
        if make.startswith(prefix):
            return kind
    return "tif"


def carve_tiff(buf, start, limit, options):
    """A TIFF or TIFF-based raw: its extent is the furthest thing its IFDs point at."""
    if not wanted(TIFF_TYPES, options):
        return None
    walk = walk_tiff(buf, start, limit)
    if not walk.data:
        raise FormatError("no strips, tiles or JPEG: an Exif block, not an image")
    kind = tiff_type(buf, start, walk.tags, walk.ifd0_tags)
    if kind not in options.types:
        return None
    end = min(walk.end, limit)
    if walk.end > limit:
        status, detail = TRUNCATED, "the dump ends inside the file (%d of %d bytes present)" % (
            limit - start, walk.end - start)
    elif walk.flags:
        status, detail = DAMAGED, "; ".join(walk.flags[:3]) + ": outside any plausible raw, ignored"
    elif walk.short and kind != "orf":      # Olympus marks its compressed data uncompressed
        at, have, need = walk.short[0]
        status, detail = DAMAGED, ("the raw data of the IFD at +%d is %d bytes: its size "
                                   "takes %d" % (at, have, need))

    else:
        status, detail = COMPLETE, ""
        for first, last in walk.data:
            if bytes(buf[first:first + 2]) == JPEG_SOI and not jpeg_is_whole(buf, first, last):
                status, detail = DAMAGED, "the JPEG at +%d is not whole" % (first - start)
                break
        stray = not_picture_at(buf, walk.plain) if status == COMPLETE else None
        if stray is not None:
            status, detail = DAMAGED, ("the image data at +%d is not a picture but another "
                                       "file's bytes" % (stray - start))
    try:
        tags = exif_tags(buf, start, end)
    except (FormatError, struct.error):
        tags = walk.tags
    embedded, pictures = [], []
    if status == COMPLETE:
        embedded = [part for part in walk.data if looks_like_a_file(buf, part[0])] \
            + ([walk.maker_note] if walk.maker_note else [])
    else:
        # a cut or broken raw's whole JPEGs are its own still: saved beside it (the
        # largest first), never as files of the card's
        pictures = sorted(filter(None, (
            raw_jpeg(buf, first, last) for first, last in walk.data
            if last <= limit and bytes(buf[first:first + 2]) == JPEG_SOI)),
            key=lambda picture: -picture.size)
        embedded = [(picture.offset, picture.offset + picture.size) for picture in pictures]
    return Carved(start, end - start, kind, kind, status, detail, [], exif_meta(tags), embedded,
                  pictures)



def raw_jpeg(buf, first, last):
    """The Picture of the JPEG a raw's IFD places at [first, last), which may hold more
    than the JPEG (an RW2's JpgFromRaw does): up to the end its markers walk to."""
    try:
        walk = walk_jpeg(buf, first, last)
    except FormatError:
        return None
    if walk.status != COMPLETE:
        return None
    return embedded_jpeg(buf, first, walk.end, "the JPEG preview")


def looks_like_a_file(buf, at):

    """True for a part that starts as a file of its own would (a JPEG preview, a
    TIFF): the part is the file's, not another one. Raw image data is not: a file
    found inside it was written there (the raw is fragmented), and must be seen."""
    head = bytes(buf[at:at + 4])
    return head[:2] == JPEG_SOI or head in TIFF_MAGICS


# 10. CRW: Canon's CIFF raw (EOS D30 to 300D) ------------------------------------------
# Its heap's table of records, at its end, gives its size.

CRW_MAGIC = b"II\x1a\0\0\0HEAPCCDR"        # byte order, header length 26, signature
CRW_HEADER_SIZE = 26
CIFF_ENTRY = struct.Struct("<HII")          # type, size, offset from the heap start
CIFF_IMAGE_PROPS = b"\x0a\x30"              # type 0x300a, in every CRW's root heap
CIFF_JPEG = 0x2007
CIFF_LOCATION_MASK = 0xC000                 # type bits saying where the data is
MAX_CIFF_ENTRIES = 256
MAX_CRW_SIZE = 64 << 20        # the largest CRW (EOS-1Ds) is about 15 MB


CIFF_MOST_HITS = 2048       # 0x300a codes tried: random data holds one per 64 KiB


def find_ciff_table(buf, heap, limit):
    """(table offset, entries) of the root heap, found from the heap's start.

    The table ends the heap and its last 4 bytes give its own offset, so it can only
    be confirmed, not read, from the front: every 0x300a type code is tried as an
    entry of a table whose records tile the heap up to it. A table has at most
    MAX_CIFF_ENTRIES entries, so the high byte of its count is 0 or 1: the bytes
    where those counts would be are pulled out at C speed, one per 10 (an entry's
    size), and only the places where that byte fits are looked at."""
    stop = min(limit, heap + MAX_CRW_SIZE)
    hit = buf.find(CIFF_IMAGE_PROPS, heap, stop)
    for _ in range(CIFF_MOST_HITS):
        if hit < 0:
            return None
        lowest = max(heap + 2, hit - 2 - (MAX_CIFF_ENTRIES - 1) * CIFF_ENTRY.size)
        first = hit - 2 - (hit - 2 - lowest) // CIFF_ENTRY.size * CIFF_ENTRY.size
        highs = buf[first + 1:hit:CIFF_ENTRY.size]          # count's high byte per table
        for found in re.finditer(rb"[\x00\x01]", highs):
            table = first + found.start() * CIFF_ENTRY.size
            index = (hit - 2 - table) // CIFF_ENTRY.size
            (count,) = struct.unpack_from("<H", buf, table)
            table_end = table + 2 + count * CIFF_ENTRY.size + 4
            if not index < count <= MAX_CIFF_ENTRIES or table_end > limit:
                continue
            (self_offset,) = struct.unpack_from("<I", buf, table_end - 4)
            if self_offset != table - heap:
                continue
            entries = [CIFF_ENTRY.unpack_from(buf, table + 2 + i * CIFF_ENTRY.size)
                       for i in range(count)]
            in_heap = [(t, s, o) for t, s, o in entries if not t & CIFF_LOCATION_MASK]
            if in_heap and max(o + s for _, s, o in in_heap) == self_offset:
                return self_offset, entries
        hit = buf.find(CIFF_IMAGE_PROPS, hit + 1, stop)
    raise FormatError("no CIFF table among the first %d type codes" % CIFF_MOST_HITS)


def carve_crw(buf, start, limit, options):
    """A CRW: the root heap's table, found at the heap's end, gives the extent."""
    if not wanted(["crw"], options):
        return None
    heap = start + CRW_HEADER_SIZE
    found = find_ciff_table(buf, heap, limit)
    if found is None:
        if limit - start < MAX_CRW_SIZE:
            return Carved(start, limit - start, "crw", "crw", TRUNCATED,
                          "the dump ends before the CIFF table", [], Meta(), [])
        raise FormatError("no CIFF table within %d bytes" % MAX_CRW_SIZE)
    table, entries = found
    count = len(entries)
    end = heap + table + 2 + count * CIFF_ENTRY.size + 4
    status, detail, embedded = COMPLETE, "", []
    for kind, size, offset in entries:
        if kind == CIFF_JPEG:
            first = heap + offset
            embedded.append((first, first + size))
            if not jpeg_is_whole(buf, first, first + size):
                status, detail = DAMAGED, "the JPEG at +%d is not whole" % (first - start)
    return Carved(start, end - start, "crw", "crw", status, detail, [], Meta(), embedded)


# 11. RAF: Fujifilm's raw --------------------------------------------------------------
# Its header's offsets and lengths place the JPEG, the CFA header and the CFA.

RAF_MAGIC = b"FUJIFILMCCD-RAW "
RAF_MODEL = struct.Struct(">28x32s")        # after the magic, the format version and an ID
RAF_PARTS = struct.Struct(">84x6I")         # JPEG, CFA header, CFA: an offset and a length each
RAF_SECOND_PARTS = struct.Struct(">120x4I")     # a second CFA header and CFA, in newer files
RAF_HEADER_SIZE = 108                       # what every RAF's header holds
MAX_RAF_SPAN = 1 << 30                      # no raw is larger; a part past it is garbage
RAF_RECORD = struct.Struct(">HH")           # a CFA header record: tag, size of its data
MAX_RAF_RECORDS = 255                       # more and it is no CFA header (LibRaw's bound)
RAF_FULL_SIZE = 0x0100                      # a CFA header's record: height, width (16 bits)
# A picture's data holds at least this many bytes a pixel, however it is compressed
# (Fujifilm's lossless compression keeps some 10 bits a pixel; uncompressed is 16):
# less is a stub, or the front of a file whose data lies elsewhere
MIN_RAW_BYTES_PER_PIXEL = 0.25



def raf_parts(buf, start, limit):
    """[(what, first, last)] of a RAF's parts, from its header. The second CFA header
    and CFA are read when the header reaches past them (the JPEG begins after them)."""
    if limit - start < RAF_PARTS.size:
        raise FormatError("the dump ends inside the RAF header")
    jpeg_at, jpeg_size, header_at, header_size, cfa_at, cfa_size = RAF_PARTS.unpack_from(buf, start)
    parts = [("the JPEG", jpeg_at, jpeg_size), ("the CFA header", header_at, header_size),
             ("the CFA", cfa_at, cfa_size)]
    if jpeg_at >= RAF_SECOND_PARTS.size and limit - start >= RAF_SECOND_PARTS.size:
        header2_at, header2_size, cfa2_at, cfa2_size = RAF_SECOND_PARTS.unpack_from(buf, start)
        parts += [(what, at, size) for what, at, size in
                  [("the second CFA header", header2_at, header2_size),
                   ("the second CFA", cfa2_at, cfa2_size)] if at and size]
    for what, at, size in parts:
        if not size or at < RAF_HEADER_SIZE or at + size > MAX_RAF_SPAN:
            raise FormatError("%s is at +%d, %d bytes: not a RAF's" % (what, at, size))
    return [(what, start + at, start + at + size) for what, at, size in parts]


def raf_records_fit(buf, first, last):
    """True when a CFA header's records (a count, then tag, size, data) fill no more
    than its length."""
    if last - first < 4:
        return False
    (count,) = U32.unpack_from(buf, first)
    pos = first + 4
    if count > MAX_RAF_RECORDS:
        return False
    for _ in range(count):
        if pos + RAF_RECORD.size > last:
            return False
        _, size = RAF_RECORD.unpack_from(buf, pos)
        pos += RAF_RECORD.size + size
    return pos <= last


def jpeg_exif_meta(buf, first, last):
    """Meta from the Exif of the JPEG at [first, last) (Meta() when it has none)."""
    try:
        return segments_meta(buf, walk_jpeg(buf, first, last).segments)
    except (FormatError, struct.error):
        return Meta()


def raf_cfa_short(buf, start, header, cfa):
    """What is wrong when the CFA (what, first, last) after a CFA header (idem) is too
    short for the sensor the header's RawImageFullSize gives; "" if not."""
    _, first, last = header
    pos = first + 4
    for _ in range(min(U32.unpack_from(buf, first)[0], MAX_RAF_RECORDS)):
        tag, size = RAF_RECORD.unpack_from(buf, pos)
        if tag == RAF_FULL_SIZE and size == 4:
            height, width = struct.unpack_from(">HH", buf, pos + RAF_RECORD.size)
            what, cfa_first, cfa_last = cfa
            if cfa_last - cfa_first < width * height * MIN_RAW_BYTES_PER_PIXEL:
                return "%s at +%d is %d bytes: a %dx%d sensor's data takes far more" % (
                    what, cfa_first - start, cfa_last - cfa_first, width, height)
            return ""
        pos += RAF_RECORD.size + size
    return ""


def carve_raf(buf, start, limit, options):

    """A RAF: its header gives where the JPEG, the CFA header and the CFA lie; the
    file ends at the furthest. Complete when each is there, the JPEG whole and the
    CFA header's records fitting it."""
    if not wanted(["raf"], options):
        return None
    parts = raf_parts(buf, start, limit)
    end = max(last for _, _, last in parts)
    status, detail = COMPLETE, ""
    if end > limit:
        status, detail = TRUNCATED, "the dump ends inside the file (%d of %d bytes present)" % (
            limit - start, end - start)
    else:
        for what, first, last in parts:
            if what == "the JPEG" and not jpeg_is_whole(buf, first, last):
                status, detail = DAMAGED, "the JPEG at +%d is not whole" % (first - start)
            elif what.endswith("CFA header") and not raf_records_fit(buf, first, last):
                status, detail = DAMAGED, "%s at +%d is not one" % (what, first - start)
            elif what.endswith("CFA header"):
                index = [part[1] for part in parts].index(first)
                short = raf_cfa_short(buf, start, parts[index], parts[index + 1]) \
                    if index + 1 < len(parts) else ""
                if short:
                    status, detail = DAMAGED, short
            if status != COMPLETE:
                break
    jpeg = parts[0]
    meta = jpeg_exif_meta(buf, jpeg[1], min(jpeg[2], limit))
    if not meta.model and limit - start >= RAF_MODEL.size:
        model = RAF_MODEL.unpack_from(buf, start)[0].split(b"\0")[0]
        meta = meta._replace(model=model.decode("ascii", "replace").strip())
    embedded, pictures = [], []
    if status == COMPLETE:
        embedded = [(first, last) for what, first, last in parts
                    if what == "the JPEG" or looks_like_a_file(buf, first)]
    elif jpeg[2] <= limit:          # its whole JPEG is saved beside it
        pictures = [picture for picture in [raw_jpeg(buf, jpeg[1], jpeg[2])] if picture]
        embedded = [(p.offset, p.offset + p.size) for p in pictures]
    return Carved(start, min(end, limit) - start, "raf", "raf", status, detail, [], meta,
                  embedded, pictures)



# 12. X3F: Sigma's raw -----------------------------------------------------------------
# A header, then sections (properties SECp, images SECi, camera data SECc), then the
# directory SECd listing each (offset, length, type); the file's last 4 bytes give the
# directory's offset. From the front, the directory is found by its own pointer.

X3F_MAGIC = b"FOVb"
X3F_HEADER_SIZE = 40                        # magic, version, ID, marks, columns, rows, rotation
X3F_DIRECTORY = struct.Struct("<4sII")      # "SECd", version, number of entries
X3F_ENTRY = struct.Struct("<II4s")          # offset, length, type
X3F_POINTER = struct.Struct("<I")
X3F_SECTION_MAGICS = {b"PROP": b"SECp", b"IMAG": b"SECi", b"IMA2": b"SECi", b"CAMF": b"SECc"}
X3F_IMAGE = struct.Struct("<4sIIIIII")      # "SECi", version, type, format, columns, rows, row bytes
X3F_JPEG_FORMAT = 18                        # an image section holding a JPEG
X3F_PROPERTIES = struct.Struct("<4sIIIII")  # "SECp", version, entries, format, 0, characters
X3F_PROPERTY = struct.Struct("<II")         # name and value, as offsets in characters
MAX_X3F_ENTRIES = 64
MAX_X3F_PROPERTIES = 1024
MAX_X3F_SIZE = 256 << 20        # the largest X3F (sd Quattro H) is about 120 MB
X3F_MOST_HITS = 4096


def next_x3f(buf, start, stop, align):
    """Where the next X3F header on the sector grid begins after start (stop if none)."""
    hit = buf.find(X3F_MAGIC, start + 1, stop)
    while hit >= 0 and (hit - start) % align:
        hit = buf.find(X3F_MAGIC, hit + 1, stop)
    return stop if hit < 0 else hit


def find_x3f_directory(buf, start, stop):
    """(directory offset, entries) of the X3F at start, if before stop. The
    directory is the "SECd" whose entries fit before it and which the 4 bytes after
    it point to."""
    hit = buf.find(b"SECd", start + X3F_HEADER_SIZE, stop)
    for _ in range(X3F_MOST_HITS):
        if hit < 0:
            break
        if hit + X3F_DIRECTORY.size <= stop:
            _, _, count = X3F_DIRECTORY.unpack_from(buf, hit)
            pointer = hit + X3F_DIRECTORY.size + count * X3F_ENTRY.size
            if count <= MAX_X3F_ENTRIES and pointer + X3F_POINTER.size <= stop \
                    and X3F_POINTER.unpack_from(buf, pointer)[0] == hit - start:
                return hit, [X3F_ENTRY.unpack_from(buf, hit + X3F_DIRECTORY.size + i * X3F_ENTRY.size)
                             for i in range(count)]
        hit = buf.find(b"SECd", hit + 1, stop)
    return None


def x3f_properties(buf, first, last):
    """{name: value} of an X3F properties section (UTF-16 strings)."""
    _, _, count, _, _, _ = X3F_PROPERTIES.unpack_from(buf, first)
    table = first + X3F_PROPERTIES.size
    text_at = table + min(count, MAX_X3F_PROPERTIES) * X3F_PROPERTY.size
    if text_at > last:
        return {}
    text = bytes(buf[text_at:last]).decode("utf-16-le", "replace")

    def string(at):
        return text[at:text.find("\0", at)] if 0 <= at < len(text) else ""

    return {string(name): string(value) for name, value in
            (X3F_PROPERTY.unpack_from(buf, table + i * X3F_PROPERTY.size)
             for i in range(min(count, MAX_X3F_PROPERTIES)))}


def x3f_meta(properties):
    """Meta from X3F properties: CAMMODEL, TIME (the camera's clock, in seconds since
    1970 as if it were UTC) and CAMSERIAL."""
    when = ""
    if properties.get("TIME", "").isdigit():
        try:
            when = datetime.datetime.fromtimestamp(int(properties["TIME"]),
                                                   datetime.timezone.utc).strftime(TIME_FORMAT)
        except (OverflowError, OSError, ValueError):
            pass
    return Meta(properties.get("CAMMODEL", ""), when, properties.get("CAMSERIAL", ""))


def carve_x3f(buf, start, limit, options):
    """An X3F: it ends with its directory's pointer. Complete when each section the
    directory lists lies before it with its own magic, and an embedded JPEG is whole."""
    if not wanted(["x3f"], options):
        return None
    # a contiguous X3F's directory lies before the next X3F: looking no further keeps
    # a card of X3F headers from being searched once per header
    stop = next_x3f(buf, start, min(limit, start + MAX_X3F_SIZE), options.align)
    found = find_x3f_directory(buf, start, stop)
    if found is None and stop == limit:
        return Carved(start, limit - start, "x3f", "x3f", TRUNCATED,
                      "the dump ends before the X3F directory", [], Meta(), [])
    if found is None and stop < start + MAX_X3F_SIZE:
        return Carved(start, stop - start, "x3f", "x3f", DAMAGED,
                      "no directory before the next X3F, at +%d: fragmented or cut; saved "
                      "up to there" % (stop - start), [], Meta(), [])
    if found is None:
        raise FormatError("no X3F directory within %d bytes" % MAX_X3F_SIZE)
    directory, entries = found
    end = directory + X3F_DIRECTORY.size + len(entries) * X3F_ENTRY.size + X3F_POINTER.size
    status, detail, embedded, meta = COMPLETE, "", [], Meta()
    for offset, length, kind in entries:
        first, last = start + offset, start + offset + length
        magic = X3F_SECTION_MAGICS.get(kind)
        if offset < X3F_HEADER_SIZE or last > directory:
            status, detail = DAMAGED, "the %s section at +%d lies outside the file" % (
                kind.decode("latin-1"), offset)
        elif magic is not None and bytes(buf[first:first + 4]) != magic:
            status, detail = DAMAGED, "the %s section at +%d is not there" % (
                kind.decode("latin-1"), offset)
        elif kind == b"PROP" and length >= X3F_PROPERTIES.size:
            meta = x3f_meta(x3f_properties(buf, first, last))
        elif magic == b"SECi" and length >= X3F_IMAGE.size \
                and X3F_IMAGE.unpack_from(buf, first)[3] == X3F_JPEG_FORMAT:
            jpeg = first + X3F_IMAGE.size
            if not jpeg_is_whole(buf, jpeg, last):
                status, detail = DAMAGED, "the JPEG at +%d is not whole" % (jpeg - start)
            embedded.append((jpeg, last))
        elif magic == b"SECi" and length >= X3F_IMAGE.size:
            _, _, _, _, columns, rows, row_bytes = X3F_IMAGE.unpack_from(buf, first)
            needed = rows * row_bytes if row_bytes else columns * rows * MIN_RAW_BYTES_PER_PIXEL
            if length - X3F_IMAGE.size < needed:
                status, detail = DAMAGED, (
                    "the image section at +%d holds %d bytes: its %dx%d picture takes more"
                    % (offset, length - X3F_IMAGE.size, columns, rows))
        if status != COMPLETE:
            break
    pictures = []
    if status != COMPLETE:          # its whole JPEG is saved beside it
        pictures = [picture for picture in (raw_jpeg(buf, first, last) for first, last in embedded)
                    if picture is not None]
    return Carved(start, end - start, "x3f", "x3f", status, detail, [], meta,
                  embedded if status == COMPLETE else
                  [(p.offset, p.offset + p.size) for p in pictures], pictures)


# 13. MPEG transport streams: AVCHD's MTS and M2TS, and TS -----------------------------
# A transport stream is a run of 188-byte packets, each starting with the sync byte
# 47; AVCHD and Blu-ray put a 4-byte arrival time before each (192-byte packets) and
# write them 32 at a time (6144 bytes). Nothing in a stream says where it ends: it
# ends where the rhythm of sync bytes breaks, or where the packets that follow are
# not its own - each PID's continuity counter steps by one from packet to packet, so
# another stream's packets (the next file, or an old one) break them. A camera starts
# a file with its tables (PAT, or SDT or SIT first): a file's first packet begins one.

TS_PACKET = 188
M2TS_PACKET = 192
M2TS_ALIGNED_UNIT = 6144                    # what an AVCHD or Blu-ray stream is a multiple of
TS_SYNC = 0x47
TS_HEADER = struct.Struct(">IBB")           # sync, flags and PID, counter; adaptation field
TS_PUSI = 0x400000                          # a table or PES begins in this packet
TS_HAS_PAYLOAD = 0x10
TS_HAS_ADAPTATION = 0x20
TS_DISCONTINUITY = 0x80                     # an adaptation field's flag: counters may jump
PID_PAT, PID_SDT, PID_SIT, PID_NULL = 0x0000, 0x0011, 0x001F, 0x1FFF
TS_TABLE_PIDS = (PID_PAT, PID_SDT, PID_SIT)
TS_STARTS = tuple(bytes([TS_SYNC, 0x40 | pid >> 8, pid & 0xFF]) for pid in TS_TABLE_PIDS)
TS_MIN_PACKETS = 8              # fewer packets in rhythm are chance, not a stream
TS_TABLE_PACKETS = 1024         # the PAT and PMT come within a stream's first packets
TS_NEW_STREAM_PACKETS = 16      # a new stream's tables and first frames break the counters here
TS_LOOK_BACK = 4096             # packets read before a start to learn the counters it would continue
TS_CHUNK_PACKETS = 8192
TS_META_PACKETS = 256           # the video's first packets, where AVCHD puts its MDPM
STREAM_TYPE_H264 = 0x1B
MDPM_UUID = bytes.fromhex("17ee8c60f84d11d98cd60800200c9a66") + b"MDPM"
MDPM_ENTRY = 5                  # a tag and 4 bytes
MDPM_DATE, MDPM_TIME = 0x18, 0x19


class TsWalk(NamedTuple):
    end: int                # where the stream's packets end
    why: str                # what ends them: RHYTHM, DUMP_END, NEXT_STREAM, JUMP or MOST
    jump: tuple             # (offset, PID, counter before, counter) where counters jump
    counters: dict          # PID -> its last continuity counter
    packets: list           # (offset, header, payload) of the first TS_TABLE_PACKETS
    lasts: dict             # PID -> where its last packet with a payload lies


RHYTHM, DUMP_END, NEXT_STREAM, JUMP, MOST = "rhythm", "dump end", "next stream", "jump", "most"


def ts_layout(packet):
    """(struct of one packet's header, where its sync byte lies)."""
    sync_at = packet - TS_PACKET
    return struct.Struct(">%dxIBB%dx" % (sync_at, TS_PACKET - TS_HEADER.size)), sync_at


def ts_payload(chunk, index, packet, sync_at, head, adaptation):
    at = index * packet + sync_at + 4
    if head & TS_HAS_ADAPTATION:
        at += 1 + adaptation
    return chunk[at:index * packet + packet]


def walk_ts(buf, start, limit, packet, align, counters=None, most=None):
    """Walk the packets of a stream from start (a TsWalk), up to the first that
    breaks the rhythm or jumps a counter. A jump within TS_NEW_STREAM_PACKETS of an
    aligned packet that can begin a stream ends the walk there: a new stream (the
    next file) begins. counters: what the stream before start left, when a start
    is tested; most: walk no more packets than that."""
    layout, sync_at = ts_layout(packet)
    counters = {} if counters is None else dict(counters)
    packets, lasts = [], {}
    pos = start
    stream_start = None         # the last aligned packet after start that could begin one
    stop = limit if most is None else min(limit, start + most * packet)
    while True:
        count = min(TS_CHUNK_PACKETS, (stop - pos) // packet)
        if count <= 0:
            break
        chunk = bytes(buf[pos:pos + count * packet])
        for index, (head, adaptation, flags) in enumerate(layout.iter_unpack(chunk)):
            at = pos + index * packet
            if head >> 24 != TS_SYNC:
                return TsWalk(at, RHYTHM, None, counters, packets, lasts)
            pid = head >> 8 & 0x1FFF
            if head & TS_PUSI and pid in TS_TABLE_PIDS and at > start \
                    and (at - start) % align == 0:
                stream_start = at
            if len(packets) < TS_TABLE_PACKETS:
                packets.append((at, head, ts_payload(chunk, index, packet, sync_at, head,
                                                     adaptation)))
            if not head & TS_HAS_PAYLOAD or pid == PID_NULL:
                continue
            counter = head & 0xF
            last = counters.get(pid)
            counters[pid] = counter
            if last is not None and counter not in (last, (last + 1) & 0xF) and not (
                    head & TS_HAS_ADAPTATION and adaptation and flags & TS_DISCONTINUITY):
                if stream_start is not None and at - stream_start < TS_NEW_STREAM_PACKETS * packet:
                    return TsWalk(stream_start, NEXT_STREAM, None, counters, packets,
                                  {p: a for p, a in lasts.items() if a < stream_start})
                return TsWalk(at, JUMP, (at, pid, last, counter), counters, packets, lasts)
            lasts[pid] = at
        pos += count * packet
    if most is not None and pos == start + most * packet:
        return TsWalk(pos, MOST, None, counters, packets, lasts)
    if pos + sync_at >= limit or buf[pos + sync_at] == TS_SYNC:    # the stream may go on
        return TsWalk(limit, DUMP_END, None, counters, packets, lasts)
    return TsWalk(pos, RHYTHM, None, counters, packets, lasts)


def ts_counters_before(buf, start, packet):
    """The continuity counter each PID last had in the packets that run into start
    in step (up to TS_LOOK_BACK of them; empty when the packet before breaks it)."""
    layout, sync_at = ts_layout(packet)
    first = start
    while start - first < TS_LOOK_BACK * packet and first - packet >= 0 \
            and buf[first - packet + sync_at] == TS_SYNC:
        first -= packet
    counters = {}
    for head, _, _ in layout.iter_unpack(bytes(buf[first:start])):
        pid = head >> 8 & 0x1FFF
        if head & TS_HAS_PAYLOAD and pid != PID_NULL:
            counters[pid] = head & 0xF
    return counters


def ts_sections(packets, pid):
    """The first table section on pid: its bytes from table_id on (b"" if none)."""
    for _, head, payload in packets:
        if head >> 8 & 0x1FFF == pid and head & TS_PUSI and payload:
            pointer = payload[0]
            return payload[1 + pointer:]
    return b""


def mpeg_crc(data):
    """CRC-32/MPEG-2 over data (a PSI section with its own CRC gives 0)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = (crc << 8 & 0xFFFFFFFF) ^ MPEG_CRC_TABLE[(crc >> 24) ^ byte]
    return crc


def _mpeg_crc_table():
    table = []
    for index in range(256):
        crc = index << 24
        for _ in range(8):
            crc = (crc << 1 ^ MPEG_CRC_POLYNOMIAL if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
        table.append(crc)
    return table


MPEG_CRC_POLYNOMIAL = 0x04C11DB7
MPEG_CRC_TABLE = _mpeg_crc_table()


def section_whole(section):
    """True for a PSI section whose CRC holds."""
    if len(section) < 8:
        return False
    length = ((section[1] & 0x0F) << 8 | section[2]) + 3
    return length <= len(section) and mpeg_crc(section[:length]) == 0


def ts_tables_whole(packets):
    """True when packets hold a PAT and the PMT it names, each with its CRC: a stream
    however short (two packets), never chance (its rhythm alone is: see TS_MIN_PACKETS)."""
    pat = ts_sections(packets, PID_PAT)
    if not section_whole(pat) or pat[0] != 0x00:
        return False
    return any(section_whole(ts_sections(packets, pid)) for pid in ts_programs(packets))


def ts_programs(packets):

    """{PMT PID: [(stream type, PID)]} from the PAT and PMTs among packets."""
    pat = ts_sections(packets, PID_PAT)
    programs = {}
    if len(pat) < 8 or pat[0] != 0x00:
        return programs
    length = min(((pat[1] & 0x0F) << 8 | pat[2]) + 3, len(pat))
    for at in range(8, length - 4 - 3, 4):             # entries, then a CRC
        number = pat[at] << 8 | pat[at + 1]
        if number:
            programs[(pat[at + 2] & 0x1F) << 8 | pat[at + 3]] = []
    for pmt_pid in programs:
        pmt = ts_sections(packets, pmt_pid)
        if len(pmt) < 12 or pmt[0] != 0x02:
            continue
        length = min(((pmt[1] & 0x0F) << 8 | pmt[2]) + 3, len(pmt)) - 4
        at = 12 + ((pmt[10] & 0x0F) << 8 | pmt[11])
        while at + 5 <= length:
            programs[pmt_pid].append((pmt[at], (pmt[at + 1] & 0x1F) << 8 | pmt[at + 2]))
            at += 5 + ((pmt[at + 3] & 0x0F) << 8 | pmt[at + 4])
    return programs


TS_PCR, TS_OPCR, TS_SPLICE = 0x10, 0x08, 0x04     # adaptation field flags, and what each adds
TS_PRIVATE_OR_EXTENSION = 0x03


def ends_pes(buf, at, sync_at):
    """True when the packet at `at` ends with stuffing: the last packet of a PES
    (a frame, a block of sound) when it does not fill the packet, which only the
    adaptation field can pad. A packet full of payload may end one too, unseen."""
    head, length, flags = TS_HEADER.unpack_from(buf, at + sync_at)
    if not head & TS_HAS_ADAPTATION:
        return False
    if length == 0:
        return True                             # the length byte alone: one byte of stuffing
    if flags & TS_PRIVATE_OR_EXTENSION:
        return False                            # fields of their own length: not read
    used = 1 + 6 * bool(flags & TS_PCR) + 6 * bool(flags & TS_OPCR) + bool(flags & TS_SPLICE)
    return length > used and buf[at + sync_at + 4 + length] == 0xFF


def cut_streams(buf, walk, programs, sync_at):
    """The PIDs of the programs' streams whose last packet in the walk does not end
    a PES: where the stream was cut, not ended."""
    pids = sorted({pid for streams in programs.values() for _, pid in streams})
    return [pid for pid in pids if pid in walk.lasts
            and not ends_pes(buf, walk.lasts[pid], sync_at)]


def bcd(value):
    return (value >> 4) * 10 + (value & 0x0F)


def mdpm_datetime(data):
    """The recording time of an AVCHD video from its MDPM (in an H.264 SEI): tag 0x18
    holds the time zone, year and month, 0x19 the day and time, all in BCD."""
    at = data.find(MDPM_UUID)
    if at < 0:
        return ""
    at += len(MDPM_UUID)
    body = data[at + 1:at + 1 + data[at] * MDPM_ENTRY if at < len(data) else at]
    body = body.replace(b"\0\0\3", b"\0\0")         # the H.264 escapes, in case
    tags = {body[i]: body[i + 1:i + MDPM_ENTRY] for i in range(0, len(body) - 4, MDPM_ENTRY)}
    if MDPM_DATE not in tags or MDPM_TIME not in tags:
        return ""
    zone, year_high, year_low, month = tags[MDPM_DATE]
    day, hour, minute, second = tags[MDPM_TIME]
    fields = [bcd(year_high) * 100 + bcd(year_low), bcd(month), bcd(day),
              bcd(hour), bcd(minute), bcd(second)]
    try:
        datetime.datetime(*fields)
    except ValueError:
        return ""
    text = "%04d-%02d-%02dT%02d:%02d:%02d" % tuple(fields)
    if not zone & 0x80:                             # 0x80: no zone recorded
        text += "%s%02d:%s" % ("-" if zone & 0x20 else "+", zone >> 1 & 0x0F,
                               "30" if zone & 0x01 else "00")
    return text


# A table packet that a stream walked already runs through continues that stream: it
# is no file's start. Each process remembers the last stream of each kind it walked
# (and, for a table packet that continues a stream, MEMO_SPAN of what follows), so
# that a stream with a table on every sector costs one walk, not one per sector.
MEMO_SPAN = 64 << 20
_walked = {}                # kind of walk -> (buffer, first, end) of the last one


def remember_walk(buf, first, end, kind):
    _walked[kind] = (buf, first, end)


def inside_walked(buf, start, kind):
    """Raises FormatError when start lies inside the last walk of that kind."""
    walked = _walked.get(kind)
    if walked is not None and walked[0] is buf and walked[1] < start < walked[2]:
        raise FormatError("inside the stream walked from %d" % walked[1])


def carve_ts(buf, start, limit, options, packet, kind):
    """A transport stream of packets of that size, from its first table packet."""
    if not wanted([kind], options):
        return None
    inside_walked(buf, start, packet)
    before = ts_counters_before(buf, start, packet)
    if before:
        ahead = walk_ts(buf, start, limit, packet, options.align, before, TS_NEW_STREAM_PACKETS)
        if ahead.why != JUMP:
            walk = walk_ts(buf, start, min(limit, start + MEMO_SPAN), packet, options.align)
            remember_walk(buf, start - 1, walk.end, packet)
            raise FormatError("continues the stream before it")
    walk = walk_ts(buf, start, limit, packet, options.align)
    remember_walk(buf, start, walk.end, packet)
    if walk.end - start < TS_MIN_PACKETS * packet and walk.why != DUMP_END \
            and not ts_tables_whole(walk.packets):
        raise FormatError("only %d packets keep the rhythm" % ((walk.end - start) // packet))
    programs = ts_programs(walk.packets)
    if not programs:
        raise FormatError("no PAT in its first %d packets" % TS_TABLE_PACKETS)
    end, status, detail = walk.end, COMPLETE, ""
    cut = cut_streams(buf, walk, programs, packet - TS_PACKET)
    if walk.why == DUMP_END and (end - start) % packet == 0 and not cut:
        pass                    # its last frames are whole where the dump ends: the file
    elif walk.why == DUMP_END:
        status, detail = TRUNCATED, "the dump ends inside the stream (%d bytes present)" % (
            limit - start)
    elif cut:
        status, detail = DAMAGED, (
            "ends at +%d inside a frame of PID 0x%04x: the rest is elsewhere (fragmented) "
            "or was never written; saved up to there" % (end - start, cut[0]))
        if walk.why == JUMP:
            at, pid, last, counter = walk.jump
            detail += " (PID 0x%04x's continuity counter jumps from %d to %d there: " \
                      "another stream's packets follow)" % (pid, last, counter)
    if status == COMPLETE and not any(programs.values()):
        status, detail = DAMAGED, "no PMT for its program"
    elif status == COMPLETE and packet == M2TS_PACKET and (end - start) % M2TS_ALIGNED_UNIT:
        status, detail = DAMAGED, ("ends at +%d, inside a unit of 32 packets (AVCHD writes "
                                   "whole ones): cut" % (end - start))
    video = [pid for streams in programs.values() for stream_type, pid in streams
             if stream_type == STREAM_TYPE_H264]
    meta = Meta()
    if video:
        data = b"".join(payload for _, head, payload in walk.packets[:TS_META_PACKETS]
                        if head >> 8 & 0x1FFF == video[0])
        meta = Meta(datetime=mdpm_datetime(data))
    return Carved(start, end - start, kind, kind, status, detail, [], meta, [])


def carve_mts(buf, start, limit, options):
    """An AVCHD or Blu-ray stream (MTS, M2TS): 192-byte packets."""
    return carve_ts(buf, start, limit, options, M2TS_PACKET, "mts")


def carve_plain_ts(buf, start, limit, options):
    """A transport stream of 188-byte packets."""
    return carve_ts(buf, start, limit, options, TS_PACKET, "ts")


# 14. MXF (SMPTE 377M): a run of KLV packets -------------------------------------------
# Every byte of an MXF file is in a KLV: a 16-byte key (a SMPTE label, 06 0E 2B 34 ...),
# a BER length and the value. The header partition pack comes first and names the
# footer partition's offset; the random index pack, when there is one, comes last.

MXF_KEY_PREFIX = b"\x06\x0e\x2b\x34"
MXF_PARTITION_KEY = bytes.fromhex("060e2b34020501010d01020101")     # then kind, status, 00
MXF_HEADER, MXF_BODY, MXF_FOOTER = 0x02, 0x03, 0x04
MXF_RIP_KEY = bytes.fromhex("060e2b34020501010d01020101110100")
MXF_KEY_SIZE = 16
MXF_PARTITION = struct.Struct(">HHIQQQQQIQI")   # versions, KAG, this, previous, footer, ...
MXF_RIP_ENTRY = struct.Struct(">IQ")            # body SID, partition offset
MXF_RIP_LENGTH = struct.Struct(">I")            # the pack's whole length, last
MAX_MXF_KLVS = 1 << 22          # an hour of frame-wrapped HD has about a million


def mxf_klv(buf, pos, limit):
    """(where the value begins, where the KLV ends) at pos, or None when no KLV
    begins there. Raises TruncatedError when the dump ends inside its key or length."""
    if pos + MXF_KEY_SIZE + 1 > limit:
        raise TruncatedError("the dump ends inside a KLV")
    if bytes(buf[pos:pos + 4]) != MXF_KEY_PREFIX:
        return None
    first = buf[pos + MXF_KEY_SIZE]
    at = pos + MXF_KEY_SIZE + 1
    if first < 0x80:
        return at, at + first
    width = first & 0x7F
    if not 1 <= width <= 8:
        return None                             # indefinite or too long: no KLV of a file
    if at + width > limit:
        raise TruncatedError("the dump ends inside a KLV")
    length = int.from_bytes(buf[at:at + width], "big")
    return at + width, at + width + length


def carve_mxf(buf, start, limit, options):
    """An MXF file: the run of KLVs from its header partition pack, up to the random
    index pack or the first bytes that are no KLV (or the next file's header).
    Complete when the footer partition is where the header says, each partition
    pack says where it is, and the random index pack lists them."""
    if not wanted(["mxf"], options):
        return None
    inside_walked(buf, start, "mxf")
    pos, partitions, footer_at, rip = start, {}, None, None
    for _ in range(MAX_MXF_KLVS):
        try:
            klv = mxf_klv(buf, pos, limit)
        except TruncatedError:
            klv = (limit, limit + 1)
        if klv is None:
            break
        value, end = klv
        if end > limit:
            return Carved(start, limit - start, "mxf", "mxf", TRUNCATED,
                          "the dump ends inside the file (%d bytes present)" % (limit - start),
                          [], Meta(), [])
        key = bytes(buf[pos:pos + MXF_KEY_SIZE])
        if key[:len(MXF_PARTITION_KEY)] == MXF_PARTITION_KEY \
                and key[13] in (MXF_HEADER, MXF_BODY, MXF_FOOTER) \
                and end - value >= MXF_PARTITION.size:
            if key[13] == MXF_HEADER and pos > start:
                break                           # the next file
            fields = MXF_PARTITION.unpack_from(buf, value)
            partitions[pos - start] = (key[13], fields[3])
            if key[13] == MXF_HEADER:
                footer_at = fields[5]
        elif key == MXF_RIP_KEY:
            rip = (pos, value, end)
            pos = end
            break
        pos = end
    else:
        remember_walk(buf, start, pos, "mxf")
        raise FormatError("more than %d KLVs" % MAX_MXF_KLVS)
    remember_walk(buf, start, pos, "mxf")
    if 0 not in partitions:
        raise FormatError("no header partition pack")
    status, detail = COMPLETE, ""
    footers = [at for at, (kind, _) in partitions.items() if kind == MXF_FOOTER]
    wrong = [at for at, (_, this) in partitions.items() if at != this]
    if footer_at and footer_at not in partitions:
        status, detail = DAMAGED, ("the KLVs end at +%d, before the footer partition the "
                                   "header names at +%d: the rest is elsewhere" % (
                                       pos - start, footer_at))
    elif not footers:
        status, detail = DAMAGED, "no footer partition: the rest is elsewhere, or was never written"
    elif wrong:
        status, detail = DAMAGED, "the partition pack at +%d says it is at +%d" % (
            wrong[0], partitions[wrong[0]][1])
    elif rip is not None:
        at, value, end = rip
        listed = [MXF_RIP_ENTRY.unpack_from(buf, entry)[1] for entry in
                  range(value, end - MXF_RIP_LENGTH.size - MXF_RIP_ENTRY.size + 1,
                        MXF_RIP_ENTRY.size)]
        if end - value < MXF_RIP_LENGTH.size \
                or MXF_RIP_LENGTH.unpack_from(buf, end - MXF_RIP_LENGTH.size)[0] != end - at:
            status, detail = DAMAGED, "the random index pack's length is wrong"
        elif sorted(listed) != sorted(partitions):
            status, detail = DAMAGED, "the random index pack does not list the partitions"
    return Carved(start, pos - start, "mxf", "mxf", status, detail, [], Meta(), [])


# 15. 7z -------------------------------------------------------------------------------
# The start header gives the end header's place; a cut archive's first LZMA stream
# is salvaged (salvage_7z).

SALVAGE_MAX_RATIO = 64      # a salvaged 7z stream stops at 64 times its packed size


SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
SEVEN_ZIP_START = struct.Struct("<6sBBIQQI")    # magic, version, CRC, next header offset/size/CRC
SEVEN_ZIP_START_SIZE = 32
SEVEN_ZIP_HEADER_IDS = (0x01, 0x17)             # Header, EncodedHeader
LZMA_DICT_SIZE = 1 << 26                        # 64 MiB: covers 7-Zip's presets up to -mx9
LZMA1_PROPERTIES = {"lc": 3, "lp": 0, "pb": 2}  # 7-Zip's defaults (properties byte 0x5D)
SALVAGE_CHUNK = 1 << 16
SALVAGE_SUFFIX = ".salvaged"


def carve_7z(buf, start, limit, options):
    """A 7z archive: the start header gives the end header's place, both CRC-checked."""
    if not wanted(["7z"], options):
        return None
    if limit - start < SEVEN_ZIP_START_SIZE:
        raise FormatError("no room for a 7z start header")
    _, major, _minor, crc, offset, size, next_crc = SEVEN_ZIP_START.unpack_from(buf, start)
    if major != 0 or zlib.crc32(buf[start + 12:start + 32]) != crc:
        raise FormatError("the 7z start header's CRC does not match")
    header = start + SEVEN_ZIP_START_SIZE + offset
    end = header + size
    if not size:
        status, detail = COMPLETE, ""                   # an empty archive
    elif end > limit:
        status, detail = TRUNCATED, "the dump ends before the end header (%d of %d bytes)" % (
            limit - start, end - start)
    elif zlib.crc32(buf[header:end]) != next_crc or buf[header] not in SEVEN_ZIP_HEADER_IDS:
        status, detail = DAMAGED, "the end header at +%d is not there" % (header - start)
    else:
        status, detail = COMPLETE, ""
    return Carved(start, min(end, limit) - start, "7z", "7z", status, detail, [], Meta(), [])


def salvage_7z(dump, start, end, fd, checkpoint):
    """Decode an archive's first packed stream into fd, as far as it goes.

    The headers that named the method are lost, so it is guessed from the stream's
    first bytes, as 7-Zip's recovery guide does: LZMA starts 00 then a byte below 80;
    LZMA2 starts with a chunk that resets the dictionary (01, or E0 and up). Returns
    the method's name ("" when the stream is neither) and whether decoding stopped
    at SALVAGE_MAX_RATIO times the packed size."""
    first = start + SEVEN_ZIP_START_SIZE
    lead = dump.read(first, 2)
    if len(lead) < 2:
        return "", False
    if lead[0] == 0 and lead[1] < 0x80:
        method, spec = "LZMA", dict(LZMA1_PROPERTIES, id=lzma.FILTER_LZMA1)
    elif lead[0] == 1 or lead[0] >= 0xE0:
        method, spec = "LZMA2", {"id": lzma.FILTER_LZMA2}
    else:
        return "", False
    spec["dict_size"] = LZMA_DICT_SIZE
    decoder = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[spec])
    room = SALVAGE_MAX_RATIO * (end - first)
    pos = first
    while not decoder.eof:
        checkpoint()
        if decoder.needs_input:
            chunk = dump.read(pos, min(SALVAGE_CHUNK, end - pos)) if pos < end else b""
            if not chunk:
                break                   # the packed stream is all used
            pos += len(chunk)
        else:
            chunk = b""                 # the decoder still holds output of what it had
        try:
            data = decoder.decompress(chunk, max_length=min(room, SALVAGE_CHUNK))
        except lzma.LZMAError:
            break
        write_all(fd, data)
        room -= len(data)
        if not room:
            return method, not decoder.eof
    return method, False


# 16. The formats ----------------------------------------------------------------------
# Every type the tool carves, in one table: every other lookup is made from it.

ISOBMFF = "ftyp"            # the family of the ISO-BMFF files, found by their ftyp box


class Format(NamedTuple):
    family: str             # the carver's name, shared by the types it tells apart
    carve: object           # carve(buf, start, limit, options): see section 7
    magic: tuple            # byte strings a file of the family holds at magic_at
    magic_at: int           # (an M2TS packet's sync byte is 4 bytes in)
    aligned: bool           # it starts at a sector boundary (ftyp: at any byte)
    extension: str          # its usual one (the carver may choose another: .hif, .3g2)
    rejoined: bool          # its own structure places its bytes all through it, so it may
                            # be put back together: tables (find_pieces), or a JPEG's MCUs
    proven: bool            # its checks reach into its data, so a wrong join shows (a
                            # WAV's samples or a TIFF's strips check nothing)


def iso_bmff(kind, extension=None, rejoined=True):
    return Format(ISOBMFF, carve_ftyp, (FTYP,), FTYP_AT, False, extension or kind,
                  rejoined, rejoined)


def sector(family, carve, magic, kind, at=0):
    return Format(family, carve, tuple(magic), at, True, kind, False, False)


FORMATS = dict([
    ("cr3", iso_bmff("cr3")),
    ("crm", iso_bmff("crm")),
    ("heif", iso_bmff("heif", HEIF_EXTENSION)),
    ("mp4", iso_bmff("mp4")),
    ("mov", iso_bmff("mov")),
    ("3gp", iso_bmff("3gp", rejoined=False)),
    ("jpg", Format("JPEG", carve_jpeg, (JPEG_MAGIC,), 0, True, "jpg", True, True)),
] + [(kind, sector("RIFF", carve_riff, [RIFF_MAGIC], kind)) for kind in RIFF_FORMS.values()]
  + [(kind, sector("TIFF", carve_tiff, TIFF_MAGICS, kind)) for kind in TIFF_TYPES] + [
    ("crw", sector("CRW", carve_crw, [CRW_MAGIC], "crw")),
    ("raf", sector("RAF", carve_raf, [RAF_MAGIC], "raf")),
    ("x3f", sector("X3F", carve_x3f, [X3F_MAGIC], "x3f")),
    ("mts", sector("MTS", carve_mts, TS_STARTS, "mts", at=M2TS_PACKET - TS_PACKET)),
    ("ts", sector("TS", carve_plain_ts, TS_STARTS, "ts")),
    ("mxf", sector("MXF", carve_mxf, [MXF_PARTITION_KEY + bytes([MXF_HEADER])], "mxf")),
    ("7z", sector("7z", carve_7z, [SEVEN_ZIP_MAGIC], "7z")),
])

ALL_TYPES = tuple(FORMATS)
ISOBMFF_TYPES = tuple(kind for kind, fmt in FORMATS.items() if fmt.family == ISOBMFF)


class SectorFormat(NamedTuple):
    name: str               # the family
    types: tuple
    magic: tuple
    carve: object
    magic_at: int = 0


def sector_formats():
    """The families found by their magic at sector boundaries, in FORMATS' order."""
    families = {}
    for kind, fmt in FORMATS.items():
        if fmt.aligned:
            families.setdefault(fmt.family, []).append((kind, fmt))
    return [SectorFormat(family, tuple(kind for kind, _ in kinds), kinds[0][1].magic,
                         kinds[0][1].carve, kinds[0][1].magic_at)
            for family, kinds in families.items()]


SECTOR_FORMATS = sector_formats()
# the carvers by family, in scan results as an index (see Candidates)
CARVERS = dict([(ISOBMFF, carve_ftyp)] + [(fmt.name, fmt.carve) for fmt in SECTOR_FORMATS])
CARVED_FORMATS = tuple(CARVERS)
FORMAT_INDEX = {name: index for index, name in enumerate(CARVED_FORMATS)}


# 17. The card's file system: what is left of it says where clusters lie ---------------
# A file system hands out space in clusters: a file written around others is split
# at cluster boundaries. The boot sector of the FAT32 or exFAT file system (at the
# start of the dump, or of a partition of its MBR) gives the cluster size and where
# the data area (cluster heap) starts; a quick format writes a new boot sector with
# the same ones.
BOOT_SIGNATURE = b"\x55\xaa"
BOOT_SIGNATURE_AT = 510
MBR_PARTITION = struct.Struct("<4xB3xII")   # type, first sector, sectors
MBR_PARTITIONS_AT = 446
FAT32_BPB = struct.Struct("<HBHB")          # bytes per sector, sectors per cluster,
FAT32_BPB_AT = 11                           # reserved sectors, FATs
FAT32_FAT_SIZE = struct.Struct("<I")        # sectors per FAT
FAT32_FAT_SIZE_AT = 36
FAT32_MARK, FAT32_MARK_AT = b"FAT32   ", 82
EXFAT_MARK, EXFAT_MARK_AT = b"EXFAT   ", 3
EXFAT_HEAP = struct.Struct("<I")            # the cluster heap's first sector
EXFAT_HEAP_AT = 88
EXFAT_SHIFTS_AT = 108                       # bytes per sector, sectors per cluster: log2
MAX_CLUSTER = 32 << 20                      # exFAT's largest


class Geometry(NamedTuple):
    cluster: int = 0        # bytes; 0 when no boot sector says
    data_start: int = 0     # where cluster 2, the first of the data area, lies in the dump


FAT32_ROOT = struct.Struct("<I")            # the root folder's first cluster
FAT32_ROOT_AT = 44
FAT32_TOTAL = struct.Struct("<I")           # sectors in the file system
FAT32_TOTAL_AT = 32
FAT32_BACKUP_SECTOR = 6                     # where mkfs puts the boot sector's copy
EXFAT_FAT = struct.Struct("<IIII")          # FAT's first sector and length, heap's
EXFAT_FAT_AT = 80                           # first sector, cluster count
EXFAT_ROOT = struct.Struct("<I")
EXFAT_ROOT_AT = 96
EXFAT_BACKUP_SECTOR = 12                    # the backup boot region's first sector
FAT_MEDIA = 0xF8                            # a fixed disk's: FAT entry 0 is 0x?FFFFFF8
GPT_HEADER = b"EFI PART"
GPT_ENTRIES = struct.Struct("<QII")         # first sector of the entries, count, size
GPT_ENTRIES_AT = 72
GPT_ENTRY = struct.Struct("<16s16sQQ")      # type, own id, first and last sector
MAX_GPT_ENTRIES = 128
BOOT_SEARCH = 64 << 20      # how far into the dump a boot sector is looked for at any byte
BOOT_MARKS = ((FAT32_MARK, FAT32_MARK_AT), (EXFAT_MARK, EXFAT_MARK_AT))
MAX_BOOT_CANDIDATES = 64    # per 8 MiB searched: a hostile dump may be full of marks


class Volume(NamedTuple):
    """A FAT32 or exFAT file system as its boot sector describes it (dump offsets)."""
    kind: str               # "FAT32" or "exFAT"
    base: int               # its first byte: the boot sector
    cluster: int
    data_start: int         # cluster 2
    fat: int                # the first FAT
    fat_size: int           # its size in bytes
    root: int               # the root folder's first cluster
    clusters: int           # the data area's, as the boot sector counts them

    @property
    def geometry(self):
        return Geometry(self.cluster, self.data_start)


def boot_volume(sector, base=0):
    """The Volume a FAT32 or exFAT boot sector at dump offset base describes, or None."""
    if len(sector) < SECTOR_SIZE or sector[BOOT_SIGNATURE_AT:SECTOR_SIZE] != BOOT_SIGNATURE:
        return None
    if sector[EXFAT_MARK_AT:EXFAT_MARK_AT + 8] == EXFAT_MARK:
        if not 9 <= sector[EXFAT_SHIFTS_AT] <= 12 or sector[EXFAT_SHIFTS_AT + 1] > 25:
            return None
        per_sector = 1 << sector[EXFAT_SHIFTS_AT]
        size = per_sector << sector[EXFAT_SHIFTS_AT + 1]
        fat, fat_sectors, heap, clusters = EXFAT_FAT.unpack_from(sector, EXFAT_FAT_AT)
        (root,) = EXFAT_ROOT.unpack_from(sector, EXFAT_ROOT_AT)
        kind, data = "exFAT", heap * per_sector
    elif sector[FAT32_MARK_AT:FAT32_MARK_AT + 8] == FAT32_MARK:
        per_sector, per_cluster, reserved, fats = FAT32_BPB.unpack_from(sector, FAT32_BPB_AT)
        (fat_sectors,) = FAT32_FAT_SIZE.unpack_from(sector, FAT32_FAT_SIZE_AT)
        (total,) = FAT32_TOTAL.unpack_from(sector, FAT32_TOTAL_AT)
        (root,) = FAT32_ROOT.unpack_from(sector, FAT32_ROOT_AT)
        size = per_sector * per_cluster
        fat, heap = reserved, reserved + fats * fat_sectors
        clusters = (total - heap) // per_cluster if per_cluster and total > heap else 0
        kind, data = "FAT32", heap * per_sector
    else:
        return None
    if not SECTOR_SIZE <= size <= MAX_CLUSTER or size & (size - 1):
        return None
    return Volume(kind, base, size, base + data, base + fat * per_sector,
                  fat_sectors * per_sector, root, clusters)


def boot_geometry(sector, base=0):
    """The Geometry a FAT32 or exFAT boot sector at dump offset base gives, or None."""
    volume = boot_volume(sector, base)
    return volume.geometry if volume else None


def partition_starts(dump, first):
    """Where the partitions of the MBR (first: the dump's first sector) or of the GPT
    behind it begin, in the dump."""
    if first[BOOT_SIGNATURE_AT:SECTOR_SIZE] != BOOT_SIGNATURE:
        return []
    starts = []
    for index in range(4):
        kind, start, sectors = MBR_PARTITION.unpack_from(first, MBR_PARTITIONS_AT + 16 * index)
        if kind and sectors and start:
            starts.append(start * SECTOR_SIZE)
    header = dump.read(SECTOR_SIZE, SECTOR_SIZE)
    if header[:len(GPT_HEADER)] == GPT_HEADER:
        at, count, size = GPT_ENTRIES.unpack_from(header, GPT_ENTRIES_AT)
        if GPT_ENTRY.size <= size <= SECTOR_SIZE:
            table = dump.read(at * SECTOR_SIZE, min(count, MAX_GPT_ENTRIES) * size)
            for pos in range(0, len(table) - GPT_ENTRY.size + 1, size):
                kind, _, start, _ = GPT_ENTRY.unpack_from(table, pos)
                if any(kind) and start:
                    starts.append(start * SECTOR_SIZE)
    return [start for start in starts if start < dump.size]


def fat_where_said(dump, volume):
    """True when the volume's first FAT starts as a FAT does (its media entry)."""
    head = dump.read(volume.fat, 4)
    return len(head) == 4 and head[0] == FAT_MEDIA and head[1:3] == b"\xff\xff"


def searched_volume(dump):
    """The first boot sector, or backup copy of one, in the dump's first BOOT_SEARCH
    bytes, at any byte, whose FAT lies where it says: what is left when the dump
    starts off the sector grid, or the partition table and boot sector are gone."""
    overlap = SECTOR_SIZE
    for chunk_at in range(0, min(dump.size, BOOT_SEARCH), COPY_CHUNK):
        chunk = dump.read(chunk_at, COPY_CHUNK + overlap)
        hits = sorted(chunk_at + hit - at for mark, at in BOOT_MARKS
                      for hit in find_all(chunk, mark) if hit - at < COPY_CHUNK)
        for start in hits[:MAX_BOOT_CANDIDATES]:
            if start < 0:
                continue
            sector = dump.read(start, SECTOR_SIZE)
            for backup in (0, FAT32_BACKUP_SECTOR, EXFAT_BACKUP_SECTOR):
                base = start - backup * SECTOR_SIZE
                volume = boot_volume(sector, base) if base >= 0 else None
                if volume and fat_where_said(dump, volume):
                    return volume
    return None


def find_all(data, needle):
    """Every offset of needle in data."""
    hit = data.find(needle)
    while hit >= 0:
        yield hit
        hit = data.find(needle, hit + 1)


def find_volume(dump):
    """The card's FAT32 or exFAT file system: its boot sector at the dump's start or
    at a partition's (MBR or GPT), else one found by searching; None when none is."""
    first = dump.read(0, SECTOR_SIZE)
    found = boot_volume(first)
    if found:
        return found
    for base in partition_starts(dump, first):
        found = boot_volume(dump.read(base, SECTOR_SIZE), base)
        if found:
            return found
    return searched_volume(dump)


def card_geometry(dump):
    """The Geometry of the card's file system: Geometry() when no boot sector says."""
    volume = find_volume(dump)
    return volume.geometry if volume else Geometry()


# A FAT directory is a run of 32-byte entries. A file's short (8.3) entry holds its
# first cluster, size and times; the long name, when it has one, lies in the LFN
# entries just before it, last part first, each with the short name's checksum. A
# deleted entry's first byte is E5: its short name lost its first character, so
# only long-name entries that check out can name it - never a guess.
FAT_ENTRY = struct.Struct("<11sBBBHHHHHHHI")    # name, attributes, case, created (10 ms,
FAT_ENTRY_SIZE = FAT_ENTRY.size                  # time, date), accessed, cluster high,
                                                 # modified (time, date), cluster low, size
LFN_ENTRY = struct.Struct("<B10sBBB12sH4s")      # order, name 1, attributes, type,
                                                 # checksum, name 2, cluster (0), name 3
LFN_ATTRIBUTES = 0x0F
LFN_LAST = 0x40                                  # on the order of a name's last part
LFN_CHARS = 13                                   # per entry
FAT_DELETED = 0xE5
FAT_KANJI_E5 = 0x05                              # a name whose first byte really is E5
FAT_END = 0x00                                   # no entry from here on
FAT_DIRECTORY = 0x10
FAT_VOLUME = 0x08
FAT_ATTRIBUTE_BITS = 0x3F
SHORT_NAME_BAD = frozenset(b'"*+,./:;<=>?[\\]|') | frozenset(range(0x20))
DOT_NAMES = {b".          ": ".", b"..         ": ".."}    # a folder's own and its parent


class DirEntry(NamedTuple):
    name: str               # the long name, or the 8.3 one; "" when it cannot be known
    short_name: str         # as the entry holds it ("" for a deleted one: its first
    attributes: int         # character is gone)
    first_cluster: int
    size: int
    modified: str           # "YYYY-MM-DDTHH:MM:SS", FAT's local time (2-second steps)
    deleted: bool
    offset: int             # of the (short, or exFAT File) entry, in the buffer
    contiguous: bool = False    # exFAT's NoFatChain: the file lies in one run


def lfn_checksum(short):
    """The checksum of an 11-byte short name that its LFN entries carry."""
    total = 0
    for byte in short:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


def fat_time(date, time_):
    """A FAT date and time as ISO text, or "" when they are not a real moment."""
    year, month, day = 1980 + (date >> 9), (date >> 5) & 15, date & 31
    hour, minute, second = time_ >> 11, (time_ >> 5) & 63, 2 * (time_ & 31)
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60
            and second < 60):
        return ""
    return "%04d-%02d-%02dT%02d:%02d:%02d" % (year, month, day, hour, minute, second)


def short_name_text(raw):
    """'IMG_0001.CR3' from b'IMG_0001CR3', or None when it is no valid 8.3 name."""
    if any(byte in SHORT_NAME_BAD for byte in raw) or raw[0] == 0x20:
        return None
    base, ext = raw[:8].rstrip(b" "), raw[8:].rstrip(b" ")
    text = base.decode("latin-1") + ("." + ext.decode("latin-1") if ext else "")
    return text


def lfn_part(raw):
    """The up to 13 characters of one LFN entry (UTF-16), cut at its end marker."""
    order, first, _attributes, _kind, _checksum, second, _cluster, third = \
        LFN_ENTRY.unpack(raw)
    chars = (first + second + third).decode("utf-16-le", "replace")
    return chars.split("\0", 1)[0]


def fat_entries(buf, start, end):
    """The file and folder entries of the FAT directory entries in buf[start:end]
    (live and deleted), with their long names where those check out."""
    found = []
    parts, want_checksum, next_order = [], None, None
    for pos in range(start, end - FAT_ENTRY_SIZE + 1, FAT_ENTRY_SIZE):
        raw = bytes(buf[pos:pos + FAT_ENTRY_SIZE])
        first = raw[0]
        if first == FAT_END:                # free; the next cluster may be another folder's
            parts, want_checksum, next_order = [], None, None
            continue
        deleted = first == FAT_DELETED
        if raw[11] == LFN_ATTRIBUTES:
            order = first & ~LFN_LAST
            if deleted:                             # a deleted name's parts: order lost
                if parts and (next_order is not None or raw[13] != want_checksum):
                    parts = []
                parts, want_checksum, next_order = [lfn_part(raw)] + parts, raw[13], None
                continue
            if first & LFN_LAST:            # a name begins with its last part: one
                parts, want_checksum, next_order = [], raw[13], order   # begun before
            if order != next_order or raw[13] != want_checksum or not order:
                parts, want_checksum, next_order = [], None, None
                continue
            parts.append(lfn_part(raw))
            next_order = order - 1
            continue
        (short, attributes, _case, _tenths, _ctime, _cdate, _adate, high, mtime, mdate,
         low, size) = FAT_ENTRY.unpack(raw)
        long_name = ""
        if parts and want_checksum is not None and (deleted or next_order == 0):
            long_name = "".join(parts) if deleted else "".join(reversed(parts))
            if deleted:                 # its first character, as the long name gives it
                short = long_name[:1].upper().encode("latin-1", "replace") + short[1:]
            if lfn_checksum(short) != want_checksum:
                long_name = ""
        parts, want_checksum, next_order = [], None, None
        if attributes & ~FAT_ATTRIBUTE_BITS or attributes & FAT_VOLUME:
            continue
        text = DOT_NAMES.get(short) or short_name_text(short)
        if text is None:
            continue
        if deleted and not long_name:
            text = ""                   # its first character is gone: no name
        found.append(DirEntry(long_name or text, text, attributes, high << 16 | low, size,
                              fat_time(mdate, mtime), deleted, pos))
    return found


# An exFAT directory holds entry sets: a File entry (85), a Stream Extension (C0:
# first cluster, size, whether the file lies in one run, "NoFatChain"), then File
# Name entries (C1, 15 characters each). The File entry's checksum covers the whole
# set, and the stream's hash covers the name in capitals: both must hold. A deleted
# set keeps every byte but the in-use bit of each type (05, 40, 41).
EXFAT_FILE, EXFAT_STREAM, EXFAT_NAME = 0x85, 0xC0, 0xC1
EXFAT_IN_USE = 0x80
EXFAT_FILE_ENTRY = struct.Struct("<BBHH2xIIIBBBBB7x")   # type, secondaries, checksum,
                                                         # attributes, created, modified,
                                                         # accessed, 10 ms (2), offsets (3)
EXFAT_STREAM_ENTRY = struct.Struct("<BBxBH2xQ4xIQ")      # type, flags, name length, name
                                                         # hash, valid size, cluster, size
EXFAT_NO_FAT_CHAIN = 0x02
EXFAT_NAME_CHARS = 15
EXFAT_MAX_SECONDARIES = 2 + 255 // EXFAT_NAME_CHARS + 1


def exfat_checksum(data, skip=()):
    """exFAT's 16-bit rotate-and-add over data (the set's bytes, but for skip)."""
    total = 0
    for index, byte in enumerate(data):
        if index not in skip:
            total = (((total & 1) << 15) + (total >> 1) + byte) & 0xFFFF
    return total


def exfat_time(stamp):
    """An exFAT timestamp as ISO text, or "" when it is not a real moment."""
    return fat_time(stamp >> 16, stamp & 0xFFFF)


def exfat_entries(buf, start, end):
    """The file and folder entry sets, live and deleted, of the exFAT directory
    entries in buf[start:end] whose checksum and name hash hold."""
    found = []
    pos = start
    while pos + FAT_ENTRY_SIZE <= end:
        entry = exfat_set_at(buf, pos, end)
        if entry is None:
            pos += FAT_ENTRY_SIZE
            continue
        found.append(entry)
        pos += FAT_ENTRY_SIZE * (1 + buf[pos + 1])
    return found


def exfat_set_at(buf, pos, end):
    """The DirEntry of the entry set whose File entry is at pos (within end), or None."""
    if buf[pos] | EXFAT_IN_USE != EXFAT_FILE:
        return None
    deleted = not buf[pos] & EXFAT_IN_USE
    (_, count, checksum, attributes, _created, modified, _accessed, _c10, _m10,
     _co, _mo, _ao) = EXFAT_FILE_ENTRY.unpack_from(buf, pos)
    size_of_set = FAT_ENTRY_SIZE * (count + 1)
    if not 2 <= count <= EXFAT_MAX_SECONDARIES or pos + size_of_set > end:
        return None
    entries = bytearray(buf[pos:pos + size_of_set])
    for at in range(0, size_of_set, FAT_ENTRY_SIZE):
        entries[at] |= EXFAT_IN_USE             # as it was when the set was written
    return exfat_set(entries, count, checksum, attributes, modified, deleted, pos)


def exfat_set(entries, count, checksum, attributes, modified, deleted, pos):
    """The DirEntry of one entry set (its in-use bits set again), or None."""
    if exfat_checksum(entries, skip=(2, 3)) != checksum or entries[32] != EXFAT_STREAM:
        return None
    (_, flags, length, name_hash, _valid, cluster, size) = \
        EXFAT_STREAM_ENTRY.unpack_from(entries, FAT_ENTRY_SIZE)
    names = [entries[at:at + FAT_ENTRY_SIZE] for at in range(2 * FAT_ENTRY_SIZE,
                                                               len(entries), FAT_ENTRY_SIZE)]
    if not length or any(name[0] != EXFAT_NAME for name in names) \
            or len(names) * EXFAT_NAME_CHARS < length:
        return None
    name = b"".join(bytes(entry[2:]) for entry in names)[:2 * length].decode(
        "utf-16-le", "replace")
    if exfat_checksum(name.upper().encode("utf-16-le")) != name_hash:
        return None                 # an up-case table of its own: the name is not sure
    return DirEntry(name, "", attributes, cluster, size, exfat_time(modified), deleted, pos,
                    bool(flags & EXFAT_NO_FAT_CHAIN))


# A FAT folder's first cluster starts with its "." entry (naming that cluster) and
# its ".." entry (naming its parent's; 0 for the root). They survive a quick format
# where the folder's clusters were, and two of them tell the cluster size and where
# cluster 2 lies, when no boot sector does.
DOT_ENTRY = re.compile(re.escape(b".          ") + b"[\\x10-\\x17\\x30-\\x37]", re.S)
DOTDOT_NAME = b"..         "


class Folder(NamedTuple):
    offset: int             # where its first cluster lies in the dump
    cluster: int            # that cluster's number, as its "." entry says
    parent: int             # its parent's first cluster (0: the root)


def dot_folders(buf, start, end):
    """The FAT folders whose first cluster starts (on a sector) in buf[start:end]."""
    found = []
    for match in DOT_ENTRY.finditer(buf, start, end):
        pos = match.start()
        if pos % SECTOR_SIZE or pos + 2 * FAT_ENTRY_SIZE > len(buf):
            continue
        dot = FAT_ENTRY.unpack_from(buf, pos)
        dotdot = FAT_ENTRY.unpack_from(buf, pos + FAT_ENTRY_SIZE)
        if dotdot[0] != DOTDOT_NAME or not dotdot[1] & FAT_DIRECTORY:
            continue
        own = dot[7] << 16 | dot[10]
        if own >= 2:
            found.append(Folder(pos, own, dotdot[7] << 16 | dotdot[10]))
    return found


def folders_geometry(folders):
    """The Geometry most folders agree on (each pair: cluster size from their
    distance and numbers, then cluster 2's place): Geometry() unless two agree."""
    votes = collections.Counter()
    for first, second in zip(folders, folders[1:]):
        if second.cluster == first.cluster:
            continue
        size, rest = divmod(second.offset - first.offset, second.cluster - first.cluster)
        if rest or size < SECTOR_SIZE or size > MAX_CLUSTER or size & (size - 1):
            continue
        votes[Geometry(size, first.offset - (first.cluster - 2) * size)] += 1
    if not votes:
        return Geometry()
    geometry, count = votes.most_common(1)[0]
    return geometry if count >= 1 and geometry.data_start >= 0 else Geometry()


# A folder's name is in its parent's entries (a folder entry naming its first
# cluster), the parent's in the grandparent's, up to the root. A quick format
# rewrites the root: a DCF folder ("100CANON", "101_FUJI") whose parent's name is
# lost is under DCIM, where the DCF standard puts it, and an AVCHD folder under
# PRIVATE, where camcorders put it (PRIVATE/AVCHD/BDMV/STREAM/00000.MTS); any other
# such folder keeps no path.
DCF_FOLDER = re.compile(r"[1-9][0-9]{2}[0-9A-Z_]{5}\Z")
DCF_ROOT = "DCIM"
AVCHD_FOLDER, AVCHD_ROOT = "AVCHD", "PRIVATE"
MAX_FOLDER_DEPTH = 16


def folder_paths(parents, entries_of, root):
    """{first cluster: (path on the card, reached)} of the folders whose path can be
    told; reached: from the root, through live entries (else the folder is orphaned).

    parents: {folder's first cluster: its parent's (0: the root)}, from ".." entries
    or from the folder entry naming it; entries_of: {first cluster: [DirEntry]} of
    each folder whose entries were read, the root's (first cluster root) too."""
    names, live = {}, {}
    for cluster, entries in entries_of.items():
        for entry in entries:
            child = entry.first_cluster
            if (entry.attributes & FAT_DIRECTORY and entry.name
                    and entry.name not in DOT_NAMES.values()
                    and parents.get(child) == (0 if cluster == root else cluster)
                    and (child not in names or live[child] < (not entry.deleted))):
                names[child], live[child] = entry.name, not entry.deleted
    paths = {}
    for cluster in parents:
        parts, at, reached = [], cluster, True
        while at in names and len(parts) < MAX_FOLDER_DEPTH:
            parts.append(names[at])
            reached = reached and live[at]
            at = parents.get(at, -1)
        if parts and at == 0:
            paths[cluster] = ("/".join(reversed(parts)), reached)
        elif len(parts) == 1 and DCF_FOLDER.match(parts[0]):
            paths[cluster] = (DCF_ROOT + "/" + parts[0], False)
        elif parts and parts[-1] == AVCHD_FOLDER and parents.get(at) == 0:
            paths[cluster] = ("/".join([AVCHD_ROOT] + parts[::-1]), False)
    return paths


# A carved file gets a name only from a unique entry that agrees with it on two of
# three: its first cluster, its exact size, and (when both have one) the time, the
# entry's against the capture time. A deleted FAT32 entry may have lost the high 16
# bits of its cluster: the low 16 make it a candidate, but do not count as agreeing.
LOW_CLUSTER_BITS = 0xFFFF


class Naming(NamedTuple):
    path: str               # on the card: "DCIM/100CANON/IMG_1234.CR3"
    source: str             # "entry", "deleted entry" or "orphan directory"
    fs_time: str            # the entry's modification time


def cluster_of(offset, geometry):
    """The number of the cluster that starts at offset, or None when none does."""
    if not geometry.cluster or offset < geometry.data_start:
        return None
    number, rest = divmod(offset - geometry.data_start, geometry.cluster)
    return None if rest else number + 2


def name_for(cluster, size, capture, candidates):
    """(Naming or None, why not) for the file of size bytes carved at the start of
    cluster, captured at capture (or ""), from candidates: [(DirEntry, folder path
    or None, reached)] of the entries that may have that first cluster."""
    fits = []
    for entry, path, reached in candidates:
        if not entry.name or entry.attributes & FAT_DIRECTORY:
            continue
        exact = entry.first_cluster == cluster
        if not exact and not (entry.deleted and entry.first_cluster == cluster & LOW_CLUSTER_BITS):
            continue
        timed = bool(capture) and parse_time(entry.modified) is not None \
            and parse_time(capture) is not None
        agree = exact + (entry.size == size) + (timed and times_agree(entry.modified, capture))
        if agree >= 2:
            fits.append((entry, path, reached))
    if not fits:
        return None, ""
    if len(fits) > 1:
        return None, "%d entries fit it" % len(fits)
    entry, path, reached = fits[0]
    source = "deleted entry" if entry.deleted else "entry" if reached else "orphan directory"
    return Naming("/".join(filter(None, [path, entry.name])), source, entry.modified), ""


# A live file on an intact FAT is read through its chain, however fragmented it is:
# FAT32's entry for a cluster holds the next one's number (28 bits), or the end.
FAT32_LINK = struct.Struct("<I")
FAT32_ENTRY_MASK = 0x0FFFFFFF
FAT32_CHAIN_END = 0x0FFFFFF8            # and above
FAT32_BAD = 0x0FFFFFF7
FAT32_FATS_AT = 16                      # in the boot sector: how many FATs, and
FAT32_RESERVED_AT = 14                  # the sectors reserved before the first


class ChainBroken(FormatError):
    """A FAT chain that does not lead to its end: how many clusters it went through."""

    def __init__(self, message, walked):
        super().__init__(message)
        self.walked = walked


def fat_chain(fat, first, clusters):
    """The clusters of the chain that starts at first, of at most `clusters` (the
    file's size in clusters) and ending where the FAT says: ChainBroken for a chain
    that breaks, loops, leaves the FAT, or runs longer than the file."""
    chain, seen, cluster = [], set(), first
    count = len(fat) // 4
    while True:
        if not 2 <= cluster < count or cluster in seen:
            raise ChainBroken("the FAT chain from cluster %d breaks at %d" % (first, cluster),
                              len(chain))
        chain.append(cluster)
        seen.add(cluster)
        if len(chain) > clusters:
            raise ChainBroken("the FAT chain from cluster %d is longer than its file" % first,
                              len(chain))
        (value,) = FAT32_LINK.unpack_from(fat, 4 * cluster)
        value &= FAT32_ENTRY_MASK
        if value >= FAT32_CHAIN_END:
            return chain
        if value in (0, FAT32_BAD):
            raise ChainBroken("the FAT chain from cluster %d breaks at %d" % (first, cluster),
                              len(chain))
        cluster = value


def chain_pieces(chain, size, geometry):
    """[(dump offset, length)] of a file of size bytes in the clusters of chain: one
    piece per run of consecutive clusters."""
    pieces, left = [], size
    for cluster in chain:
        offset = geometry.data_start + (cluster - 2) * geometry.cluster
        take = min(geometry.cluster, left)
        if pieces and pieces[-1][0] + pieces[-1][1] == offset:
            pieces[-1] = (pieces[-1][0], pieces[-1][1] + take)
        else:
            pieces.append((offset, take))
        left -= take
        if not left:
            break
    return pieces


# Directory clusters are found wherever they lie (in use, deleted, left by a format)
# by a sieve the scan processes run on each region: C-speed slices pull out the
# bytes a directory sector has in fixed places (the attribute byte of its first
# entries; exFAT's entry types, 32 bytes apart), and only the sectors where they fit
# are parsed, in Python.
FAT_ATTRIBUTE_AT = 11
FAT_ATTRIBUTE_FITS = bytes(1 if value == LFN_ATTRIBUTES or (
    value and not value & ~FAT_ATTRIBUTE_BITS) else 0 for value in range(256))
FREE_ENTRY_FITS = bytes([1] + [0] * 255)
SIEVED_ENTRIES = 4          # of each sector: the first fits, the next ones fit or are free
ENTRIES_PER_SECTOR = SECTOR_SIZE // FAT_ENTRY_SIZE
LFN_TYPE_AT, LFN_CLUSTER_AT = 12, 26
LFN_MAX_ORDER = 20                              # 255 characters
# An entry set begins with a File, a Stream extension and a File name entry, each in
# use or deleted: their type bytes, one an entry, are translated to 1, 2, 3 (others to
# 0) so that one search for a literal finds them all, at C speed.
EXFAT_SET_CLASSES = bytes(1 if value in (0x85, 0x05) else 2 if value in (0xC0, 0x40)
                          else 3 if value in (0xC1, 0x41) else 0 for value in range(256))
EXFAT_SET_START = b"\x01\x02\x03"

def _fits(buf, first, count, at, table):
    """An int whose byte i is 1 when table says so of buf[first + at + i * SECTOR_SIZE]."""
    picked = buf[first + at:first + at + count * SECTOR_SIZE:SECTOR_SIZE]
    return int.from_bytes(picked.translate(table), "big")


def fat_entry_fits(raw):
    """True when 32 bytes are a FAT directory entry (short, long-name or free)."""
    if raw[0] == FAT_END:
        return True
    attributes = raw[FAT_ATTRIBUTE_AT]
    if attributes == LFN_ATTRIBUTES:
        order = raw[0] & ~LFN_LAST
        return (raw[LFN_TYPE_AT] == 0 and raw[LFN_CLUSTER_AT:LFN_CLUSTER_AT + 2] == b"\0\0"
                and (raw[0] == FAT_DELETED or 1 <= order <= LFN_MAX_ORDER))
    if not FAT_ATTRIBUTE_FITS[attributes]:
        return False
    if attributes & FAT_VOLUME:                     # the root's volume label
        return all(byte >= 0x20 for byte in raw[:11])
    short = raw[:11]
    if raw[0] in (FAT_DELETED, FAT_KANJI_E5):
        short = b"_" + short[1:]
    return short in DOT_NAMES or short_name_text(short) is not None


def fat_directory_sectors(buf, first, stop, phase=0):
    """The sectors (on the grid of phase) in [first, stop) that are FAT directory
    sectors: every entry fits, and one at least is not free."""
    first += (phase - first) % SECTOR_SIZE
    count = max(0, (min(stop, len(buf)) - first) // SECTOR_SIZE)
    if not count:
        return []
    fits = _fits(buf, first, count, FAT_ATTRIBUTE_AT, FAT_ATTRIBUTE_FITS)
    for index in range(1, SIEVED_ENTRIES):
        at = index * FAT_ENTRY_SIZE
        fits &= (_fits(buf, first, count, at + FAT_ATTRIBUTE_AT, FAT_ATTRIBUTE_FITS)
                 | _fits(buf, first, count, at, FREE_ENTRY_FITS))
    marks = fits.to_bytes(count, "big")
    found = []
    index = marks.find(1)
    while index >= 0:
        pos = first + index * SECTOR_SIZE
        if all(fat_entry_fits(buf[at:at + FAT_ENTRY_SIZE])
               for at in range(pos, pos + SECTOR_SIZE, FAT_ENTRY_SIZE)):
            found.append(pos)
        index = marks.find(1, index + 1)
    return found


def exfat_sets(buf, first, stop, phase=0):
    """The exFAT entry sets (DirEntry) whose File entry lies in [first, stop), on
    the 32-byte grid of phase, and whose checksum and name hash hold."""
    first += (phase - first) % FAT_ENTRY_SIZE
    end = min(stop + FAT_ENTRY_SIZE * (EXFAT_MAX_SECONDARIES + 1), len(buf))
    types = buf[first:end:FAT_ENTRY_SIZE].translate(EXFAT_SET_CLASSES)
    found = []
    for index in find_all(types, EXFAT_SET_START):
        pos = first + index * FAT_ENTRY_SIZE
        if pos < stop:
            entry = exfat_set_at(buf, pos, end)
            if entry is not None:
                found.append(entry)
                if len(found) == MAX_DIRECTORY_ENTRIES:
                    break
    return found


def directory_sieve(buf, first, stop, phase=0, kind=""):
    """(FAT directory sectors, exFAT entry sets) in [first, stop): what a scan
    process sends back of a region before it is carved. kind: the card's file
    system, whose folders alone are looked for ("": not known, both)."""
    return (fat_directory_sectors(buf, first, stop, phase) if kind != "exFAT" else [],
            exfat_sets(buf, first, stop, phase) if kind != "FAT32" else [])


def sector_runs(sectors):
    """[(start, end)] of the runs of adjacent sectors, from sorted sector offsets."""
    runs = []
    for pos in sectors:
        if runs and runs[-1][1] == pos:
            runs[-1][1] = pos + SECTOR_SIZE
        else:
            runs.append([pos, pos + SECTOR_SIZE])
    return [tuple(run) for run in runs]


# What is left of the file system, put together: each entry is in the folder whose
# clusters hold it. A folder's clusters are its FAT chain while the FAT has one; when
# the FAT is wiped (a format), FAT32 folders are taken to run on over the directory
# sectors that follow their first cluster, up to the next folder's; exFAT ones say
# it themselves (NoFatChain and their size). An entry in no known folder is from an
# "orphan directory": it may name a file, but no path.
MAX_FAT_READ = 64 << 20         # a FAT larger than this (a card over 512 GB) is not read
MAX_FOLDER_CLUSTERS = 1 << 16   # a folder's: 2 million entries
# A card of 100,000 files has 100,000 entries in a few MB of folders: a dump with
# many more is hostile, and what is read of it is bounded (memory and time)
MAX_DIRECTORY_SECTORS = 1 << 16
MAX_DIRECTORY_ENTRIES = 1 << 18
MAX_FOLDER_STEPS = 1 << 20      # clusters followed or claimed for all folders together
MAX_WRITE_DELAY = 60            # seconds between a picture's capture and its file's time
ZONE_STEP = 15 * 60             # time zones are whole quarter hours apart,
MAX_ZONE = 14 * 3600            # up to 14 hours from UTC


class FileSystem:
    """The card's file system as far as it is left: its volume (or None), the
    Geometry (from the volume, else from its folders), the entries that may name
    files as [(DirEntry, folder path or None, reached from the root)], and its FAT."""

    def __init__(self, volume=None, geometry=Geometry(), entries=(), fat=b""):
        self.volume = volume
        self.geometry = geometry
        self.entries = list(entries)
        self.fat = fat
        self._by_cluster = collections.defaultdict(list)
        for item in self.entries:
            self._by_cluster[item[0].first_cluster].append(item)

    @classmethod
    def read(cls, dump, volume, fat_sectors, exfat_found, fat=None):
        """Put together what the sieve found (see directory_sieve) with the volume
        (and its FAT, when it was read already)."""
        if fat is None:
            fat = read_fat(dump, volume)
        folders, runs, fat_found = [], sector_runs(sorted(fat_sectors)), []
        if volume is None or volume.kind == "FAT32":
            for start, end in runs:
                data = dump.read(start, end - start)
                folders += [f._replace(offset=f.offset + start)
                            for f in dot_folders(data, 0, len(data))]
                fat_found += [e._replace(offset=e.offset + start)
                              for e in fat_entries(data, 0, len(data))]
                if len(fat_found) >= MAX_DIRECTORY_ENTRIES:
                    break
        if volume is None or volume.kind == "exFAT":
            exfat_found = sorted(exfat_found, key=operator.attrgetter("offset"))
        else:
            exfat_found = []
        geometry = volume.geometry if volume else folders_geometry(folders)
        if not geometry.cluster:
            return cls(volume, geometry)
        found = [entry for entry in fat_found + exfat_found
                 if volume is None or entry.first_cluster < volume.clusters + 2]
        root = volume.root if volume else 2
        owner = folder_clusters(geometry, fat, root, folders, runs, found)
        entries_of = collections.defaultdict(list)
        for entry in found:                 # in no known folder: its cluster stands for one
            cluster = cluster_at(entry.offset, geometry)
            entries_of[owner.get(cluster, cluster)].append(entry)
        parents = {folder.cluster: folder.parent for folder in folders}
        for folder, entries in entries_of.items():
            for entry in entries:
                if (entry.attributes & FAT_DIRECTORY and entry.name not in DOT_NAMES.values()
                        and folder > 0 and entry.first_cluster not in parents):
                    parents[entry.first_cluster] = 0 if folder == root else folder
        paths = folder_paths(parents, entries_of, root)
        paths[root] = ("", True)
        named = []
        for folder, entries in entries_of.items():
            path, reached = paths.get(folder, (None, False))
            named += [(entry, path, reached) for entry in entries
                      if not entry.attributes & FAT_DIRECTORY and entry.name]
        return cls(volume, geometry, unique(named), fat)

    def naming(self, offset, size, capture=""):
        """(Naming or None, why not) of the file of size bytes carved at offset."""
        cluster = cluster_of(offset, self.geometry)
        if cluster is None:
            return None, ""
        low = cluster & LOW_CLUSTER_BITS
        candidates = self._by_cluster.get(cluster, []) + (
            self._by_cluster.get(low, []) if low != cluster else [])
        return name_for(cluster, size, capture, candidates)

    def whole_size(self, offset, size):
        """The size of the one entry with the first cluster at offset that says the
        file is longer than size, but ends in the cluster where size ends: the bytes
        its structure does not reach (a raw's padding) are the file's too, since a
        cluster holds one file. None when no such entry is."""
        cluster = cluster_of(offset, self.geometry)
        if cluster is None or not size:
            return None
        last = (size - 1) // self.geometry.cluster
        longer = {entry.size for entry, _, _ in self._by_cluster.get(cluster, ())
                  if entry.first_cluster == cluster and entry.size > size and entry.name
                  and not entry.attributes & FAT_DIRECTORY
                  and (entry.size - 1) // self.geometry.cluster == last}
        return longer.pop() if len(longer) == 1 else None

    def chain(self, offset, most=None):
        """[(offset, length)] of the live file whose entry starts at offset, as its
        FAT chain places its clusters, and that file's size; None when the FAT has no
        chain for it of exactly its size, or (most) the file is larger than most."""
        cluster = cluster_of(offset, self.geometry)
        lives = [entry for entry, _, _ in self._by_cluster.get(cluster, ())
                 if entry.first_cluster == cluster and not entry.deleted
                 and not entry.contiguous]
        if len(lives) != 1 or not self.fat:
            return None
        (entry,) = lives
        if most is not None and entry.size > most:
            return None                     # not followed: a 4 GB movie's million links
        want = -(-entry.size // self.geometry.cluster)
        try:
            chain = fat_chain(self.fat, cluster, want)
        except FormatError:
            return None
        if len(chain) != want:
            return None
        return chain_pieces(chain, entry.size, self.geometry), entry.size


    def written_in_one_run(self, offset, size):
        """True when the card's live folders and FAT say the file of size bytes at
        offset lies in one run of clusters: an entry reached from the root says so
        (exFAT's NoFatChain), or its FAT chain does. (An old folder's, left by a
        format, says nothing of what was written over it since.)"""
        cluster = cluster_of(offset, self.geometry)
        lives = [entry for entry, _, reached in self._by_cluster.get(cluster, ())
                 if reached and entry.first_cluster == cluster and not entry.deleted
                 and entry.size == size]
        if len(lives) != 1:
            return False
        if lives[0].contiguous:
            return True
        found = self.chain(offset, most=size)
        return found is not None and len(found[0]) == 1


def read_fat(dump, volume):
    """The volume's first FAT, or b"" when there is none or it is too large to read."""
    if volume and volume.fat_size <= MAX_FAT_READ:
        return dump.read(volume.fat, volume.fat_size)
    return b""


def unique(named):
    """named without repeats: the same entry found twice is one entry."""
    seen, kept = set(), []
    for entry, path, reached in named:
        key = (entry.name, entry.first_cluster, entry.size, entry.deleted, path)
        if key not in seen:
            seen.add(key)
            kept.append((entry, path, reached))
    return kept


def cluster_at(offset, geometry):
    """The number of the cluster offset lies in (a data area cluster, or below 2)."""
    return (offset - geometry.data_start) // geometry.cluster + 2


def folder_clusters(geometry, fat, root, folders, runs, entries):
    """{cluster: first cluster of the folder it belongs to} for every directory
    cluster that can be placed (see above), MAX_FOLDER_STEPS clusters at most."""
    owner = {}
    left = [MAX_FOLDER_STEPS]

    def claim(first, clusters):
        for cluster in itertools.islice(clusters, max(0, left[0])):
            owner.setdefault(cluster, first)
            left[0] -= 1

    def chain_of(first):
        most = min(MAX_FOLDER_CLUSTERS, left[0])
        if not fat or most <= 0:
            return None
        try:
            chain = fat_chain(fat, first, most)
        except ChainBroken as e:
            left[0] -= e.walked
            return None
        left[0] -= len(chain)
        return chain

    starts = {folder.offset for folder in folders}
    run_starts = [start for start, _ in runs]
    claim(root, chain_of(root) or [root])
    for folder in folders:
        chain = chain_of(folder.cluster)
        if chain is None:                       # the FAT is wiped: its run of sectors
            index = bisect.bisect_right(run_starts, folder.offset) - 1
            run_end = runs[index][1] if index >= 0 and folder.offset < runs[index][1] \
                else folder.offset + geometry.cluster
            chain, pos = [], folder.offset
            while pos < run_end and (pos == folder.offset or pos not in starts) \
                    and len(chain) < MAX_FOLDER_CLUSTERS:
                chain.append(cluster_at(pos, geometry))
                pos += geometry.cluster
        claim(folder.cluster, chain)
    for entry in entries:
        if entry.attributes & FAT_DIRECTORY and entry.name not in DOT_NAMES.values() \
                and entry.first_cluster >= 2:
            if entry.contiguous:
                count = min(-(-entry.size // geometry.cluster), MAX_FOLDER_CLUSTERS)
                claim(entry.first_cluster, range(entry.first_cluster,
                                                 entry.first_cluster + count))
            else:
                claim(entry.first_cluster, chain_of(entry.first_cluster) or [])
    return owner


def parse_time(text):
    """Seconds since the epoch of ISO text read as UTC, or None."""
    try:
        moment = datetime.datetime.strptime(text[:19], TIME_FORMAT)
    except ValueError:
        return None
    return (moment - datetime.datetime(1970, 1, 1)).total_seconds()


def times_agree(fs_time, capture):
    """True unless both times are known and no time zone makes them one moment
    (within the seconds a camera takes to write the file)."""
    first, second = parse_time(fs_time), parse_time(capture)
    if first is None or second is None:
        return True
    apart = abs(first - second)
    if apart > MAX_ZONE + MAX_WRITE_DELAY:
        return False
    off_zone = apart % ZONE_STEP
    return min(off_zone, ZONE_STEP - off_zone) <= MAX_WRITE_DELAY


# 18. Scanning -------------------------------------------------------------------------
# Where files may start (candidates_in: ftyp at any byte, the other magics at sector
# boundaries), and the scan processes that search and carve each region of the map.


def magic_by_lead_byte(formats=SECTOR_FORMATS):
    """{(where in the file, first byte of the magic): [(magic, format name)]}: what
    the sector sieve looks up."""
    table = collections.defaultdict(list)
    for fmt in formats:
        for magic in fmt.magic:
            table[(fmt.magic_at, magic[:1])].append((magic, fmt.name))
    return dict(table)


MAGIC_BY_LEAD_BYTE = magic_by_lead_byte()


_lead_bytes_of = {}         # types asked for -> the MAGIC_BY_LEAD_BYTE of their formats


def wanted_formats(types):
    """(whether ftyp is searched for, the sector formats searched for, their
    MAGIC_BY_LEAD_BYTE) when types are asked for (--types)."""
    if types not in _lead_bytes_of:
        formats = [fmt for fmt in SECTOR_FORMATS if types.intersection(fmt.types)]
        _lead_bytes_of[types] = (bool(types.intersection(ISOBMFF_TYPES)), formats,
                                 magic_by_lead_byte(formats))
    return _lead_bytes_of[types]


# re searches for a literal nearly twice as fast as mmap.find does (bench/throughput.py),
# and the C library's memmem a quarter faster again, where ctypes finds one
FTYP_SEARCH = re.compile(re.escape(FTYP))


class Memmem:
    """The C library's memmem(3), over a map (a scan process's), loaded once a process:
    the search every byte of the dump goes through. None where there is none (Windows):
    the regular expression does it."""

    def __init__(self):
        self._function = None
        self._loaded = False

    def function(self):
        if not self._loaded:
            self._loaded = True
            try:
                import ctypes
                memmem = ctypes.CDLL(None).memmem
                memmem.restype = ctypes.c_void_p
                memmem.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p,
                                   ctypes.c_size_t]
                self._function = (ctypes, memmem)
            except (ImportError, OSError, AttributeError, TypeError):
                self._function = None
        return self._function

    def ftyps(self, buf, first, end):
        """The offsets of FTYP in buf[first:end], in order: by memmem where buf is a
        map and the C library has it, else by the regular expression."""
        loaded = self.function() if isinstance(buf, mmap.mmap) else None
        if loaded is None:
            yield from (hit.start() for hit in FTYP_SEARCH.finditer(buf, first, end))
            return
        ctypes, memmem = loaded
        base = buffer_address(ctypes, buf)
        pos = first
        while end - pos >= len(FTYP):
            hit = memmem(base + pos, end - pos, FTYP, len(FTYP))
            if not hit:
                return
            yield hit - base
            pos = hit - base + 1


MEMMEM = Memmem()


def find_candidates(buf, first, stop, align, phase=0, types=frozenset(ALL_TYPES)):
    """The list of candidates_in gives."""
    return list(candidates_in(buf, first, stop, align, phase, types))


def candidates_in(buf, first, stop, align, phase=0, types=frozenset(ALL_TYPES)):
    """(offset, format name) of every possible file start in [first, stop), in order,
    of a format that holds one of types: "ftyp" at any byte, the other formats' magic
    at multiples of align (counted from phase: a partition that starts off the sector
    grid moves the grid). The ftyp ones are found as they are asked for: a region of
    ftyp boxes back to back holds nearly a million (memory stays flat).

    The byte-granular find is kept for ftyp alone; the other magics are sieved: one
    byte per sector is pulled out at C speed and only sectors whose first byte can
    start a magic are looked at, so a new format costs next to nothing."""
    size = len(buf)
    ftyp, formats, lead_bytes = wanted_formats(types)
    found = []
    if align == 1:
        for fmt in formats:
            for magic in fmt.magic:
                end = min(stop + fmt.magic_at + len(magic) - 1, size)
                hit = buf.find(magic, first + fmt.magic_at, end)
                while hit >= 0:
                    found.append((hit - fmt.magic_at, fmt.name))
                    hit = buf.find(magic, hit + 1, end)
    else:
        aligned = first + (phase - first) % align
        leads_at = {}
        for (at, lead), magics in lead_bytes.items():
            if at not in leads_at:
                leads_at[at] = buf[aligned + at:stop + at:align]
            leads = leads_at[at]
            index = leads.find(lead)
            while index >= 0:
                offset = aligned + index * align
                for magic, name in magics:
                    if buf[offset + at:offset + at + len(magic)] == magic:
                        found.append((offset, name))
                index = leads.find(lead, index + 1)
    found.sort(key=lambda candidate: candidate[0])
    if not ftyp:
        yield from found
        return
    end = min(stop + FTYP_AT + len(FTYP) - 1, size)     # a start at stop is the next region's
    ftyps = ((at - FTYP_AT, "ftyp") for at in MEMMEM.ftyps(buf, first + FTYP_AT, end))
    yield from heapq.merge(ftyps, found, key=operator.itemgetter(0))


def scan_region(buf, first, stop, options, carving=None, candidates=None):
    """[(offset, format, Carved or None, why it is not a file)] for every candidate
    in [first, stop) (those given, or those find_candidates finds): what a scan
    process sends back. Carving is pure, so it can run there, away from the process
    that writes; carving(offset) is told of each."""
    found = []
    if candidates is None:
        candidates = candidates_in(buf, first, stop, options.align, options.phase,
                                   options.types)
    for offset, name in candidates:
        if carving is not None:
            carving(offset)
        try:
            found.append((offset, name, CARVERS[name](buf, offset, len(buf), options), ""))
        except FormatError as e:
            if options.explain:
                found.append((offset, name, None, str(e)))
    return found


_scan = None                # a scan process's own map of the dump, and the options


def _start_scan_process(path, size, options):
    global _scan, _parent
    for signum in STOP_SIGNALS:                 # stopping is the main process's
        signal.signal(signum, signal.SIG_IGN)
    end_with_the_main_process()
    _parent = os.getppid()
    try:
        fd = os.open(path, os.O_RDONLY | O_NONBLOCK | O_BINARY)
        try:
            buf = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
        except BaseException:
            os.close(fd)
            raise
    except (OSError, ValueError):
        os._exit(EXIT_ERROR)        # the dump changed or went: the main process says so
    _scan = (buf, options, PageGuard(buf))
    if options.digest:
        _hashing.append((fd, bytearray(COPY_CHUNK)))
    else:
        os.close(fd)
    if hasattr(buf, "madvise"):
        sys.setswitchinterval(LET_GO_EVERY / 2)     # so that the thread gets its turn
        threading.Thread(target=_keep_letting_go, daemon=True).start()


_searching = (0, 0)         # what of the map a scan process reads now
_parent = None              # a scan process's parent: when it is gone, so is the run
PR_SET_PDEATHSIG = 1


def end_with_the_main_process():
    """Have the kernel kill this scan process when its parent dies (Linux): a main
    process killed (SIGKILL, the OOM killer) leaves no scan process reading the
    card or the share. Elsewhere, and as a second guard, the thread that gives
    pages back looks at the parent's pid (_keep_letting_go)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (ImportError, OSError, AttributeError):
            pass


def _carving(offset):
    """The region is searched: from now on its pages are needed where a file is
    carved (carving reads what it needs again, from the page cache)."""
    global _searching
    _searching = (offset, offset)


def _keep_letting_go():
    """A scan process's thread: give back, every LET_GO_EVERY, the pages of the map
    outside what it reads now (but the guarded ones): those of the region searched,
    and those carving a large file touched. Memory stays flat whatever the size of a
    file."""
    buf, _, guard = _scan
    while True:
        time.sleep(LET_GO_EVERY)
        if _parent is not None and os.getppid() != _parent:
            os._exit(EXIT_ERROR)                # the run is gone
        with guard.lock:
            for low, high in pages_to_let_go(*_searching, guard.pages, len(buf)):
                try:
                    buf.madvise(mmap.MADV_DONTNEED, low, high - low)
                except (OSError, ValueError):
                    return                      # the map is gone: nothing to give back


def pages_to_let_go(first, stop, guarded, size):
    """[(low, high)] that cover a map of size bytes but [first, stop) (and what the
    kernel maps past it) and the guarded pages; each low on a page, as madvise wants."""
    first -= first % mmap.PAGESIZE
    stop = min(-(-(stop + MAPPED_AROUND) // mmap.PAGESIZE) * mmap.PAGESIZE, size)
    ranges, start = [], 0
    for page in sorted(guarded) + [size]:
        for low, high in ((start, min(page, first)), (max(start, stop), page)):
            if low < high:
                ranges.append((low, high))
        start = page + mmap.PAGESIZE
    return ranges


def _let_go(start, end):
    """Give back a scan process's pages of [start, end) and of those the kernel mapped
    around the last ones touched (the page cache keeps them), and put the guarded ones
    back."""
    buf, _, guard = _scan
    if hasattr(buf, "madvise"):
        start -= start % mmap.PAGESIZE
        end = min(end + MAPPED_AROUND, len(buf))
        buf.madvise(mmap.MADV_DONTNEED, start, end - start)
        guard.refill(start, end)


@contextlib.contextmanager
def pages_given_back(buf):
    """Give back every page of buf (a map of a file) every LET_GO_EVERY while the
    block runs: what is read again comes back from the page cache. A search that
    holds the interpreter runs whole between two turns, so the long ones go a
    DECODE_CHUNK at a time (see search_chunked)."""
    done = threading.Event()

    def let_go():
        while not done.wait(LET_GO_EVERY):
            try:
                buf.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):
                return                          # the map is gone

    thread = threading.Thread(target=let_go, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _sieve_region(region):
    """The directory sieve of one region, in a scan process (see directory_sieve), and
    the search for its candidates, from the same reading of it: (FAT sectors, exFAT
    sets, candidates, or None when there are more than MAX_REGION_CANDIDATES)."""
    global _searching
    buf, options, guard = _scan
    first, stop = region[:2]
    guard.apply(region[2])
    _searching = (first, stop)
    sectors, sets = directory_sieve(buf, first, stop, options.phase, options.file_system)
    candidates = list(itertools.islice(candidates_in(buf, first, stop, options.align,
                                                     options.phase, options.types),
                                       MAX_REGION_CANDIDATES + 1))
    _let_go(first, stop + FAT_ENTRY_SIZE * (EXFAT_MAX_SECONDARIES + 1))
    return sectors, sets, (candidates if len(candidates) <= MAX_REGION_CANDIDATES else None)


def _scan_and_sieve_region(region):
    """The directory sieve of one region, then its search and carving: both from one
    reading of it (see Recovery.read_file_system)."""
    global _searching
    buf, options, guard = _scan
    guard.apply(region[2])
    _searching = region[:2]
    sieved = directory_sieve(buf, region[0], region[1], options.phase, options.file_system)
    return _scan_region(region), sieved


_hashing = []               # a scan process's (descriptor of the dump, buffer) to hash with


def hash_carved(fd, buffer, carved):
    """carved with the sha256 of its bytes (read from fd into buffer), or as it was
    when they cannot all be read. A scan process hashes what it carved, so that the
    writer copies with the kernel alone (sendfile): on a dump of large files the
    writer was the slowest stage, hashing and copying one file after the other.
    It reads with pread, not through its map: a read error there is an OSError, and
    the writer, hashing the file itself, says what it means."""
    digest = hashlib.sha256()
    view = memoryview(buffer)
    pos, end = carved.offset, carved.end
    try:
        while pos < end:
            want = min(len(view), end - pos)
            if hasattr(os, "preadv"):
                chunk = view[:os.preadv(fd, [view[:want]], pos)]
            else:
                chunk = pread(fd, want, pos)
            if len(chunk) < want:
                return carved                   # a bad sector: the writer reads carefully
            digest.update(chunk)
            pos += len(chunk)
    except OSError:
        return carved
    return carved._replace(sha256=(carved.offset, carved.size, digest.hexdigest()))


def known_digest(carved):
    """The sha256 a scan process made of carved's bytes (with hashlib's hexdigest),
    or None: when the file was cut, lengthened or put together since, it was of
    other bytes."""
    if carved.sha256 and not carved.pieces and carved.sha256[:2] == (carved.offset,
                                                                     carved.size):
        return KnownDigest(carved.sha256[2])
    return None


class KnownDigest(NamedTuple):
    text: str

    def hexdigest(self):
        return self.text


def _scan_region(region):
    """Search and carve one region in a scan process (and hash what it carved, see
    hash_carved), then let go of its pages and of what the carving read beyond them
    (the page cache keeps them)."""
    global _searching
    buf, options, guard = _scan
    first, stop = region[:2]
    guard.apply(region[2])
    _searching = (first, stop)
    found = scan_region(buf, first, stop, options, _carving, region[3])
    if _hashing and options.digest:
        found = [(offset, name, hash_carved(*_hashing[0], carved)
                  if carved is not None and not carved.pieces else carved, why)
                 for offset, name, carved, why in found]
    _let_go(first, max([stop + FTYP_AT + len(FTYP)]
                       + [carved.end for _, _, carved, _ in found if carved]))
    return found


class PageGuard:
    """A scan process's map of the dump, with the pages that hold unreadable sectors
    replaced by anonymous ones holding what could be read of them: touching those is
    then no SIGBUS. It needs ctypes and mmap(2) with MAP_FIXED (Linux, macOS); where
    they are missing it guards nothing, and a bad sector ends the scan as before."""

    MAP_FIXED, MAP_ANONYMOUS = 0x10, (0x20 if sys.platform.startswith("linux") else 0x1000)

    def __init__(self, buf):
        self.buf = buf
        self.careful = False            # the dump is read carefully: see apply
        self.pages = {}                 # page offset -> its bytes, once mapped
        self.lock = threading.Lock()    # guarding, or letting go of unguarded pages
        self.base = None
        self.libc = None
        if not sys.platform.startswith(("linux", "darwin")):
            return
        try:
            import ctypes
            self.ctypes = ctypes
            self.libc = ctypes.CDLL(None, use_errno=True)
            self.libc.mmap.restype = ctypes.c_void_p
            self.libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                       ctypes.c_int, ctypes.c_int, ctypes.c_long]
            self.base = buffer_address(ctypes, buf)
        except (ImportError, OSError, AttributeError, ValueError):
            self.libc = None

    def apply(self, patches):
        """Guard the pages of patches ({page offset: bytes}) not guarded yet. Given
        any (the region was read carefully), the map reads no more than the page a
        fault is for: the kernel's read-ahead would run into the bad sectors around
        it, and a page it failed to read fails again, even a good one."""
        if patches is None:
            return
        if not self.careful:
            self.careful = True
            with contextlib.suppress(AttributeError, OSError, ValueError):
                self.buf.madvise(mmap.MADV_RANDOM)
        if self.libc is None:
            return
        for page, data in patches.items():
            if page in self.pages:
                continue
            with self.lock:                 # not while the thread that lets go runs
                self.pages[page] = data
                self._guard(page, data)

    def _guard(self, page, data):
        address = self.libc.mmap(self.base + page, mmap.PAGESIZE,
                                 mmap.PROT_READ | mmap.PROT_WRITE,
                                 mmap.MAP_PRIVATE | self.MAP_FIXED | self.MAP_ANONYMOUS,
                                 -1, 0)
        if address != self.base + page:
            os._exit(EXIT_ERROR)        # the map is not what it was: the main process says
        self.ctypes.memmove(address, data, len(data))

    def refill(self, start, end):
        """Put back the bytes of the guarded pages in [start, end), which madvise
        has just emptied."""
        for page, data in self.pages.items():
            if start <= page < end:
                self.ctypes.memmove(self.base + page, data, len(data))


# 19. Reading the dump -----------------------------------------------------------------
# Dump: the input, mapped by the scan processes and read with pread here; read
# carefully where it fails (a sector that cannot be read is zeros). Holes: the
# bytes a ddrescue mapfile says were never read.

class Candidates:
    """The candidates (offset, format name) the first pass (the directory sieve's)
    found in each region, kept so that the second one carves them without searching
    and reading the whole dump again. Memory stays flat: they are kept packed, and
    past MAX_KEPT_CANDIDATES in all (a hostile dump, dense with magic) a region is
    searched again instead."""

    def __init__(self):
        self._regions = {}              # (first, stop) -> (offsets, format indexes)
        self._count = 0

    def keep(self, region, found):
        if found is None or self._count + len(found) > MAX_KEPT_CANDIDATES:
            return
        self._count += len(found)
        self._regions[tuple(region)] = (array.array("q", [offset for offset, _ in found]),
                                        bytes(FORMAT_INDEX[name] for _, name in found))

    def of(self, region):
        """The region's candidates, or None when they were not kept (search it)."""
        kept = self._regions.get(tuple(region))
        if kept is None:
            return None
        offsets, names = kept
        return [(offset, CARVED_FORMATS[index]) for offset, index in zip(offsets, names)]


class Dump:
    """The input, opened read-only, with the scan processes that map it.

    The main process reads the dump only with sendfile and pread, where a read error
    is an error. Only the scan processes map it: a read error under a map is a
    signal (SIGBUS) that kills the process touching the page, so it kills a scan
    process, and the run ends cleanly with everything found so far reported.
    """

    def __init__(self, path, careful=False, in_process=False):
        self.path = path
        # searched in this process (a file this run wrote, a salvaged 7z stream: no
        # scan process started and stopped for each of thousands of them)
        self.in_process = in_process
        self.unreadable = set()         # offsets of the sectors that could not be read
        self._patches = {}              # page offset -> what could be read of that page
        self._read_to = 0               # how far careful reading has read ahead
        self._bad = []                  # the unreadable sectors, sorted
        self._direct = None             # (O_DIRECT descriptor, buffer), False: none
        self.failed_reads = 0           # reads that failed or came back short
        self.careful_from = None        # where a plain file turned to careful reading
        self.on_careful = None          # told where, when it does (to say so)
        self.stop_check = None          # raises when a stop is asked for (see read)
        self._scan_at = 0               # the first region the scan has not done with
        self._lock = threading.Lock()   # the writer thread reads too
        self._pool = self._pool_started_with = None
        self.candidates = Candidates()  # what the first pass found to carve (see scan)
        if os.name == "nt" and windows_device(path):
            raise InputError(
                "%s is a Windows device: recovercr3 reads an image of it (Windows reads a "
                "device in whole sectors only, and cannot map it). Image the card first "
                "(see the README: dd from Cygwin or MSYS2, WSL 2 with ddrescue, or a raw-read "
                "tool), then run on the image" % path)
        try:
            kind = unscannable(os.stat(path).st_mode)  # before open: a FIFO's open blocks
        except OSError as e:
            raise InputError("cannot read %s: %s" % (path, e.strerror)) from None
        if kind:
            raise InputError(self._refusal(kind))
        try:
            fd = os.open(path, os.O_RDONLY | O_NONBLOCK | O_BINARY)
        except OSError as e:
            raise InputError("cannot read %s: %s" % (path, e.strerror)) from None
        try:
            self.stat = os.fstat(fd)
            kind = unscannable(self.stat.st_mode)       # it may have changed since
            if kind:
                raise InputError(self._refusal(kind))
            try:
                self.size = os.lseek(fd, 0, os.SEEK_END)    # st_size is 0 for block devices
            except OSError:
                raise InputError("%s cannot be read at any offset (it is not seekable): "
                                 "not a dump" % path) from None
            if self.size == 0:
                raise InputError("%s is empty: nothing to recover" % path)
            try:
                kind = not_raw(pread(fd, NOT_RAW_HEAD, 0))
            except OSError:
                kind = ""                   # the scan says what cannot be read
            if kind:
                raise InputError("%s is %s" % (path, kind))
            try:
                mmap.mmap(fd, self.size, access=mmap.ACCESS_READ).close()
            except (OSError, OverflowError, ValueError) as e:
                raise InputError("cannot map %s (%d bytes): %s" % (path, self.size, e)) from None
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.careful = careful or stat.S_ISBLK(self.stat.st_mode)
        self.sendfile_ok = hasattr(os, "sendfile") and not self.careful
        if self.careful:
            self._no_read_ahead()

    def _refusal(self, kind):
        if kind == "a directory":
            return "%s is a directory, not a dump" % self.path
        return ("%s is %s, not a dump: recovercr3 reads an image file or a block device"
                % (self.path, kind))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_scan_processes()
        os.close(self.fd)
        if self._direct:
            os.close(self._direct[0])

    def read(self, offset, size, check=None):
        """size bytes at offset (fewer only past the end of the dump); check() (or
        stop_check) before each read of a careful reading, which a failing card makes
        slow: a stop asked for ends it at once.

        A read that fails with EIO, or that comes back short before the end of the
        dump (what Linux gives of a block over a bad sector: the bytes before it, no
        error), is read again carefully (_read_carefully); and from then on the dump
        is read carefully: a plain file that failed once is read as a dying card is
        (turn_careful). ReadError for any other error; DumpShrank when the dump is
        shorter than it was."""
        size = max(0, min(size, self.size - offset))
        if not (self.careful and self._known_bad(offset, offset + size)):
            try:
                data = pread(self.fd, size, offset)
            except OSError as e:
                if e.errno != errno.EIO:
                    raise ReadError("cannot read {} at offset {:,d}: {}".format(
                        self.path, offset, e.strerror or e)) from None
                data = b""
            if len(data) == size:
                return data
            self._failed_read(offset + len(data))
        first = offset - offset % SECTOR_SIZE
        last = min(-(-(offset + size) // SECTOR_SIZE) * SECTOR_SIZE, self.size)
        data = self._read_carefully(first, last, check or self.stop_check)
        return data[offset - first:offset - first + size]

    def _failed_read(self, at):
        """A read failed at at (or came back short there): count it, and read carefully
        from now on, unless the dump is shorter than it was."""
        with self._lock:
            self.failed_reads += 1
        if self._shrank():
            raise DumpShrank(self._why_broken(at, at + SECTOR_SIZE))
        self.turn_careful(at)

    def turn_careful(self, at):
        """Read carefully from now on: a read that failed at at was not one of a block
        device (which is always read carefully), nor asked for (--careful-read). What
        the scan has not read yet is read ahead carefully from where it is."""
        with self._lock:
            if self.careful:
                return
            self.careful, self.sendfile_ok = True, False
            self._no_read_ahead()
            self.careful_from = at
            self._read_to = min(at, self._scan_at) - min(at, self._scan_at) % SECTOR_SIZE
        if self.on_careful is not None:
            self.on_careful(at)

    def _known_bad(self, first, last):
        """True when a sector known to be unreadable lies in [first, last)."""
        index = bisect.bisect_left(self._bad, first - first % SECTOR_SIZE)
        return index < len(self._bad) and self._bad[index] < last

    def _read_carefully(self, first, last, check=None):
        """dump[first:last] (sector-aligned), read as ddrescue reads a failing card: in
        the blocks of CAREFUL_RETRY_BLOCKS[0], where one that fails (or comes back
        short) gives the bytes before its error and the scan of the others goes on
        past it; then what failed again in the next level's blocks, down to sectors. So
        a bad area is read once a level, and a bad sector once: a sector that fails is
        zeros, and noted (unreadable), and not read again."""
        data = bytearray(last - first)
        todo = [(first, last)]
        for step in CAREFUL_RETRY_BLOCKS:
            failed = []
            for low, high in todo:
                self._forget(low, high)
                pos = low
                while pos < high:
                    end = min(pos + step, high)
                    index = bisect.bisect_left(self._bad, pos)
                    if index < len(self._bad) and self._bad[index] < end:
                        if self._bad[index] == pos:     # known: not read again
                            failed.append((pos, pos + SECTOR_SIZE))
                            pos += SECTOR_SIZE
                            continue
                        end = self._bad[index]
                    if check is not None:
                        check()                 # a bad block may take the device long
                    got = (self._pread(pos, end - pos) if step > SECTOR_SIZE
                           else self._pread_sector(pos, end - pos))
                    data[pos - first:pos - first + len(got)] = got
                    if len(got) < end - pos:
                        with self._lock:
                            self.failed_reads += 1
                        bad = pos + len(got) - len(got) % SECTOR_SIZE
                        failed.append((bad, end))
                    pos = end
            todo = failed
        with self._lock:
            for low, high in todo:
                for sector in range(low, high, SECTOR_SIZE):
                    data[sector - first:sector - first + SECTOR_SIZE] = bytes(
                        min(SECTOR_SIZE, last - sector))
                    if sector not in self.unreadable:
                        self.unreadable.add(sector)
                        bisect.insort(self._bad, sector)
        return bytes(data)

    def _no_read_ahead(self):
        """Careful reading reads its own blocks: the kernel's read-ahead would only
        run into bad areas before them (a timeout each, on a real card)."""
        if hasattr(os, "posix_fadvise"):
            try:
                os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_RANDOM)
            except OSError:
                pass

    def _forget(self, first, last):
        """Drop what the page cache holds of [first, last): a block device's pages that
        a failed read (its read-ahead) left behind fail again when read, good sectors
        too, until they are read anew."""
        if hasattr(os, "posix_fadvise"):
            try:
                os.posix_fadvise(self.fd, first, last - first, os.POSIX_FADV_DONTNEED)
            except OSError:
                pass

    def _pread_sector(self, offset, size):
        """A sector's bytes, read past the page cache where the kernel can (O_DIRECT,
        a block device): the last word on it. Pages that a failed read left in the
        cache (a read-ahead over a bad area, a scan process's map) fail again, good
        ones too, for as long as they are there; only the card can say a sector is
        bad."""
        if self._direct is None and stat.S_ISBLK(self.stat.st_mode) \
                and hasattr(os, "O_DIRECT") and hasattr(os, "preadv"):
            try:
                self._direct = (os.open(self.path, os.O_RDONLY | os.O_DIRECT),
                                mmap.mmap(-1, mmap.PAGESIZE))   # aligned, as it wants
            except (OSError, ValueError):
                self._direct = False
        if not self._direct:
            return self._pread(offset, size)
        fd, buffer = self._direct
        try:
            got = os.preadv(fd, [memoryview(buffer)[:size]], offset)
        except OSError as e:
            if e.errno == errno.EINVAL:             # not on this device: as it can
                self._direct = False
                return self._pread(offset, size)
            return b""
        return buffer[:got]

    def _pread(self, offset, size):
        """What one pread gives of size bytes at offset: fewer on a bad sector (b""
        for EIO); ReadError for any other error."""
        try:
            return pread(self.fd, size, offset)
        except OSError as e:
            if e.errno != errno.EIO:
                raise ReadError("cannot read {} at offset {:,d}: {}".format(
                    self.path, offset, e.strerror or e)) from None
            return b""

    def read_ahead(self, stop):
        """Read (carefully) the dump up to stop, if not yet: the page cache keeps it for
        the scan processes and the copies, and the unreadable sectors are known."""
        stop = min(stop, self.size)
        while self._read_to < stop:
            size = min(CAREFUL_BLOCK, stop - self._read_to)
            self.read(self._read_to, size)
            self._read_to += size

    def patches(self, first, stop):
        """{page offset: its bytes as they could be read} of the pages of the map that
        hold an unreadable sector: all of them, or (a card with very many) those a
        scan of [first, stop) is likely to touch."""
        with self._lock:
            pages = {sector - sector % mmap.PAGESIZE for sector in self.unreadable}
        for page in sorted(pages - set(self._patches)):
            self._patches[page] = self.read(page, min(mmap.PAGESIZE, self.size - page))
        if len(self._patches) <= MAX_SENT_PATCHES:
            return dict(self._patches)
        low, high = first - PATCHES_BEFORE, stop + PATCHES_AFTER
        return {page: data for page, data in self._patches.items() if low <= page < high}

    def scan(self, options, worker=None, start=0, stop=None):
        """(stop, found) for every region in order, found being [(offset, format,
        Carved, None or why it is not a file)] for each candidate. Scan processes
        search and carve the regions ahead while the caller writes; the order, and
        so the output, is the same for any number of them.

        A scan process that dies breaks its pool, and every region still in it: the
        first of them is scanned again, alone, and only when it kills its process
        too is the dump unreadable there (ReadError). worker: what is done with each
        region in the scan processes (default: search and carve it). start, stop: the
        part of the dump searched (a run that resumes where the last one
        stopped); its regions lie on the same grid as a whole search's.

        A region whose candidates the sieve's pass found (self.candidates) is not
        searched again: only they are carved, and a region without any is not sent
        to a scan process at all."""
        worker = worker or _scan_region
        stop = self.size if stop is None else stop
        regions = [(max(first, start), min(first + SCAN_REGION, stop))
                   for first in range(start - start % SCAN_REGION, stop, SCAN_REGION)]
        done = 0                    # regions yielded
        while done < len(regions):
            self._scan_at = regions[done][0]
            try:
                for index, found in self._pool_scan(regions, done, len(regions), options,
                                                    worker):
                    done = index + 1
                    self._scan_at = regions[min(done, len(regions) - 1)][0]
                    yield regions[index][1], found
            except BrokenRegion as broken:
                found = self._scan_alone(regions, broken.index, options, worker)
                done = broken.index + 1
                yield regions[broken.index][1], found

    def _scan_alone(self, regions, index, options, worker):
        """What the scan of regions[index] gives, alone, after its scan process died
        (a bad sector under its map, or a carving that ran into one): read carefully
        (from there on, for a plain file: see turn_careful); ReadError when it dies
        even then, DumpShrank when the dump is shorter than it was."""
        self._scan_at = regions[index][0]
        for attempt in range(2):
            if self._shrank():
                raise DumpShrank(self._why_broken(*regions[index]))
            if not self.careful:
                self.turn_careful(self._first_bad(*regions[index]))
            self.read_ahead(regions[min(index + PREFETCH_AHEAD, len(regions) - 1)][1])
            try:
                ((_, found),) = self._pool_scan(regions, index, index + 1, options, worker)
                return found
            except BrokenRegion:
                continue
        raise ReadError(self._why_broken(*regions[index]))

    def _first_bad(self, first, stop):
        """Where in [first, stop) a read fails first (or first, when none does)."""
        for offset in range(first, stop, READ_CHECK_STEP):
            want = min(READ_CHECK_STEP, stop - offset)
            got = self._pread(offset, want)
            if len(got) < want:
                return offset + len(got)
        return first

    def _pool_scan(self, regions, first, last, options, worker):
        """(index, found) for regions[first:last], in order, from one pool of scan
        processes; BrokenRegion(index of the first region still in it) when the pool
        breaks."""
        if self.in_process and worker is _scan_region:
            yield from self._scan_here(regions, first, last, options)
            return
        jobs = max(1, min(options.jobs, len(regions)))
        todo = iter(range(first, last))
        queued = collections.deque()
        pool = self._scan_processes(jobs, options)
        try:
            while True:
                index = None
                try:
                    while len(queued) < jobs * REGIONS_AHEAD:
                        index = next(todo, None)
                        if index is None:
                            break
                        task = self._task(regions[index])
                        if worker is _scan_region and task[3] == []:
                            future = concurrent.futures.Future()    # nothing to carve
                            future.set_result([])
                        else:
                            future = pool.submit(worker, task)
                        queued.append((index, future))
                    if not queued:
                        return
                    found = queued[0][1].result()
                except concurrent.futures.BrokenExecutor:
                    self.stop_scan_processes()
                    raise BrokenRegion(queued[0][0] if queued else index) from None
                index, _ = queued.popleft()
                yield index, found
        finally:
            for _, future in queued:
                future.cancel()

    def _scan_here(self, regions, first, last, options):
        """(index, found) for regions[first:last], searched and carved in this process
        (see in_process)."""
        with mmap.mmap(self.fd, self.size, access=mmap.ACCESS_READ) as buf:
            for index in range(first, last):
                yield index, scan_region(buf, *regions[index][:2], options)

    def _scan_processes(self, jobs, options):
        """The pool of scan processes, started at the first pass and kept for the next
        ones (with the same options): started before the main process holds what the
        passes find (a FAT, the card's folders), which a process forked later would
        hold too, and once, not once a pass."""
        if self._pool is not None and self._pool_started_with != (jobs, options):
            self.stop_scan_processes()
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                jobs, initializer=_start_scan_process, initargs=(self.path, self.size, options))
            self._pool_started_with = (jobs, options)
        return self._pool

    def stop_scan_processes(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _task(self, region):
        """What a scan process is given of a region: the region; when reading
        carefully, the pages to guard (read first, up to the region's end); else the
        region's candidates, when the first pass kept them."""
        if not self.careful:
            candidates = self.candidates.of(region)
            return region + (None, candidates)
        self.read_ahead(region[1])
        return region + (self.patches(*region), None)

    def _shrank(self):
        try:
            return os.lseek(self.fd, 0, os.SEEK_END) < self.size
        except OSError:
            return False

    def _why_broken(self, first, stop):
        """What a scan process's sudden death means, in words: the region is read
        again with pread, where a read error is an error that says where."""
        try:
            now = os.lseek(self.fd, 0, os.SEEK_END)
        except OSError:
            now = self.size
        if now < self.size:
            return "{} shrank from {:,d} to {:,d} B while it was read: a dump must not " \
                   "change during a run".format(self.path, self.size, now)
        for offset in range(first, stop, READ_CHECK_STEP):
            want = min(READ_CHECK_STEP, stop - offset)
            try:
                got = len(pread(self.fd, want, offset))
                why = "Input/output error (a read came back short)"
            except OSError as e:
                got, why = 0, e.strerror or str(e)
            if got < want:
                return ("{} cannot be read at offset {:,d}: {} (a bad sector, or a failing "
                        "card or share). Make an image with ddrescue and scan the "
                        "image".format(self.path, offset + got, why))
        return ("a scan process died while it searched offsets {:,d} to {:,d} of {}, which "
                "read without error (was it killed, or out of memory?)".format(
                    first, stop, self.path))

    def copy_to(self, fd, start, size, checkpoint, digest=None):
        """Write dump[start:start+size] to fd, a chunk at a time: by the kernel alone
        (sendfile) when it can, else through pread (and the digest when one is asked
        for). Memory stays flat either way."""
        end = start + size
        if digest is None and self.sendfile_ok:
            try:
                while start < end:
                    checkpoint()
                    sent = os.sendfile(fd, self.fd, start, min(COPY_CHUNK, end - start))
                    if not sent:
                        raise OSError(errno.EIO, "the dump ended early")
                    start += sent
                return
            except OSError as e:
                if e.errno == errno.EIO and len(self._pread(start, SECTOR_SIZE)) < min(
                        SECTOR_SIZE, self.size - start):
                    self._failed_read(start)    # the dump's error: read carefully below
                elif e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP,
                                     errno.ENOTSOCK):   # macOS: to a socket only
                    raise
                self.sendfile_ok = False        # not for this pair of files: copy below
        for chunk in self.chunks(start, end - start, checkpoint):
            if digest is not None:
                digest.update(chunk)
            write_all(fd, chunk)

    def chunks(self, start, size, checkpoint):
        """dump[start:start+size] a chunk at a time (memory stays flat), checkpoint()
        before each: read into one buffer (preadv) where it can, so each chunk is a
        view that the next one replaces; else, and where that read fails or comes
        short, through self.read (which says why, or reads carefully)."""
        end = start + size
        view = (memoryview(bytearray(min(COPY_CHUNK, size)))
                if not self.careful and hasattr(os, "preadv") and size > 0 else None)
        while start < end:
            checkpoint()
            want = min(COPY_CHUNK, end - start)
            got = 0
            if view is not None:
                try:
                    got = os.preadv(self.fd, [view[:want]], start)
                except OSError:
                    pass
            chunk = view[:got] if got else self.read(start, want, checkpoint)
            if not chunk:
                raise OSError(errno.EIO, "the dump ended early")
            yield chunk
            start += len(chunk)

    def read_joined(self, pieces, checkpoint):
        """The bytes of pieces one after the other (fewer where the dump ends), read
        a chunk at a time into one buffer: a file put back together is held once in
        memory, not as its pieces and again as itself."""
        data = bytearray(sum(size for _, size in pieces))
        pos = 0
        for offset, size in pieces:
            for start in range(offset, offset + size, COPY_CHUNK):
                checkpoint()
                chunk = self.read(start, min(COPY_CHUNK, offset + size - start), checkpoint)
                data[pos:pos + len(chunk)] = chunk
                pos += len(chunk)
                if len(chunk) < min(COPY_CHUNK, offset + size - start):
                    break
        del data[pos:]
        return data

    def digest(self, pieces, checkpoint, digest):
        """Feed digest the bytes of pieces: a kept file's bytes in the dump, to check
        against its report row."""
        for start, size in pieces:
            for chunk in self.chunks(start, size, checkpoint):
                digest.update(chunk)


# A GNU ddrescue mapfile says which bytes of an image were read from the card: its
# "pos size status" lines cover the image, and only "+" (finished) means read. The
# rest ("?" not tried, "*" not trimmed, "/" not scraped, "-" bad) are zeros in the
# image, which nothing else tells from a file's own zeros.
MAPFILE_STATUSES = frozenset("+-/*?")
RESCUED = "+"
MAX_MAPFILE_BYTES = 64 << 20     # a mapfile of a card: some 40 bytes a line, far fewer lines


class Holes:
    """Sorted, disjoint [start, end) ranges of the dump whose bytes are not the
    card's (never read, or unreadable), and what a file has of them."""

    def __init__(self, ranges=()):
        self.ranges = []
        for start, end in sorted(ranges):
            if self.ranges and start <= self.ranges[-1][1]:
                self.ranges[-1][1] = max(self.ranges[-1][1], end)
            elif end > start:
                self.ranges.append([start, end])
        self._starts = [start for start, _ in self.ranges]

    def __bool__(self):
        return bool(self.ranges)

    def total(self):
        return sum(end - start for start, end in self.ranges)

    def in_pieces(self, pieces):
        """(first hole as (from, to) in the file's own offsets, bytes in all) of the
        file made of pieces [(offset, size)]; (None, 0) when it has none."""
        first, count, at = None, 0, 0
        for offset, size in pieces:
            index = max(0, bisect.bisect_right(self._starts, offset) - 1)
            while index < len(self.ranges) and self.ranges[index][0] < offset + size:
                start, end = self.ranges[index]
                low, high = max(start, offset), min(end, offset + size)
                if low < high:
                    count += high - low
                    if first is None:
                        first = (at + low - offset, at + high - offset)
                index += 1
            at += size
        return first, count


def read_mapfile(path, dump_size):
    """The Holes of a ddrescue mapfile: the bytes not marked finished, and those it
    does not cover. UsageError, with the line, when it is not one or does not fit."""
    def refuse(mode):
        if not stat.S_ISREG(mode):
            raise UsageError("the mapfile %s is %s, not a ddrescue mapfile (a text file)"
                             % (path, unscannable(mode) or "a block device"))
    try:
        refuse(os.stat(path).st_mode)       # before open: a device's open may act
        fd = os.open(path, os.O_RDONLY | O_NONBLOCK)    # a FIFO's open never waits
    except OSError as e:
        raise UsageError("cannot read the mapfile %s: %s" % (path, e.strerror or e)) from None
    try:
        refuse(os.fstat(fd).st_mode)        # it may have changed since
        parts, got = [], 0
        while got <= MAX_MAPFILE_BYTES:
            part = os.read(fd, MAX_MAPFILE_BYTES + 1 - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        text = b"".join(parts)
        if len(text) > MAX_MAPFILE_BYTES:
            raise UsageError("the mapfile %s is larger than %d MiB, which no ddrescue "
                             "mapfile of a card is" % (path, MAX_MAPFILE_BYTES >> 20))
    except OSError as e:
        raise UsageError("cannot read the mapfile %s: %s" % (path, e.strerror or e)) from None
    finally:
        os.close(fd)
    lines = text.decode("ascii", "replace").splitlines()
    holes, end, seen_position = [], 0, False
    for number, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        where = "%s line %d" % (path, number)
        if not seen_position:                   # current_pos current_status [pass]
            if len(words) not in (2, 3) or _mapfile_number(words[0]) is None:
                raise UsageError("%s: %r is not the current position line of a ddrescue "
                                 "mapfile" % (where, line.strip()))
            seen_position = True
            continue
        if len(words) != 3 or words[2] not in MAPFILE_STATUSES:
            raise UsageError("%s: %r is not a \"pos size status\" line of a ddrescue "
                             "mapfile" % (where, line.strip()))
        pos, size = _mapfile_number(words[0]), _mapfile_number(words[1])
        if pos is None or size is None or size <= 0:
            raise UsageError("%s: %r: pos and size must be numbers, size above 0"
                             % (where, line.strip()))
        if pos != end:
            raise UsageError("%s: the block at %s should start at 0x%x, where the one "
                             "before it ends" % (where, words[0], end))
        end = pos + size
        if end > dump_size:
            raise UsageError("%s: the block at %s ends at 0x%x, past the end of the dump "
                             "(0x%x bytes): is it this image's mapfile?" % (
                                 where, words[0], end, dump_size))
        if words[2] != RESCUED:
            holes.append((pos, end))
    if not seen_position:
        raise UsageError("%s is not a ddrescue mapfile: it has no blocks" % path)
    if end < dump_size:
        holes.append((end, dump_size))          # what the mapfile does not cover
    return Holes(holes)


def _mapfile_number(text):
    """A mapfile number: hexadecimal with 0x (as ddrescue writes), else decimal."""
    try:
        return int(text, 0)
    except ValueError:
        return None


# 20. Putting a split file back together: its own tables say where its bytes lie -------
# A file found cut (damaged) whose own structure places its bytes: marks (a sample's
# header, an item's NAL units, a JPEG's MCUs) searched for on the card's cluster grid,
# each join proven by the checks that read across it. Reassembly (section 24) uses it.

MAX_JPEG_REST = 32 << 20    # how much more a JPEG cut by the next one may have


CHECKED_ITEMS = NAL_IMAGE_ITEMS | {b"jpeg"}     # HEIF items whose bytes the checks read


def last_checkpoint(data, carved):

    """The furthest place in a carved file where its checks test a structure that
    begins there: the start of a sample whose content is checked (NAL units, a CRX
    header, CTMD records, a JPEG: not an AAC frame), a HEIF item's or NAL unit's
    header, or (JPEG) the end of its MCUs. A join before it is tested by the bytes
    after it; a join after it (in the last sample's data, in padding, in samples
    nothing checks) is not. 0 when unknown."""

    return check_reach(data, carved)[0]


def check_reach(data, carved):
    """(its last_checkpoint, how many bytes at the end of its mdat lie past it) of a
    carved file: a split in those would not show (the audio a movie ends with, which
    nothing reads; a last NAL unit, whose bytes are only searched for what no
    encoder writes, which random-looking bytes pass). The boxes after mdat are
    walked, and read."""
    if carved.type == "jpg":
        return carved.size, 0
    points, mdat_end = checkpoints(data, carved)
    last = max(points, default=0)
    return last, max(0, mdat_end - last)


def checkpoints(data, carved):
    """[where a structure its checks test begins] in a carved ISO-BMFF file's mdat
    (see check_reach), and where its (last) mdat ends; ([], 0) when unknown."""
    if carved.type not in ISOBMFF_TYPES:
        return [], 0
    points = []
    try:
        f = IsoFile(data, 0, carved.size, carved.boxes, read_ftyp(data, 0, len(data)))
        budget = table_budget(f.size)
        for track in f.tracks():
            if sample_marker(f, track) is None:
                continue                # an AAC frame, a timecode: nothing checks them
            for offset, size in itertools.islice(track.samples(), budget):
                points.append(offset)
                if track.entry == CANON_METADATA_ENTRY:
                    points.extend(ctmd_record_starts(data, offset, size))
        iloc = f.child(f.top(META), b"iloc")
        types = heif_item_types(f) if iloc is not None else {}
        for item_id, method, _, extents in read_iloc(data, iloc) if iloc is not None else []:
            if method or not extents or types.get(item_id) not in CHECKED_ITEMS:
                continue                # an Exif or XMP item: nothing checks its bytes
            points.append(extents[0][0])
            if len(extents) == 1 and types.get(item_id) in NAL_IMAGE_ITEMS:
                points.extend(nal_starts(data, *extents[0], budget))
    except (FormatError, struct.error, IndexError):
        return [], 0
    spans = f.mdat_spans()
    return ([at for at in points if any(first <= at < last for first, last in spans)],
            max((last for _, last in spans), default=0))


def unchecked_end(size):
    """A file put together's detail, where its checks do not read its last size bytes."""
    return "its last %d bytes are not checked: another piece may begin in them" % size


def tail_checked(again, unchecked):
    """again, a file put together, damaged where its checks do not read more than a
    cluster at its end: a split there would be unseen (bench formatted seed 13, 32
    KiB: a movie's third piece, after its last video sample, was another's cluster)."""
    if unchecked <= MIN_CARD_CLUSTER:
        return again
    return again._replace(status=DAMAGED, detail=again.detail + ", but " + unchecked_end(
        unchecked), checked=again.size - unchecked)


def ctmd_record_starts(data, offset, size):
    """Where the CTMD records of the sample at offset begin (each one's size leads
    to the next, up to the sample's end: check_ctmd_records)."""
    starts, pos = [], offset
    while pos + CTMD_RECORD.size <= min(offset + size, len(data)):
        starts.append(pos)
        length, _kind = CTMD_RECORD.unpack_from(data, pos)
        if length < CTMD_RECORD.size:
            break
        pos += length
    return starts


def clipped(pieces, size):
    """The pieces that hold a file's first size bytes."""
    kept = []
    for offset, length in pieces:
        if size <= 0:
            break
        kept.append((offset, min(length, size)))
        size -= kept[-1][1]
    return kept


def joins(pieces):
    """Where, in the file put together from pieces, each join lies."""
    return list(itertools.accumulate(size for _, size in pieces))[:-1]


def rejoined(carved, again, pieces, status, detail):
    """carved as put together from pieces (again: that carved anew)."""
    return carved._replace(size=again.size, status=status, detail=detail, pieces=tuple(pieces),
                           boxes=again.boxes,
                           meta=again.meta if again.meta != Meta() else carved.meta)


def joins_proven(data, carved, joins_at, last):
    """True when the checks of carved (put together in data; last: its
    last_checkpoint) test every join: a structure its checks read begins after each
    one, and a JPEG inside it with a join in its data decodes whole."""
    return (all(at < last for at in joins_at)
            and not jpeg_joins_fail(data, carved, joins_at))


def jpeg_joins_fail(data, carved, joins_at):
    """True when a JPEG inside carved (put together in data) with a join in its data
    does not decode whole: that join is wrong (or its tables cannot be read)."""
    if carved.type not in ISOBMFF_TYPES:
        return False
    try:
        f = IsoFile(data, 0, carved.size, carved.boxes, read_ftyp(data, 0, len(data)))
        jpegs = jpeg_spans(f)
    except (FormatError, struct.error, IndexError):
        return True
    return not all(jpeg_decodes(data, first, last) for first, last in jpegs
                   if any(first < at < last for at in joins_at))


def nal_starts(data, offset, length, most):
    """Where the NAL units after the first one begin in [offset, offset + length),
    read with 4-byte lengths (what cameras use; a wrong guess gives no points)."""
    starts, pos, end = [], offset, offset + length
    while len(starts) < most and pos + 4 < end:
        (size,) = U32.unpack_from(data, pos)
        pos += 4 + size
        if pos >= end:
            break
        starts.append(pos)
    return starts


def carve_again(data, kind, options):
    """Carve data (a file put back together) as a file of kind: a Carved or None."""
    try:
        if FORMATS[kind].family == ISOBMFF:
            carved = carve_isobmff(data, 0, len(data), options.rule, frozenset([kind]))
        else:                               # only decoding proves a JPEG's join
            carved = FORMATS[kind].carve(data, 0, len(data),
                                         options._replace(decode=True, strict=True))
        if carved is not None and carved.type == "jpg" and carved.status == COMPLETE:
            if baseline_scan(data, walk_jpeg(data, 0, carved.size)) is None:
                return None                 # progressive: not decoded, so not proven
    except (FormatError, struct.error, IndexError):
        return None
    return carved if carved is not None and carved.type == kind else None


# A mark is a structure that a file's own tables put at a known place in it: a
# sample, whose inside its codec defines (a CRX header, NAL units that fill it, a
# JPEG, CTMD records), a HEIF item, or a box after mdat (a moov written last). Where
# a mark fails, the file's bytes stopped being its own before it: a gap of whole
# clusters (other files') lies there. Where the mark holds again past such a gap,
# the file goes on. Every mark, in file order, is what a reassembly must satisfy.
QUICK_BYTES = 16                # a mark's first look, before it is read whole
CRX_MARK_BYTES = 1 << 16        # a CRX header is a few hundred bytes: read this much
MAX_PIECES = 8                  # a camera's file in more pieces is beyond saving
# Between the last mark that held before a join and the first one after it, nothing
# is checked: a second, unseen join could hide there. The span is kept short, so a
# raw picture split inside its data, with only its header as a mark, stays damaged.
MAX_UNCHECKED_JOIN = 2 << 20
MAX_GAP_SEARCH = 1 << 30        # the rest of a file is looked for this far past its split
SEARCH_CHUNK = 1 << 20          # what a search reads at a time
MAX_LONE_MOOVS = 8              # moov boxes tried for one ftyp+mdat head
MAX_PLACES = 64                 # places where a mark holds, compared by what follows
RUN_MARKS = 16                  # marks read at each place: the most that hold wins
MAX_SPLITS_READ = 64            # splits tried by reading the marks around them
GUESS_READS = 4                 # the dump's size, read at most by the guesses of a run
#                                 (and as much by the files laid over free clusters)

BLANK_BYTES = (0x00, 0xFF)      # a cluster of one of these is nobody's data
JPEG_LIKE_FFS = 4               # FF bytes, each stuffed, that make a cluster a JPEG's


class Unproven(Exception):
    """Why a file's pieces cannot be told apart for sure. worth_saying: False when
    no mark of the file held before the trouble (nothing says it was split)."""

    def __init__(self, why, worth_saying=True):
        super().__init__(why)
        self.worth_saying = worth_saying
        self.own = 0            # the bytes from its start its marks proved its own


class Mark(NamedTuple):
    at: int                 # offset in the file
    size: int               # bytes the test reads there
    test: object            # test(bytes) -> True when the structure is there
    quick: object = None    # quick(first QUICK_BYTES) -> False where it cannot be
    # the bytes from `at` that a test that holds proves the file's own; NAL units,
    # CTMD records are checked where they begin, not inside (None: all of them)
    proven: int = None
    inside: str = "them"    # what lies unchecked after it: said of a guessed split

    def proves(self):
        return self.at + (self.size if self.proven is None else self.proven)

    def holds(self, data):
        return len(data) == self.size and self.test(data)

    def may_be(self, head):
        if self.quick is not None:
            return self.quick(head)
        return self.size > QUICK_BYTES or self.holds(head[:self.size])


def nal_mark(at, size, length_size, hevc):
    """A sample (or image item) of NAL units that must fill it exactly."""
    header = 2 if hevc else 1

    def quick(head):
        length = int.from_bytes(head[:length_size], "big")
        return (header <= length <= size - length_size and len(head) > length_size + header
                and nal_header_valid(head[length_size], head[length_size + header - 1], hevc))

    def test(data):
        try:
            problem, _ = nal_units_problem(Spans(data, [(0, len(data))]), length_size, hevc,
                                           size)
        except FormatError:
            return False
        return problem is None
    return Mark(at, size, test, quick, length_size + header, "a NAL unit")


def jpeg_marks(at, size):
    """A JPEG inside the file: SOI where it starts, EOI where it ends."""
    if size < len(JPEG_SOI) + JPEG_TAIL:
        return []
    return [Mark(at, len(JPEG_SOI), lambda data: data == JPEG_SOI, inside="a JPEG"),
            Mark(at + size - JPEG_TAIL, JPEG_TAIL, jpeg_ends)]


def crx_mark(at, size, geometry):
    """A CRX picture: its header describes it to the byte."""
    def quick(head):
        tag, record = struct.unpack_from(">HH", head)
        return tag & ~CRX_NEWER == CRX_TILE and record in CRX_RECORD_SIZES[CRX_TILE]

    def test(data):
        try:
            return crx_header_problem(geometry, data, 0, size) is None
        except (struct.error, IndexError):
            return False
    header = geometry[0] if CRX_RECORD.size <= geometry[0] <= size else CRX_MARK_BYTES
    return Mark(at, min(size, header), test, quick, inside="the raw data")


def ctmd_mark(at, size):
    def quick(head):
        length, _ = CTMD_RECORD.unpack_from(head)
        return CTMD_RECORD.size <= length <= size
    return Mark(at, size, lambda data: ctmd_fills(data, size), quick, CTMD_RECORD.size,
                "the metadata records")


def box_mark(box, start):
    """A top-level box after mdat (a moov written last): its header, where it was."""
    header = U32.pack(box.size) + box.name if box.size <= 0xFFFFFFFF else b""
    return Mark(box.offset - start, len(header), lambda data: data == header) if header else None


def sample_marker(f, track):
    """A function (offset, size) -> [Mark] for the samples of track, or None."""
    if track.entry == CANON_RAW_ENTRY and b"JPEG" in track.entry_boxes:
        return jpeg_marks
    if track.entry == CANON_RAW_ENTRY and b"CMP1" in track.entry_boxes:
        geometry = crx_geometry(f.buf, track.entry_boxes[b"CMP1"])
        return lambda at, size: [crx_mark(at, size, geometry)]
    if track.entry == CANON_METADATA_ENTRY:
        return lambda at, size: [ctmd_mark(at, size)]
    if track.entry in JPEG_SAMPLE_ENTRIES:
        return jpeg_marks
    if track.entry in NAL_SAMPLE_ENTRIES:
        config = next((track.entry_boxes[name] for name in NAL_CONFIGS
                       if name in track.entry_boxes), None)
        if config is not None:
            length_size, hevc = nal_coding(f.buf, config)
            return lambda at, size: [nal_mark(at, size, length_size, hevc)]
    return None


def item_marks(f):
    """Marks for the coded pictures of a HEIF, from iloc (one extent each)."""
    iloc = f.child(f.top(META), b"iloc")
    if iloc is None:
        return []
    types, properties = heif_item_types(f), item_properties(f)
    marks = []
    for item_id, method, reference, extents in read_iloc(f.buf, iloc):
        if method or reference or len(extents) != 1 or not extents[0][1]:
            continue
        (at, size), kind = extents[0], types.get(item_id)
        if kind == b"jpeg":
            marks.extend(jpeg_marks(at, size))
        elif kind in NAL_IMAGE_ITEMS:
            config = next((box for box in properties.get(item_id, ())
                           if box.name in NAL_CONFIGS), None)
            if config is not None:
                marks.append(nal_mark(at, size, *nal_coding(f.buf, config)))
    return marks


def iso_marks(f):
    """Every mark of an ISO-BMFF file, in file order; FormatError when its tables
    cannot be read."""
    marks = []
    budget = table_budget(f.size)
    for track in f.tracks():
        marker = sample_marker(f, track)
        if marker is None:
            continue
        for at, size in itertools.islice(track.samples(), budget):
            if size:
                marks.extend(marker(at, size))
    marks.extend(item_marks(f))
    mdat = next((box for box in f.boxes if box.name == MDAT), None)
    if mdat is not None:
        marks.extend(filter(None, (box_mark(box, f.start) for box in f.boxes
                                   if box.offset > mdat.offset)))
    return sorted(marks, key=operator.attrgetter("at"))


def jpeg_spans(f):
    """(start, end) in the file of the JPEGs its tables place: a CR3's full-size
    JPEG, the frames of an MJPEG movie, the JPEG items of a HEIF."""
    spans = []
    budget = table_budget(f.size)
    for track in f.tracks():
        if track.entry in JPEG_SAMPLE_ENTRIES or (
                track.entry == CANON_RAW_ENTRY and b"JPEG" in track.entry_boxes):
            spans.extend((at, at + size)
                         for at, size in itertools.islice(track.samples(), budget))
    iloc = f.child(f.top(META), b"iloc")
    if iloc is not None:
        types = heif_item_types(f)
        spans.extend((extents[0][0], sum(extents[0])) for item_id, method, reference, extents
                     in read_iloc(f.buf, iloc)
                     if types.get(item_id) == b"jpeg" and len(extents) == 1 and not method)
    return spans


def jpeg_decodes(buf, first, last):
    """True when the JPEG at [first, last) is a baseline one whose data decodes to
    its frame's MCU count: only that proves a join inside its data (its SOI and EOI
    say nothing of what lies between)."""
    try:
        walk = walk_jpeg(buf, first, last)
        if walk.status != COMPLETE or walk.end < last - JPEG_TAIL:
            return False
        scan = baseline_scan(buf, walk)
        return (scan is not None and restart_problem(buf, scan) is None
                and mcu_problem(buf, scan, strict=True) is None)
    except (FormatError, struct.error, IndexError):
        return False


def walked_header(f):
    """How far the walk of f proved it its own: to its first mdat's payload."""
    return next((box.body - f.start for box in f.boxes if box.name == MDAT), 0)


class Known:
    """What other files tell about the dump: where the complete ones lie (no piece of
    another file can be there) and where a file was found to start."""

    def __init__(self, taken, starts, entries=()):
        self.starts_of_files = sorted(set(first for first, _ in taken))
        self.entries = frozenset(entries)   # where a folder entry, old or not, says
        #                                     a file began: a hint, never a proof
        merged = []
        for first, last in sorted(extent for extent in taken if extent[1] > extent[0]):
            if merged and first <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        self.firsts = [first for first, _ in merged]
        self.lasts = [last for _, last in merged]
        self.starts = sorted(starts)

    def taken_end(self, first, last):
        """The end of the known file's extent that overlaps [first, last), or None."""
        index = bisect.bisect_right(self.firsts, last - 1) - 1
        if index >= 0 and self.lasts[index] > first:
            return self.lasts[index]
        return None

    def next_taken(self, pos):
        """Where the first known extent at or after pos begins (the dump's end: inf)."""
        index = bisect.bisect_left(self.firsts, pos)
        return self.firsts[index] if index < len(self.firsts) else float("inf")

    def begins(self, pos):
        """True when a file was found to start at pos, or a known extent does."""
        index = bisect.bisect_left(self.starts, pos)
        found = index < len(self.starts) and self.starts[index] == pos
        return found or self.next_taken(pos) == pos


MIN_GRID_FILES = 8              # complete files whose starts tell the cluster size



def shared_grid(starts):
    """The Geometry that files starting at starts share: the largest power of two
    (up to MAX_CLUSTER) dividing every distance between them. Geometry() when
    fewer than MIN_GRID_FILES files say it, or they share no sector grid."""
    if len(starts) < MIN_GRID_FILES:
        return Geometry()
    common = 0
    for start in starts[1:]:
        common = math.gcd(common, start - starts[0])
    cluster = common & -common if common else 0
    if cluster < SECTOR_SIZE:
        return Geometry()
    cluster = min(cluster, MAX_CLUSTER)
    return Geometry(cluster, starts[0] % cluster)


class Budget:
    """Bytes a reassembly may still read; Unproven when spent."""

    def __init__(self, left):
        self.left = left

    def spend(self, size):
        self.left -= size
        if self.left < 0:
            raise Unproven("the search for its pieces used up its share of reading")


class Layout:
    """Where a file's bytes lie: joins [(offset in the file, offset in the dump)], the
    first at 0, each piece running to the next join (the last one on)."""

    def __init__(self, source, start, budget):
        self.source = source            # read(offset, size) -> bytes
        self.joins = [(0, start)]
        self.budget = budget

    def joined(self, at, dump_at):
        """This layout with one more join: the file's bytes from at lie at dump_at."""
        layout = Layout(self.source, 0, self.budget)
        layout.joins = self.joins + [(at, dump_at)]
        return layout

    def runs(self, at, size):
        """[(dump offset, length)] of the file's bytes [at, at + size)."""
        out = []
        end = at + size
        for index, (first, dump_at) in enumerate(self.joins):
            last = self.joins[index + 1][0] if index + 1 < len(self.joins) else end
            lo, hi = max(at, first), min(end, last)
            if lo < hi:
                out.append((dump_at + lo - first, hi - lo))
        return out

    def read(self, at, size):
        """The file's bytes [at, at + size): held once in memory (a JPEG's coded data
        may be tens of MB), in a bytearray when they are large and in pieces."""
        runs = self.runs(at, size)
        self.budget.spend(size)
        if len(runs) == 1:
            return self.source.read(*runs[0])
        if size <= SEARCH_CHUNK:
            return b"".join(self.source.read(offset, length) for offset, length in runs)
        data = bytearray()
        for offset, length in runs:
            for start in range(offset, offset + length, SEARCH_CHUNK):
                data += self.source.read(start, min(SEARCH_CHUNK, offset + length - start))
        return data

    def free(self, at, size, known):
        """True when no complete file lies where the file's bytes [at, at + size) are."""
        return all(known.taken_end(offset, offset + length) is None
                   for offset, length in self.runs(at, size))

    def pieces(self, size):
        """[(dump offset, length)] of the first size bytes."""
        out = []
        for index, (first, dump_at) in enumerate(self.joins):
            last = self.joins[index + 1][0] if index + 1 < len(self.joins) else size
            if first < size:
                out.append((dump_at, min(last, size) - first))
        return out


def grid_search(source, first, step, last, mark, known, budget, most=1):
    """The dump offsets first, first + step, ... below last where mark holds,
    outside known files, read a chunk at a time: up to most + 1 of them (more than
    most: too many to tell). It is charged for the places it looks at, a
    MIN_CARD_CLUSTER each: on a card of 32 KiB clusters a search of 1 GiB looks at
    32,768 places, which costs what 128 MiB does on one of 4 KiB (the reading is
    the kernel's, from the page cache; the looking is ours)."""
    found = []
    chunk = max(step, SEARCH_CHUNK // step * step)
    cost = chunk // max(1, step // MIN_CARD_CLUSTER)
    pos = first
    while pos < last and len(found) <= most:
        budget.spend(cost)

        data = source.read(pos, chunk + QUICK_BYTES)
        if not data:
            break
        for at in range(0, min(chunk, len(data), last - pos), step):
            if (mark.may_be(data[at:at + QUICK_BYTES])
                    and known.taken_end(pos + at, pos + at + mark.size) is None):
                budget.spend(mark.size)
                if mark.holds(source.read(pos + at, mark.size)):
                    found.append(pos + at)
        pos += chunk
    return found


def blank_begins(source, pos, cluster):
    """True when a run of blank clusters (zeros or 0xFF: nobody's data) begins at pos:
    the cluster is all one such byte, the byte before it is not."""
    data = source.read(pos - 1, cluster + 1)
    return (len(data) == cluster + 1 and data[1] in BLANK_BYTES and data[0] != data[1]
            and not data[1:].strip(data[1:2]))


def boundaries(first, last, shift, cluster):
    """The offsets in [first, last) of a file that lie on a cluster boundary, where
    offset + shift is a multiple of cluster."""
    first += -(first + shift) % cluster
    return range(first, max(first, last), cluster)


def marks_holding(layout, marks, shift, known):
    """How many of marks, one after the other, hold when the file's bytes lie at their
    offset + shift in the dump."""
    count = 0
    for mark in marks:
        at = mark.at + shift
        layout.budget.spend(mark.size)
        if (known.taken_end(at, at + mark.size) is not None
                or not mark.holds(layout.source.read(at, mark.size))):
            break
        count += 1
    return count


def next_gap(layout, marks, index, last_held, grid, known, limit, decoded=(), guesses=None):
    """The join that lets marks[index] (which fails where the current piece puts it)
    hold again: (offset in the file, offset in the dump) where the file goes on.

    The gap begins at a cluster boundary after the last byte a mark proved (before
    the failing mark, or inside it); its length puts that mark (or, for a split
    inside it, the next one) where it holds, searched forward; of several such
    places, the one where the most marks hold on wins. Then the split must be the
    one boundary where every mark around it holds, or pinned by what lies there:
    the start of a file found, a complete file, a cluster of zeros or 0xFF. Unproven
    unless one place and one split fit.

    A piece of the file could still lie unseen in the gap, where more than a
    cluster around the join is checked by no mark: unless the join lies in a JPEG
    that will be decoded whole (decoded: their spans), every cluster of the gap
    must be another file's (see gap_explained).

    guesses: a list, when a guess will do where no proof does (the file is then
    damaged, never complete): the split a camera most likely made is taken of those
    that fit (likely_split), and what was guessed is added to it, to be said."""
    mark = marks[index]
    piece_at, piece_dump = layout.joins[-1]
    shift = piece_dump - piece_at
    cluster, origin = grid[0], grid[1]
    # a grid no boot sector gives (one of TRY_CLUSTERS: its third item says so) may be
    # coarser than the card's: a window nothing checks is then judged by the smallest
    # cluster a camera's card has
    unchecked = min(cluster, MIN_CARD_CLUSTER) if len(grid) > 2 and grid[2] else cluster
    lowest = max(last_held, piece_at)
    ceiling = known.next_taken(piece_dump) - shift  # the piece cannot run into a file
    for probe_index, highest in ((index, mark.at), (index + 1, mark.at + mark.size)):
        if probe_index >= len(marks):
            continue
        probe = marks[probe_index]
        splits = boundaries(lowest + 1, min(highest, ceiling) + 1, shift - origin, cluster)
        if not splits:
            continue
        first = probe.at + shift + cluster
        found = grid_search(layout.source, first, cluster, min(limit, first + MAX_GAP_SEARCH),
                            probe, known, layout.budget, MAX_PLACES)
        if len(found) > MAX_PLACES:
            raise Unproven("the bytes after +%d fit at more than %d places"
                           % (lowest, MAX_PLACES))
        if not found:
            continue
        runs = [marks_holding(layout, marks[probe_index:probe_index + RUN_MARKS],
                              place - probe.at, known) for place in found]
        best = max(runs)
        if runs.count(best) > 1:
            raise Unproven("the bytes after +%d fit at %d places" % (lowest, runs.count(best)))
        place = found[runs.index(best)]
        gap = place - (probe.at + shift)
        splits = [at for at in splits if known.taken_end(at + shift + gap, place) is None]
        if len(splits) <= MAX_SPLITS_READ:
            splits = [at for at in splits if straddlers_hold(
                layout.joined(at, at + shift + gap), marks[:probe_index], at, known)]
        # a JPEG decoded whole checks every byte of a join inside it; elsewhere, no
        # blank or JPEG-coded cluster can be the file's own
        in_jpeg = splits and any(first < splits[0] and splits[-1] < last
                                 for first, last in decoded)
        if len(splits) > 1 and not any(first < splits[-1] and splits[0] < last
                                       for first, last in decoded):
            splits = clear_of_foreign(layout.source, splits, shift, gap, cluster,
                                      layout.budget)
            if not splits:
                raise Unproven("a gap the marks cannot place lies near +%d" % lowest)
        if len(splits) > 1:
            pinned = [at for at in splits if known.begins(at + shift)
                      or blank_begins(layout.source, at + shift, cluster)]
            if probe.at - lowest > MAX_UNCHECKED_JOIN and not in_jpeg:

                why = ("nothing checks the %d bytes after +%d where it was split"
                       % (probe.at - lowest, lowest))
            elif not pinned:
                why = "it was split somewhere between +%d and +%d" % (splits[0], splits[-1])
            else:
                why = None
            if why and guesses is None:
                raise Unproven(why)
            if why:
                guesses.append("split guessed between +%d and +%d: no mark inside %s"
                               % (splits[0], splits[-1],
                                  marks[index - 1].inside if index else "them"))
                splits = [likely_split(layout.source, splits, pinned, shift, gap, cluster,
                                       known)]
            else:
                splits = pinned[:1]
        if splits:
            split = splits[0]
            if (gap_evidence(layout.source, lowest + shift, split + shift, grid, known)
                    or gap_evidence(layout.source, split + shift + gap, place, grid, known)):
                raise Unproven("a gap the marks cannot place lies near +%d" % split)
            checked_after = next((m.at for m in marks[index:] if m.at >= split), probe.at)
            if ((split - lowest >= unchecked or checked_after - split >= unchecked)
                    and not any(first < split < last for first, last in decoded)
                    and not gap_explained(layout.source, split + shift,
                                          split + shift + gap, unchecked, known)):
                if guesses is None:
                    raise Unproven("a piece of it may lie unseen in the gap after +%d"
                                   % split)
                guesses.append("the gap after +%d may hold a piece of it" % split)
            return split, split + shift + gap
    raise Unproven("no gap after +%d puts its later bytes where they are found" % lowest,
                   worth_saying=lowest > 0)


def clear_of_foreign(source, splits, shift, gap, cluster, budget):
    """The splits (in the file, on its clusters; the bytes past each lie gap further
    on in the dump) that put no blank or JPEG-coded cluster (foreign_cluster) inside
    the file, before the split or after it: such a cluster is nobody's raw or
    NAL data, so the split lies before the first one after the file's first piece
    and after the last one before its next piece."""
    first, last = splits[0] + shift, splits[-1] + shift
    before = next(foreign_clusters(source, first, last, cluster, budget), last)
    after = next(foreign_clusters(source, last + gap - cluster, first + gap - cluster,
                                  -cluster, budget), None)
    return [at for at in splits if at + shift <= before
            and (after is None or at + shift + gap > after)]


def foreign_clusters(source, first, stop, step, budget):
    """The dump offsets first, first + step, ... (step < 0: going back), short of
    stop, of the clusters that are blank or a JPEG's coded data."""
    cluster = abs(step)
    span = max(cluster, SEARCH_CHUNK // cluster * cluster)
    pos = first
    while (pos < stop) if step > 0 else (pos > stop):
        count = min(span // cluster, -(-abs(stop - pos) // cluster))
        low = pos if step > 0 else pos - (count - 1) * cluster
        budget.spend(count * cluster)
        data = source.read(low, count * cluster)
        order = range(count) if step > 0 else range(count - 1, -1, -1)
        for index in order:
            if foreign_cluster(data[index * cluster:(index + 1) * cluster], cluster):
                yield low + index * cluster
        pos += count * step


def likely_split(source, splits, pinned, shift, gap, cluster, known):
    """Of splits that all fit, the one a camera most likely made, filling the first
    free clusters and jumping over the files there: where the start of a file found
    or a blank run follows (pinned); else where a folder entry says a file began
    (one of the card's folders before a format says so of the files then on it);
    else where its next piece begins just past a complete file, or a blank or
    JPEG-coded cluster; else the first."""
    if pinned:
        return pinned[0]
    for at in splits:
        if at + shift in known.entries:
            return at
    for at in splits:
        before = at + shift + gap - cluster
        if (known.taken_end(before, before + cluster) is not None
                or foreign_cluster(source.read(before, cluster), cluster)):
            return at
    return splits[0]


def free_runs(known, start, size, cluster, limit):
    """The pieces [(dump offset, length)] of size bytes from start on the card's
    clusters, jumping over every known file (to the end of its last cluster): a
    file written forward into the free clusters; None past limit or MAX_PIECES."""
    pieces, pos, left = [], start, size
    while left > 0:
        end = known.taken_end(pos, pos + 1)
        if end is not None:
            pos = end + -(end - start) % cluster
            continue
        following = min(known.next_taken(pos), limit)
        following -= (following - start) % cluster
        if following <= pos or len(pieces) == MAX_PIECES:
            return None
        take = min(following - pos, left)
        pieces.append((pos, take))
        left -= take
        pos = following
    return pieces


def gap_explained(source, first, last, cluster, known):
    """True when every cluster of the gap [first, last) is another file's: a complete
    file's, the start of a file found, blank, or a JPEG's coded data (an FF in it
    is always followed by 00, as nothing but a JPEG's data is); no piece of a movie
    or raw can lie there unseen. (Cameras fill clusters forward: a piece between two
    found ones lies in the gap between them.)"""
    pos = first
    while pos < last:
        end = known.taken_end(pos, pos + 1)
        if end is not None:
            pos = end + -(end - first) % cluster
            continue
        # the clusters up to the next known file, read a chunk at a time
        stop = min(last, known.next_taken(pos))
        chunk = source.read(pos, min(stop - pos + cluster, max(cluster, SEARCH_CHUNK)))
        if not chunk or stop <= pos:
            return False                        # past the dump's end: nothing says

        for at in range(0, len(chunk), cluster):
            if pos >= stop:
                break
            if not known.begins(pos) and not foreign_cluster(chunk[at:at + cluster], cluster):
                return False
            pos += cluster
    return True


def foreign_cluster(data, cluster):
    """True for a cluster that is blank or a JPEG's coded data."""
    if len(data) < cluster:
        return False
    if data[0] in BLANK_BYTES and not data.strip(data[:1]):
        return True
    return data.count(b"\xff") >= JPEG_LIKE_FFS and DATA_MARKER.search(data) is None


def gap_evidence(source, first, last, grid, known):
    """True when, between two marks, a cluster within [first, last) begins a file
    found or is blank: the bytes there are not the file's, so another gap lies there."""
    cluster, origin = grid[0], grid[1]
    first += -(first - origin) % cluster
    for pos in range(first, last, cluster):
        if known.begins(pos):
            return True
    data = source.read(first, max(0, min(last - first, MAX_UNCHECKED_JOIN + cluster)))
    for at in range(0, len(data) - cluster + 1, cluster):
        block = data[at:at + cluster]
        if block[0] in BLANK_BYTES and not block.strip(block[:1]):
            return True
    return False


def straddlers_hold(layout, marks, split, known):
    """True when every one of marks that reaches past split holds in layout."""
    return all(layout.free(mark.at, mark.size, known)
               and mark.holds(layout.read(mark.at, mark.size))
               for mark in marks if mark.at + mark.size > split)


def find_pieces(source, start, size, header, marks, grid, known, budget, decoded=(),
                guesses=None):
    """The pieces [(dump offset, length)] of the file of size bytes that begins at
    start, whose first header bytes its walk has read, such that every mark holds;
    Unproven when they cannot be told for sure. decoded: the spans of the JPEGs in
    it that will be decoded whole; guesses: see next_gap."""
    layout = Layout(source, start, budget)
    last_held, index, failed_at = header, 0, None
    marks = [mark for mark in marks if mark.at + mark.size <= size]
    while index < len(marks):
        mark = marks[index]
        if layout.free(mark.at, mark.size, known) and mark.holds(layout.read(mark.at, mark.size)):
            last_held = max(last_held, mark.proves())
            index += 1
            continue
        if failed_at == index or len(layout.joins) == MAX_PIECES:
            raise Unproven("more than %d pieces, or one that fits nowhere" % MAX_PIECES)
        failed_at = index
        try:
            layout = layout.joined(*next_gap(layout, marks, index, last_held, grid, known,
                                             source.size, decoded, guesses))
        except Unproven as e:
            if len(layout.joins) == 1:
                e.own = last_held       # up to the first split, where no join is
            raise

    pieces = layout.pieces(size)
    if not pieces:
        raise Unproven("it has no bytes", worth_saying=False)
    dump_at, length = pieces[-1]
    if known.taken_end(dump_at, dump_at + length) is not None:
        raise Unproven("its last piece runs into another file", worth_saying=len(pieces) > 1)
    return pieces


def lone_moovs(source, start, mdat_end, grid, known, budget):
    """Where moov boxes lie past the mdat of a movie's ftyp+mdat head (start: its dump
    offset; mdat_end: where its mdat ends in it), on the clusters where its own moov
    must lie: it follows mdat, and every gap is whole clusters. Nearest first."""
    cluster = grid[0]
    first = start + mdat_end + cluster
    moov = Mark(0, 8, lambda data: data[4:] == MOOV and U32.unpack(data[:4])[0] > 8,
                lambda data: data[4:8] == MOOV)
    return grid_search(source, first, cluster, min(source.size, first + MAX_GAP_SEARCH),
                       moov, known, budget, MAX_LONE_MOOVS)[:MAX_LONE_MOOVS]


# A JPEG's marks are its MCUs: its coded data must decode to exactly the frame's
# count, then end at EOI. Where decoding fails, the split lies before, at a place
# pinned as above; its rest is the cluster, searched forward, from which decoding
# goes on furthest. Cameras' baseline JPEGs without restart markers only.
DATA_MARKER = re.compile(b"\xff[^\x00\xd0-\xd7\xff]")    # what ends coded data
JPEG_PROBE = 2048               # coded bytes decoded at each place its rest may start
JPEG_GLANCE = 256               # ... after these first, where most places already fail
JPEG_TAIL_SLACK = 512           # a probe decoded to this near its end is decoded whole
JPEG_LONGER_PROBES = [16 << 10, 0]      # read on where places tie (0: no more)
MAX_JPEG_TIES = 16              # the nearest places that tie are read on
MAX_JPEG_GAP = 64 << 20         # a JPEG's rest is looked for this far past its split


class Unstuffed(NamedTuple):
    data: bytes                 # coded data, without the 00 after each FF
    removed: list               # where each removed 00 would be in data

    def raw_index(self, index):
        """Where data[index] lies in the coded data as written."""
        return index + bisect.bisect_right(self.removed, index)


def unstuff(raw):
    removed = [at - count + 1 for count, at in
               enumerate(m.start() for m in re.finditer(re.escape(STUFFED_FF), raw))]
    return Unstuffed(raw.replace(STUFFED_FF, b"\xff"), removed)


def decode_from(coded, scan, skip, mcus):
    """How far mcus MCUs decode from coded data (as written, up to its first marker),
    starting at bit skip: a Decoded."""
    marker = DATA_MARKER.search(coded)
    return decode_mcus(unstuff(coded[:marker.start()] if marker else coded).data, mcus,
                       scan.blocks, skip)


class McuAt(NamedTuple):
    """Where decoding of a JPEG's coded data may go on: at the MCU that holds a join."""
    at: int             # the MCU's first byte, in the file
    skip: int           # the bits of that byte before it
    mcus: int           # the MCUs before it


class Coded(NamedTuple):
    """How far a JPEG's coded data decodes, read from the file (see decode_coded);
    offsets are in the file."""
    problem: str        # None: every MCU asked for decoded
    mcus: int           # the whole MCUs decoded
    at: int             # where the last whole one ends: the byte, and the bits in it
    skip: int
    failed: int         # where decoding failed (the end of the last MCU, when none did)
    fill: bool          # only fill follows the last MCU, up to the marker or the end
    marker: int         # where the first marker is, when every MCU decoded; or None


def decode_coded(layout, at, end, scan, skip, mcus):
    """Decode mcus MCUs of the coded data the layout gives from at (bit skip) up to
    its first marker or end: a Coded, the same as decoding all of it in one go says,
    from DECODE_CHUNK bytes at a time (a JPEG's rest may be tens of MB). A chunk is
    never cut after an FF; each goes on from the last whole MCU of the one before,
    and what fails within FAR_FROM_END bits of a chunk's end is decoded again with
    more (twice as much when not one MCU fits)."""
    size, done = DECODE_CHUNK, 0
    while True:
        coded = coded_chunk(layout, at, size, end)
        found = DATA_MARKER.search(coded)
        cut = found.start() if found else len(coded)
        last = found is not None or at + len(coded) >= end
        stream = unstuff(coded[:cut])
        decoded = decode_mcus(stream.data, mcus, scan.blocks, skip, done)
        far = decoded.stop + FAR_FROM_END <= len(stream.data) * 8
        if last or (decoded.problem is not None and far):
            break
        if decoded.problem is None:             # the rest must be fill
            fill = not stream.data[-(-decoded.bits // 8):].strip(b"\xff")
            return fill_to_marker(layout, at + cut, end, Coded(
                None, done + decoded.mcus, at + stream.raw_index(decoded.bits // 8),
                decoded.bits % 8, at + stream.raw_index(decoded.bits // 8), fill, None))
        if decoded.mcus:
            at, skip = at + stream.raw_index(decoded.bits // 8), decoded.bits % 8
            mcus -= decoded.mcus
            done += decoded.mcus
        else:
            size *= 2
    fill = (decoded.problem is None
            and not stream.data[-(-decoded.bits // 8):].strip(b"\xff"))
    return Coded(decoded.problem, done + decoded.mcus, at + stream.raw_index(decoded.bits // 8),
                 decoded.bits % 8,
                 at + stream.raw_index(min(len(stream.data), decoded.stop // 8)), fill,
                 at + cut if found and decoded.problem is None else None)


def coded_chunk(layout, at, size, end):
    """Up to size bytes of coded data from at (not past end), never cut after an FF:
    an FF 00 or a marker is never cut in two."""
    coded = layout.read(at, min(size, end - at))
    while at + len(coded) < end and coded.endswith(b"\xff"):
        coded += layout.read(at + len(coded), 1)
    return coded


def fill_to_marker(layout, at, end, coded):
    """coded, once every MCU decoded before at: whether only fill (FF) lies from at
    up to the first marker or end, and where that marker is."""
    while at < end:
        data = coded_chunk(layout, at, DECODE_CHUNK, end)
        found = DATA_MARKER.search(data)
        rest = data[:found.start() if found else len(data)]
        fill = coded.fill and not rest.replace(STUFFED_FF, b"\xff").strip(b"\xff")
        coded = coded._replace(fill=fill)
        if found:
            return coded._replace(marker=at + found.start())
        at += len(data)
    return coded


def jpeg_pieces(source, start, scan, grid, known, budget):
    """The pieces [(dump offset, length)] of the baseline JPEG at start (scan: its
    JpegScan, read from its first piece) whose coded data decodes whole across them;
    Unproven when they cannot be told for sure."""
    cluster, origin = grid[0], grid[1]
    if scan.restart:
        raise Unproven("restart markers are not followed across a split", worth_saying=False)
    layout = Layout(source, start, budget)
    resume = McuAt(scan.data[0], 0, 0)
    for _ in range(MAX_PIECES):
        last_at, last_dump = layout.joins[-1]
        dump_end = source.size - last_dump + last_at       # in the file
        decoded = decode_coded(layout, resume.at, min(last_at + MAX_JPEG_REST, dump_end),
                               scan, resume.skip, scan.mcus - resume.mcus)
        if (decoded.problem is None and decoded.fill and decoded.marker is not None
                and layout.read(decoded.marker, len(JPEG_EOI)) == JPEG_EOI):
            return layout.pieces(decoded.marker + len(JPEG_EOI))
        failed = decoded.failed
        shift = last_dump - last_at
        splits = [at for at in boundaries(last_at + 1, failed + 1, shift - origin, cluster)
                  if known.begins(at + shift) or blank_begins(source, at + shift, cluster)]
        if not splits and last_at:
            raise Unproven("its coded data fails at +%d, past the best join at +%d"
                           % (failed, last_at))
        if not splits:
            raise Unproven("its coded data fails at +%d, and nothing says where it was split"
                           % failed, worth_saying=failed > scan.data[0])
        place, resume = jpeg_rest(layout, splits[0], scan, grid, known, resume)
        layout = layout.joined(splits[0], place)
    raise Unproven("more than %d pieces" % MAX_PIECES)


def jpeg_rest(layout, split, scan, grid, known, resume):
    """Where a JPEG split at split (offset in the file) goes on: (the dump offset past
    the split from which its MCUs decode furthest, the McuAt of the MCU it cuts)."""
    head = decode_coded(layout, resume.at, split, scan, resume.skip,
                        scan.mcus - resume.mcus)
    raw = head.at - resume.at                       # the MCU the split cuts begins here
    prefix, skip = layout.read(head.at, split - head.at), head.skip
    left = scan.mcus - resume.mcus - head.mcus
    cluster = grid[0]
    first = layout.joins[-1][1] + split - layout.joins[-1][0] + cluster
    last = min(layout.source.size, first + MAX_JPEG_GAP)
    scores = {}
    whole = 0                           # places whose probe decodes to its end
    pos = first
    chunk = max(cluster, SEARCH_CHUNK // cluster * cluster)
    while pos < last and whole < MAX_JPEG_TIES:     # past them, none is nearer
        layout.budget.spend(chunk)
        data = layout.source.read(pos, min(chunk, last - pos) + JPEG_PROBE)
        for at in range(0, min(chunk, len(data), last - pos), cluster):
            probe = data[at:at + JPEG_PROBE]
            marker = DATA_MARKER.search(probe)
            if (not probe or (probe[0] in BLANK_BYTES and not probe[:cluster].strip(probe[:1]))
                    or (marker and probe[marker.start():marker.end()] != JPEG_EOI)
                    or known.taken_end(pos + at, pos + at + cluster) is not None):
                continue
            glance = prefix + probe[:JPEG_GLANCE]
            decoded = decode_from(glance, scan, skip, left)
            if decoded.problem and decoded.stop < (len(glance) - JPEG_TAIL_SLACK // 8) * 8:
                continue                        # another file's bytes, or out of step
            scores[pos + at] = decode_reach(prefix + probe, scan, skip, left)
            whole += scores[pos + at] >= (len(prefix + probe) - JPEG_TAIL_SLACK) * 8
        pos += chunk
    # Where decoding reaches furthest; of places that tie, reading on (a JPEG's own
    # later clusters decode too, once the Huffman codes fall in step again, and so
    # may another JPEG's with the same tables), and at last the nearest: the camera
    # filled the first free cluster. That is a guess: only the whole file decoding
    # to its MCU count at EOI proves it (see _proven).
    if not scores:
        raise Unproven("its coded data after +%d is not found" % split)
    places = []
    for longer in JPEG_LONGER_PROBES:
        best = max(scores.values())
        places = sorted(place for place, score in scores.items() if score == best)
        if len(places) == 1 or not longer:
            break
        scores = {place: decode_reach(prefix + layout.source.read(place, longer), scan, skip,
                                      left)
                  for place in places[:MAX_JPEG_TIES]}
    return places[0], McuAt(resume.at + raw, skip, resume.mcus + head.mcus)


def decode_reach(coded, scan, skip, mcus):
    """How far mcus MCUs decode from coded data, in bits: more than any when they all
    do; the same for every place that decodes to the last MCU or two of it."""
    decoded = decode_from(coded, scan, skip, mcus)
    if decoded.problem is None:
        return float("inf")
    return min(decoded.stop, (len(coded) - JPEG_TAIL_SLACK) * 8)


def with_moov(data, mdat, moov):
    """The IsoFile of a movie's head (data, up to its mdat, from offset 0) with the
    moov bytes found elsewhere put after mdat, as the file had it."""
    buf = bytearray(mdat.end + len(moov))
    head = data[:mdat.end]
    buf[:len(head)] = head
    buf[mdat.end:] = moov
    boxes = walk_boxes(buf, 0, len(buf), StopAtBox(MOOV)).boxes
    if not boxes or boxes[-1].name != MOOV or boxes[-1].end != len(buf):
        raise FormatError("the moov does not follow the head's boxes")
    return IsoFile(buf, 0, len(buf), boxes, read_ftyp(buf, 0, len(buf)))


# 21. Writing and reporting ------------------------------------------------------------
# Names (the card's, fitted to the output's file system), the output directory
# (claimed names, write-then-place), the report and its state file, the resume of
# an earlier run (EarlierRun), DFXML.

PART_SUFFIX = ".part"
MAX_SAME_NAME = 100             # IMG_1234-2.CR3 ... before a name falls back to imgN
REPORT_NAME = "recovercr3-report"
REPORT_FIELDS = ("file", "type", "offset", "size", "status", "meaning", "detail",
                 "model", "datetime", "serial", "pieces",
                 "original_name", "name_source", "fs_time", "sha256")
OLD_REPORT_FIELDS = tuple(field for field in REPORT_FIELDS if field != "meaning")  # 0.x
NOT_SAVED = "not saved"
ROW_STATUSES = frozenset([COMPLETE, TRUNCATED, DAMAGED, REPAIRED, NOT_SAVED])    # a file's row's

SCAN_FINISHED, SCAN_INTERRUPTED = "scan finished", "interrupted"     # the last row's status
STATUS_DIRS = {COMPLETE: "", TRUNCATED: "truncated", DAMAGED: "damaged",
               REPAIRED: "repaired"}
CANON_PREFIX = "canon "
MAX_MODEL_IN_NAME = 40          # a hostile card's 300-character model must not make a name
                                # longer than a file system allows
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]+")
FORMULA_LEADS = ("=", "+", "-", "@")     # a spreadsheet runs a cell starting so
# link() is how a name is given without ever replacing one; where the file system has
# no hard links (FAT, exFAT, some FUSE), a checked rename is the fallback
# What stops the run when writing a file fails: the output disk is full or gone.
# Any other error is that file's failure (its name, its folder), and the run goes on.
OUTPUT_GONE = frozenset(getattr(errno, name) for name in (
    "ENOSPC", "EDQUOT", "EROFS", "EIO", "ENODEV", "ENXIO", "ESTALE", "ENOTCONN")
    if hasattr(errno, name))
MAX_NAME_FAILURES = 2 * MAX_SAME_NAME   # names refused in a row: the output's fault
NO_HARD_LINKS = frozenset(getattr(errno, name) for name in (
    "EPERM", "EOPNOTSUPP", "ENOTSUP", "ENOSYS", "EMLINK", "EXDEV",
    "EINVAL") if hasattr(errno, name))      # EINVAL: Windows's "Incorrect function"

# What a verdict means, in a photographer's words: can it be opened, what is missing,
# what can still be used, what to do. A row's detail is the technical reason (offsets,
# box names: for experts, tests and -v); its meaning is chosen from that detail by the
# first rule of its status whose pattern is found in it. docs/reference.rst lists the
# rules (test_verdicts holds the two to each other).
MOVIE_TYPES = frozenset(["mp4", "mov", "3gp", "crm", "avi", "mts", "ts", "mxf"])
RAW_TYPES = frozenset(["cr3", "cr2", "crw", "nef", "arw", "dng", "orf", "rw2", "pef", "srw",
                       "gpr", "raf", "x3f"])
WHAT_IT_IS = [(MOVIE_TYPES, "movie"), (RAW_TYPES, "raw picture"), ({"wav"}, "recording"),
              ({"7z"}, "archive")]
STILL_USABLE = {
    "movie": "Players such as VLC often play it up to where it breaks.",
    "raw picture": "A raw converter or viewer may still show its preview.",
    "picture": "A viewer shows the picture down to where it breaks, grey or garbled below.",
    "recording": "It plays up to where it breaks.",
    "archive": "7-Zip may still extract the files before the break.",
}
VERDICT_WORDS = [
    # (status, pattern in the detail, meaning)
    (COMPLETE, r"^the full-size JPEG inside|^the preview JPEG inside|^the thumbnail JPEG "
     r"inside|^the JPEG preview inside|^the JPEG thumbnail inside",
     "A whole picture taken out of a broken file ({container}): it opens. It is {which}."),
    (COMPLETE, r"reassembled from \d+ pieces|put back together from \d+ pieces",
     "Whole: put back together from the pieces the card had scattered, every join proven "
     "by the file's own structure. It opens as the camera wrote it."),
    (COMPLETE, r"", "Whole: every part of the {what} is here and checks out. It opens as "
     "the camera wrote it."),
    (REPAIRED, r"", "A copy of the cut movie {container} rebuilt to play: {pictures} pictures, "
     "{seconds} seconds, {sound}. Its pictures are the camera's, byte for byte; its index "
     "is borrowed from a whole movie of the same camera. Watch this one."),
    (TRUNCATED, r"its pictures are rebuilt beside it",
     "The recording was cut off (a dead battery, a card pulled out) before the camera "
     "finished the movie, so players cannot open this file. A copy that plays was "
     "rebuilt in repaired/: watch that one."),
    (TRUNCATED, r"mdat has size 0|cut before its index|not rebuilt",
     "The recording was cut off (a dead battery, a card pulled out) before the camera "
     "finished the movie, so players cannot open this file, and it could not be rebuilt "
     "(most often: no whole movie of the same camera and mode is on the card to borrow "
     "an index from). A video repair tool given a good movie from the same camera may."),
    (TRUNCATED, r"could not be read|never read by ddrescue",
     "Cut off where the card could not be read: the end of the {what} is missing. "
     "{usable}"),
    (TRUNCATED, r"the dump ends|the stream ends",
     "Cut off: the card image ends before this {what} does, so its end is missing. "
     "{usable} If the image is not of the whole card, image all of it and run again."),
    (TRUNCATED, r"", "Cut off: the end of this {what} was written over, or lies elsewhere on "
     "the card in a piece that could not be found. {usable}"),
    (DAMAGED, r"could not be read|never read by ddrescue",
     "Parts of the card could not be read: they are zeros in this {what}. {usable} A "
     "new image of the card (ddrescue, more retries) may read them."),
    (DAMAGED, r"by a guess",
     "Put back together from the pieces the card had scattered, by the most likely "
     "guess: nothing proves it right. Look at it: where the guess is wrong, it shows "
     "another file's bytes."),
    (DAMAGED, r"\bno moov\b",
     "A movie without its index, which the camera writes last (here it was cut off, or "
     "lies in a piece that could not be found): it will not play as it is. A video "
     "repair tool given a good movie from the same camera may rebuild it."),
    (DAMAGED, r"bytes are not checked",
     "Put back together from the pieces the card had scattered, each join proven; only "
     "its last part could not be checked, and may be another file's. It most likely "
     "opens whole: if its end looks wrong, that is why."),
    (DAMAGED, r"can confirm the join",
     "Put back together from the pieces the card had scattered, but nothing in this "
     "kind of file can prove the joins: part of it may be another file's. {usable}"),
    (DAMAGED, r"holds img|not put back together|lies outside|outside mdat|"
     r"but another file's|fragmented",
     "Written in pieces, or partly written over: part of what is here is not this "
     "file's. {usable}"),
    (DAMAGED, r"AVI video frame",
     "A frame of an AVI movie, not a photo of its own."),
    (DAMAGED, r"", "Its own structure does not add up: part of the {what} is missing or "
     "is another file's. {usable}"),
    (NOT_SAVED, r"stopped before it was written",
     "Found, but the run stopped before it was written: run the same command again "
     "to save it."),
    (NOT_SAVED, r"disk is full|no space",
     "Found, but the output disk is full: free space, or give another output folder, "
     "and run again."),
    (NOT_SAVED, r"too large",
     "Too large for the output drive (FAT32 holds 4 GiB a file at most): save to an "
     "exFAT, NTFS or APFS drive."),
    (NOT_SAVED, r"", "Found, but not written: the detail says why."),
    (SCAN_FINISHED, r"", "The whole card image was searched."),
    (SCAN_INTERRUPTED, r"", "The search stopped before the end of the card image: run the "
     "same command again to go on from there."),
]
VERDICT_RULES = [(status, re.compile(pattern), words) for status, pattern, words in
                 VERDICT_WORDS]
REPAIRED_NUMBERS = re.compile(r"^the ([\d,]+) pictures \(([\d.]+) s\) of (.+?), a movie cut")
INSIDE = re.compile(r" inside (\S+)")


def meaning(kind, status, detail, picture_beside=False):
    """What the verdict status, given for detail, means to the photographer (the first
    rule of VERDICT_WORDS that fits); picture_beside: a whole picture taken out of
    this broken file is saved beside it."""
    what = next((name for kinds, name in WHAT_IT_IS if kind in kinds), "picture")
    rule = next(words for rule_status, pattern, words in VERDICT_RULES
                if rule_status == status and pattern.search(detail))
    facts = {"what": what, "usable": STILL_USABLE[what], "container": "", "which": "",
             "pictures": "", "seconds": "", "sound": ""}
    inside = INSIDE.search(detail)
    if inside:
        facts["container"] = inside.group(1).rstrip(";,")
    facts["which"] = ("the picture at full size" if "full-size" in detail
                      else "a smaller preview of the picture" if "preview" in detail
                      else "only a small thumbnail of the picture")
    numbers = REPAIRED_NUMBERS.match(detail)
    if numbers:
        facts.update(pictures=numbers.group(1), seconds=numbers.group(2),
                     container=numbers.group(3))
        facts["sound"] = "with its sound" if "and its sound" in detail else "silent"
    words = rule.format(**facts)
    if picture_beside and status in (TRUNCATED, DAMAGED):
        words += " A whole picture from inside it is saved beside it, under its name + .jpg."
    return words


def date_stem(meta):
    """"2022-01-15_08-30-12_EOS-R6" from the date and model; "" when the date is unknown."""
    if not meta.datetime:
        return ""
    stem = meta.datetime[:19].replace("T", "_").replace(":", "-")
    model = meta.model
    if model.lower().startswith(CANON_PREFIX) and len(model) > len(CANON_PREFIX):
        model = model[len(CANON_PREFIX):]
    model = re.sub(r"[^A-Za-z0-9]+", "-", model[:MAX_MODEL_IN_NAME]).strip("-")
    return stem + "_" + model if model else stem


MAX_NAME_BYTES = 255            # of one component of a path, on every file system
NAME_UNSAFE = re.compile(r'[\\<>:"|?*\x00-\x1f\x7f]')     # and what Windows refuses


def card_path(path):
    """A path from the card, safe to use under the output directory: "" when one of
    its parts could leave it or is no name ("..", ""). A part too long for the file
    system is shortened when the name is given (fitted)."""
    parts = [NAME_UNSAFE.sub("_", part).strip() for part in path.split("/")]
    if any(part in ("", ".", "..") for part in parts):
        return ""
    return "/".join(parts)


# What the tool itself writes at the top of the output directory: a card's file or
# folder of such a name would take the contact sheet's place (a page a browser runs),
# the report's, or a verdict's folder. It is saved as "card-NAME" instead.
RESERVED_TOP = re.compile(r"(index.*\.html|\.?recovercr3.*|damaged|truncated|repaired)\Z",
                          re.IGNORECASE | re.DOTALL)
CARD_PREFIX = "card-"


def unreserved(path):
    """path (from the card) with its first part prefixed when that is one of the
    tool's own names (RESERVED_TOP); as it is otherwise."""
    return CARD_PREFIX + path if RESERVED_TOP.match(path.partition("/")[0]) else path


def numbered(name, number):
    """IMG_1234-2.CR3 for name IMG_1234.CR3 (its folder kept) and number 2."""
    folder, slash, base = name.rpartition("/")
    stem, dot, ext = base.rpartition(".")
    base = "%s-%d.%s" % (stem, number, ext) if dot and stem else "%s-%d" % (base, number)
    return folder + slash + base


# A name from the card may be longer than the output's file system takes, once the
# tool adds its ".part" or "-2" (a FAT long name is 255 characters), and many of them
# nested may be longer than a path may be. Such a name is shortened, the same way on
# every run: its start, "~", a short hash of the whole part, and its extension.
NAME_ROOM = MAX_NAME_BYTES - len(PART_SUFFIX)   # the last part, while it is NAME.part
STATUS_ROOM = len("truncated-99/")              # the verdict's folder before a name
SHORT_HASH = 8                  # hex digits of a shortened part's sha256
SHORT_FOLDER = 24               # bytes of each folder, when the path is too long
MAX_KEPT_EXTENSION = 16         # bytes of an extension kept when a name is shortened
DEFAULT_PATH_MAX = 260          # where the system does not say (Windows, without long paths)


def utf8_size(text):
    return len(text.encode("utf-8", "surrogateescape"))


# Windows (on any drive) and FAT, exFAT and NTFS drives (on any system) refuse these
# names, with any extension, and names ending in a dot or a space: such a part gets
# "_" after its stem, or in place of its end.
WINDOWS_DEVICES = re.compile(r"(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$"
                             r"|(COM|LPT)[0-9\u00b9\u00b2\u00b3])(\..*)?\Z",
                             re.IGNORECASE | re.DOTALL)
TRAILING_DOTS = re.compile(r"[. ]+\Z")


def portable(part):
    """part, as every system and drive takes it: not a device name, not ending in a
    dot or a space, without NAME_UNSAFE's characters."""
    part = TRAILING_DOTS.sub("_", NAME_UNSAFE.sub("_", part))
    if WINDOWS_DEVICES.match(part):
        stem, dot, ext = part.partition(".")
        part = stem + "_" + dot + ext
    return part


def same_name(name):
    """What two names that one folder cannot hold both have in common on Windows and
    macOS: case, and Unicode's composed or decomposed accents, do not count."""
    return unicodedata.normalize("NFC", name).casefold()


def shortened(part, room):
    """part, when it fits in room bytes (UTF-8); otherwise its start, "~", SHORT_HASH
    hex digits of the sha256 of all of it, and its extension: within room."""
    if utf8_size(part) <= room:
        return part
    stem, dot, ext = part.rpartition(".")
    ext = dot + ext if stem and utf8_size(ext) < MAX_KEPT_EXTENSION else ""
    tag = "~" + hashlib.sha256(part.encode("utf-8", "surrogateescape")).hexdigest()[:SHORT_HASH]
    budget, kept = room - utf8_size(tag + ext), 0
    for char in part[:len(part) - len(ext)]:     # the longest start that fits, once over
        budget -= utf8_size(char)
        if budget < 0:
            break
        kept += 1
    return part[:kept] + tag + ext


def fitted(name, room):
    """name (folders/file) with every part short enough for the file system, and all
    of it within room bytes: long parts shortened, then its folders shortened to
    SHORT_FOLDER, then dropped. The same name each time; a fitted name fits as it is."""
    *folders, last = [portable(part) for part in name.split("/")]
    folders = [shortened(folder, MAX_NAME_BYTES) for folder in folders]
    last = shortened(last, NAME_ROOM)
    if utf8_size("/".join(folders + [last])) > room:
        folders = [shortened(folder, SHORT_FOLDER) for folder in folders]
    if utf8_size("/".join(folders + [last])) > room:
        folders = []
    return "/".join(folders + [last])


def path_room(folder):
    """Bytes left for a name under folder (an output directory) once the verdict's
    folder and ".part" are added, within the system's limit for a whole path."""
    try:
        limit = os.pathconf(str(folder), "PC_PATH_MAX")
    except (AttributeError, ValueError, OSError):
        limit = DEFAULT_PATH_MAX
    used = len(os.fsencode(os.path.abspath(str(folder)))) + 1 + STATUS_ROOM + len(PART_SUFFIX)
    return (limit if limit > 0 else DEFAULT_PATH_MAX) - 1 - used


def local_time(text):
    """Seconds since the epoch of ISO text read as this machine's local time, or None."""
    try:
        return time.mktime(time.strptime(text[:19], TIME_FORMAT))
    except (ValueError, OverflowError):
        return None


def file_sha256(path):
    """The sha256 of the file at path, read a chunk at a time ("" when unreadable)."""
    digest = hashlib.sha256()
    try:
        with open(str(path), "rb") as f:
            for chunk in iter(lambda: f.read(COPY_CHUNK), b""):
                digest.update(chunk)
    except OSError:
        return ""
    return digest.hexdigest()


def pieces_of(carved):
    """[(offset, size)] of each of a file's pieces: one when it lies in one piece."""
    return list(carved.pieces) or [(carved.offset, carved.size)]


def name_in(row):
    """A report row's file without its status folder: the name it was given."""
    if row["status"] == COMPLETE:
        return row["file"]
    return row["file"].partition("/")[2]


def byte_runs(carved):
    """Where a file's bytes lie in the dump: start-end (end excluded) of each piece,
    joined with +."""
    return "+".join("%d-%d" % (offset, offset + size)
                    for offset, size in pieces_of(carved))


def clean_text(value):
    """Text from a card as one printable line: control characters become spaces."""
    return CONTROL_CHARACTERS.sub(" ", str(value)).strip()


def report_cell(value):
    """A report cell: one clean line, and never a formula a spreadsheet would run."""
    if isinstance(value, int):
        return str(value)
    text = clean_text(value)
    return "'" + text if text.startswith(FORMULA_LEADS) else text


def append_whole(fd, data, size):
    """Append data to the file of fd (size bytes long): all of it, or none of it."""
    try:
        write_all(fd, data)
    except BaseException:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
            os.lseek(fd, size, os.SEEK_SET)     # the next append goes where this one was
        raise


def place(source, target):
    """Give the file at source the name target, never replacing what is there:
    FileExistsError when target exists (also as a dangling symlink)."""
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno not in NO_HARD_LINKS:
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target)) from None
        os.rename(source, target)
        return
    os.unlink(source)


class LinkInTheWay(OSError):
    """A symbolic link where the tool would make or walk through a folder."""


def create_exclusive(path):
    """A new file's descriptor; FileExistsError when anything is at path already."""
    return os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL
                   | O_BINARY, 0o644)


class Claim:
    """A name taken for one file. NAME.part, created exclusively in the output
    directory's top (or, for a card's path, in its folder there), is the claim:
    another run (or this one) takes NAME only by creating NAME.part first, so while
    it is held nobody else can give that name."""

    def __init__(self, name, part, fd, shortened=False):
        self.name = name
        self.part = part            # "" in a dry run: nothing is written
        self.fd = fd
        self.held = bool(part)      # the .part file is ours and still there
        self.shortened = shortened  # the name wanted was too long: this is it, shortened

    def close(self):
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


# A run holds its report's lock while it writes it, so that the next run tells a run
# in progress from a killed one (whose report has no last row either). Windows locks
# byte ranges, and keeps others from reading them: the byte locked is one far past
# any report's end.
LOCK_AT = (1 << 31) - 1


def hold_lock(fd):
    """Take the lock of the report open at fd, for as long as it is open (none where
    the system has neither flock nor msvcrt)."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    elif msvcrt is not None:
        at = os.lseek(fd, 0, os.SEEK_CUR)
        os.lseek(fd, LOCK_AT, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        finally:
            os.lseek(fd, at, os.SEEK_SET)


def locked_by_another(fd):
    """True when a run in progress holds the lock of the report open at fd."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False
    if msvcrt is not None:
        os.lseek(fd, LOCK_AT, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return True
        finally:
            os.lseek(fd, LOCK_AT, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        os.lseek(fd, 0, os.SEEK_SET)
    return False


class Report:
    """recovercr3-report.csv (or -2, -3, ... when taken): each row whole or not at all."""

    def __init__(self, folder):
        number = 1
        while True:
            suffix = ".csv" if number == 1 else "-%d.csv" % number
            self.path = Path(folder) / (REPORT_NAME + suffix)
            try:
                self.fd = create_exclusive(self.path)
                break
            except FileExistsError:
                number += 1
        hold_lock(self.fd)              # held until the run ends, however it ends
        self.size = 0
        self.write_row(REPORT_FIELDS)

    def write_row(self, cells):
        line = io.StringIO()
        csv.writer(line).writerow([report_cell(cell) for cell in cells])
        data = line.getvalue().encode("utf-8")
        append_whole(self.fd, data, self.size)
        self.size += len(data)

    def close(self):
        os.close(self.fd)


# A run cut short is resumed from the first offset whose files it could not report
# for good, the imgN names numbered on from the number they had reached there (so that

# a run cut short and resumed names files as one that was never stopped). The state
# file holds that point beside the report's name; the report's last row says it in
# words, for the reader. A state of version 1 (recovercr3 before 2026-12) had no
# point: its reports' last rows are read for it (OLD_RESUME_WORDS).
OLD_RESUME_WORDS = re.compile(r"goes on from offset ([0-9,]+), naming from number ([0-9]+)")
REPORT_FILE = re.compile(re.escape(REPORT_NAME) + r"(?:-([0-9]+))?\.csv")
PICTURE_NAME = re.compile(r"(?:-[0-9]+)?\.jpg$")     # after its container's name


# The tool's own record, in the output directory, of the reports a next run resumes,
# newest first: never a folder listing, which a card's file (or anyone) could add a
# report to. Its first line says what it is; then a report a line: its name, and for
# a run cut short, a tab, the offset it resumes from, a tab and the last number used.
STATE_NAME = ".recovercr3-state"
STATE_HEADER = "recovercr3 state 2"
OLD_STATE_HEADER = "recovercr3 state 1"         # names alone
STATE_LINE = re.compile(r"(%s)(?:\t([0-9]{1,20})\t([0-9]{1,20}))?" % REPORT_FILE.pattern)
MAX_STATE_BYTES = 64 << 10
MAX_CHAIN = 32                  # reports of runs cut short one after the other


def read_state(folder):
    """The paths of the reports the state file in folder names, newest first; []
    when it has none (or a state that is not the tool's)."""
    return state_of(folder)[0]


def state_of(folder):
    """(the paths of the reports the state file in folder names, newest first;
    {path: (offset, last number)} of those cut short, or None for an old state,
    whose reports' last rows say it)."""
    try:
        fd = open_here(os.path.join(str(folder), STATE_NAME), os.O_RDONLY | O_NONBLOCK)
    except OSError:
        return [], {}
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return [], {}
        data = os.read(fd, MAX_STATE_BYTES + 1)
    except OSError:
        return [], {}
    finally:
        os.close(fd)
    try:
        lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        return [], {}
    found = [STATE_LINE.fullmatch(line) for line in lines[1:] if line]
    if lines[0] not in (STATE_HEADER, OLD_STATE_HEADER) or len(data) > MAX_STATE_BYTES \
            or not found or not all(found):
        return [], {}
    paths, points = [], {}
    for match in found[:MAX_CHAIN]:
        path = os.path.join(str(folder), match.group(1))
        paths.append(path)
        if match.group(3) is not None:
            points[path] = (int(match.group(3)), int(match.group(4)))
    return paths, (points if lines[0] == STATE_HEADER else None)


def write_state(folder, reports, points=None):
    """Make the state file in folder name reports (paths, newest first), with the
    points ({path: (offset, last number)}) of those cut short: written whole under
    another name, then renamed over the old one."""
    points = points or {}
    lines = [STATE_HEADER]
    for path in reports[:MAX_CHAIN]:
        point = points.get(str(path))
        lines.append(os.path.basename(str(path)) + ("\t%d\t%d" % point if point else ""))
    text = "\n".join(lines) + "\n"
    scratch = os.path.join(str(folder), "%s.%d.tmp" % (STATE_NAME, os.getpid()))
    fd = create_exclusive(scratch)
    try:
        try:
            write_all(fd, text.encode("utf-8"))
        finally:
            os.close(fd)
        os.replace(scratch, os.path.join(str(folder), STATE_NAME))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(scratch)
        raise


def newest_report(folder):
    """The report of the last run into folder, as the state file says, or None."""
    reports = read_state(folder)
    return reports[0] if reports else None


def parse_runs(text):
    """[(offset, size)] from a report's pieces cell ("512-30097+65536-70000")."""
    runs = []
    for run in text.split("+") if text else []:
        first, _, end = run.partition("-")
        runs.append((int(first), int(end) - int(first)))
    return runs


def row_carved(row):
    """The Carved a report row describes (no boxes: what a tile and DFXML need)."""
    runs = parse_runs(row["pieces"])
    return Carved(int(row["offset"]), int(row["size"]), row["type"], row["type"],
                  row["status"], row["detail"], [],
                  Meta(row["model"], row["datetime"], row["serial"]),
                  pieces=tuple(runs) if len(runs) > 1 else ())


def resume_point(end, point=None):
    """(offset, the last imgN number used) the run whose report's last row is end
    is resumed from: point (the state file's word), or for an old state's report
    (point None) what its last row says; (0, 0) for a run not cut short, or killed."""
    if end is None or end["status"] != SCAN_INTERRUPTED:
        return 0, 0
    if point is not None:
        return point
    found = OLD_RESUME_WORDS.search(end["detail"])
    if not found:
        return 0, 0
    return int(found.group(1).replace(",", "")), max(int(found.group(2)) - 1, 0)


SUPERSEDED = "superseded"       # a row's own mark, beside REPORT_FIELDS: see superseded()


class EarlierRun:
    """What the reports of the last runs into the output directory say, so that a
    second run resumes instead of saving everything twice.

    A run that searched the whole dump: this one searches it again (maybe with a
    newer version, or other types) and writes only what it did not save. A run cut
    short (Ctrl-C, a full disk, a power cut): its rows before the point it resumes
    from (the state file's, see write_state) are this run's first rows, as they are,
    and the search resumes there. Either way, a file found where a row says one was saved, whose bytes in
    the dump have the row's sha256 and whose copy is still there, is kept, not
    written again. A report without a last row is that of a run that was killed: it
    is resumed from the start, keeping the files it saved.

    A run cut short that resumed others lists only what it reached: the files

    the runs before it saved after that are in their reports (the state file names
    them all, newest first), and are kept too.
    """

    def __init__(self, path, rows, end, older=(), point=None):
        self.path = path
        self.end = end                  # the last row (scan finished/interrupted) or None
        self.resume_at, self.counter = resume_point(end, point)
        # what the next run's state says of this one's reports
        self.points = {path: (self.resume_at, self.counter)} if self.resume_at else {}
        self.carried = [row for row in rows if int(row["offset"]) < self.resume_at]
        self.carried_files = []         # those of files found, not pictures taken out
        self._saved = {}                # (offset, type) -> rows of files saved there
        self._pictures = {}             # (offset, its container's name) -> row
        self._take(rows, end, self.resume_at, newest=True)
        for older_path, older_rows, older_end, older_point in older:
            older_at, older_counter = resume_point(older_end, older_point)
            if older_at:
                self.points[older_path] = (older_at, older_counter)
            self._take(older_rows, older_end, older_at, newest=False)

    def _take(self, rows, end, resume_at, newest):
        """Keep the rows of one report: of the newest, all; of an older one, those of
        files saved where the newest did not reach, and no newer report lists."""
        saved, pictures = {}, {}
        container = ""
        for row in rows:
            name = row["file"].rpartition("/")[2]
            picture = bool(container) and row["type"] == "jpg" and name.startswith(container) \
                and PICTURE_NAME.match(name[len(container):]) is not None
            if not picture:
                container = name
            offset = int(row["offset"])
            row[SUPERSEDED] = end is None or (end["status"] == SCAN_INTERRUPTED
                                              and offset >= resume_at)
            if offset < self.resume_at:
                if newest and not picture:
                    self.carried_files.append(row)
            elif not row["file"] or not row["sha256"]:
                continue                # not saved: nothing to keep
            elif picture:
                if (offset, container) not in self._pictures:
                    pictures[(offset, container)] = row
            elif (offset, row["type"]) not in self._saved or \
                    (offset, row["type"]) in saved:
                saved.setdefault((offset, row["type"]), []).append(row)
        self._saved.update(saved)
        self._pictures.update(pictures)

    @classmethod
    def read(cls, paths, dump_size, points=None):
        """The EarlierRun of the reports at paths (newest first), resumed from points
        (see state_of; None: an old state's); ValueError saying why the newest cannot
        be resumed. An older one that cannot be read gives nothing."""
        rows, end = cls._rows_of(paths[0], dump_size)
        older = []
        for path in paths[1:]:
            with contextlib.suppress(ValueError):
                older.append((path,) + cls._rows_of(path, dump_size)
                             + (cls._point(points, path),))
        return cls(paths[0], rows, end, older, cls._point(points, paths[0]))

    @staticmethod
    def _point(points, path):
        """The resume point the state gives path: None for an old state (its last row
        says it), (0, 0) where a new one gives none."""
        return None if points is None else points.get(path, (0, 0))

    @staticmethod
    def _rows_of(path, dump_size):
        """(rows, last row or None) of the report at path; ValueError saying why it
        cannot be resumed."""
        try:
            with open(path, newline="", encoding="utf-8") as f:
                if locked_by_another(f.fileno()):
                    raise ValueError("another run is still writing it")
                reader = csv.reader(f)
                fields = tuple(next(reader, ()))
                if fields not in (REPORT_FIELDS, OLD_REPORT_FIELDS):
                    raise ValueError("it is not a report of this version of recovercr3")
                rows = [dict(zip(fields, cells)) for cells in reader]
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise ValueError("it cannot be read: %s" % (getattr(e, "strerror", None) or e)
                             ) from None
        if rows and len(rows[-1]) != len(fields):
            rows.pop()                  # its last line, cut by a power cut
        if any(len(row) != len(fields) for row in rows):
            raise ValueError("a row of it is cut")
        for row in rows:
            row.setdefault("meaning", "")   # an older version's: carried() says it anew
        end = rows.pop() if rows and rows[-1]["status"] in (SCAN_FINISHED,
                                                            SCAN_INTERRUPTED) else None
        if any(row["status"] not in ROW_STATUSES or (row["file"] and not name_in(row))
               for row in rows):
            raise ValueError("a row of it gives a verdict no run gives, or a file no name")
        try:
            for row in rows:
                extents = [(int(row["offset"]), 0 if row["status"] == REPAIRED
                            else int(row["size"]))] + parse_runs(row["pieces"])
                if any(first < 0 or length < 0 or first + length > dump_size
                       for first, length in extents):
                    raise ValueError
            size = int(end["size"]) if end is not None else dump_size
        except ValueError:
            raise ValueError("a row of it does not say where in this dump its file lies"
                             ) from None
        if size != dump_size:
            raise ValueError("it is the report of a dump of {:,d} B, not of this one "
                             "({:,d} B)".format(size, dump_size))
        return rows, end

    def saved_at(self, offset, kind):
        """The row of a file of type kind saved at offset, taken off the list; or None."""
        rows = self._saved.get((offset, kind))
        return rows.pop(0) if rows else None

    def superseded(self, row):
        """True for a row a run cut short wrote after where it resumes (its
        verdict may not be final), or any row of a killed run's: this run gives the
        file's for good."""
        return row.get(SUPERSEDED, False)

    def left_over(self):
        """The rows of saved files and pictures no file found by this run matched."""
        return [row for rows in self._saved.values() for row in rows] \
            + list(self._pictures.values())

    def picture_at(self, offset, container):
        """The row of the picture at offset taken out of the file called container."""
        return self._pictures.pop((offset, container), None)


class OutputDir:
    """The output directory: claimed names, write-then-place, status folders, report.

    Complete files go to the top, the others to truncated/ and damaged/ (damaged-2/
    ... when something that is not a folder has that name). A name is only given when
    it is free in every folder, so a file can move between them, and only what this
    run created is ever removed.
    """

    def __init__(self, path, name_by="number", dry_run=False):
        self.path = Path(path)
        self.name_by = name_by
        self.dry_run = dry_run
        self.counter = 0
        self._given = set()                 # names given in this run (same_name keys)
        self.claims = set()                 # the Claims of this run not named or given up
        self.folders = {COMPLETE: ""}       # status -> folder, once it is made
        self.notes = []                     # what the caller should tell the user
        self.links = set()                  # symbolic links met where folders would be
        if os.path.lexists(str(self.path)) and not self.path.is_dir():
            raise UsageError("cannot write to %s: it is a file, not a directory" % path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except NotADirectoryError:
            raise UsageError("cannot write to %s: a part of it is a file, not a "
                             "directory" % path) from None
        self.room = path_room(self.path)
        # before this run's is made
        self.earlier_reports, self.earlier_points = state_of(self.path)
        self.unrecorded = not os.path.lexists(str(self.path / STATE_NAME)) and any(
            REPORT_FILE.fullmatch(name) for name in os.listdir(str(self.path)))
        self.report = Report(self.path)
        self.report_path = self.report.path

    def close(self):
        for claim in list(self.claims):
            self.release(claim)
        self.report.close()

    def remember(self, reports, points=None):
        """Name reports (newest first) in the state file, with the resume points of
        those cut short: what the next run resumes. "" when done; otherwise why not,
        for a warning (never the run's end). A dry run's report is resumed by none:
        it only makes a state naming none, where there is none (its report is the
        tool's, not an older version's)."""
        if self.dry_run and os.path.lexists(str(self.path / STATE_NAME)):
            return ""
        try:
            write_state(self.path, [] if self.dry_run else reports, points)
            return ""
        except OSError as e:
            return "cannot write %s: %s; the next run into %s saves every file anew" % (
                self.path / STATE_NAME, e.strerror or e, self.path)

    def folder(self, status):
        """The folder for status, made on first use."""
        if status not in self.folders:
            base = name = STATUS_DIRS[status]
            number, why = 1, ""
            while True:
                try:
                    os.mkdir(str(self.path / name))
                    break
                except FileExistsError:
                    mode = os.lstat(str(self.path / name)).st_mode
                    if stat.S_ISDIR(mode):
                        break
                    why = why or ("is a symbolic link (nothing is written through one)"
                                  if stat.S_ISLNK(mode) else "exists and is not a folder")
                number += 1
                name = "%s-%d" % (base, number)
            if name != base:
                self.notes.append("%s %s: %s files go to %s" % (
                    self.path / base, why, status, self.path / name))
            self.folders[status] = name
        return self.folders[status]

    def relpath(self, status, name):
        return os.path.join(self.folders.get(status, STATUS_DIRS[status]), name)

    def path_of(self, status, name):
        return self.path / self.relpath(status, name)

    def _homes(self, name):
        """Every place where a file called name would be."""
        folders = set(STATUS_DIRS.values()) | set(self.folders.values())
        return [self.path / folder / name for folder in sorted(folders)]

    def _taken(self, name):
        return (same_name(name) in self._given
                or os.path.lexists(str(self.path / (name + PART_SUFFIX)))
                or any(os.path.lexists(str(home)) for home in self._homes(name)))

    def names_for(self, carved, naming=None):
        """imgN.ext (the next N); or the date and model with --name-by date, or the
        path the card gave it with --name-by original, when they are known."""
        original = unreserved(card_path(naming.path)) \
            if naming and self.name_by == "original" else ""
        if original:
            yield original
            for number in range(2, MAX_SAME_NAME):
                yield numbered(original, number)
        stem = date_stem(carved.meta) if self.name_by == "date" else ""
        if stem:
            yield "%s.%s" % (stem, carved.ext)
            for number in itertools.count(2):
                yield "%s-%d.%s" % (stem, number, carved.ext)
        while True:
            self.counter += 1
            yield "img%d.%s" % (self.counter, carved.ext)

    def fit(self, name):
        """name, shortened where the output's file system would refuse it (fitted)."""
        return fitted(name, self.room)

    def claim(self, names):
        """Take the first free name of names (each fitted): its .part file is created
        exclusively, then the name is checked again while the claim is held. A name
        the file system refuses (a folder in the way is a file or a link, a character
        it does not take) is passed over: MAX_NAME_FAILURES of them in a row are
        the output's fault, and raised."""
        failures = 0
        for wanted in names:
            name = self.fit(wanted)
            if self._taken(name):
                continue
            if self.dry_run:
                self._given.add(same_name(name))
                return Claim(name, "", None, shortened=name != wanted)
            part = self.path / (name + PART_SUFFIX)
            try:
                if "/" in name:
                    self._make_parents(part)
                fd = create_exclusive(part)
            except FileExistsError:
                continue
            except OSError as e:
                failures += 1
                if e.errno in OUTPUT_GONE or failures >= MAX_NAME_FAILURES:
                    raise
                continue
            if any(os.path.lexists(str(home)) for home in self._homes(name)):
                os.close(fd)
                os.unlink(str(part))
                continue
            self._given.add(same_name(name))
            claim = Claim(name, str(part), fd, shortened=name != wanted)
            self.claims.add(claim)
            return claim
        raise AssertionError("names_for never ends")

    def still_there(self, row):
        """True when the file a report row names is still where it says, whole, and
        that is in this directory (a report is only text: its names are checked)."""
        relpath = row["file"]
        path = self.path / relpath
        if card_path(relpath) != relpath or not os.path.realpath(str(path)).startswith(
                os.path.join(os.path.realpath(str(self.path)), "")):
            return False
        try:
            st = os.lstat(str(path))
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and st.st_size == int(row["size"])

    def is_ours(self, row):
        """True when the file a report row names is the one that run wrote: there,
        whole, with the row's sha256. Only such a file is moved, replaced or removed."""
        return bool(row["sha256"]) and self.still_there(row) \
            and file_sha256(self.path / row["file"]) == row["sha256"]

    def reclaim(self, names, name):
        """A claim on name, the name an earlier run gave a file that is kept: names
        are taken as claim() would, up to name (or to a free one, where that run
        took this one's), so that the numbers go on as they went then."""
        wanted = name
        for wanted in names:
            candidate = self.fit(wanted)
            if candidate == name or not self._taken(candidate):
                break
        self._given.add(same_name(name))
        return Claim(name, "", None, shortened=self.fit(wanted) == name != wanted)

    def claim_again(self, name):
        """A claim on name, which the earlier run's copy of the file still has (it is
        replaced once this one is written): FileExistsError when name.part is there."""
        part = self.path / (name + PART_SUFFIX)
        if "/" in name:
            self._make_parents(part)
        fd = create_exclusive(part)
        self._given.add(same_name(name))
        claim = Claim(name, str(part), fd)
        self.claims.add(claim)
        return claim

    def move(self, relpath, status, name):
        """Give the kept file at relpath its place in the folder of status (its
        verdict may have changed): the new relpath."""
        folder = self.folder(status)
        if os.path.join(folder, name) == relpath:
            return relpath
        for name in self._fallbacks(name):
            target = os.path.join(folder, name)
            try:
                self._make_parents(self.path / target)
                place(str(self.path / relpath), self.path / target)
                return target
            except (FileExistsError, NotADirectoryError, LinkInTheWay):
                continue
        raise AssertionError("_fallbacks never ends")

    def rename(self, claim, names):
        """Give a claim the first of names that is free (its .part file stays where
        it is: finish() places it under the new name, never over another)."""
        for wanted in names:
            name = self.fit(wanted)
            if name == claim.name or not self._taken(name):
                self._given.add(same_name(name))
                claim.name = name
                claim.shortened = name != wanted
                return

    def _make_parents(self, path):
        """The folders above path, made by walking down from the output directory:
        never through a symbolic link (LinkInTheWay, said once in the notes), nor
        over a file (NotADirectoryError)."""
        folder = self.path
        for part in path.parent.relative_to(self.path).parts:
            folder = folder / part
            try:
                os.mkdir(str(folder))
                continue
            except FileExistsError:
                st = os.lstat(str(folder))
            if stat.S_ISLNK(st.st_mode):
                if folder not in self.links:
                    self.links.add(folder)
                    self.notes.append("%s is a symbolic link: nothing is written through "
                                      "it, the files meant for it have other names" % folder)
                raise LinkInTheWay(errno.ELOOP, "a symbolic link", str(folder))
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))

    def _fallbacks(self, name):
        """name, name-2, ..., then (its folders in the way) its last part alone: the
        names a file written as name may be given, fitted."""
        for number in range(1, MAX_SAME_NAME):
            yield self.fit(numbered(name, number) if number > 1 else name)
        base = name.rpartition("/")[2]
        for number in itertools.count(1):
            yield self.fit(numbered(base, number) if number > 1 else base)

    def release(self, claim):
        """Give a claim up: its .part file goes, as it is ours."""
        claim.close()
        self.claims.discard(claim)
        if claim.held:
            claim.held = False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(claim.part)

    def save(self, dump, carved, claim, checkpoint, digest=None):
        """Copy carved's bytes into the claim's .part file; released on failure."""
        try:
            for offset, size in pieces_of(carved):
                dump.copy_to(claim.fd, offset, size, checkpoint, digest)
            claim.close()
        except BaseException:
            self.release(claim)
            raise

    def save_again(self, dump, carved, claim, checkpoint, digest=None):
        """Write the claim's .part anew, from carved's pieces (a file put back together)."""
        claim.fd = os.open(str(claim.part), os.O_WRONLY | os.O_TRUNC)
        self.save(dump, carved, claim, checkpoint, digest)

    def finish(self, claim, status):
        """Give the written .part its name in the folder of status; the relpath."""
        folder = self.folder(status)
        for name in self._fallbacks(claim.name):    # another name: a file, folder or
            try:                                    # link put there meanwhile
                self._make_parents(self.path / folder / name)
                place(claim.part, self.path / folder / name)
                break
            except (FileExistsError, NotADirectoryError, LinkInTheWay):
                continue
        claim.held = False
        claim.name = name
        self.claims.discard(claim)
        return os.path.join(folder, name)

    def unfinish(self, relpath):
        """Take back a file this run has just placed (its report row failed)."""
        with contextlib.suppress(OSError):
            os.unlink(str(self.path / relpath))

    def make_folder(self, status, stem):
        """A new folder called stem (or stem-2, ...) in the folder of status."""
        base = self.path / self.folder(status)
        for number in itertools.count(1):
            path = base / shortened(stem if number == 1 else "%s-%d" % (stem, number),
                                    MAX_NAME_BYTES)
            try:
                os.mkdir(str(path))
                return path
            except FileExistsError:
                continue

    def set_time(self, relpath, text):
        """Give the written file the modification time text (ISO, the card's local
        time), so that a file browser sorts files as the camera wrote them."""
        when = local_time(text) if text else None
        if when is not None and not self.dry_run:
            with contextlib.suppress(OSError, OverflowError, ValueError):
                os.utime(str(self.path / relpath), (when, when))

    def record(self, relpath, carved, status, detail, naming=None, sha256=""):
        meta = carved.meta
        naming = naming or Naming("", "", "")
        self.report.write_row((relpath, carved.type, carved.offset, carved.size, status,
                               meaning(carved.type, status, detail, bool(carved.pictures)),
                               detail, meta.model, meta.datetime, meta.serial,
                               byte_runs(carved), naming.path, naming.source, naming.fs_time,
                               sha256))


DFXML_HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<dfxml xmlns="http://www.forensicswiki.org/wiki/Category:Digital_Forensics_XML" \
xmlns:dc="http://purl.org/dc/elements/1.1/" \
xmlns:recovercr3="https://github.com/WojciechMula/recovercr3" version="1.1.1">
  <metadata>
    <dc:type>Carve Report</dc:type>
  </metadata>
  <creator version="1.0">
    <program>recovercr3</program>
    <version>{version}</version>
    <execution_environment>
      <command_line>{command}</command_line>
      <start_time>{start}</start_time>
    </execution_environment>
  </creator>
  <source>
    <image_filename>{image}</image_filename>
  </source>
"""
DFXML_FILEOBJECT = """  <fileobject>
    <filename>{name}</filename>
    <filesize>{size}</filesize>
    <byte_runs>
{runs}    </byte_runs>
{digest}  </fileobject>
"""
DFXML_BYTE_RUN = """      <byte_run file_offset="{at}" img_offset="{offset}" len="{size}"/>\n"""
DFXML_DIGEST = """    <hashdigest type="sha256">{}</hashdigest>\n"""
# the verdict, in recovercr3's own namespace (DFXML readers skip what they do not know)
DFXML_VERDICT = """    <recovercr3:status>{status}</recovercr3:status>
    <recovercr3:detail>{detail}</recovercr3:detail>\n"""
DFXML_FOOTER = "</dfxml>\n"


def utc_now():
    """Now, to the second, as 2026-12-02T13:50:39Z."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return now.isoformat().replace("+00:00", "Z")


class Dfxml:
    """A DFXML carve report (--dfxml): one fileobject per file, with its byte run."""

    def __init__(self, path, image, command):
        self.path = path
        self.fd = create_exclusive(path)
        self.size = 0
        self._append(DFXML_HEADER.format(
            version=__version__, command=xml_text(command), image=xml_text(image),
            start=utc_now()))

    def _append(self, text):
        data = text.encode("utf-8")
        append_whole(self.fd, data, self.size)
        self.size += len(data)

    def add(self, relpath, carved, sha256, status, detail):
        digest = DFXML_DIGEST.format(sha256) if sha256 else ""
        digest += DFXML_VERDICT.format(status=xml_text(status), detail=xml_text(detail))
        runs, at = [], 0
        for offset, size in pieces_of(carved) if status != REPAIRED else ():
            runs.append(DFXML_BYTE_RUN.format(at=at, offset=offset, size=size))
            at += size
        self._append(DFXML_FILEOBJECT.format(name=xml_text(relpath), size=carved.size,
                                             runs="".join(runs), digest=digest))

    def close(self):
        with contextlib.suppress(OSError):
            self._append(DFXML_FOOTER)
        os.close(self.fd)


def xml_text(value):
    """Text for an XML element: escaped, without the control characters XML forbids."""
    return html.escape(clean_text(value), quote=False)


# 22. The contact sheet: index.html, a tile per file -----------------------------------
# A thumbnail comes from the file itself, never from decoding pixels: a CR3's THMB
# JPEG, the Exif thumbnail (IFD1) of a JPEG or a TIFF-based raw, or a small JPEG
# itself, embedded in the page; a plain TIFF's pixels, sampled down to a PNG. A whole
# JPEG without one (a raw's preview taken out of it, a large picture) is shown from
# its file beside the page. Other files get a drawn icon; a movie, its duration.
TAG_THUMBNAIL_OFFSET, TAG_THUMBNAIL_LENGTH = 0x0201, 0x0202     # in IFD1
MAX_THUMBNAIL = 48 << 10        # embedded in the page; a larger one is not,
MAX_PREVIEW = 320 << 10         # but a file's only picture may be this large
MAX_SHEET_THUMBNAILS = 32 << 20 # all of them: a card of thousands of files still opens
THUMBNAIL_HEAD = 1 << 20        # of a file, read to find its thumbnail
MAX_MOOV_READ = 16 << 20        # of a movie's moov, read for its duration
TIFF_RAWS = frozenset(kind for kind, fmt in FORMATS.items() if fmt.family == "TIFF")
JPEG_FIRST_RAWS = frozenset(["raf", "x3f"])     # whose first embedded part is their JPEG
MOVIES = frozenset(["mp4", "mov", "3gp", "crm"])
SHEET_NAME = "index"
SHEET_SIGNATURE = b"<!DOCTYPE html>\n<!-- recovercr3's contact sheet: its next run replaces it -->\n"


def ifd1_jpeg(buf, start, end):
    """(start, end) of the JPEG thumbnail that IFD1 of the TIFF at start points at."""
    order, ifd0 = tiff_order(buf, start, end)
    _, ifd1 = ifd_entries(buf, start, end, order, ifd0)
    if not ifd1:
        return None
    tags = read_ifd(buf, start, end, order, ifd1)
    offset, length = tags.get(TAG_THUMBNAIL_OFFSET), tags.get(TAG_THUMBNAIL_LENGTH)
    if not isinstance(offset, int) or not isinstance(length, int) or not length:
        return None
    return start + offset, start + offset + length


def exif_thumbnail(head, first):
    """(start, end) of the Exif thumbnail (IFD1) of the JPEG at first in head, or None."""
    walk = walk_jpeg(head, first, len(head))
    exif = jpeg_app_data(head, walk.segments, MARKER_APP1, EXIF_HEADER)
    return ifd1_jpeg(head, exif[0], exif[1]) if exif else None


def thumbnail_range(carved, head):
    """(start, end), from the file's first byte, of the JPEG that shows it, found in
    head (its first bytes); None when it has none."""
    try:
        if carved.type == "jpg":
            if carved.size <= MAX_THUMBNAIL:
                return 0, carved.size
            return exif_thumbnail(head, 0)
        if carved.type in TIFF_RAWS:
            return ifd1_jpeg(head, 0, len(head))
        if carved.type in JPEG_FIRST_RAWS and carved.embedded:
            first, last = (at - carved.offset for at in carved.embedded[0])
            if last - first <= MAX_THUMBNAIL:
                return first, last
            return exif_thumbnail(head, first)
        if carved.type in ("cr3", "crm") and carved.boxes:
            boxes = [box._replace(offset=box.offset - carved.offset) for box in carved.boxes]
            f = IsoFile(head, 0, min(carved.size, len(head)), boxes,
                        read_ftyp(head, 0, len(head)))
            return thmb_jpeg(f)
    except (FormatError, struct.error, IndexError, ValueError):
        return None
    return None


def preview_ranges(carved):
    """(start, end), from the file's first byte, of the parts it holds that may be
    a JPEG preview (a CRW's, a CR3's PRVW), smallest first, MAX_PREVIEW at most."""
    parts = [(first - carved.offset, last - carved.offset) for first, last in carved.embedded
             if first >= carved.offset and last - first <= MAX_PREVIEW]
    return sorted(parts, key=lambda part: part[1] - part[0])


TILE_WIDTH, TILE_HEIGHT = 180, 135     # a tile's picture, in pixels
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TAG_WIDTH, TAG_HEIGHT, TAG_BITS, TAG_COMPRESSION = 0x0100, 0x0101, 0x0102, 0x0103
TAG_PHOTOMETRIC, TAG_SAMPLES, TAG_ROWS_PER_STRIP, TAG_PLANAR = 0x0106, 0x0115, 0x0116, 0x011C
UNCOMPRESSED, CHUNKY = 1, 1
MAX_TIFF_ROW = 1 << 20          # bytes of a row read for the tile: a 3-channel 16-bit row
                                # of 87,000 pixels; a hostile width reads no more
PICTURE_TAGS = frozenset([TAG_WIDTH, TAG_HEIGHT, TAG_BITS, TAG_COMPRESSION, TAG_PHOTOMETRIC,
                          TAG_SAMPLES, TAG_ROWS_PER_STRIP, TAG_PLANAR, TAG_STRIP_OFFSETS])
PHOTOMETRIC_CHANNELS = {0: 1, 1: 1, 2: 3}   # white is zero, black is zero, RGB


def png_image(width, height, rows):
    """A PNG of 8-bit RGB rows (bytes of width * 3 each)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(b"\0" + bytes(row) for row in rows)))
            + chunk(b"IEND", b""))


def tiff_picture(read, size):
    """A PNG of a plain TIFF's picture, sampled down to a tile's size: 8- or 16-bit,
    uncompressed, grey or RGB, in strips (what editors and scanners write, with no
    thumbnail of its own). read(offset, length) reads the file. None for any other."""
    order, ifd0 = tiff_order(read(0, TIFF_HEADER_SIZE), 0, TIFF_HEADER_SIZE)
    (count,) = struct.unpack(order + "H", read(ifd0, 2))
    table = read(ifd0 + 2, count * IFD_ENTRY_SIZE)
    if not 0 < count <= MAX_IFD_ENTRIES or len(table) < count * IFD_ENTRY_SIZE:
        return None
    tags = {}
    for i in range(count):
        tag, kind, n, raw = struct.unpack_from(order + IFD_ENTRY, table, i * IFD_ENTRY_SIZE)
        fmt = TIFF_INTEGER_FORMATS.get(kind)
        if tag not in PICTURE_TAGS or fmt is None or not 0 < n <= MAX_TIFF_DATA_RANGES:
            continue
        length = n * TIFF_TYPE_SIZES[kind]
        data = raw[:length] if length <= 4 else read(struct.unpack(order + "I", raw)[0], length)
        if len(data) == length:
            tags[tag] = struct.unpack("%s%d%s" % (order, n, fmt), data)
    width, height = tags.get(TAG_WIDTH, (0,))[0], tags.get(TAG_HEIGHT, (0,))[0]
    bits = set(tags.get(TAG_BITS, (1,)))
    samples = tags.get(TAG_SAMPLES, (1,))[0]
    photometric = tags.get(TAG_PHOTOMETRIC, (-1,))[0]
    strips = tags.get(TAG_STRIP_OFFSETS, ())
    rows_per_strip = tags.get(TAG_ROWS_PER_STRIP, (height,))[0] or height
    if (not width or not height or len(bits) != 1 or not bits <= {8, 16}
            or width * samples * max(bits) // 8 > MAX_TIFF_ROW
            or tags.get(TAG_COMPRESSION, (UNCOMPRESSED,))[0] != UNCOMPRESSED
            or tags.get(TAG_PLANAR, (CHUNKY,))[0] != CHUNKY or not strips
            or samples < PHOTOMETRIC_CHANNELS.get(photometric, samples + 1)):
        return None
    depth = bits.pop() // 8
    pixel = samples * depth
    high = 0 if order == ">" or depth == 1 else 1     # the high byte of a 16-bit sample
    scale = max(width / TILE_WIDTH, height / TILE_HEIGHT, 1)
    out_width, out_height = max(int(width / scale), 1), max(int(height / scale), 1)
    columns = [int(x * scale) * pixel + high for x in range(out_width)]
    rows = []
    for y in range(out_height):
        source = int(y * scale)
        strip = source // rows_per_strip
        if strip >= len(strips):
            return None
        start = strips[strip] + (source % rows_per_strip) * width * pixel
        if start + width * pixel > size:
            return None
        line = read(start, width * pixel)
        if photometric == 2:
            rgb = bytes(line[at + channel * depth] for at in columns for channel in range(3))
        else:
            grey = bytes(line[at] ^ (0xFF if photometric == 0 else 0) for at in columns)
            rgb = bytes(value for value in grey for _ in range(3))
        rows.append(rgb)
    return png_image(out_width, out_height, rows)


def movie_seconds(moov):
    """A movie's duration in seconds, from the mvhd in moov (that box's bytes)."""
    try:
        for box in child_boxes(moov, BOX_HEADER.size, len(moov)):
            if box.name == b"mvhd":
                if moov[box.body] == 1:
                    scale, duration = struct.unpack_from(">IQ", moov, box.body + 20)
                else:
                    scale, duration = struct.unpack_from(">II", moov, box.body + 12)
                return duration / scale if scale else None
    except (FormatError, struct.error, IndexError):
        return None
    return None


class Tile(NamedTuple):
    offset: int             # where the file starts in the dump: tiles go in card order
    link: str               # the file, relative to the page; "" when it was not written
    name: str
    type: str
    size: int
    status: str
    detail: str
    model: str
    datetime: str
    original: str
    thumbnail: bytes        # a JPEG, or b""
    seconds: object         # a movie's duration, or None
    shown: bool = False     # no thumbnail, but the file is a whole JPEG: it is shown
    meaning: str = ""       # the verdict in plain words (the detail is the badge's title)


SHEET_STYLE = """body{font:14px sans-serif;margin:0;background:#f4f4f4;color:#222}
header{padding:12px 20px;background:#fff;border-bottom:1px solid #ccc}
nav a{margin-right:10px}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
main{display:flex;flex-wrap:wrap;padding:10px}
.tile{width:180px;margin:6px;padding:6px;background:#fff;border:1px solid #ddd}
.tile img,.tile svg{width:180px;height:135px;object-fit:contain;background:#eee;display:block}
.tile figcaption{font-size:12px;overflow-wrap:anywhere}
.badge{display:inline-block;padding:1px 6px;border-radius:8px;color:#fff;font-weight:bold}
.badge.complete{background:#2a8a2a}.badge.truncated{background:#c77c00}
.badge.damaged{background:#b22}.badge.not-saved{background:#666}
.badge.repaired{background:#2a6fb0}
.meaning{display:block;color:#444;margin-top:3px}
"""
SHEET_ICON = ('<svg viewBox="0 0 180 135" role="img" aria-label="{kind}">'
              '<rect width="180" height="135" fill="#ddd"/>'
              '<text x="90" y="72" font-size="28" text-anchor="middle" fill="#555">{kind}'
              '</text><text x="90" y="104" font-size="16" text-anchor="middle" '
              'fill="#555">{note}</text></svg>')


def sheet_class(text):
    """A CSS class or id made of a status or a type ("not saved" -> "not-saved")."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def page_text(value):
    """Text from a card in the page: one clean line, escaped, so it stays text."""
    return html.escape(clean_text(value))


def tile_html(tile):
    """One tile of the contact sheet."""
    href = html.escape(urllib.parse.quote(tile.link))
    if tile.thumbnail:
        picture = '<img src="data:image/%s;base64,%s" alt="">' % (
            "png" if tile.thumbnail.startswith(PNG_SIGNATURE) else "jpeg",
            base64.b64encode(tile.thumbnail).decode("ascii"))
    elif tile.shown and tile.link:
        picture = '<img src="%s" loading="lazy" alt="">' % href
    else:
        note = "%d:%02d" % divmod(round(tile.seconds), 60) if tile.seconds else ""
        picture = SHEET_ICON.format(kind=page_text(tile.type.upper()), note=note)
    if tile.link:
        picture = '<a href="%s">%s</a>' % (href, picture)
        title = '<a href="%s">%s</a>' % (href, page_text(tile.name))
    else:
        title = "%s <em>(not written)</em>" % page_text(tile.name)
    lines = [title, "%s, %s B" % (page_text(tile.type), format(tile.size, ",d"))]
    lines += [page_text(text) for text in (tile.model, tile.datetime) if text]
    if tile.original:
        lines.append("on the card: " + page_text(tile.original))
    lines.append('<span class="badge %s" title="%s">%s</span>' % (
        sheet_class(tile.status), page_text(tile.detail), page_text(tile.status)))
    if tile.meaning:
        lines.append('<small class="meaning">%s</small>' % page_text(tile.meaning))
    return '<figure class="tile %s t-%s">%s<figcaption>%s</figcaption></figure>\n' % (
        sheet_class(tile.status), sheet_class(tile.type), picture, "<br>".join(lines))


class ContactSheet:
    """index.html in the output directory: the page of everything in it after the
    latest run, which replaces the one an earlier run wrote (SHEET_SIGNATURE says it
    is ours). A run that does not go on from the earlier ones (--restart, a dry run)
    shows only its own files: the earlier page is then kept under the date it was
    written (index-20261207-154501.html). A page of anyone else's at index.html is
    kept as it is, and the sheet is index-2.html.
    The tiles go to a hidden scratch file as the files are reported (unlinked at once
    where the system allows, so that not even a killed run leaves it); when the run
    ends the page is written from the summary and those tiles, and given its name:
    memory stays flat however many files there are, and the page is there whole or
    not at all."""

    def __init__(self, folder, image, command):
        self.folder = Path(folder)
        self.image = image
        self.command = command
        self.started = time.monotonic()
        self.counts = collections.Counter()         # (type, status) -> files
        for number in itertools.count(1):
            path = self.folder / (".%s-%d.tiles%s" % (SHEET_NAME, number, PART_SUFFIX))
            try:
                self.tiles_fd = os.open(str(path), os.O_RDWR | os.O_CREAT | os.O_EXCL
                                        | O_BINARY, 0o600)
                break
            except FileExistsError:
                continue
        self.tiles_path = path
        try:
            os.unlink(str(path))
            self.tiles_path = None
        except OSError:
            pass                        # Windows: an open file stays; unlinked in discard
        self.size = 0
        self.order = []                 # (offset, where in the tiles file, length)
        self.thumbnails_left = MAX_SHEET_THUMBNAILS
        self.shows_earlier_files = False    # True when this run goes on from the last

    def add(self, tile):
        if len(tile.thumbnail) > self.thumbnails_left:
            tile = tile._replace(thumbnail=b"")     # the page's room for them is used
        self.thumbnails_left -= len(tile.thumbnail)
        data = tile_html(tile).encode("utf-8")
        append_whole(self.tiles_fd, data, self.size)
        self.order.append((tile.offset, self.size, len(data)))
        self.size += len(data)
        self.counts[(tile.type, tile.status)] += 1

    def discard(self):
        if self.tiles_fd is not None:
            os.close(self.tiles_fd)
            self.tiles_fd = None
        if self.tiles_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(str(self.tiles_path))

    def close(self, cut_short):
        """Write the page and give it its name (returned)."""
        try:
            return self._write(cut_short)
        finally:
            self.discard()

    def _head(self, cut_short):
        seconds = int(time.monotonic() - self.started)
        statuses = sorted({status for _, status in self.counts})
        types = sorted({kind for kind, _ in self.counts})
        anchors = [sheet_class(s) for s in statuses] + ["t-" + sheet_class(t) for t in types]
        style = SHEET_STYLE + "".join(
            "#%s:target~main .tile:not(.%s){display:none}\n" % (anchor, anchor)
            for anchor in anchors)
        rows = "".join("<tr><th>%s</th>%s</tr>" % (html.escape(kind), "".join(
            "<td>%s</td>" % (self.counts[(kind, status)] or "") for status in statuses))
            for kind in types)
        filters = ['<a href="#%s">%s (%d)</a>' % (sheet_class(s), html.escape(s), sum(
            n for (_, status), n in self.counts.items() if status == s)) for s in statuses]
        filters += ['<a href="#t-%s">%s</a>' % (sheet_class(t), html.escape(t)) for t in types]
        filters.append('<a href="#">all</a>')
        return ('<html lang="en"><head><meta charset="utf-8">'
                "<title>recovercr3: %s</title><style>%s</style></head><body>\n%s\n"
                "<header><h1>%d file(s) from %s</h1><p>Run: <code>%s</code> in "
                "%d:%02d:%02d%s</p><table><tr><th>type</th>%s</tr>%s</table>"
                "<nav>Show: %s</nav></header>\n<main>\n") % (
            page_text(self.image), style, "".join('<i id="%s"></i>' % a for a in anchors),
            sum(self.counts.values()), page_text(self.image), page_text(self.command),
            seconds // 3600, seconds // 60 % 60, seconds % 60,
            " - <strong>cut short: the dump was not scanned to its end</strong>"
            if cut_short else "", "".join("<th>%s</th>" % html.escape(s) for s in statuses),
            rows, " ".join(filters))

    @staticmethod
    def ours(path):
        """True when path is a plain file that an earlier run wrote as its sheet: not
        a link, not a folder, not a user's page."""
        try:
            fd = open_here(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            return stat.S_ISREG(os.fstat(fd).st_mode) and \
                pread(fd, len(SHEET_SIGNATURE), 0) == SHEET_SIGNATURE
        except OSError:
            return False
        finally:
            os.close(fd)

    def _keep_dated(self, path):
        """Give an earlier sheet the date it was written, never replacing a file."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(os.lstat(str(path)).st_mtime))
        for number in itertools.count(1):
            name = "%s-%s%s.html" % (SHEET_NAME, stamp, "" if number == 1 else "-%d" % number)
            try:
                return place(str(path), self.folder / name)
            except FileExistsError:
                continue

    def _write(self, cut_short):
        for number in itertools.count(1):
            name = SHEET_NAME + (".html" if number == 1 else "-%d.html" % number)
            replaces = os.path.lexists(str(self.folder / name))
            if replaces and not self.ours(self.folder / name):
                continue
            try:
                fd = create_exclusive(self.folder / (name + PART_SUFFIX))
                break
            except FileExistsError:
                continue
        part = self.folder / (name + PART_SUFFIX)
        try:
            write_all(fd, SHEET_SIGNATURE + self._head(cut_short).encode("utf-8"))
            for _, at, length in sorted(self.order):
                write_all(fd, pread(self.tiles_fd, length, at))
            write_all(fd, b"</main></body></html>\n")
            os.close(fd)
            fd = None
            if replaces and not self.shows_earlier_files:
                self._keep_dated(self.folder / name)
                replaces = False
            if replaces:
                os.replace(str(part), str(self.folder / name))
            else:
                place(str(part), self.folder / name)
        except BaseException:
            if fd is not None:
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(str(part))
            raise
        return name


# 23. The log --------------------------------------------------------------------------
# What the user reads: levels, the progress line, the log file in OUT.

PROGRESS_EVERY = 0.5        # seconds between two updates of the progress line
ESTIMATE_AFTER_SECONDS = 3  # the time left is said once the scan has run this long,
ESTIMATE_AFTER_SHARE = 0.05 # or has done this share of what it had to do: before, the
                            # rate is start-up's, and said 0:56:36 left of a 7 s job
RATE_SMOOTHING = 0.2        # what each update's rate weighs in the rate said: steady
CLEAR_LINE = "\r\033[K"


class Log:
    """Log lines on stderr in the original recovercr3's format ("[INFO] ..."), and a
    progress line that log lines replace (only on a terminal, unless --quiet).

    A log line that cannot be written (stderr closed: `recovercr3 ... | head`) is
    dropped: losing the log must never stop a recovery."""

    def __init__(self, stream, verbose=False, progress=False, clock=time.monotonic):
        self.stream = stream
        self.verbose = verbose
        self.show_progress = progress
        self._shown = False
        self._clock = clock
        self._last = None           # (time, bytes done) of the last update
        self._first = None          # and of the first one: where this scan began
        self._rate = None           # bytes a second, smoothed
        self.case_file = None       # recovercr3.log's descriptor, once the outdir is known
        self._early = []            # the lines said before it was (None: not kept)
        self.exit_code = None       # the run's, for the log's footer

    def keep_in(self, fd, header):
        """Append the lines of this run to fd (recovercr3.log): header, the lines said
        so far, then each one as it comes. A log file that fails is dropped; fd None
        keeps nothing."""
        self.case_file = fd
        self._keep(header + "".join(self._early))
        self._early = None

    def _keep(self, text):
        if self.case_file is None:
            if self._early is not None:
                self._early.append(text)
            return
        try:
            write_all(self.case_file, text.encode("utf-8", "replace"))
        except OSError:
            self.case_file = None

    def _write(self, text):
        if self.stream is None:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.stream = None

    def _line(self, level, message):
        if self._shown:
            self._write(CLEAR_LINE)
            self._shown = False
        self._write("[%s] %s\n" % (level, message))
        self._keep("[%s] %s\n" % (level, message))

    def close_case_file(self, footer):
        self._keep(footer)
        if self.case_file is not None:
            with contextlib.suppress(OSError):
                os.close(self.case_file)
            self.case_file = None

    def debug(self, message):
        if self.verbose:
            self._line("DEBUG", message)

    def info(self, message):
        self._line("INFO", message)

    def warning(self, message):
        self._line("WARNING", message)

    def error(self, message):
        self._line("ERROR", message)

    def progress(self, done, total, files):
        """Scanned so far, speed, files found and time left, at most every half second.
        The time left waits for a rate worth the name (ESTIMATE_AFTER_*), then follows
        a smoothed one, so that one slow block does not make it jump."""
        now = self._clock()
        if not self.show_progress:
            return
        if self._last is None:
            self._first = self._last = (now, done)
        elif now - self._last[0] < PROGRESS_EVERY:
            return
        else:
            rate = (done - self._last[1]) / (now - self._last[0])
            self._rate = rate if self._rate is None else (
                self._rate + RATE_SMOOTHING * (rate - self._rate))
            self._last = (now, done)
        text = "{:,.1f} of {:,.1f} GB ({:.0%})".format(
            done / 1e9, total / 1e9, done / total if total else 1)
        if self._rate is not None:
            text += ", {:,.0f} MB/s".format(self._rate / 1e6)
        text += ", {} file(s) found, ".format(files)
        began, done_then = self._first
        if self._rate and (now - began >= ESTIMATE_AFTER_SECONDS or done - done_then
                           >= ESTIMATE_AFTER_SHARE * (total - done_then)):
            left = int(max(total - done, 0) / self._rate)
            text += "{}:{:02d}:{:02d} left".format(left // 3600, left // 60 % 60, left % 60)
        else:
            text += "estimating the time left"
        self._write(CLEAR_LINE + text)
        self._shown = True


# 24. What a run does with a file ------------------------------------------------------
# A Found file waits for its row until the scan has passed its end. Recorder: the
# only place a file becomes a row, a tile, a DFXML object, a count and a log line.
# Writer: the thread that copies. Resume: what an earlier run saved. Placing: a
# file's verdict and place in OUT. CardFolders: the card's folders. Reassembly: putting broken files together. (ByProducts, the
# pictures and streams taken out of broken files, carves a stream with a Recovery
# of its own: it follows Recovery, in section 25.)

def stop_rule(args):
    if args.maxchunks is not None:
        return StopAfterCount(args.maxchunks)
    if args.lastchunk is not None:
        return StopAtBox(args.lastchunk)
    return StopAfterMdat()


MAX_NAMED_INSIDE = 3        # "lies inside img1.mov at +N" notes kept per file
MAX_QUEUED_COPIES = 32      # files waiting for the writer: bounds open files and memory
MAX_GAP_FILES = 16          # whole files inside another that may be taken out of it
MAX_REASSEMBLED = 64 << 20  # the largest file put back together
MAX_JOINED_IN_MEMORY = 4 << 20  # a larger one is checked from a scratch file (joined)
REJOIN_SLACK = 1 << 16      # read past the old end: what follows mdat may be the file's
TRY_CLUSTERS = [1 << n for n in range(16, 8, -1)]   # without a boot sector: 64 KiB..512


class DiskFull(OutputError):
    """The output disk is full: Recovery says where the scan stopped (disk_full)."""

    def __init__(self):
        super().__init__("the output disk is full")


def output_error(e, where):
    """The OutputError of the OSError e, met writing to where."""
    if e.errno == errno.ENOSPC:
        return DiskFull()
    return OutputError("cannot write to %s: %s" % (where, e.strerror or e))


def cut_by_next_jpeg(carved):
    """True for a JPEG cut where another JPEG begins (see Found.lingers)."""
    return (carved.type == "jpg" and carved.status == DAMAGED
            and carved.detail.startswith("another JPEG starts") and not carved.pieces)


class Found:
    """A found file whose report row waits until the scan has passed its end.

    Only then is it known whether other files lie inside it: a whole file found
    inside another one means the outer one is fragmented (its header is intact but
    its data is not where it says) or, rarely, that one file is stored in another.
    """

    def __init__(self, claim, carved, naming=None, naming_why=""):
        self.claim = claim
        self.name = claim.name
        self.carved = carved
        self.naming = naming        # what the card's file system calls it, when it says
        self.naming_why = naming_why    # why it gives no name, when it may have
        self.copy = None            # the writer's Future (None: not written yet, or dry run)
        self.earlier = None         # the report row of the copy an earlier run saved
        self.first_end = carved.end     # before it is put together or cut
        self.digest = None
        self.not_saved = ""         # why it was not written, when it was not
        self._embedded = sorted(carved.embedded)
        self._starts = [first for first, _ in self._embedded]
        self.first_held = None      # (name, offset from our start) of the first file inside
        self.held = 0               # how many files lie inside this one
        self.inside = []            # (name, offset from its start) of files this one is in
        self.inside_more = 0
        self.whole_inside = []      # the Found files inside this one (the first few)
        # a JPEG whose walk met the next JPEG's start: that one may be a whole file the
        # camera wrote this one around; it waits for a file starting at its end
        self.lingers = cut_by_next_jpeg(carved)
        self.follower = None
        self.repair = None          # a cut movie's RepairPlan (see ByProducts.plan)
        self.repair_note = ""       # what its row says of it

    def reported_after(self):
        """Where the scan must be before this file's row is written: its end, or the
        end of the file that begins at its end, when it waits for one."""
        if self.follower is not None:
            return max(self.carved.end, self.follower.carved.end)
        return self.carved.end + 1 if self.lingers else self.carved.end

    def follows(self, found):
        self.follower = found
        self.whole_inside.append(found)

    def covers(self, pos):
        """True when pos lies inside this file after its start: in one of its pieces,
        when it was put back together (read through a FAT chain)."""
        carved = self.carved
        if carved.pieces:
            return any(offset <= pos < offset + size for offset, size in carved.pieces) \
                and pos != carved.offset
        return carved.offset < pos < carved.end

    def embeds(self, pos):
        """The end of the part of this file that belongs to it (a preview) and holds
        pos; 0 when pos lies in none."""
        index = bisect.bisect_right(self._starts, pos)
        if index > 0 and pos < self._embedded[index - 1][1]:
            return self._embedded[index - 1][1]
        return 0

    def holds(self, found, at):
        if len(self.whole_inside) < MAX_GAP_FILES:
            self.whole_inside.append(found)
        self.held += 1
        if self.first_held is None:
            self.first_held = (found.name, at)

    def lies_inside(self, name, at):
        if len(self.inside) < MAX_NAMED_INSIDE:
            self.inside.append((name, at))
        else:
            self.inside_more += 1

    def put_together(self, carved, inner=None):
        """This file is carved now (put back together): the files inside it are its
        pieces' neighbours, no more inside it."""
        self.carved = carved
        self.held = 0
        self.release(self.whole_inside if inner is None else inner)

    def release(self, others):
        """The files of others no longer lie inside this one (it is put together, or
        put aside: its own row names them)."""
        for other in others:
            other.inside = [entry for entry in other.inside if entry[0] != self.name]

    def verdict(self):
        status, detail = self.carved.status, self.carved.detail
        notes = [detail] if detail else []
        if self.held:
            name, at = self.first_held
            more = " and %d more" % (self.held - 1) if self.held > 1 else ""
            notes.append("holds %s at +%d%s: fragmented, or a file stored inside it"
                         % (name, at, more))
            if status == COMPLETE:
                status = DAMAGED
        notes.extend("lies inside %s at +%d" % inside for inside in self.inside)
        if self.inside_more:
            notes.append("and inside %d more" % self.inside_more)
        if self.repair_note:
            notes.append(self.repair_note)
        if self.naming_why:
            notes.append("not named: " + self.naming_why)
        if self.claim.shortened:
            notes.append("its name is shortened: the card's is too long for the output's "
                         "file system")
        return status, "; ".join(notes)


class Recorder:
    """The one place where a file becomes a report row, a DFXML fileobject, a tile
    on the contact sheet, a count in the summary and a log line, always in that
    order: the row first, so that nothing is said of a file its report does not
    list. A report (or DFXML) that cannot be written is an OutputError, and the run
    stops; a contact sheet that cannot be is given up, with a warning.

    It also gives a verdict its last word (holed): the bytes of a file the card did
    not give, unreadable sectors or those ddrescue never read, make it damaged.
    """

    def __init__(self, dump, outdir, log, dfxml=None, sheet=None, holes=None,
                 hole_kind="", nested=False):
        self.dump = dump
        self.outdir = outdir
        self.log = log
        self.dfxml = dfxml
        self.sheet = sheet                      # the ContactSheet, or None (--no-html)
        self.sheet_written = None               # where index.html went, once written
        self.holes = holes or Holes()           # bytes of the dump that are not the card's
        self.hole_kind = hole_kind              # why: "were never read by ddrescue"
        self.nested = nested
        self.unreadable = Holes()               # the sectors the dump could not give
        self._unreadable_count = 0
        self.by_status = collections.Counter()  # status -> files reported
        self.kinds = collections.Counter()      # (type, status) -> files reported
        self.bytes_written = 0                  # of the files written
        self.failed = 0                         # files that could not be saved
        self.not_saved = 0                      # rows of files not saved
        self.kept = 0                           # files an earlier run saved, kept

    def write(self, write, *args, report=None):
        """write(*args) to the report (or to report, the DFXML one); a failure is an
        OutputError."""
        try:
            write(*args)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise DiskFull() from None
            raise OutputError("cannot write the report %s: %s" % (
                report or self.outdir.report_path, e.strerror or e)) from None

    def file(self, relpath, carved, status, detail, naming=None, sha256="", said="",
             when=None, wrote=True, seconds=None):
        """A file saved (or, in a dry run, that would be) at relpath; said: the
        log line's first words ("Saving"); when: its time on the card, for its copy;
        seconds: a rebuilt movie's duration (its index is not in the dump)."""
        if said:
            self.log.info("{} {}, size {:,d} B".format(said, self.outdir.path / relpath,
                                                        carved.size))
        self.write(self.outdir.record, relpath, carved, status, detail, naming, sha256)
        if self.dfxml:
            self.write(self.dfxml.add, relpath, carved, sha256, status, detail,
                       report=self.dfxml.path)
        self.tile(relpath, carved, status, detail, naming, seconds)
        if when:
            self.outdir.set_time(relpath, when)
        self.count(carved, status, wrote)

    def unsaved(self, carved, detail, naming=None):
        """A file found and not saved: a row and a tile, no DFXML object."""
        self.not_saved += 1
        self.write(self.outdir.record, "", carved, NOT_SAVED, detail, naming)
        self.tile("", carved, NOT_SAVED, detail, naming)

    def carried(self, row, carved):
        """A row of the earlier run's report, as it is (see Resume.carried)."""
        row = dict(row, meaning=meaning(row["type"], row["status"], row["detail"],
                                        bool(carved.pictures)))    # an older version's too
        self.write(self.outdir.report.write_row, [row[field] for field in REPORT_FIELDS])
        naming = Naming(row["original_name"], row["name_source"], row["fs_time"])
        if row["status"] == NOT_SAVED:
            self.not_saved += 1
        else:
            if self.dfxml:
                self.write(self.dfxml.add, row["file"], carved, row["sha256"],
                           row["status"], row["detail"], report=self.dfxml.path)

            self.count(carved, row["status"], wrote=False)
            self.kept += 1
        self.tile(row["file"], carved, row["status"], row["detail"], naming)

    def end(self, stopped_at, resume_point):
        """The report's last row: whether the whole dump was searched, or where the
        search stopped and where the same command resumes. A report without it is
        that of a run cut short (a power cut, a killed process), never mistaken for
        a full one. Its size is the dump's: a report is resumed only for the same
        dump. The resume point itself is in the state file (see write_state): these
        words are for the reader."""
        size = self.dump.size
        if resume_point is None:
            detail = "the whole dump was searched ({:,d} B)".format(size)
        else:
            detail = ("the search stopped at offset {:,d} of {:,d} B ({:.1%}): the rest of "
                      "the dump was not searched; the same command run again goes on from "
                      "offset {:,d}, naming from number {:d}".format(
                          stopped_at, size, stopped_at / max(size, 1),
                          resume_point[0], resume_point[1] + 1))
        status = SCAN_FINISHED if resume_point is None else SCAN_INTERRUPTED
        self.write(self.outdir.report.write_row, ("", "", stopped_at, size, status,
                                                  meaning("", status, detail), detail)
                   + ("",) * (len(REPORT_FIELDS) - 7))

    def holed(self, carved, status, detail):
        """The verdict of a file with bytes the card did not give (see Holes): the
        sectors that could not be read, those ddrescue never read."""
        if len(self.dump.unreadable) != self._unreadable_count:
            self._unreadable_count = len(self.dump.unreadable)
            self.unreadable = Holes((sector, sector + SECTOR_SIZE)
                                    for sector in list(self.dump.unreadable))
        pieces = pieces_of(carved)
        notes = []
        for holes, template in ((self.unreadable, "unreadable sectors at +%d..+%d"),
                                (self.holes, "bytes +%d..+%d " + self.hole_kind)):
            first, count = holes.in_pieces(pieces)
            if first is not None:
                more = " (%s B in all)" % format(count, ",d") \
                    if count > first[1] - first[0] else ""
                notes.append(template % first + more)
        if not notes:
            return status, detail
        return DAMAGED, "; ".join(notes + ([detail] if detail else []))

    def tile_carved(self, carved):
        """carved (from a report row) with the top-level boxes of its head, when it
        is an ISO-BMFF file: what its tile's thumbnail and duration are read from."""
        if self.sheet is None or carved.type not in ISOBMFF_TYPES:
            return carved
        try:
            head = self.dump.read(carved.offset, min(carved.size, THUMBNAIL_HEAD))
            walk = walk_boxes(head, 0, len(head), StopAfterMdat())
        except (FormatError, ReadError, struct.error, IndexError):
            return carved
        return carved._replace(boxes=[box._replace(offset=box.offset + carved.offset)
                                      for box in walk.boxes])

    def tile(self, relpath, carved, status, detail, naming=None, seconds=None):
        """The file's tile on the contact sheet, its thumbnail read from the dump. A
        sheet that cannot be written is given up, with a warning: never the run."""
        if self.sheet is None:
            return
        thumbnail = b""
        first, size = pieces_of(carved)[0]
        try:
            head = self.dump.read(first, min(size, THUMBNAIL_HEAD))
            found = thumbnail_range(carved, head)
            candidates = ([found] if found and found[1] - found[0] <= MAX_THUMBNAIL else []) \
                + preview_ranges(carved)
            for start, end in candidates:
                if end > size:
                    continue
                data = head[start:end] if end <= len(head) else \
                    self.dump.read(first + start, end - start)
                if data[:2] == JPEG_SOI:
                    thumbnail = data
                    break
            if not thumbnail and carved.type == "tif" and status == COMPLETE \
                    and not carved.pieces:
                try:
                    thumbnail = tiff_picture(lambda at, length: self.dump.read(
                        first + at, max(0, min(length, size - at))), size) or b""
                except (FormatError, struct.error):
                    pass
            moov = next((box for box in carved.boxes if box.name == MOOV), None)
            if carved.type in MOVIES and moov is not None and moov.size <= MAX_MOOV_READ:
                seconds = movie_seconds(self.dump.read(moov.offset, moov.size))
        except ReadError:
            pass
        tile = Tile(carved.offset, "" if self.outdir.dry_run else relpath,
                    relpath or "(not saved)",
                    carved.type, carved.size, status, detail, carved.meta.model,
                    carved.meta.datetime, naming.path if naming else "", thumbnail, seconds,
                    shown=carved.type == "jpg" and status == COMPLETE,
                    meaning=meaning(carved.type, status, detail, bool(carved.pictures)))
        if tile.status == COMPLETE and tile.meaning == meaning(carved.type, COMPLETE, ""):
            tile = tile._replace(meaning="")        # whole, and nothing more to say
        try:
            self.sheet.add(tile)
        except OSError as e:
            self.log.warning("the contact sheet is not written: %s" % (e.strerror or e))
            self.sheet.discard()
            self.sheet = None

    def write_sheet(self, cut_short):
        """Write index.html from the tiles; a failure is said, and costs nothing else."""
        if self.sheet is None:
            return
        sheet, self.sheet = self.sheet, None
        try:
            name = sheet.close(cut_short)
        except (OSError, KeyboardInterrupt) as e:
            sheet.discard()
            self.log.warning("the contact sheet is not written: %s" % (
                getattr(e, "strerror", None) or e or "interrupted"))
            return
        self.log.debug("contact sheet: %s" % (self.outdir.path / name))
        self.sheet_written = self.outdir.path / name

    def discard_sheet(self):
        if self.sheet is not None:
            self.sheet.discard()
            self.sheet = None

    def count(self, carved, status, wrote=True):
        self.by_status[status] += 1
        self.kinds[(carved.type, status)] += 1
        if wrote:
            self.bytes_written += carved.size

    def by_kind(self):
        """"CR3 412 complete, 3 damaged; JPEG 398 complete": most files first."""
        totals = collections.Counter()
        for (kind, _), count in self.kinds.items():
            totals[kind] += count
        parts = []
        for kind, _ in sorted(totals.items(), key=lambda item: (-item[1], item[0])):
            counts = ["%d %s" % (self.kinds[(kind, status)], status)
                      for status in (COMPLETE, TRUNCATED, DAMAGED, REPAIRED)
                      if self.kinds[(kind, status)]]
            parts.append("%s %s" % (kind.upper(), ", ".join(counts)))
        return "; ".join(parts)

    def summary(self, resume_point):
        if self.dump.unreadable and not self.nested:
            holes = Holes((sector, sector + SECTOR_SIZE) for sector in self.dump.unreadable)
            self.log.warning("{:,d} B of {} could not be read ({:,d} area(s), {:.3%}; {:,d} "
                             "read(s) failed): they are zeros in the files over them, which "
                             "are damaged".format(
                                 holes.total(), self.dump.path, len(holes.ranges),
                                 holes.total() / self.dump.size, self.dump.failed_reads))
        problems = [(self.by_status[s], s) for s in (TRUNCATED, DAMAGED) if self.by_status[s]]
        if self.not_saved:
            problems.append((self.not_saved, NOT_SAVED))
        if problems:
            self.log.warning("%s: the meaning column of %s says, for each, what is missing "
                             "and what can still be used" % (
                                 ", ".join("%d %s" % p for p in problems),
                                 self.outdir.report_path))
        for note in self.outdir.notes:
            self.log.warning(note)
        if self.failed:
            self.log.error("%d file(s) could not be saved" % self.failed)
        found = sum(self.by_status.values())
        if self.nested:
            self.log.info("Carved %d file(s) from %s" % (found, self.dump.path))
            return
        if self.kinds:
            self.log.info(self.by_kind())
        where = self.outdir.path
        if self.outdir.dry_run:
            self.log.info("A real run needs {:,d} B ({:.1f} GB) free in {}; this one wrote "
                          "only the report{}".format(self.bytes_written,
                                                     self.bytes_written / 1e9, where,
                                                     " and the contact sheet"
                                                     if self.sheet_written else ""))
            self.log.info("Dry run: found %d file(s), wrote none" % found)
            return
        if self.kept and found == self.kept:
            self.log.info("Nothing new: {:,d} file(s) already in {}, listed in {}".format(
                self.kept, where, self.outdir.report_path))
            return
        if self.kept:
            self.log.info("Kept {:,d} file(s) an earlier run saved in {}: they are not "
                          "written again".format(self.kept, where))
        if self.by_status[REPAIRED]:
            self.log.info("%d movie(s) cut before their index was written rebuilt to play "
                          "again, in %s" % (self.by_status[REPAIRED],
                                            where / self.outdir.folder(REPAIRED)))
        if found:
            first = self.sheet_written or where
            self.log.info("Wrote {:,d} B ({:.1f} GB) in {}: look first at {}, then in "
                          "truncated/ and damaged/ (the report says why each is there)"
                          .format(self.bytes_written, self.bytes_written / 1e9, where, first))
        if resume_point is not None:
            self.log.info("The same command run again goes on from offset {:,d}, keeping "
                          "what is saved (--restart starts over)".format(resume_point[0]))
        self.log.info("Restored %d file(s)" % (found - self.kept))    # by this run


class Writer:
    """The thread that copies found files into OUT while the scan goes on (sendfile
    lets go of the interpreter), at most MAX_QUEUED_COPIES waiting. A file's copy is
    a Future; wait() turns its outcome into the file's not_saved (why not) or an
    OutputError when nothing more can be written. A file whose earlier run's copy is
    there is not copied: its bytes in the dump are hashed, to be compared."""

    def __init__(self, dump, outdir, stop, log, recorder):
        self.dump = dump
        self.outdir = outdir
        self.stop = stop
        self.log = log
        self.recorder = recorder
        self.pool = None
        self.copies = collections.deque()       # the futures, oldest first

    def __enter__(self):
        self.pool = concurrent.futures.ThreadPoolExecutor(1)
        return self

    def __exit__(self, *exc):
        self.cancel()
        self.pool.shutdown(wait=True)

    def cancel(self):
        for future in self.copies:
            future.cancel()

    def wait_all(self):
        concurrent.futures.wait(self.copies)

    def write(self, found):
        if self.outdir.dry_run:
            return
        carved = found.carved
        while len(self.copies) >= MAX_QUEUED_COPIES:
            concurrent.futures.wait([self.copies.popleft()])
        known = known_digest(carved) if not self.dump.careful else None
        found.digest = known or hashlib.sha256()
        if found.earlier is not None:           # its copy is there: its bytes are checked
            if known is not None:
                found.copy = concurrent.futures.Future()
                found.copy.set_result(None)
                return
            found.copy = self.pool.submit(self.dump.digest, pieces_of(carved),
                                          self.stop.check, found.digest)
        else:
            found.copy = self.pool.submit(self.outdir.save, self.dump, carved, found.claim,
                                          self.stop.check, None if known else found.digest)
        self.copies.append(found.copy)

    def done(self, found):
        """True when found's copy is written whole."""
        copy = found.copy
        return (copy is not None and copy.done() and not copy.cancelled()
                and copy.exception() is None)

    def wait(self, found, final):
        """Wait for found's copy; on failure say why in found.not_saved."""
        if found.not_saved or self.outdir.dry_run:
            return
        try:
            self._outcome(found, final)
        finally:
            if found.not_saved:
                self.outdir.release(found.claim)

    def _outcome(self, found, final):
        path = self.outdir.path_of(found.carved.status, found.name)
        if found.copy is None:
            found.not_saved = "the run stopped before it was written"
            return
        try:
            found.copy.result()
        except (Interrupted, KeyboardInterrupt, concurrent.futures.CancelledError):
            found.not_saved = "the run stopped before it was written"
            if not final:
                raise
        except ReadError as e:
            self.recorder.failed += 1
            found.not_saved = str(e)
            self.log.error("%s not saved: %s" % (path, e))
        except OSError as e:
            if e.errno == errno.EFBIG:
                self.recorder.failed += 1
                found.not_saved = ("too large for the output file system (FAT32 holds at "
                                   "most 4 GiB per file): use an exFAT, NTFS or ext4 disk "
                                   "for --outdir")
                self.log.error("%s not saved: %s" % (path, found.not_saved))
            elif e.errno == errno.ENOSPC:
                found.not_saved = "the output disk is full"
                if not final:
                    raise DiskFull() from None
            elif e.errno in OUTPUT_GONE:        # read-only now, or gone: so is the next
                found.not_saved = "cannot write it: %s" % (e.strerror or e)
                if not final:
                    raise output_error(e, self.outdir.path) from None
            else:
                self.recorder.failed += 1
                found.not_saved = "cannot write it: %s" % (e.strerror or e)
                self.log.error("cannot write %s: %s" % (path, e.strerror or e))

    def write_again(self, found):
        """Write found anew from its pieces (its copy as one run is done)."""
        if self.outdir.dry_run:
            return
        found.digest = hashlib.sha256()
        try:
            if found.earlier is not None:
                self.dump.digest(pieces_of(found.carved), self.stop.check, found.digest)
            else:
                self.outdir.save_again(self.dump, found.carved, found.claim, self.stop.check,
                                       found.digest)
        except ReadError as e:
            self.recorder.failed += 1
            found.not_saved = str(e)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                found.not_saved = "the output disk is full"
                raise DiskFull() from None
            self.recorder.failed += 1
            found.not_saved = "cannot write it: %s" % (e.strerror or e)


class Resume:
    """What this run takes from the last runs into OUT (an EarlierRun, or None: it
    starts afresh). After a run cut short, its rows before the point it names are
    this run's first rows, as they are (carried), and the scan begins there, the
    names numbered on from its number. After any run, a file found where a row says one
    was saved, whose bytes have the row's sha256 and whose copy is still there, is
    kept (moved to its verdict's folder if need be), not written again; one that
    differs is written anew beside it.
    """

    def __init__(self, earlier, dump, outdir, stop, log, recorder):
        self.earlier = earlier
        self.dump = dump
        self.outdir = outdir
        self.stop = stop
        self.log = log
        self.recorder = recorder
        self.at = earlier.resume_at if earlier else 0       # where the scan begins
        self.counter = earlier.counter if earlier else 0    # the imgN number reached there

    def carried_files(self):
        """What the rows carried over tell the rest of the run: (where their files
        begin; the (start, end) of the complete files' pieces; the bytes of the files
        saved inside others)."""
        starts, taken, inside, reach = [], [], 0, 0
        for row in self.earlier.carried_files if self.earlier else []:
            offset, runs = int(row["offset"]), parse_runs(row["pieces"])
            starts.append(offset)
            if row["status"] == COMPLETE:
                taken.extend((first, first + length) for first, length in runs)
            if reach > offset and row["file"]:
                inside += int(row["size"])          # a file found inside another
            reach = max([reach] + [first + length for first, length in runs])
        return starts, taken, inside

    def carry_over(self):
        """Write the earlier run's rows before where this one resumes, as they are:
        its files are this run's too (the contact sheet and the DFXML list them).
        Never stopped halfway: a report is whole up to where its last row says."""
        for row in self.earlier.carried if self.earlier else []:
            self.recorder.carried(row, self.recorder.tile_carved(row_carved(row)))

    def saved_at(self, carved):
        """The earlier run's row of the file carved, when its copy is still there."""
        if self.earlier is None:
            return None
        row = self.earlier.saved_at(carved.offset, carved.type)
        return row if row is not None and self.copy_is_there(row) else None

    def copy_is_there(self, row):
        """True when the file an earlier run's row names is still there, whole. After
        a killed run (a power cut: files are not forced to disk one by one), its
        bytes are read again to prove it."""
        if not self.outdir.still_there(row):
            return False
        path = self.outdir.path / row["file"]
        if self.earlier.end is not None or file_sha256(path) == row["sha256"]:
            return True
        self.log.warning("%s is not what the run that was killed wrote (its sha256 differs "
                         "from its row's): the file is saved again, beside it" % path)
        return False

    def kept(self, found, status):
        """The relpath of the earlier run's copy of found, moved to the folder of its
        verdict, when it is the same file (the same bytes of the dump); else ""."""
        row = found.earlier
        if byte_runs(found.carved) != row["pieces"] or found.digest is None \
                or found.digest.hexdigest() != row["sha256"]:
            return ""
        if os.path.join(self.outdir.folder(status), found.name) == row["file"]:
            self.recorder.kept += 1
            return row["file"]
        if self.outdir.is_ours(row):            # moved only when it is that run's file
            self.recorder.kept += 1
            return self.outdir.move(row["file"], status, found.name)
        self.log.warning("%s is not what the earlier run wrote (its sha256 differs from "
                         "its row's): it stays, and the file is saved again beside it"
                         % (self.outdir.path / row["file"]))
        return ""

    def rewrite(self, found):
        """Write found anew, under a name of its own, as its earlier copy is not the
        same file; in that copy's place when the run cut short saved it with a
        verdict that was not final."""
        row, found.earlier = found.earlier, None
        claim = None
        if self.earlier.superseded(row) and self.outdir.is_ours(row):
            with contextlib.suppress(FileExistsError, NotADirectoryError, LinkInTheWay):
                claim = self.outdir.claim_again(found.name)     # takes that copy's place
        found.claim = claim or self.outdir.claim(numbered(found.name, number)
                                                 for number in itertools.count(2))
        found.name = found.claim.name
        found.digest = hashlib.sha256()
        self.outdir.save(self.dump, found.carved, found.claim, self.stop.check, found.digest)
        if claim is not None:
            os.unlink(str(self.outdir.path / row["file"]))

    def kept_picture(self, found, carved, status):
        """(relpath, sha256) of the earlier run's copy of the picture carved taken out
        of found, when found was kept and that copy is the same; else None."""
        row = found.earlier
        if row is None:
            return None
        name = name_in(row)
        folder = row["file"][:len(row["file"]) - len(name)]     # the container's, then
        kept = self.earlier.picture_at(carved.offset, name.rpartition("/")[2])
        if (kept is None or not kept["file"].startswith(folder) or not self.copy_is_there(kept)
                or int(kept["size"]) != carved.size):
            return None
        digest = hashlib.sha256()
        try:
            self.dump.digest(pieces_of(carved), self.stop.check, digest)
        except ReadError:
            return None
        if digest.hexdigest() != kept["sha256"]:
            return None
        self.recorder.kept += 1
        return self.outdir.move(kept["file"], status, kept["file"][len(folder):]), kept["sha256"]

    def drop_superseded(self):
        """What the run cut short saved with a verdict that was not final, and this
        run did not find again: a picture it took out of a file that is complete now
        (the picture is in it) goes, if it is still what that run wrote; anything
        else stays, and is said."""
        for row in self.earlier.left_over() if self.earlier else []:
            if not self.earlier.superseded(row) or not self.outdir.still_there(row):
                continue
            path = self.outdir.path / row["file"]
            if row["type"] == "jpg" and " inside " in row["detail"]:
                if self.outdir.is_ours(row):
                    os.unlink(str(path))
                    self.log.info("Removed %s: the run cut short took it out of a file "
                                  "it could not judge for good; this one did not" % path)
                    continue
            self.log.warning("%s, saved by the run cut short, was not found again: it "
                             "stays, but this run's report does not list it" % path)

    def nothing_new(self, report):
        """True when this run, after one that searched the whole dump, wrote a report
        that is that one's again: it goes (the earlier one is the report), so that a
        second identical run leaves nothing new."""
        earlier = self.earlier
        if earlier is None or earlier.end is None or earlier.end["status"] != SCAN_FINISHED:
            return False
        try:
            if not filecmp.cmp(str(report), earlier.path, shallow=False):
                return False
            os.unlink(str(report))
        except OSError:
            return False
        return True


class Placing:
    """A found file's last steps, once the scan has passed it: its verdict (with the
    bytes the card did not give), its name asked of the card's folders again, its
    place in OUT (the earlier run's copy kept, or its .part file given its name in
    its verdict's folder) and then its record. A name the output refuses costs that
    file, which is reported not saved; a row that cannot be written takes the file
    back out of OUT, and the run stops."""

    def __init__(self, outdir, log, recorder, resume, folders):
        self.outdir = outdir
        self.log = log
        self.recorder = recorder
        self.resume = resume
        self.folders = folders

    def report(self, found):
        """Give found its verdict, its place in OUT and its row; its status."""
        carved = found.carved
        status, detail = self.recorder.holed(carved, *found.verdict())
        if found.not_saved:
            detail = "; ".join(filter(None, ["not saved: " + found.not_saved, status, detail]))
            self.recorder.unsaved(carved, detail, found.naming)
            return NOT_SAVED
        self.name_again(found)
        relpath = self.outdir.relpath(status, found.name)
        placed = kept = None
        try:
            try:
                if found.earlier is not None:
                    kept = self.resume.kept(found, status)
                    if not kept:
                        self.resume.rewrite(found)
                if kept:
                    relpath = kept
                elif not self.outdir.dry_run:           # the verdict is final now
                    relpath = placed = self.outdir.finish(found.claim, status)
            except OSError as e:
                if e.errno in OUTPUT_GONE:
                    raise
                return self._not_placed(found, status, detail, e)
            # said once the folder is known: a file found to hold others leaves the top
            said = ("Would save" if self.outdir.dry_run else
                    "Kept, as an earlier run saved it:" if kept else "Saving")
            self.recorder.file(relpath, carved, status, detail, found.naming,
                               found.digest.hexdigest() if found.digest else "", said=said,
                               when=found.naming.fs_time if found.naming
                               else carved.meta.datetime, wrote=not kept)
        except OutputError:
            self._unplace(found, placed)
            raise
        except OSError as e:
            self._unplace(found, placed)
            raise output_error(e, self.outdir.path) from None
        if status != COMPLETE:
            self.log.warning("%s is %s: %s" % (self.outdir.path / relpath, status, meaning(
                carved.type, status, detail, bool(carved.pictures))))
            self.log.debug("why: %s" % detail)
        return status

    def name_again(self, found):
        """Ask the card's folders again for a file put back together or read through
        its chain: its size, now the whole file's, may be what its entry says."""
        carved = found.carved
        if found.naming is not None or not (carved.pieces or self.folders.sieving):
            return
        found.naming, found.naming_why = self.folders.file_system().naming(
            carved.offset, carved.size, carved.meta.datetime)
        if found.naming is not None and self.outdir.name_by == "original":
            self.outdir.rename(found.claim, self.outdir.names_for(carved, found.naming))
            found.name = found.claim.name

    def _not_placed(self, found, status, detail, error):
        """found could not be given its name (a folder of OUT refused it): that file
        is not saved, and the run goes on."""
        self.outdir.release(found.claim)
        self.recorder.failed += 1
        why = "cannot give it its name: %s" % (error.strerror or error)
        self.log.error("%s not saved: %s" % (self.outdir.path_of(status, found.name), why))
        detail = "; ".join(filter(None, ["not saved: " + why, status, detail]))
        self.recorder.unsaved(found.carved, detail, found.naming)
        return NOT_SAVED

    def _unplace(self, found, placed):
        """Take back the file placed for found, whose row could not be written: it is
        reported as not saved, if a row can still be written at all."""
        if placed is not None:
            self.outdir.unfinish(placed)
            found.not_saved = "its report row could not be written"


class CardFolders:
    """What is left of the card's file system: its volume (boot sector), FAT and
    directory entries, read into a FileSystem that names files and follows chains.

    Read before the scan (find_volume, then the scan processes sieve the dump for
    directory entries in a first pass). Reading carefully (a device, maybe a failing
    one) the dump is read once: the folders are sieved in the scan's own pass, and a
    file is named from those found before it is reported (on a card written in
    order, a file's folder cluster lies before it; image the card to have them all
    first).
    """

    def __init__(self, dump, stop, log):
        self.dump = dump
        self.stop = stop
        self.log = log
        self.fs = FileSystem()
        self.volume = None
        self.geometry = None                    # the card's clusters, once needed
        self.directories = ([], [])             # what the sieve found: FAT sectors, exFAT sets
        self.sieving = False                    # the folders are sieved in the scan's pass
        self._stale = False
        self._fat = None
        self._too_many_said = False

    def read(self, options, resume_at):
        """Read the volume, then the folders before resume_at."""
        try:
            volume = find_volume(self.dump)
        except ReadError:
            volume = None
        self.volume = volume
        if volume is not None:
            self.geometry = volume.geometry
        options = self.scan_options(options)
        try:
            if self.dump.careful:
                self.sieving = True
                self._fat = read_fat(self.dump, volume)
                self.fs = FileSystem(volume, volume.geometry if volume else Geometry())
                self._sieve(options, stop=resume_at)    # the folders before the scan's start
            else:
                self._sieve(options)
                self.fs = FileSystem.read(self.dump, volume, *self.directories)
        except ReadError as e:
            self.log.warning("the card's folders could not all be read (%s): files found "
                             "keep the names they would have without them" % e)
            self.fs = FileSystem(volume, volume.geometry if volume else Geometry())
            self.sieving = False
        if self.geometry is None and not self.sieving:  # the folders', or none: said once
            self.geometry = self.fs.geometry
        self._say(volume)

    def scan_options(self, options):
        """options, told where the volume puts its sectors (its data area may lie off
        the sector grid) and which file system's folders to sieve for."""
        if self.volume is None:
            return options
        return options._replace(phase=self.volume.data_start % SECTOR_SIZE,
                                file_system=self.volume.kind)

    def _say(self, volume):
        if self.sieving:
            self.log.info("File system: {}, {:,d} B clusters; its folders are read as the "
                          "scan goes".format(volume.kind if volume else "none found yet",
                                             self.fs.geometry.cluster))
        elif volume is not None or self.fs.entries:
            where = (" at offset {:,d}".format(volume.base) if volume and volume.base
                     else "")
            self.log.info("File system: {}{}, {:,d} B clusters; {:,d} directory entries "
                          "that may name files".format(
                              volume.kind if volume else "FAT (its boot sector is gone)",
                              where, self.fs.geometry.cluster, len(self.fs.entries)))

    def _sieve(self, options, stop=None):
        """Sieve the dump (up to stop) for directory entries, in the scan processes,
        which search each region for candidates too: the scan carves them without
        reading the whole dump again."""
        pos = 0
        for end, (sectors, sets, candidates) in self.dump.scan(options, _sieve_region,
                                                                stop=stop):
            self.stop.check()
            self.sieved(sectors, sets)
            if not self.dump.careful:
                self.dump.candidates.keep((pos, end), candidates)
            pos = end

    def sieved(self, sectors, sets):
        """Keep what the directory sieve found of a region (up to the bounds)."""
        fat_sectors, exfat_found = self.directories
        if (sectors or sets) and (len(fat_sectors) == MAX_DIRECTORY_SECTORS
                                  or len(exfat_found) == MAX_DIRECTORY_ENTRIES):
            if not self._too_many_said:
                self._too_many_said = True
                self.log.warning("the dump holds more directory entries than a card's "
                                 "folders have: only the first {:,d} are read".format(
                                     MAX_DIRECTORY_ENTRIES))
            return
        fat_sectors += sectors[:MAX_DIRECTORY_SECTORS - len(fat_sectors)]
        exfat_found += sets[:MAX_DIRECTORY_ENTRIES - len(exfat_found)]
        self._stale = self._stale or bool(sectors or sets)

    def file_system(self):
        """The card's file system as far as it is known (reading carefully, it grows
        as the scan goes)."""
        if self._stale:
            self._stale = False
            try:
                self.fs = FileSystem.read(self.dump, self.volume, *self.directories,
                                          fat=self._fat)
            except ReadError:
                pass                            # the names found so far are kept
        return self.fs

    def clusters(self):
        """The card's Geometry as far as its boot sector (or folders) say, read when
        first needed; Geometry() when nothing says."""
        if self.geometry is None:
            try:
                self.geometry = card_geometry(self.dump)
            except ReadError:
                self.geometry = Geometry()
        return self.geometry


class Reassembly:
    """Putting a broken file back together, three ways, each proven by the file's
    own checks before it is believed:

    - through_chain: a live file read through its FAT chain (the file system's word);
    - reassemble: the whole files found inside it taken out of its extent (a camera
      writing on a used card jumps over the clusters of the files still there);
    - rejoin: its own structure (the tables of an ISO-BMFF file, the MCUs of a JPEG)
      says where its pieces are, searched for on the card's cluster grid among the
      bytes no complete file holds (Known).

    Each returns the file put together (a Carved), or None; reading is bounded by
    budget, so that a hostile dump cannot make it read forever.
    """

    def __init__(self, dump, outdir, stop, options, folders):
        self.dump = dump
        self.outdir = outdir
        self.stop = stop
        self.options = options
        self.folders = folders
        # bytes still to read putting files together: each cluster size tried may read
        # the dump once more (only a hostile one gets near it)
        self.budget = Budget(max(dump.size, 16 * MAX_REASSEMBLED) * len(TRY_CLUSTERS))
        # guesses, and files laid over the free clusters, read from shares of their
        # own: neither leaves a file the marks would put together without its reading
        self.guess_budget = Budget(max(dump.size, 16 * MAX_REASSEMBLED) * GUESS_READS)
        self.fill_budget = Budget(max(dump.size, 16 * MAX_REASSEMBLED) * GUESS_READS)
        self.filled_as = {}     # {start: the pieces a file was last laid over}
        # {start: bytes} of the files not put together whose marks proved their
        # first bytes their own: no other file's piece lies there (see owned)
        self.own = {}

    def entry_starts(self):
        """Where the card's folder entries, old ones too, say a file began."""
        fs = self.folders.file_system()
        cluster, data_start = fs.geometry
        if not cluster:
            return []
        return [data_start + (entry.first_cluster - 2) * cluster
                for entry, _, _ in fs.entries if entry.first_cluster >= 2]

    def owned(self, but):
        """[(first, last)] of the bytes the marks of files not put together proved
        theirs, but those of the file at but."""
        return [(start, start + size) for start, size in self.own.items()
                if start != but and size]

    def found_through_chain(self, found):
        """True when found is read through its FAT chain (see through_chain)."""
        again = self.through_chain(found.carved)
        if again is None:
            return False
        found.put_together(again)
        return True

    def found_around(self, found):
        """True when found is put together around the whole files inside it (see
        reassemble): only when every file inside it is whole, and known."""
        inner = [other for other in found.whole_inside if other.verdict()[0] == COMPLETE]
        if len(inner) != len(found.whole_inside) or len(found.whole_inside) < found.held:
            return False
        again = self.reassemble(found.carved, inner)
        if again is None:
            return False
        found.put_together(again, inner)
        return True

    def unproven_tail(self, found):
        """Where, in a complete HEIF found in one run, the bytes no check reads begin,
        when more than a cluster of them follow: its last picture's last NAL unit is
        read where it begins and where it ends, not inside, so the file may have been
        split there over another file's bytes that a NAL unit's rules allow (another
        picture's, a movie's). Such a file waits for the end of the scan (see
        Recovery.rejoin_deferred); None for any other, or where the card's folders
        say it lies in one run."""
        carved = found.carved
        if (carved.type != "heif" or carved.pieces or found.not_saved
                or found.verdict()[0] != COMPLETE or carved.size > MAX_REASSEMBLED):
            return None
        point = last_checkpoint(self.dump.read(carved.offset, carved.size), carved)
        if carved.size - point <= MIN_CARD_CLUSTER or self.folders.file_system(
                ).written_in_one_run(carved.offset, carved.size):
            return None
        return point

    def found_may_rejoin(self, found):
        """True for a damaged found file whose own tables may say where its pieces are:
        it waits for the end of the scan (see Recovery.rejoin_deferred)."""
        return (found.carved.type in FORMATS and self.may_rejoin(found.carved)
                and not found.not_saved and found.verdict()[0] == DAMAGED)

    def through_chain(self, carved):
        """Read a live file through its FAT chain, when the FAT has one for it in
        pieces: the file, when its checks call what the chain gives complete at the
        entry's size."""
        if carved.pieces or carved.type not in FORMATS:
            return None
        found = self.folders.file_system().chain(carved.offset, most=MAX_REASSEMBLED)
        if found is None or len(found[0]) < 2:
            return None
        pieces, size = found
        try:
            self.budget.spend(size)
            carved_again = self.carve_pieces(carved.type, pieces)
        except (Unproven, ReadError):
            return None
        if carved_again is None or carved_again[0].size != size:
            return None
        again, kept = carved_again[:2]
        return rejoined(carved, again, kept, COMPLETE,
                        "read through its FAT chain, in %d pieces" % len(kept))

    def reassemble(self, carved, inner):
        """carved without the clusters of inner (the whole files found inside it),
        when what is left is a file its own structure accepts; complete only for the
        types whose checks reach its data."""
        if carved.pieces or carved.size > MAX_REASSEMBLED or carved.type not in FORMATS:
            return None
        geometry = self.folders.clusters()
        proven = FORMATS[carved.type].proven
        if geometry.cluster:
            if (carved.offset - geometry.data_start) % geometry.cluster:
                return None                 # not where this file system puts a file
            clusters = [geometry.cluster]
        else:
            clusters = TRY_CLUSTERS if proven else []
        for cluster in clusters:
            try:
                self.budget.spend(carved.size)
            except Unproven:
                return None
            again = self._around(carved, inner, cluster, guessed=not geometry.cluster)
            if again is not None:
                return again
        return None

    def _around(self, carved, inner, cluster, guessed=False):
        """carved without the clusters of the Found files in inner, if it is a file so.
        guessed: no boot sector gives the cluster size, so a file's last cluster may be
        taken larger than it is: past the smallest cluster a card has
        (MIN_CARD_CLUSTER), the bytes up to where the tried one would end must be blank
        (slack), never a file's data - which a wrong size would skip, and a join
        inside data nothing checks would hide."""

        gaps = []
        for other in sorted((found.carved for found in inner),
                            key=operator.attrgetter("offset")):
            if (other.offset - carved.offset) % cluster:
                return None
            end = other.offset + -(-other.size // cluster) * cluster
            smallest = min(cluster, MIN_CARD_CLUSTER)
            if guessed and not self._blank(
                    other.offset + -(-other.size // smallest) * smallest, end):
                return None
            if gaps and other.offset <= gaps[-1][1]:
                gaps[-1] = (gaps[-1][0], max(gaps[-1][1], end))
            else:
                gaps.append((other.offset, end))
        # a JPEG cut where the next one begins: its rest is to be found, up to EOI
        want = carved.size + (MAX_JPEG_REST if cut_by_next_jpeg(carved) else REJOIN_SLACK)
        pieces, pos, got = [], carved.offset, 0
        for first, last in gaps + [(self.dump.size, self.dump.size)]:
            take = min(first - pos, want - got)
            if take > 0:
                pieces.append((pos, take))
                got += take
            pos = max(pos, last)
            if got >= want:
                break
        proven_type = FORMATS[carved.type].proven
        carved_again = self.carve_pieces(carved.type, pieces, joins_checked=proven_type)
        if carved_again is None:
            return None
        again, kept, proven, unchecked = carved_again
        if len(kept) < 2:
            return None                     # it does not need what lies after a gap
        if proven_type and not proven:
            return None                     # no structure after a join tests it
        names = ", ".join(found.name for found in inner)
        detail = "reassembled from %d pieces around %s" % (len(kept), names)
        if not proven_type:
            return rejoined(carved, again, kept, DAMAGED, detail + ": nothing in %s data "
                            "can confirm the join" % carved.type.upper())
        return tail_checked(rejoined(carved, again, kept, COMPLETE, detail), unchecked)

    def _blank(self, first, last):
        """True when the dump's bytes [first, last) are all zeros, or all 0xFF."""
        data = self.dump.read(first, last - first) if last > first else b""
        return not data or (data[0] in BLANK_BYTES and not data.strip(data[:1]))

    def may_rejoin(self, carved):

        """True for a damaged file whose own tables may say where its pieces are."""
        return (FORMATS[carved.type].rejoined and not carved.pieces
                and (carved.boxes or carved.type == "jpg")
                and not carved.detail.startswith(AVI_FRAME)
                and carved.size <= MAX_REASSEMBLED)

    def rejoin(self, carved, known):
        """(the file put together, why not) from carved's own structure (find_pieces,
        or jpeg_pieces for a JPEG): put together when that gives one file only, which
        its checks call complete; otherwise why, to be said in its detail."""
        search = self._jpeg_ways if carved.type == "jpg" else self._iso_ways
        found, why = {}, ""
        try:
            why = search(carved, known, found)
        except Unproven as e:
            why = str(e) if e.worth_saying else why
        except (FormatError, struct.error, IndexError, ReadError):
            return None, ""
        if len(found) == 1:
            (again,) = found.values()
            return again, ""
        if len(found) > 1:
            return None, "%d different ways of putting it together fit" % len(found)
        filled = self.filled(carved, known)
        return (filled, "") if filled is not None else (None, why)

    def filled(self, carved, known):
        """See _filled: None for a JPEG (its MCUs decide), or where it fails."""
        try:
            return self._filled(carved, known) if carved.type != "jpg" else None
        except (Unproven, FormatError, struct.error, IndexError, ReadError):
            return None

    def guess(self, carved, known):
        """See _iso_guess: None for a JPEG, or where it fails."""
        try:
            return self._iso_guess(carved, known) if carved.type != "jpg" else None
        except (Unproven, FormatError, struct.error, IndexError, ReadError):
            return None

    def _grids(self, carved, known):
        """The (cluster size, data start) the file's pieces may lie on: the boot
        sector's, else the one the complete files' starts share, else every size
        (each one that puts the file together must agree)."""
        geometry = self.folders.clusters()
        if not geometry.cluster:
            geometry = shared_grid(known.starts_of_files)
        if geometry.cluster:
            if (carved.offset - geometry.data_start) % geometry.cluster:
                return []                   # not where this file system puts a file
            return [tuple(geometry)]
        return [(cluster, carved.offset, True) for cluster in TRY_CLUSTERS]

    def _head(self, carved, budget):
        """(its bytes up to mdat's payload, carved with its boxes from its first byte
        on): its tables are there; the marks are read from the dump."""
        boxes = [box._replace(offset=box.offset - carved.offset) for box in carved.boxes]
        mdat = next((box for box in boxes if box.name == MDAT), None)
        data = self.dump.read(carved.offset, mdat.body if mdat else carved.size)
        budget.spend(len(data))
        return data, carved._replace(offset=0, boxes=boxes)

    def _iso_ways(self, carved, known, found):
        """Put an ISO-BMFF file together on each grid and with each moov that may be
        its own, into found ({pieces: Carved}); what went wrong last, or ""."""
        why = ""
        data, head = self._head(carved, self.budget)
        for grid in self._grids(carved, known):
            for f in self._layouts(data, head, carved.offset, grid, known, self.budget):
                try:
                    pieces = find_pieces(self.dump, carved.offset, f.size, walked_header(f),
                                         iso_marks(f), grid, known, self.budget,
                                         jpeg_spans(f))
                except Unproven as e:           # the finest grid's word is kept
                    why = str(e) if e.worth_saying else why
                    if f.size == head.size:     # its own tables placed the marks
                        self.own[carved.offset] = max(self.own.get(carved.offset, 0), e.own)
                    continue
                except (FormatError, struct.error, IndexError):
                    continue
                again = self._proven(carved, pieces, known)
                if again is not None:
                    found[again.pieces] = again
        return why

    def _filled(self, carved, known):
        """carved put together from the card's free clusters, forward from its start
        (free_runs: every complete file jumped over), when its checks call that
        complete and a checked structure follows every join; or None.

        A camera fills the first free clusters forward, jumping over the files
        there. Its file's bytes then lie in [start, end) less the gaps, every
        complete file among them; when a mark after the last join holds where the
        complete files alone put it, those gaps are as long as the complete files
        in them, so they are nothing else: the pieces are the file's, with no
        mark between its joins (a CR3's raw data in four pieces)."""
        grids = self._grids(carved, known)
        if len(grids) != 1 or len(grids[0]) > 2 or carved.size > MAX_REASSEMBLED:
            return None                 # clusters merely tried: no runs to follow
        pieces = free_runs(known, carved.offset, carved.size, grids[0][0], self.dump.size)
        if pieces is None or len(pieces) < 2 or self.filled_as.get(carved.offset) == pieces:
            return None                 # (tried already: what more is known changed none)
        self.filled_as[carved.offset] = pieces
        self.fill_budget.spend(carved.size)
        carved_again = self.carve_pieces(carved.type, pieces, joins_checked=True)
        if carved_again is None:
            return None
        again, kept, proven, unchecked = carved_again
        if not proven or again.size != carved.size:
            return None
        return tail_checked(rejoined(carved, again, kept, COMPLETE, "reassembled from %d "
                                     "pieces: the clusters between them are complete "
                                     "files'" % len(kept)), unchecked)

    def _iso_guess(self, carved, known):

        """The most likely way of putting an ISO-BMFF file together where no proof
        settles it, on the card's own clusters, when its checks accept it: damaged,
        its detail saying what was guessed; or None. (A photographer can still open
        a raw whose split was guessed; it is never called complete.)"""
        grids = self._grids(carved, known)
        if len(grids) != 1 or len(grids[0]) > 2:
            return None                 # clusters merely tried: nothing to guess on
        budget = self.guess_budget
        data, head = self._head(carved, budget)
        for f in self._layouts(data, head, carved.offset, grids[0], known, budget):
            guesses = []
            try:
                pieces = find_pieces(self.dump, carved.offset, f.size, walked_header(f),
                                     iso_marks(f), grids[0], known, budget,
                                     jpeg_spans(f), guesses)
            except (Unproven, FormatError, struct.error, IndexError):
                continue
            if len(pieces) < 2:
                continue
            last, length = pieces[-1]
            wanted = pieces[:-1] + [(last, min(length + REJOIN_SLACK, self.dump.size - last))]
            budget.spend(sum(size for _, size in wanted))
            carved_again = self.carve_pieces(carved.type, wanted, joins_checked=True)
            if carved_again is None:
                continue
            again, kept, proven, unchecked = carved_again
            if not proven and self._decodes_wrong(again, kept):
                continue                        # a JPEG across a join says no
            if not proven:
                guesses.append("nothing after the join at +%d checks it"
                               % joins(kept)[-1])
            elif unchecked > MIN_CARD_CLUSTER:
                guesses.append(unchecked_end(unchecked))
            return rejoined(carved, again, kept, DAMAGED, "reassembled from %d pieces by a "
                            "guess: %s" % (len(kept), "; ".join(guesses)))
        # no mark after its split: the free clusters forward, as a camera fills them
        pieces = free_runs(known, carved.offset, carved.size, grids[0][0], self.dump.size)
        if pieces is None or len(pieces) < 2 or carved.size > MAX_REASSEMBLED:
            return None
        budget.spend(carved.size)
        carved_again = self.carve_pieces(carved.type, pieces)
        if carved_again is None or carved_again[0].size != carved.size \
                or self._decodes_wrong(*carved_again[:2]):
            return None
        again, kept = carved_again[:2]
        return rejoined(carved, again, kept, DAMAGED, "reassembled from %d pieces by a guess: "
                        "the free clusters on from +%d, past the files there"
                        % (len(kept), joins(kept)[0]))

    def _decodes_wrong(self, again, kept):
        """True when a JPEG inside the file put together from kept fails to decode
        across a join (see jpeg_joins_fail): that guess is known wrong."""
        self.guess_budget.spend(again.size)
        with self.joined(kept) as data:
            return jpeg_joins_fail(data, again, joins(kept))

    def _jpeg_ways(self, carved, known, found):

        """Put a JPEG together from its MCUs, into found: on the first grid where it
        decodes whole (that is the proof, on any grid); what went wrong last, or ""."""
        why = ""
        data = self.dump.read(carved.offset, carved.size)
        scan = baseline_scan(data, walk_jpeg(data, 0, len(data)))
        del data                        # its header was all it was read for
        for grid in self._grids(carved, known) if scan is not None else []:
            try:
                pieces = jpeg_pieces(self.dump, carved.offset, scan, grid, known, self.budget)
            except Unproven as e:
                why = str(e) if e.worth_saying else why
                continue
            again = self._proven(carved, pieces, known)
            if again is not None:
                found[again.pieces] = again._replace(
                    detail="reassembled from %d pieces where its MCUs decode whole"
                    % len(again.pieces))
                break
        return why

    def _layouts(self, data, head, start, grid, known, budget):
        """The IsoFiles whose marks may place the file's pieces: its own, when its
        tables are in its first piece; else one per moov found past its mdat."""
        names = [box.name for box in head.boxes]
        if MOOV in names or META in names:
            yield IsoFile(data, 0, head.size, head.boxes, read_ftyp(data, 0, len(data)))
            return
        mdat = head.boxes[-1]
        if mdat.name != MDAT or mdat.to_end:
            return
        for at in lone_moovs(self.dump, start, mdat.end, grid, known, budget):
            (size,) = U32.unpack(self.dump.read(at, U32.size))
            if size > MAX_REASSEMBLED:
                continue
            budget.spend(size)

            try:
                yield with_moov(data, mdat, self.dump.read(at, size))
            except (FormatError, struct.error, IndexError):
                continue

    def _proven(self, carved, pieces, known):
        """carved put together from pieces (and what may follow its last one), when
        its checks call that complete and a checked structure follows every join."""
        if len(pieces) < 2:
            return None                     # in one piece: the marks found no gap
        last, length = pieces[-1]
        wanted = pieces[:-1] + [(last, min(length + REJOIN_SLACK, self.dump.size - last))]
        self.budget.spend(sum(size for _, size in wanted))
        carved_again = self.carve_pieces(carved.type, wanted, joins_checked=True)
        if carved_again is None:
            return None
        again, kept, proven, unchecked = carved_again
        if not proven:
            return None
        end_offset, end_size = kept[-1]
        if known.taken_end(end_offset, end_offset + end_size) is not None:
            return None
        return tail_checked(rejoined(carved, again, kept, COMPLETE, "reassembled from %d "
                                     "pieces where its own tables place them" % len(kept)),
                            unchecked)

    def carve_pieces(self, kind, pieces, joins_checked=False):
        """(the Carved, the pieces it uses, whether its checks test every join, how
        many bytes at its end they do not read: those two asked for with
        joins_checked) of pieces carved again as one file of kind, when its checks
        call that complete; None otherwise. Past its last checked structure (the
        audio a movie ends with, a picture's last NAL unit) a piece may end unseen."""
        with self.joined(pieces) as data:
            again = carve_again(data, kind, self.options)
            if again is None or again.status != COMPLETE:
                return None
            kept = clipped(pieces, again.size)
            last, unchecked = check_reach(data, again) if joins_checked else (0, 0)
            proven = (joins_checked and len(kept) >= 2
                      and joins_proven(data, again, joins(kept), last))
            return again, kept, proven, unchecked

    @contextlib.contextmanager
    def joined(self, pieces):
        """The bytes of pieces one after the other, for a file's checks: in memory
        when they are few; else copied (by the kernel) into an unlinked scratch file
        in the output folder and mapped, its pages given back as they are read, so
        that memory stays flat whatever the size of a file put together. Where the
        scratch file cannot be written, in memory."""
        size = sum(length for _, length in pieces)
        scratch = None
        if size > MAX_JOINED_IN_MEMORY and hasattr(mmap.mmap, "madvise") \
                and not self.outdir.dry_run:
            try:
                scratch = tempfile.TemporaryFile(dir=str(self.outdir.path),
                                                 prefix=".recovercr3-scratch-")
                for offset, length in pieces:
                    self.dump.copy_to(scratch.fileno(), offset, length, self.stop.check)
                size = os.fstat(scratch.fileno()).st_size
            except OSError:
                if scratch is not None:
                    scratch.close()
                scratch = None
        if scratch is None or not size:
            yield self.dump.read_joined(pieces, self.stop.check)
            return
        with scratch, mmap.mmap(scratch.fileno(), size, access=mmap.ACCESS_READ) as data:
            with pages_given_back(data):
                yield data


# 25. The recovery run -----------------------------------------------------------------
# Recovery: the order of the work (scan, settle, the tail, the end); ByProducts.

class Recovery:
    """One scan of one dump into one output directory: the order of the work.

    The scan processes search and carve; this process decides what is a file and
    names it (save), reports each file once the scan has passed its end (settle),
    puts the damaged ones together at the end (rejoin_deferred), then writes the
    report's last row, the contact sheet and the summary. What it does with a file
    is done by the collaborators it is given or builds: the Writer copies, the
    Recorder records, Resume keeps what an earlier run saved, Placing gives a file
    its verdict and its place, CardFolders names, Reassembly puts together,
    ByProducts takes pictures and streams out of broken files.

    Two rules keep the output bounded by the dump: a file that runs to the end of the
    dump (cut by the end of the card or of the image, or an mdat of size 0) is the
    "tail": it is cut where the next file found inside it begins, since from there
    on its extent holds that file's bytes and its own end is not in the dump anyway.
    And files found inside others are written while their bytes add up to at most
    the dump's size again; past that (only a hostile dump gets there) they are
    reported, not written.
    """

    def __init__(self, dump, outdir, options, log, stop, recorder=None, earlier=None,
                 nested=False):
        self.dump = dump
        # the scan processes hash what they carve, and the writer copies it with
        # sendfile; not where a read may fail (carefully), nor for a dry run
        self.options = options._replace(digest=dump.sendfile_ok and not outdir.dry_run)
        if not nested:
            dump.on_careful = self._turned_careful
            dump.stop_check = stop.check
        self.stop = stop
        self.outdir = outdir
        self.log = log
        self.nested = nested                    # carving a salvaged 7z stream
        self.recorder = recorder or Recorder(dump, outdir, log, nested=nested)
        self.writer = Writer(dump, outdir, stop, log, self.recorder)
        self.resume = Resume(earlier, dump, outdir, stop, log, self.recorder)
        self.folders = CardFolders(dump, stop, log)
        self.reassembly = Reassembly(dump, outdir, stop, self.options, self.folders)
        self.by_products = ByProducts(dump, outdir, stop, log, self.options, self.recorder,
                                      self.resume)
        self.placing = Placing(outdir, log, self.recorder, self.resume, self.folders)
        self.pos = self.resume.at
        self.pending = collections.deque()      # Found files not reported yet, in offset order
        self.open = []                          # Found files the scan is still inside
        self.tail = None                        # the Found file running to the dump's end
        self.stopped_by = ""                    # the output error that stopped the run
        self.stopped_by_full = False            # and it was a full disk
        self.deferred = collections.deque()     # damaged files to put together at the end
        self.cut_movies = collections.deque()   # movies cut before their moov: they wait
                                                # for every complete movie (their references)
        self.reach = []                         # (offset, end) of every file reported
        self.resume_point = None                # (offset, counter) to resume from, when cut short
        self.unfinished = []                    # reported files whose pictures are not out
        # where every file found begins; the (start, end) of every complete file's
        # pieces; the bytes still to write of files inside others: the rows carried
        # over from an earlier run's report count too
        self.starts, self.taken, inside = self.resume.carried_files()
        self.overlap_left = dump.size - inside
        self.counters = [self.resume.counter] * len(self.starts)   # the names' number at each
        if self.resume.earlier is not None:
            self.outdir.counter = self.resume.counter

    def run(self):

        code = EXIT_OK
        finished = searched_whole = False
        with self.writer:
            try:
                try:
                    if not self.nested:
                        self.folders.read(self.options, self.resume.at)
                        self.resume.carry_over()
                    self.scan()
                    self.settle()
                    self.rejoin_deferred()
                    self.report_cut_movies()
                    self.resume.drop_superseded()
                    finished = True
                except (Interrupted, KeyboardInterrupt):
                    self.stop.request()         # the writer stops too
                    self.log.warning("Interrupted at offset {:,d} of {:,d} B".format(
                        self._reached(), self.dump.size))
                    code = self.stop.exit_code()
                except DumpShrank as e:
                    self.writer.wait_all()      # the files before its new end
                    self.log.warning("%s; the scan ends at offset %s, its new end" % (
                        e, format(self._reached(), ",d")))
                    code = EXIT_ERROR
                except ReadError as e:
                    self.writer.wait_all()      # then say where it stopped
                    self.log.error("%s; the scan stopped at offset %s of %s B" % (
                        e, format(self._reached(), ",d"), format(self.dump.size, ",d")))
                    code = EXIT_ERROR
                except OutputError as e:
                    self.writer.cancel()
                    self.stopped_by = self._said(e)
                    self.stopped_by_full = isinstance(e, DiskFull)
                    if not self.nested:             # the outer run says it
                        self.log.error(self.stopped_by)
                    code = EXIT_ERROR
                stopped_at = self.dump.size if finished else self._reached()
                if not finished:
                    self.resume_point = self._resume_point(stopped_at)
                    self._remember(self.resume_point)
                self.dump.stop_check = None         # what is left to report is read whole
                try:
                    self.settle(final=True)
                    self.recorder.end(stopped_at, self.resume_point)
                except OutputError as e:
                    self.writer.cancel()
                    message = self._said(e)
                    # said once: a disk full again while settling is the same error,
                    # though the scan has moved on since
                    if not self.nested and message != self.stopped_by and not (
                            isinstance(e, DiskFull) and self.stopped_by_full):
                        self.log.error(message)
                    code = code or EXIT_ERROR
                    self.settle(final=True, record=False)
                else:
                    searched_whole = self.resume_point is None
            except KeyboardInterrupt:           # a second stop while settling
                self.stop.request()
                self.writer.cancel()
                code = self.stop.exit_code()
        for claim in list(self.outdir.claims):  # copies that never ran
            self.outdir.release(claim)
        if code == EXIT_OK:
            self._drop_a_repeated_report()
        if searched_whole:                      # its report lists every file
            self._remember()
        self.recorder.write_sheet(cut_short=code != EXIT_OK)
        self.recorder.summary(self.resume_point)
        if code == EXIT_OK and self.recorder.failed:
            code = EXIT_ERROR
        return code

    def _said(self, error):
        """The words of an OutputError: a full disk says where the scan stopped."""
        return self._disk_full() if isinstance(error, DiskFull) else str(error)

    def _turned_careful(self, at):
        self.log.warning("{} cannot be read at offset {:,d} (a bad sector, or a failing card "
                         "or share): it is read carefully from there on, a sector that "
                         "cannot be read is zeros, and the files over it are damaged".format(
                             self.dump.path, at))

    def _remember(self, resume_point=None):
        """Name this run's report in the state file for the next run, with where it
        resumes (and the reports it resumed from, while it is cut short)."""
        if self.nested:
            return
        reports, points = [self.outdir.report_path], {}
        if resume_point is not None:
            points[str(self.outdir.report_path)] = resume_point
            if self.resume.earlier is not None:
                reports += self.outdir.earlier_reports
                points.update(self.resume.earlier.points)
        problem = self.outdir.remember(reports, points)
        if problem:
            self.log.warning(problem)

    def _drop_a_repeated_report(self):
        """When this run found only what the one before it saved, which searched the
        whole dump, its report would be that one's again: it goes, and so does its
        contact sheet (a second identical run leaves nothing new)."""
        if self.recorder.bytes_written or self.recorder.failed \
                or not self.resume.nothing_new(self.outdir.report_path):
            return
        self.outdir.report_path = Path(self.resume.earlier.path)
        self.recorder.discard_sheet()

    def _resume_point(self, stopped_at):
        """(offset, counter) where a run cut short is resumed: its first file whose
        row is not final (not written, waiting for the end of the scan, or with
        files still to be found inside it), and the number names had reached there.
        Every row before it is the one a run never stopped writes."""
        at = min([stopped_at] + self.unfinished + [
            found.carved.offset for found in itertools.chain(self.pending, self.deferred,
                                                             self.cut_movies)])
        for offset, end in sorted(self.reach, reverse=True):
            if offset < at < end:
                at = offset
        index = bisect.bisect_left(self.starts, at)
        return at, self.counters[index] if index < len(self.counters) else self.outdir.counter

    def _reached(self):
        """Where the scan stopped: its position, or the first file not written whole."""
        unwritten = [found.carved.offset for found in self.pending
                     if not self.writer.done(found)]
        return min([self.pos] + unwritten)

    def _disk_full(self):
        reached = self._reached()
        waiting = sum(1 for found in self.pending if found.carved.offset >= reached)
        return ("the output disk is full: the scan stopped at offset {:,d} of {:,d} B with "
                "{} file(s) found but not written (see {}). Free some space, or use "
                "another disk, and run again".format(reached, self.dump.size, max(waiting, 1),
                                                     self.outdir.report_path))

    def scan(self):
        """Try every candidate in offset order, inside carved files too (see Found)."""
        sieving = self.folders.sieving
        worker = _scan_and_sieve_region if sieving else None
        options = self.folders.scan_options(self.options)
        for stop, candidates in self.dump.scan(options, worker, start=self.resume.at):

            if sieving:
                candidates, (sectors, sets) = candidates
                self.folders.sieved(sectors, sets)
            for offset, name, carved, why_not in candidates:
                self.stop.check()
                self._advance(offset)
                if self.embedded(offset, carved):
                    continue
                self.log.debug("found %s at offset %d" % (name, offset))
                if why_not:
                    self.log.debug("not a file: %s" % why_not)
                elif carved is not None:
                    for box in carved.boxes:
                        self.log.debug("atom name = %r, size = %d" % (box.name, box.size))
                    self.save(carved)
            self.stop.check()
            self._advance(stop)
        self._write_tail()

    def _advance(self, pos):
        self.pos = pos
        self.settle(pos)
        self.open = [found for found in self.open if found.carved.end > pos]
        if self.log.show_progress:              # per candidate: only count when shown
            self.log.progress(pos, self.dump.size,
                              sum(self.recorder.by_status.values()) + len(self.pending))

    def embedded(self, pos, carved=None):
        """True when pos lies in a part of a found file that belongs to it (a preview).
        A broken file's word for its parts may be wrong: a whole file (carved) that
        begins in one and runs past its end is not its part, but written over it."""
        for found in self.open:
            end = found.embeds(pos)
            if end and not (carved is not None and carved.status == COMPLETE
                            and found.carved.status != COMPLETE and carved.end > end):
                return True
        return False

    def save(self, carved):
        """Name carved, claim its name in OUT and hand it to the writer (the tail
        waits for the next file to say where it ends)."""
        fs = self.folders.file_system()
        whole = fs.whole_size(carved.offset, carved.size) \
            if carved.status == COMPLETE and not carved.pieces else None
        if whole is not None and carved.offset + whole <= self.dump.size:
            carved = carved._replace(size=whole, detail="; ".join(filter(None, [
                carved.detail, "its last %d B, past the end of its structure, are in its "
                "last cluster, as its entry's size says" % (whole - carved.size)])))
        naming, why = fs.naming(carved.offset, carved.size, carved.meta.datetime)
        names = self.outdir.names_for(carved, naming)
        self.counters.append(self.outdir.counter)
        earlier = self.resume.saved_at(carved)
        if earlier is not None:
            found = Found(self.outdir.reclaim(names, name_in(earlier)), carved, naming, why)
            found.earlier = earlier
        else:
            try:
                found = Found(self.outdir.claim(names), carved, naming, why)
            except OSError as e:            # the output's fault, not one name's: see claim
                raise output_error(e, self.outdir.path) from None
        self.starts.append(carved.offset)
        tail = self.tail
        if tail is not None and tail.carved.offset < carved.offset < tail.carved.end:
            self._cut_tail(carved.offset, found.name)
        outers = [outer for outer in self.open if outer.covers(carved.offset)]
        if outers and not self.outdir.dry_run:
            if carved.size > self.overlap_left:
                found.not_saved = ("it lies inside %s, and the files found inside others "
                                   "already add up to the dump's size" % outers[0].name)
            else:
                self.overlap_left -= carved.size
        for outer in outers:
            at = carved.offset - outer.carved.offset
            outer.holds(found, at)
            found.lies_inside(outer.name, at)
        for before in self.pending:
            if before.lingers and before.follower is None and before.carved.end == carved.offset:
                before.follows(found)
        self.pending.append(found)
        self.open.append(found)
        if carved.status == TRUNCATED and carved.end >= self.dump.size:
            self.tail = found                   # written once it is known where it ends
        elif not found.not_saved:
            self.writer.write(found)

    def _cut_tail(self, pos, name):
        tail, self.tail = self.tail, None
        carved = tail.carved
        # "the dump ends inside mdat" would send the user to image the card again for
        # nothing: the file's end is not missing from the dump, other files are there
        detail = ("runs past the end of the dump, over other files: fragmented or cut; "
                  "saved up to +%d, where %s begins" % (pos - carved.offset, name))
        tail.carved = carved._replace(size=pos - carved.offset, detail=detail)
        self.writer.write(tail)

    def _write_tail(self):
        if self.tail is not None:
            tail, self.tail = self.tail, None
            self.writer.write(tail)
            self.settle(self.pos)

    def settle(self, pos=None, final=False, record=True):
        """Report the found files the scan has passed (all of them when pos is None).

        final: the run is over, maybe cut short; a file whose copy did not finish is
        reported as not saved (its .part file is gone). record=False: the report
        itself cannot be written any more; only the .part files are cleaned up."""
        while self.pending and (pos is None or self.pending[0].reported_after() <= pos):
            found = self.pending[0]
            if found is self.tail and not final:
                return                          # its end is not known yet
            if not record:
                self.pending.popleft()
                self.outdir.release(found.claim)
                continue
            self.writer.wait(found, final)      # a stop leaves it first in line
            if not final and not found.not_saved and self.reassembly.found_through_chain(found):
                self.writer.write_again(found)
            elif found.whole_inside and not found.not_saved and not self.stop.requested \
                    and self.reassembly.found_around(found):
                self.writer.write_again(found)  # (not once stopped: it reads, and
                                                # the run resumed from here does it)
            if not final and self.reassembly.found_may_rejoin(found):
                self.pending.popleft()
                self._defer(found)
                continue
            if not final and self.reassembly.unproven_tail(found) is not None:
                self.pending.popleft()
                self.deferred.append(found)     # complete, unless another file's there
                continue
            if not final and self.by_products.cut_movie(found):
                self.pending.popleft()
                self.cut_movies.append(found)
                found.release(found.whole_inside)
                continue

            status = self._report(found)
            self.pending.popleft()
            self._after_report(found, status, final)
        for waiting in (self.deferred, self.cut_movies):
            while final and waiting and pos is None:
                found = waiting[0]
                if record:
                    self._after_report(found, self._report(found), final)
                else:
                    self.outdir.release(found.claim)
                waiting.popleft()

    def report_cut_movies(self):
        """Report the movies cut before their moov was written, now that every
        complete movie of the card, the references they are rebuilt on, is known."""
        if self.cut_movies and not self.nested:
            self.log.info("Now trying to rebuild %d movie(s) cut before their index was "
                          "written" % len(self.cut_movies))
        while self.cut_movies:
            self.stop.check()
            found = self.cut_movies[0]
            status = self._report(found)
            self.cut_movies.popleft()
            self._after_report(found, status)

    def _after_report(self, found, status, final=False):
        """What a broken file still gives (see ByProducts). Not once a stop is asked
        for (final: the run is being stopped): a run resumed from this one begins at
        this file."""
        pictures, salvage, repair = self.by_products.wanted(found, status)
        if not (pictures or salvage or repair):
            return
        self.unfinished.append(found.carved.offset)
        if final:
            return
        self.stop.check()
        if pictures:
            self.by_products.picture(found, status)
        if salvage:
            self.by_products.salvage(found, status)
        if repair:
            self.by_products.repair(found, status)
        self.unfinished.pop()

    def _defer(self, found):
        """Put a damaged file aside until the whole dump is known: its pieces may lie
        anywhere after it, among files not found yet. The files inside it are
        reported meanwhile, without "lies inside" it: its own row says it holds them."""
        self.deferred.append(found)
        found.release(found.whole_inside)

    def rejoin_deferred(self):
        """Put the deferred files together now that every complete file is known (a
        piece of one cannot lie where another file is): by a proof, in offset order;
        then, while one more file put together tells where its clusters are, from
        the free clusters (Reassembly.filled) again; then by a guess. A complete
        HEIF that waited for its unchecked tail (Reassembly.unproven_tail) is
        damaged when a file put together or guessed has a piece there (and laid over
        the free clusters, a guess). Each is then reported, in offset order."""
        if self.deferred and not self.nested:    # the progress line has said 0:00:00 left
            self.log.info("The search is done; now putting %d file(s) found in pieces back "
                          "together (on a large card, this can take minutes)" % len(
                              self.deferred))
        # {id(found): the file put together}: a found is changed only when it is
        # reported (a stop before leaves it as the scan found it, for the next run)
        joined, whys = {}, {}
        entries = self.reassembly.entry_starts()
        tails = {id(found): self.reassembly.unproven_tail(found) for found in self.deferred
                 if found.verdict()[0] == COMPLETE}
        tails = {key: tail for key, tail in tails.items() if tail is not None}
        waiting = [found for found in self.deferred if id(found) not in tails]
        names = {id(found): found.name for found in self.deferred}

        def known(but, whole_heifs=False):
            """Known: the complete files, those put together, and what the marks of the
            others proved theirs, but but's. A waiting HEIF's up to its tail; whole
            (whole_heifs) where a file is laid over the free clusters: a mark landing
            where that puts it proves them both."""
            return Known(self.taken + [(offset, offset + size) for again in joined.values()
                                       for offset, size in again.pieces]
                         + [(found.carved.offset, found.carved.offset + (
                             found.carved.size if whole_heifs else tails[id(found)]))
                            for found in self.deferred
                            if id(found) in tails and found is not but]
                         + self.reassembly.owned(but.carved.offset), self.starts, entries)

        # in offset order; once more for a file that failed before another was put
        # together after it (a JPEG's rest lies past a movie's last piece)
        tried = {}
        for _ in range(2):
            for found in waiting:
                self.stop.check()
                if id(found) in joined or tried.get(id(found)) == len(joined):
                    continue
                tried[id(found)] = len(joined)
                again, whys[id(found)] = self.reassembly.rejoin(found.carved, known(found))
                if again is not None:
                    joined[id(found)] = again
        more = True
        while more:
            more = False
            for found in waiting:
                self.stop.check()
                again = None if id(found) in joined else self.reassembly.filled(
                    found.carved, known(found, whole_heifs=True))
                if again is not None:
                    joined[id(found)] = again
                    more = True
        guessed = {}
        for found in waiting:
            self.stop.check()
            again = None if id(found) in joined else self.reassembly.guess(
                found.carved, known(found))
            if again is not None:
                guessed[id(found)] = again
        joined.update(guessed)
        while self.deferred:
            self.stop.check()
            found = self.deferred[0]
            if id(found) in tails and self._split_over(found, tails[id(found)], joined,
                                                       names):
                joined[id(found)] = self.reassembly.guess(found.carved, known(found))
                if joined[id(found)] is None:
                    del joined[id(found)]
            if joined.get(id(found)) is not None:
                found.put_together(joined[id(found)])
                self.writer.write_again(found)
            elif whys.get(id(found)):
                found.carved = found.carved._replace(detail="; ".join(filter(None, [
                    found.carved.detail, "not put back together: " + whys[id(found)]])))
            status = self._report(found)
            self.deferred.popleft()
            self._after_report(found, status)

    def _split_over(self, found, tail, joined, names):
        """True when found (a complete HEIF whose bytes from tail on no check reads)
        is damaged: a file put together, or guessed, has a piece there whose marks
        hold (it was split before it). names: {id(found): its name}."""
        carved = found.carved
        first = carved.offset + tail
        last = carved.offset + carved.size
        for key, again in joined.items():
            over = [offset for offset, size in again.pieces
                    if offset < last and offset + size > first]
            if over:
                found.carved = carved._replace(status=DAMAGED, detail="; ".join(filter(
                    None, [carved.detail, "its bytes from +%d on are %s's: it was split"
                           % (max(over[0], first) - carved.offset, names[key])])))
                return True
        return False

    def _report(self, found):
        """Report found (see Placing); what a complete file's bytes and every file's
        reach tell the rest of the run. Its status."""
        self.by_products.plan(found)        # before its row, which says it
        status = self.placing.report(found)
        self.by_products.seen(found, status)
        if status != NOT_SAVED:
            carved = found.carved
            pieces = pieces_of(carved)
            self.reach.append((carved.offset, max([found.first_end] + [
                offset + size for offset, size in pieces])))
            if status == COMPLETE:
                self.taken.extend((offset, offset + size) for offset, size in pieces)
            elif carved.checked and carved.pieces:
                self.taken.extend((offset, offset + size) for offset, size
                                  in clipped(pieces, carved.checked))
        return status


class ByProducts:
    """What a broken file still gives, written beside it: its best whole picture
    (img3.cr3.jpg, never a file of the card's own, which it is not), and a broken
    7z's first packed stream, decoded and carved in turn (img4.7z.salvaged, and its
    .files folder). A full disk stops the run; any other failure here costs the
    by-product alone, and the scan goes on."""

    def __init__(self, dump, outdir, stop, log, options, recorder, resume):
        self.dump = dump
        self.outdir = outdir
        self.stop = stop
        self.log = log
        self.options = options
        self.recorder = recorder
        self.resume = resume
        # the complete movies reported so far, a cut one's references: (offset, size,
        # relpath), and the MovieReference of each once read (None: it cannot be one)
        self.movies = [(int(row["offset"]), int(row["size"]), row["file"])
                       for row in (resume.earlier.carried_files if resume.earlier else [])
                       if row["status"] == COMPLETE and row["type"] in REPAIRABLE_MOVIES]
        # what each movie's index says of its coding (b"": it cannot be a reference),
        # and the first reference of each coding: a card of a thousand movies of a
        # camera gives a few (its modes), so memory stays small and a cut movie is
        # walked once a mode
        self.codings = {}
        self.references = {}

    def references_for(self, ftyp, near):
        """[(MovieReference, its relpath)] of the complete movies reported so far
        whose ftyp is ftyp (bytes), one of each coding (their sample entries and
        picture duration), the nearest before near first (the same recording
        session, likely), then the nearest after it."""
        found = {}
        for offset, size, relpath in sorted(self.movies, key=lambda movie: (
                movie[0] > near, abs(movie[0] - near))):
            if self.dump.read(offset, len(ftyp)) != ftyp:
                continue
            if offset not in self.codings:
                try:
                    reference = movie_reference(self.dump.read, offset, size)
                except ReadError:
                    reference = None
                key = reference_key(reference) if reference is not None else b""
                self.codings[offset] = key
                if key:             # one reference a coding, with every movie's sizes
                    first, name = self.references.setdefault(key, (reference, relpath))
                    if first is not reference:
                        self.references[key] = (first._replace(
                            sizes=first.sizes + reference.sizes,
                            rhythms=first.rhythms + reference.rhythms), name)
            if self.codings[offset]:
                found.setdefault(self.codings[offset], None)
        return [self.references[key] for key in found]

    def seen(self, found, status):
        """Remember found, reported as status, when it is a complete movie."""
        carved = found.carved
        if status == COMPLETE and carved.type in REPAIRABLE_MOVIES and not carved.pieces:
            self.movies.append((carved.offset, carved.size,
                                self.outdir.relpath(status, found.claim.name)))

    @staticmethod
    def cut_movie(found):
        """True for a movie whose mdat is there and moov is not: cut before its
        camera wrote its index (at the end of the recording)."""
        carved = found.carved
        names = {box.name for box in carved.boxes}
        # its mdat as a camera opened it (size 0, or one past the end of the dump): a
        # whole movie's first piece, its mdat over other files, is no cut movie, and
        # another movie's index would not decode it (bench card 15 of 2.1 GB did so)
        return (carved.type in REPAIRABLE_MOVIES and carved.status == TRUNCATED
                and MDAT in names and MOOV not in names)

    def plan(self, found):
        """Find how a movie cut before its index was written is rebuilt (found.repair,
        a RepairPlan), or why it is not (found.repair_note), before its row is written."""
        if not self.cut_movie(found) or self.stop.requested:
            return                      # (stopped: the run resumed from here does it)
        carved = found.carved
        mdat = next(box for box in carved.boxes if box.name == MDAT)
        last = (carved.pieces[0][0] + carved.pieces[0][1]) if carved.pieces else carved.end
        if found.held:
            last = min(last, carved.offset + found.first_held[1])
        try:
            ftyp = self.dump.read(carved.offset, carved.boxes[0].size)
            references = self.references_for(ftyp, carved.offset)
            reference, walk = repair_plan(self.dump.read, ftyp, mdat.body, last,
                                          [reference for reference, _ in references],
                                          table_budget(last - carved.offset))
            if reference is None:
                found.repair_note = "not rebuilt: %s" % walk
                return
            found.repair = repair_movie(reference, walk, carved.offset, mdat.body, last, next(
                relpath for known, relpath in references if known is reference))
        except (FormatError, ReadError, struct.error) as e:
            found.repair_note = "not rebuilt: %s" % e
            return
        found.repair_note = ("a movie cut before its index was written: its pictures "
                             "are rebuilt beside it, in %s/" % STATUS_DIRS[REPAIRED])

    def repair(self, found, status):
        """Write the movie rebuilt from the cut movie found (see plan), in repaired/:
        the index built for its pictures, then their bytes from the dump."""
        plan, container = found.repair, self.outdir.relpath(status, found.claim.name)
        stem, dot, ext = found.claim.name.rpartition(".")
        base = "%s.%s%s%s" % (stem, REPAIRED, dot, ext) if dot else found.claim.name + ".repaired"
        size = len(plan.header) + sum(length for _, length in plan.runs)
        carved = found.carved._replace(offset=plan.runs[0][0], size=size, status=REPAIRED,
                                       boxes=[], embedded=(), pictures=(), pieces=(), sha256=())
        detail = ("the {:,d} pictures ({:.1f} s) of {}, a movie cut before its index was "
                  "written, with an index built on that of {}{}; {}".format(
                      plan.pictures, plan.seconds, container, plan.reference, plan.sound,
                      plan.stop))
        holed = self.recorder.holed(carved._replace(pieces=tuple(plan.runs)), REPAIRED, "")
        if holed[0] != REPAIRED:
            detail += "; " + holed[1]
        if self.outdir.dry_run:
            self.recorder.file(self.outdir.relpath(REPAIRED, base), carved, REPAIRED, detail,
                               said="Would save", seconds=plan.seconds)
            return
        kept = self._kept_repair(found, carved, plan)

        def fill(claim, digest):
            try:
                digest.update(plan.header)
                write_all(claim.fd, plan.header)
                for offset, length in plan.runs:
                    self.dump.copy_to(claim.fd, offset, length, self.stop.check, digest)
                claim.close()
            except BaseException:
                self.outdir.release(claim)
                raise

        written = kept or self._write(itertools.chain([base], (
            numbered(base, n) for n in itertools.count(2))), REPAIRED, base, fill)
        if written is None:
            return
        self._record(written, carved, REPAIRED, detail, kept, seconds=plan.seconds)

    def _kept_repair(self, found, carved, plan):
        """(relpath, sha256) of the earlier run's copy of this rebuilt movie, when it
        is still there and the same bytes; else None."""
        row = self.resume.earlier.saved_at(carved.offset, carved.type) \
            if found.earlier is not None and self.resume.earlier else None
        if (row is None or row["status"] != REPAIRED or int(row["size"]) != carved.size
                or not self.resume.copy_is_there(row)):
            return None
        digest = hashlib.sha256(plan.header)
        try:
            self.dump.digest(plan.runs, self.stop.check, digest)
        except ReadError:
            return None
        if digest.hexdigest() != row["sha256"]:
            return None
        self.recorder.kept += 1
        return self.outdir.move(row["file"], REPAIRED, name_in(row)), row["sha256"]

    def wanted(self, found, status):
        """(a picture to take out, a 7z to salvage, a cut movie to rebuild) of found,
        reported as status."""
        broken = status not in (COMPLETE, NOT_SAVED)
        pictures = broken and bool(found.carved.pictures)
        salvage = broken and found.carved.type == "7z" and not self.outdir.dry_run
        return pictures, salvage, broken and found.repair is not None

    def picture(self, found, status):
        """Write the best whole picture inside the broken file found beside it."""
        picture = found.carved.pictures[0]
        container = self.outdir.relpath(status, found.claim.name)
        carved = Carved(picture.offset, picture.size, "jpg", "jpg", picture.status,
                        picture.detail, [], found.carved.meta)
        verdict, detail = self.recorder.holed(carved, picture.status, "; ".join(filter(None, [
            "%s inside %s" % (picture.what, container), picture.detail])))
        base = found.claim.name + ".jpg"
        names = itertools.chain([base], ("%s-%d.jpg" % (found.claim.name, n)
                                         for n in itertools.count(2)))
        if self.outdir.dry_run:
            self.recorder.file(self.outdir.relpath(status, base), carved, verdict, detail,
                               said="Would save")
            return
        kept = self.resume.kept_picture(found, carved, status)
        written = kept or self._write_picture(carved, names, status, base)
        if written is not None:
            self._record(written, carved, verdict, detail, kept)

    def _record(self, written, carved, status, detail, kept, seconds=None):
        """The row of a by-product written (relpath, sha256), or kept from an earlier
        run; a copy of this run's is taken back when its row cannot be written."""
        relpath, sha256 = written
        try:
            self.recorder.file(relpath, carved, status, detail, sha256=sha256,
                               said="Kept, as an earlier run saved it:" if kept else "Saving",
                               wrote=not kept, seconds=seconds)
        except OutputError:
            if not kept:                        # the earlier run's copy stays
                self.outdir.unfinish(relpath)
            raise

    def _write_picture(self, carved, names, status, base):
        """(relpath, sha256) of the picture carved, written under the first free of
        names; None when it could not be (said)."""
        return self._write(names, status, base, lambda claim, digest: self.outdir.save(
            self.dump, carved, claim, self.stop.check, digest))

    def _write(self, names, status, base, fill):
        """(relpath, sha256) of a by-product written by fill(claim, digest) under the
        first free of names, in the folder of status; None when it could not be
        (said). fill releases the claim when it fails."""
        claim = self.outdir.claim(names)
        digest = hashlib.sha256()
        try:
            fill(claim, digest)
            relpath = self.outdir.finish(claim, status)
        except ReadError as e:
            self.recorder.failed += 1
            self.log.error("%s not saved: %s" % (self.outdir.path_of(status, base), e))
            return None
        except OSError as e:
            if e.errno in OUTPUT_GONE:
                raise output_error(e, self.outdir.path) from None
            self.recorder.failed += 1
            self.log.error("cannot write %s: %s" % (self.outdir.path_of(status, base),
                                                    e.strerror or e))
            return None
        return relpath, digest.hexdigest()

    def salvage(self, found, status):
        """Decode a broken 7z's first packed stream, then carve what it holds."""
        carved = found.carved
        start = SEVEN_ZIP_START.unpack(self.dump.read(carved.offset, SEVEN_ZIP_START_SIZE))
        offset = start[4]
        end = min(carved.offset + SEVEN_ZIP_START_SIZE + offset, carved.end) \
            if offset else carved.end
        base = found.claim.name + SALVAGE_SUFFIX
        if found.earlier is not None and os.path.lexists(str(self.outdir.path_of(status, base))):
            self.log.info("%s: salvaged by an earlier run" % self.outdir.path_of(status, base))
            return
        names = itertools.chain([base], ("%s-%d" % (base, n) for n in itertools.count(2)))
        claim = None
        try:
            claim = self.outdir.claim(names)
            method, limited = salvage_7z(self.dump, carved.offset, end, claim.fd,
                                         self.stop.check)
            claim.close()
            if not method or not os.path.getsize(claim.part):
                self.outdir.release(claim)
                self.log.info("%s: nothing in it could be unpacked (only LZMA-packed "
                              "archives are salvaged)" % found.claim.name)
                return
            relpath = self.outdir.finish(claim, status)
        except OSError as e:
            if claim is not None:
                self.outdir.release(claim)
            if e.errno == errno.ENOSPC:
                raise DiskFull() from None
            self.recorder.failed += 1
            self.log.error("cannot write %s: %s" % (self.outdir.path_of(status, base),
                                                    e.strerror or e))
            return
        except BaseException:
            if claim is not None:
                self.outdir.release(claim)
            raise
        target = self.outdir.path / relpath
        self.log.info("Salvaged {}, {:,d} B unpacked from the broken archive ({}): the "
                      "files found in it follow".format(
                          target, os.path.getsize(str(target)), method))
        if limited:
            self.log.warning("%s: unpacking stopped at %d times the archive's size: what it "
                             "holds is garbage, or made to fill the disk" % (
                                 target, SALVAGE_MAX_RATIO))
        self._carve_salvaged(target, status)

    def _carve_salvaged(self, target, status):
        try:
            folder = self.outdir.make_folder(status, target.name + ".files")
            with Dump(str(target), in_process=True) as stream:
                inner = OutputDir(str(folder), self.outdir.name_by)
                try:
                    nested = Recovery(stream, inner, self.options._replace(jobs=1), self.log,
                                      self.stop, nested=True)
                    nested.run()
                finally:
                    inner.close()
        except (InputError, UsageError) as e:
            self.recorder.failed += 1
            self.log.error("cannot carve %s: %s" % (target, e))
            return
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise DiskFull() from None
            self.recorder.failed += 1
            self.log.error("cannot carve %s: %s" % (target, e.strerror or e))
            return
        self.recorder.failed += nested.recorder.failed
        if self.stop.requested:
            raise Interrupted()
        if nested.stopped_by:                   # it could write no more: neither can we
            raise DiskFull()


# 26. Command line ---------------------------------------------------------------------
# The options (the upstream tool's, and ours); the module docstring is their manual.

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


TYPE_ALIASES = dict({t: t for t in ALL_TYPES}, heic="heif", hif="heif", avif="heif",
                    qt="mov", m4v="mp4", m4a="mp4", jpeg="jpg", tiff="tif", m2ts="mts",
                    **{"3g2": "3gp"})


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
    return build_parser().parse_args(argv)


def build_parser():
    """The options, and their --help: the one place they are described."""
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
    p.add_argument("--align", type=_positive_int_arg, default=SECTOR_SIZE, metavar="N",
                   help="look for JPEG, RIFF, TIFF, CRW and 7z files at multiples of N "
                        "bytes (default %(default)s, a sector; 1 searches every byte; "
                        "ISO-BMFF files are always searched at every byte)")
    p.add_argument("--name-by", choices=("number", "date", "original"), default="number",
                   help="name files img1.cr3, img2.mp4, ... (number, the default), by "
                        "date and camera: 2022-01-15_08-30-12_EOS-R6.cr3 (date), or as "
                        "the card's folders still name them: DCIM/100CANON/IMG_1234.CR3 "
                        "(original; a file they do not name keeps imgN)")
    p.add_argument("--careful-read", action="store_true",
                   help="read the input with pread, a block at a time, and take a sector "
                        "that cannot be read as zeros, and go on (always so for a block "
                        "device); the files over such sectors are damaged")
    p.add_argument("--mapfile", metavar="FILE",
                   help="the GNU ddrescue mapfile of the image: a file with bytes it "
                        "never read is damaged, and its row says which")
    p.add_argument("--dry-run", action="store_true",
                   help="scan and write the report only: no recovered files")
    p.add_argument("--restart", action="store_true",
                   help="do not go on from the last run into the same DIR: search the "
                        "whole dump and save every file again, under new names")
    p.add_argument("--no-decode", action="store_true",
                   help="do not decode JPEG data: faster on a card of JPEGs, "
                        "but a JPEG whose first piece runs into another JPEG's tail is "
                        "then called complete")
    p.add_argument("--no-html", action="store_true",
                   help="do not write index.html, the contact sheet of what came back")
    p.add_argument("--dfxml", metavar="FILE",
                   help="also write a DFXML report: one fileobject per file, with its "
                        "byte run and sha256")
    p.add_argument("-j", "--jobs", type=_positive_int_arg, default=os.cpu_count() or 1,
                   metavar="N", help="processes that search the dump (default: one per "
                                     "CPU, %(default)s here); the output does not depend on it")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress line (it is only shown on a terminal anyway)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print every candidate and every box with its size")
    p.add_argument("--version", action="version", version="%(prog)s " + __version__)
    return p



# 27. Main -----------------------------------------------------------------------------
# The run's set-up: the output against the input, the log file; _main.

# Writing onto the card that is being read destroys what is left on it.

def _existing_ancestor(path):
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _whole_disk(device):
    """The device number of the disk a partition belongs to (Linux sysfs), or device."""
    sysfs = "/sys/dev/block/%d:%d" % (os.major(device), os.minor(device))
    try:
        if os.path.exists(sysfs + "/partition"):
            with open(sysfs + "/../dev") as f:
                major, minor = f.read().split(":")
            return os.makedev(int(major), int(minor))
    except (OSError, ValueError):
        pass
    return device


def _writers_of(st):
    """The processes (pid, name) that hold the file of st open for writing (Linux)."""
    writers = []
    try:
        pids = [pid for pid in os.listdir("/proc") if pid.isdigit()]
    except OSError:
        return writers
    for pid in pids:
        if int(pid) == os.getpid():
            continue
        try:
            fds = os.listdir("/proc/%s/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.stat("/proc/%s/fd/%s" % (pid, fd))
                if (target.st_ino, target.st_dev) != (st.st_ino, st.st_dev):
                    continue
                with open("/proc/%s/fdinfo/%s" % (pid, fd)) as f:
                    flags = int(re.search(r"flags:\s*(\d+)", f.read()).group(1), 8)
                if flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR):
                    with open("/proc/%s/comm" % pid) as f:
                        writers.append((int(pid), f.read().strip()))
                    break
            except (OSError, AttributeError, ValueError):
                continue
    return writers


def writes_onto_input(dump, outdir):
    """Why writing into outdir would change the dump being read, or ""."""
    out_device = os.stat(str(_existing_ancestor(outdir))).st_dev
    if stat.S_ISBLK(dump.stat.st_mode):
        if dump.stat.st_rdev in (out_device, _whole_disk(out_device)):
            return ("%s is on a file system of %s, the device being recovered: writing "
                    "there would overwrite the very files to recover. Use another disk "
                    "for --outdir" % (outdir, dump.path))
    elif dump.stat.st_dev == out_device:
        writers = _writers_of(dump.stat)
        if writers:
            return ("%s is still being written by %s, and %s is on the same file system: "
                    "wait for the image to be finished (or write elsewhere)" % (
                        dump.path, ", ".join("%s (pid %d)" % (name, pid)
                                             for pid, name in writers), outdir))
    return ""


def earlier_run(outdir, dump, log):
    """The EarlierRun of the last run into outdir, if it can be resumed; what is
    done with it is said."""
    if outdir.unrecorded:
        log.warning("%s holds reports, but no %s names them (an older recovercr3's, or "
                    "not recovercr3's): this run does not go on from them, and saves "
                    "every file anew" % (outdir.path, STATE_NAME))
    if not outdir.earlier_reports:
        return None
    path = outdir.earlier_reports[0]
    try:
        earlier = EarlierRun.read(outdir.earlier_reports, dump.size, outdir.earlier_points)
    except ValueError as e:
        log.warning("%s: %s, so every file found is saved anew (--restart does so "
                    "without this warning)" % (path, e))
        return None
    if earlier.end is None:
        log.info("%s has no last row: the run that wrote it was killed (a power cut?). "
                 "The dump is searched again from the start; the files it saved are kept"
                 % path)
    elif earlier.end["status"] == SCAN_INTERRUPTED:
        log.info("{}: the last run stopped at offset {:,d}; going on from offset {:,d} "
                 "(--restart starts over)".format(path, int(earlier.end["offset"]),
                                                  earlier.resume_at))
    else:
        log.info("%s: the last run searched this dump whole; the files it saved are kept, "
                 "not written again (--restart saves them all anew)" % path)
    return earlier


LOG_NAME = "recovercr3.log"


def platform_paths():
    """What this system gave of the calls that differ between systems (-v says)."""
    import multiprocessing
    return [
        "scan processes: %s" % ("forked" if multiprocessing.get_start_method() == "fork"
                                else "spawned"),
        "reads at an offset: %s" % ("pread" if hasattr(os, "pread") else
                                    "seek and read, under a lock"),
        "copies: %s" % ("sendfile, where the system takes it" if hasattr(os, "sendfile")
                        else "read and written (no sendfile)"),
        "report lock: %s" % ("flock" if fcntl is not None else "msvcrt.locking"
                             if msvcrt is not None else "none: a run in progress is not "
                             "told from a killed one"),
        "stop signals: %s" % ", ".join(signal.Signals(signum).name for signum in STOP_SIGNALS),
        "path limit: %s" % ("the file system's (pathconf)" if hasattr(os, "pathconf")
                            else "%d characters" % DEFAULT_PATH_MAX)]


def keep_log(log, outdir, command, dump, cleanup, decoder):
    """Append this run's log lines to recovercr3.log in the output directory, between
    a header (version, command line, input and its size, start time, which decoder
    checks JPEG data) and a footer (end time, exit status): a case file keeps what
    each run said. Never a symlink; a log that cannot be opened costs a warning, not
    the run."""
    path = outdir.path / LOG_NAME
    try:
        fd = open_here(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, "not a regular file")
    except OSError as e:
        log.warning("cannot keep the log in %s: %s" % (path, e.strerror or e))
        log.keep_in(None, "")
        return
    started = time.monotonic()
    log.keep_in(fd, "=== recovercr3 %s, started %s\n=== command: %s\n=== input: %s, %s B\n"
                "=== %s\n" % (__version__, utc_now(), command, dump.path,
                              "{:,d}".format(dump.size), decoder))

    def footer():
        code = log.exit_code
        log.close_case_file("=== ended %s after %.1f s%s\n\n" % (
            utc_now(), time.monotonic() - started,
            ", exit status %d" % code if code is not None else ", stopped by an error"))
    cleanup.callback(footer)


def _main(argv=None):
    try:
        with StopRequest() as stop:
            return _run(argv, stop)
    except KeyboardInterrupt:                   # a second stop before the scan began
        Log(sys.stderr).warning("Interrupted before the scan began")
        return EXIT_INTERRUPTED


def give_back_heap():
    """Hand the heap that compiling this script left free back to the system (glibc
    keeps it, some 20 MB): every scan process forked later starts that much smaller."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL(None).malloc_trim(0)
        except (ImportError, OSError, AttributeError):
            pass


def _run(argv, stop):
    give_back_heap()
    args = parse_args(argv)
    log = Log(sys.stderr, args.verbose, progress=sys.stderr.isatty() and not args.quiet)
    cpus = os.cpu_count() or 1
    if args.jobs > cpus:
        log.info("--jobs %d: this machine has %d CPU(s), so %d scan processes" % (
            args.jobs, cpus, cpus))
        args.jobs = cpus
    if args.dfxml is not None and not args.dfxml.strip():
        log.error("--dfxml needs a file name")
        return EXIT_USAGE
    try:
        dump = Dump(args.input, careful=args.careful_read)
    except InputError as e:
        log.error(str(e))
        return EXIT_USAGE
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(dump)
        try:
            stop.check()
            holes = read_mapfile(args.mapfile, dump.size) if args.mapfile else Holes()
            log.info("Processing %s" % args.input)
            if dump.careful:
                log.info("Reading %s carefully%s: a sector that cannot be read is zeros, "
                         "and the files over it are damaged" % (
                             args.input, "" if args.careful_read else " (a block device)"))
            if args.mapfile:
                log.info("{}: {:,d} B in {:,d} area(s) were never read by ddrescue "
                         "({:.2%} of the image)".format(args.mapfile, holes.total(),
                                                         len(holes.ranges),
                                                         holes.total() / dump.size))
            reason = writes_onto_input(dump, args.outdir)
            if reason:
                raise UsageError(reason)
            dfxml = None
            words = ["recovercr3"] + list(sys.argv[1:] if argv is None else argv)
            command = " ".join(shlex.quote(str(word)) for word in words)
            if args.dfxml:
                try:
                    dfxml = Dfxml(args.dfxml, args.input, command)
                except FileExistsError:
                    raise UsageError("%s exists: recovercr3 does not overwrite files"
                                     % args.dfxml) from None
                except OSError as e:
                    log.error("cannot write %s: %s" % (args.dfxml, e.strerror or e))
                    return EXIT_ERROR
                cleanup.callback(dfxml.close)
            try:
                outdir = OutputDir(args.outdir, args.name_by, args.dry_run)
            except (UsageError, OSError):
                if dfxml is not None:           # it was made for this run alone
                    with contextlib.suppress(OSError):
                        os.unlink(args.dfxml)
                raise
            cleanup.callback(outdir.close)
            decoder = (TURBOJPEG.describe() if not args.no_decode
                       else "JPEG data is not decoded (--no-decode)")
            log.debug(decoder)
            for line in platform_paths():
                log.debug(line)
            if args.dry_run:                        # a dry run writes the report alone
                log.keep_in(None, "")
            else:
                keep_log(log, outdir, command, dump, cleanup, decoder)
            options = Options(stop_rule(args), args.types, args.align, args.jobs,
                              explain=args.verbose, decode=not args.no_decode)
            stop.check()
            sheet = None
            if not args.no_html:
                sheet = ContactSheet(outdir.path, args.input, command)
                cleanup.callback(sheet.discard)
            recorder = Recorder(dump, outdir, log, dfxml, sheet, holes,
                                "were never read by ddrescue" if holes else "")
            earlier = None if args.restart or args.dry_run else earlier_run(outdir, dump, log)
            if sheet is not None:
                sheet.shows_earlier_files = earlier is not None
            # until this run ends whole, the next resumes from it and from those it
            # resumes: what they saved past where it stops is in their reports
            problem = outdir.remember([outdir.report_path] + (
                outdir.earlier_reports if earlier is not None else []),
                earlier.points if earlier is not None else None)
            if problem:
                log.warning(problem)
            code = Recovery(dump, outdir, options, log, stop, recorder, earlier).run()
            log.exit_code = code
            return code
        except UsageError as e:
            log.error(str(e))
            return EXIT_USAGE
        except OSError as e:
            log.error("cannot write to %s: %s" % (args.outdir, e.strerror or e))
            return EXIT_ERROR
        except Interrupted:
            log.warning("Interrupted before the scan began")
            return stop.exit_code()


if __name__ == "__main__":
    sys.exit(_main())
