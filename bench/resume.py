#!/usr/bin/env python3
"""What going on after a stop costs, against a run never stopped, on one dump.

    python3 bench/resume.py [--size 4] [--at 0.5] [--workdir /tmp/recovercr3-throughput]
                            [--dump CARD.img] [-- recovercr3 options]

Builds (once) the dump of bench/throughput.py (or takes --dump, e.g. a bench card),
reads it into the page cache, then times, one after the other, with the options
after --:

1. a whole run into a fresh directory;
2. a run into another one, stopped by a real SIGINT once its search has passed --at
   of the dump (a fraction);
3. the same command again into that directory: it goes on;
4. the same command again into the first directory (nothing new: every file kept).

It prints each run's wall time and the bytes it wrote, checks that the report the
run that went on leaves is byte for byte the whole run's, and that no file of the
stopped run was written again. Outputs are deleted at the end.
"""

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE.parent / "recovercr3.py"

# recovercr3, with a SIGINT to itself once its search has passed STOP_AT (its
# progress line would say that much of the dump is read)
STOP_PAST = """
import os, signal, sys
sys.path.insert(0, {project!r})
import recovercr3
real = recovercr3.Recovery._advance
stop_at = [{stop_at}]

def advance(self, pos):
    real(self, pos)
    if pos >= stop_at[0]:
        stop_at[0] = float("inf")
        os.kill(os.getpid(), signal.SIGINT)

recovercr3.Recovery._advance = advance
sys.exit(recovercr3._main(sys.argv[1:]))
"""


def run(command, expect=0):
    """(wall seconds, stderr) of one command, whose exit status must be expect."""
    start = time.monotonic()
    p = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - start
    if p.returncode != expect:
        raise SystemExit("exit status %d, not %d: %s\n%s" % (p.returncode, expect,
                                                            " ".join(command), p.stderr))
    return wall, p.stderr


def written(log):
    """Bytes the run wrote, from its summary (0 when it wrote nothing)."""
    for line in log.splitlines():
        if line.startswith("[INFO] Wrote "):
            return int(line.split()[2].replace(",", ""))
    return 0


def inodes(out):
    """(inode, sha256) of every carved file: a file replaced may get a freed inode."""
    found = set()
    for p in out.rglob("*"):
        if p.is_file() and not p.name.startswith(("recovercr3", "index")):
            with open(p, "rb") as f:
                found.add((p.stat().st_ino, hashlib.file_digest(f, "sha256").hexdigest()
                           if hasattr(hashlib, "file_digest") else
                           hashlib.sha256(f.read()).hexdigest()))
    return found


def newest(out):
    reports = sorted(out.glob("recovercr3-report*.csv"), key=lambda p: (len(p.name), p.name))
    return reports[-1]


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=float, default=4, help="dump size in GiB")
    p.add_argument("--at", type=float, default=0.5, help="where the first run is stopped")
    p.add_argument("--workdir", default="/tmp/recovercr3-throughput")
    p.add_argument("--dump", default="", help="an existing dump to use instead")
    p.add_argument("options", nargs="*", help="passed to every recovercr3 run")
    a = p.parse_args()
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    size = int(a.size * (1 << 30))
    dump = work / ("dump_%gG.bin" % a.size)
    if a.dump:
        dump = Path(a.dump)
        size = dump.stat().st_size
    elif not dump.is_file() or dump.stat().st_size != size:
        subprocess.run([sys.executable, str(HERE / "throughput.py"), "--build", str(dump),
                        str(size)], check=True)
    subprocess.run(["cat", str(dump)], stdout=subprocess.DEVNULL, check=True)
    whole, cut = work / "resume-whole", work / "resume-cut"
    for out in (whole, cut):
        shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, str(SCRIPT), "-q", "-i", str(dump)] + a.options + ["-o"]
    stopped = [sys.executable, "-c", STOP_PAST.format(project=str(SCRIPT.parent),
                                                      stop_at=int(size * a.at)),
               "-q", "-i", str(dump), "-o", str(cut)] + a.options
    rows = []
    wall, log = run(command + [str(whole)])
    rows.append(("whole run", wall, written(log)))
    wall, log = run(stopped, expect=128 + signal.SIGINT)
    rows.append(("stopped at %.0f%%" % (a.at * 100), wall, written(log)))
    before = inodes(cut)
    report = (cut / "recovercr3-report.csv").read_text().splitlines()[-1]
    wall, log = run(command + [str(cut)])
    rows.append(("the same command: goes on", wall, written(log)))
    wall, log = run(command + [str(whole)])
    rows.append(("again, nothing new", wall, written(log)))
    print("%-28s %8s %14s" % ("run", "wall_s", "bytes_written"))
    for name, wall, count in rows:
        print("%-28s %8.1f %14s" % (name, wall, format(count, ",d")))
    same = newest(cut).read_bytes() == (whole / "recovercr3-report.csv").read_bytes()
    kept = len(before & inodes(cut))
    print("# stopped run's last row: %s" % report)
    print("# the report after going on is the whole run's, byte for byte: %s" % same)
    print("# files the stopped run left: %d, still the same files after going on: %d"
          % (len(before), kept))
    print("# stopped + gone on: %.1f s, %.0f%% of the whole run" % (
        rows[1][1] + rows[2][1], 100 * (rows[1][1] + rows[2][1]) / rows[0][1]))
    for out in (whole, cut):
        shutil.rmtree(out, ignore_errors=True)
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
