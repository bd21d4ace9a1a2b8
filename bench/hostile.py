#!/usr/bin/env python3
"""Time recovercr3 on every hostile dump of tests/hostile.py.

    python3 bench/hostile.py [--mb-scale 1] [--timeout 120] [CASE ...]

For each case: the dump's size, the run's wall and CPU time (the main process and
its scan processes), MB/s per core (size / CPU seconds), peak memory of the largest
process, bytes written against the dump's size, and the exit status. A run past the
timeout is stopped and shown as such. No assertions: this is a measuring instrument.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tests"))

import hostile  # noqa: E402


def tree_size(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


MEASURE = """
import json, resource, subprocess, sys
proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
try:
    _, err = proc.communicate(timeout=float(sys.argv[1]))
    rc = proc.returncode
except subprocess.TimeoutExpired:
    import os, signal
    os.killpg(0, signal.SIGKILL)        # the run and its scan processes; this one too
use = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps([rc, use.ru_utime + use.ru_stime, use.ru_maxrss, "Traceback" in err.decode()]))
"""


def run_case(name, build, scale, timeout, work, script):
    """One run in a wrapper process of its own, so that CPU time and peak memory are
    this run's alone (scan processes included)."""
    dump = Path(work) / "dump.img"
    out = Path(work) / "out"
    shutil.rmtree(out, ignore_errors=True)
    default_mb = build.__defaults__[0]
    dump.write_bytes(build(max(1, int(default_mb * scale))))
    size = dump.stat().st_size
    started = time.monotonic()
    p = subprocess.run([sys.executable, "-c", MEASURE, str(timeout), sys.executable,
                        str(script), "-q", "-i", str(dump), "-o", str(out)],
                       capture_output=True, text=True, start_new_session=True)
    wall = time.monotonic() - started
    if p.returncode or not p.stdout.strip():
        rc, cpu, rss_kib, traceback = "timeout", float("nan"), 0, False
    else:
        rc, cpu, rss_kib, traceback = json.loads(p.stdout)
    written = tree_size(out) if out.exists() else 0
    return (name, size, wall, cpu, size / max(cpu, 1e-6) / 1e6, rss_kib / 1024,
            written / size, rc, traceback)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb-scale", type=float, default=1.0,
                   help="multiply each case's default size by this")
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--script", default=str(PROJECT / "recovercr3.py"),
                   help="the recovercr3.py to time (an older version, for before/after)")
    p.add_argument("cases", nargs="*", help="names (substrings) of the cases to run")
    args = p.parse_args()
    print("| case | MB | wall s | CPU s | MB/s per core | peak RSS MB | out/in | exit |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        for name, build in hostile.CASES.items():
            if args.cases and not any(c in name for c in args.cases):
                continue
            row = run_case(name, build, args.mb_scale, args.timeout, work, args.script)
            name, size, wall, cpu, rate, rss, ratio, rc, tb = row
            print("| %s | %.1f | %.2f | %.2f | %.0f | %.0f | %.2f | %s%s |" % (
                name, size / 1e6, wall, cpu, rate, rss, ratio, rc, " TRACEBACK" if tb else ""),
                flush=True)


if __name__ == "__main__":
    main()
