"""The sample card a newcomer tries first (tests/sample-card.img, built by
tests/make_sample_card.py from tests/corpus): what the README promises it gives."""

import csv
import hashlib
import re

from conftest import PROJECT, run_cli
from dumpkit import corpus_file, sha256

CARD = PROJECT / "tests" / "sample-card.img"
FIRST_COMMAND = "python3 recovercr3.py --input tests/sample-card.img --outdir recovered"


def test_the_readme_begins_with_the_sample_card():
    readme = (PROJECT / "README.rst").read_text(encoding="utf-8")
    commands = re.findall(r"^    (python3 recovercr3\.py .+)$", readme, re.M)
    assert commands and commands[0] == FIRST_COMMAND


def test_the_sample_card_gives_back_every_kind_of_file(tmp_path):
    out = tmp_path / "recovered"
    p = run_cli("--input", CARD, "--outdir", out, "-q", cwd=str(PROJECT))
    assert p.returncode == 0, p.stderr
    with open(str(out / "recovercr3-report.csv"), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    cut = corpus_file("mei_Canon_EOS_5D.jpg")[:int(rows[4]["size"])]
    assert [(row["file"], row["status"], row["sha256"]) for row in rows[:-1]] == [
        ("img1.jpg", "complete", sha256(corpus_file("mei_Canon_PowerShot_G11.jpg"))),
        # deleted, and written around the 3GP: put back together from its own tables,
        # exact, and damaged: no check reads its last 15,713 bytes
        ("damaged/img2.mov", "damaged", sha256(corpus_file("nomexif_meta.mov"))),
        ("img3.3gp", "complete", sha256(corpus_file("mei_sample.3gp"))),
        ("img4.jpg", "complete", sha256(corpus_file("mei_Nikon_D70.jpg"))),
        ("truncated/img5.jpg", "truncated", hashlib.sha256(cut).hexdigest()),
    ]
    assert rows[1]["detail"] == ("reassembled from 2 pieces around img3.3gp, but its last "
                                 "15713 bytes are not checked: another piece may begin in "
                                 "them")
    assert rows[-1]["status"] == "scan finished"
    for row in rows[:-1]:
        assert sha256((out / row["file"]).read_bytes()) == row["sha256"]
    assert "look first at %s" % (out / "index.html") in p.stderr
    assert (out / "index.html").is_file()


def test_the_readmes_sample_output_is_what_the_sample_card_gives(tmp_path):
    # the README quotes a run on the sample card: that quote may not drift
    readme = (PROJECT / "README.rst").read_text(encoding="utf-8")
    block = re.search(re.escape(FIRST_COMMAND) + r"\n\n::\n\n((?:    [^\n]+\n)+)", readme)
    assert block, "the README shows no output under its first command"
    quoted = [line[4:] for line in block.group(1).splitlines()]
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "sample-card.img").symlink_to(CARD)
    p = run_cli("--input", "tests/sample-card.img", "--outdir", "recovered", cwd=str(tmp_path))
    assert p.returncode == 0
    assert p.stderr.splitlines() == quoted
