"""Side by side with the original recovercr3 (WojciechMula/recovercr3).

Upstream is not part of this project: set UPSTREAM_RECOVERCR3 to a copy of its
recovercr3.py to run these tests; they are skipped otherwise.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SCRIPT
from dumpkit import build_dump, sha256

UPSTREAM = os.environ.get("UPSTREAM_RECOVERCR3", "")
pytestmark = pytest.mark.skipif(not os.path.isfile(UPSTREAM),
                                reason="set UPSTREAM_RECOVERCR3 to upstream's recovercr3.py")


def run_in(cwd, script, options):
    """Run a carver from cwd on ../card.img into ./recovered; returns (log, {name: sha})."""
    cwd.mkdir()
    (cwd / "recovered").mkdir()
    p = subprocess.run([sys.executable, str(script), "--input", "../card.img",
                        "--outdir", "recovered"] + options,
                       cwd=cwd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    files = {f.name: sha256(f.read_bytes()) for f in (cwd / "recovered").glob("img*")}
    return p.stderr, files


@pytest.mark.parametrize("options", [[], ["--lastchunk", "mdat"], ["--maxchunks", "5"]])
def test_ordinary_cr3s_give_identical_files_and_log(tmp_path, eos_r_cr3, eos_m50_cr3, options):
    build_dump(tmp_path / "card.img", 1234, eos_r_cr3, 512, eos_m50_cr3, 0, eos_r_cr3, 99)
    theirs = run_in(tmp_path / "upstream", Path(UPSTREAM), options)
    ours = run_in(tmp_path / "ours", SCRIPT, options)
    assert ours == theirs
    assert sorted(ours[1].values()) == sorted([sha256(eos_r_cr3)] * 2 + [sha256(eos_m50_cr3)])
