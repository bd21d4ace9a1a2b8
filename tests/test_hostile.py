"""Hostile dumps (tests/hostile.py): tables that declare far more than they hold.

Each runs as a user would run it: it must finish (a generous timeout stands for
"never a hang"; speed is bench/hostile.py's business, not a test's), exit 0 with no
traceback, keep the largest process under a fixed memory cap, and write no more than
twice the dump (a 7z salvage: 64 times its packed stream, the cap, on top).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import hostile
from conftest import CLI_PYTHON, SCRIPT

PEAK_RSS_CAP_MB = 150
MEASURE = """
import json, resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=120)
use = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps([p.returncode, p.stderr, use.ru_maxrss]))
"""
SIZES_MB = {"TIFF of 10M strips": 8, "stsz of 2^24 entries": 8, "TIFF SubIFDs of millions": 2,
            "8-byte free boxes after mdat": 2, "moof/mdat pairs after mdat": 2,
            "RIFF of empty JUNK chunks": 2, "a JPEG start in every sector": 4}


def written(out):
    """Bytes of the carved files (the contact sheet's are bounded on their own; the
    log's and the report's grow with the number of files, not their sizes)."""
    return sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file()
               and not p.name.startswith(("recovercr3", "index", ".recovercr3")))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB: Linux")
@pytest.mark.parametrize("name", list(hostile.CASES))
def test_hostile_dump_is_bounded(tmp_path, name):
    dump = tmp_path / "dump.img"
    dump.write_bytes(hostile.CASES[name](SIZES_MB.get(name, 1)))
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-c", MEASURE, CLI_PYTHON, str(SCRIPT), "-q",
                        "-i", str(dump), "-o", str(out)], capture_output=True, text=True,
                       timeout=300, check=True)
    rc, err, peak_kib = json.loads(p.stdout)
    assert rc == 0 and "Traceback" not in err, err
    assert peak_kib / 1024 < PEAK_RSS_CAP_MB
    size = dump.stat().st_size
    bound = 2 * size + (64 * size if "7z" in name else 0)
    assert written(out) <= bound
    assert not list(out.rglob("*.part"))
