"""The scan: one pass for every format, worker processes, the progress line."""

import io
import os
import pty
import subprocess

import pytest

import recovercr3 as r
from conftest import CLI_PYTHON, SCRIPT, recover
from dumpkit import build_dump, corpus_file, sha256


def card_of_many_regions(path, eos_r_cr3):
    """A dump of ~5 scan regions with files of every family, some across region ends."""
    files = [eos_r_cr3, corpus_file("gopro_karma.mp4"), corpus_file("mei_Canon_EOS_5D.jpg"),
             corpus_file("exiv2_flame.avi"), corpus_file("imagemeta_CRW.CRW"),
             corpus_file("exiftool_Nikon.nef"), corpus_file("filetype_fixture.7z"),
             eos_r_cr3[:7000000], corpus_file("exiv2_Canon.HIF")]
    parts = []
    for i, data in enumerate(files):
        parts += [512 * (1 + 3 * i), data, (-len(data)) % 512]
    build_dump(path, r.SCAN_REGION - 4096, *parts, r.SCAN_REGION, seed=5)
    assert os.path.getsize(path) > 4 * r.SCAN_REGION


def test_one_job_and_several_give_the_same_files_report_and_log(tmp_path, eos_r_cr3):
    card_of_many_regions(tmp_path / "card.img", eos_r_cr3)
    one = recover(tmp_path / "card.img", tmp_path / "one", "--jobs", "1")
    three = recover(tmp_path / "card.img", tmp_path / "three", "--jobs", "3")
    assert len(one.rows) >= 9
    assert one.rows == three.rows and one.outputs == three.outputs
    cap = "[INFO] --jobs 3: this machine has %d CPU(s), so %d scan processes\n" % (
        os.cpu_count(), os.cpu_count())
    if os.cpu_count() < 3:                  # --jobs is capped at the CPU count, and says so
        assert three.log.startswith(cap)
        three = three._replace(log=three.log[len(cap):])
    assert one.log.replace(str(tmp_path / "one"), str(tmp_path / "three")) == three.log


def test_candidates_are_found_across_region_ends(tmp_path):
    jpeg = corpus_file("exiftool_Canon.jpg")
    movie = corpus_file("mei_sample.3gp")
    # the movie's ftyp straddles the first region's end; the JPEG starts the second
    build_dump(tmp_path / "card.img", r.SCAN_REGION - 6, movie,
               r.SCAN_REGION - len(movie) + 6, jpeg, 9999)
    for jobs in ("1", "2"):
        out = recover(tmp_path / "card.img", tmp_path / jobs, "--jobs", jobs)
        assert out.shas() == [sha256(movie), sha256(jpeg)]


def test_progress_line_is_replaced_by_log_lines():
    stream = io.StringIO()
    log = r.Log(stream, progress=True)
    log.progress(500_000_000, 1_000_000_000, 3)
    log.info("Saving x")
    text = stream.getvalue()
    assert text.startswith(r.CLEAR_LINE + "0.5 of 1.0 GB (50%), ")
    assert ", 3 file(s), " in text and " left" in text
    assert text.endswith(r.CLEAR_LINE + "[INFO] Saving x\n")


def test_no_progress_line_without_a_terminal(tmp_path):
    build_dump(tmp_path / "card.img", 512, corpus_file("mei_sample.3gp"))
    p = subprocess.run([CLI_PYTHON, str(SCRIPT), "-i", str(tmp_path / "card.img"),
                        "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert "\r" not in p.stderr and "MB/s" not in p.stderr


@pytest.mark.parametrize("quiet", [False, True])
def test_progress_on_a_terminal_unless_quiet(tmp_path, quiet):
    build_dump(tmp_path / "card.img", 512, corpus_file("mei_sample.3gp"), 1 << 20)
    leader, follower = pty.openpty()
    command = [CLI_PYTHON, str(SCRIPT), "-i", str(tmp_path / "card.img"),
               "-o", str(tmp_path / "out")] + (["-q"] if quiet else [])
    p = subprocess.run(command, stderr=follower, stdout=subprocess.DEVNULL, timeout=60)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert p.returncode == 0 and b"Restored 1 file(s)" in output
    assert (b"MB/s" in output) is not quiet
