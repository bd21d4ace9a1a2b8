#!/usr/bin/env python3
"""How fast recovercr3 reads a dump, against `cat DUMP > /dev/null` on the same file.

    python3 bench/throughput.py [--sizes 1,2,4] [--workdir /tmp/recovercr3-throughput]

For each size (GiB) it builds a dump once (pseudo-random background with real camera
files spliced in at sector boundaries: 30% of the dump, cycling through the complete
files of ../shared/corpus and two full-size CR3s rebuilt from real headers), reads it
into the page cache, then in one run times `cat`, recovercr3 with default options,
recovercr3 --no-decode, recovercr3 --types cr3, recovercr3 --careful-read (with and
without --no-decode: reading as from a device), an earlier recovercr3.py given with
--before, and the original
recovercr3 when UPSTREAM_RECOVERCR3 names it.
It prints wall time, MB/s, the fraction of cat's speed, peak RSS and files written.
Every output is deleted after its run. Timing belongs here, never in the test suite.
"""

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(PROJECT / "tests"))
import dumpkit  # noqa: E402  (the test kit: corpus files and rebuilt CR3s)

SECTOR = 512
FILES_SHARE = 0.30
BLOCK = 64 << 20


def media():
    """Complete real files (per the corpus MANIFEST) and two rebuilt full-size CR3s."""
    files = []
    manifest = dumpkit.CORPUS / "MANIFEST.tsv"
    if manifest.is_file():
        for line in manifest.read_text().splitlines()[1:]:
            fields = line.split("\t")
            if len(fields) > 5 and fields[5].startswith("yes") and "/" not in fields[0]:
                files.append((dumpkit.CORPUS / fields[0]).read_bytes())
        files += [dumpkit.eos_r_cr3(), dumpkit.eos_m50_cr3()]
    return files


def build(path, size, files, seed=1):
    """size bytes: random blocks, with files spliced in at sector boundaries."""
    rng = random.Random(seed)
    background = hashlib.shake_128(b"throughput-%d" % seed).digest(BLOCK)
    budget = int(size * FILES_SHARE)
    with open(path, "wb") as out:
        written = 0
        while written < size:
            out.write(background[:min(BLOCK, size - written)])
            written += min(BLOCK, size - written)
        pos, index = SECTOR, 0
        while files and budget > 0:
            data = files[index % len(files)]
            pos += rng.randrange(1, 2048) * SECTOR
            if pos + len(data) >= size:
                break
            out.seek(pos)
            out.write(data)
            pos += -(-len(data) // SECTOR) * SECTOR
            budget -= len(data)
            index += 1
    return index


def timed(command):
    """(wall seconds, peak RSS in MB) of one command."""
    start = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status:
        raise SystemExit("failed: %s" % " ".join(command))
    return wall, usage.ru_maxrss / 1024


def main():
    if sys.argv[1:2] == ["--build"]:
        spliced = build(sys.argv[2], int(sys.argv[3]), media())
        print("# built %s: %d files spliced" % (sys.argv[2], spliced))
        return
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="2", help="comma-separated dump sizes in GiB")
    p.add_argument("--workdir", default="/tmp/recovercr3-throughput")
    p.add_argument("--jobs", default="", help="passed to recovercr3 as --jobs")
    p.add_argument("--before", default="", metavar="SCRIPT",
                   help="also time another recovercr3.py (an earlier version) the same way")
    a = p.parse_args()
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    script = str(PROJECT / "recovercr3.py")
    upstream = os.environ.get("UPSTREAM_RECOVERCR3", "")
    jobs = ["--jobs", a.jobs] if a.jobs else []
    print("%-26s %6s %8s %9s %7s %8s %7s" % ("run", "GiB", "wall_s", "MB/s", "x cat",
                                            "rss_MB", "files"))
    for gib in (float(x) for x in a.sizes.split(",")):
        size = int(gib * (1 << 30))
        dump = work / ("dump_%gG.bin" % gib)
        if not dump.is_file() or dump.stat().st_size != size:
            # in a child: a child's peak RSS starts from its parent's, so the parent
            # must not hold the media
            subprocess.run([sys.executable, __file__, "--build", str(dump), str(size)],
                           check=True)
        runs = [("cat", ["sh", "-c", 'cat "$0" > /dev/null', str(dump)]),
                ("recovercr3 (default)", [sys.executable, script, "-q", "-i", str(dump)] + jobs),
                ("recovercr3 --no-decode", [sys.executable, script, "-q", "--no-decode",
                                            "-i", str(dump)] + jobs),
                ("recovercr3 --types cr3", [sys.executable, script, "-q", "--types", "cr3",
                                            "-i", str(dump)] + jobs),
                ("recovercr3 --careful-read", [sys.executable, script, "-q", "--careful-read",
                                               "-i", str(dump)] + jobs),
                ("--careful-read --no-decode", [sys.executable, script, "-q", "--careful-read",
                                                "--no-decode", "-i", str(dump)] + jobs)]
        if a.before:
            runs.append(("before (default)", [sys.executable, a.before, "-q", "-i", str(dump)]
                         + jobs))
        if os.path.isfile(upstream):
            runs.append(("upstream (CR3 only)", [sys.executable, upstream, "--input", str(dump)]))
        subprocess.run(["cat", str(dump)], stdout=subprocess.DEVNULL, check=True)
        cat_wall = min(timed(runs[0][1])[0] for _ in range(3))
        for name, command in runs:
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            if name == "cat":
                wall, rss = cat_wall, 0
            else:
                wall, rss = timed(command + ["--outdir" if "upstream" in name else "-o", str(out)])
            count = sum(1 for f in out.rglob("*") if f.is_file() and not f.name.endswith(".csv"))
            mbs = size / wall / 1e6
            print("%-26s %6g %8.2f %9.0f %7.3f %8.0f %7d" % (
                name, gib, wall, mbs, mbs / (size / cat_wall / 1e6), rss, count))
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
