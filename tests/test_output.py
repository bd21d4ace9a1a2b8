"""What lands in the output directory: names, status folders, dry runs, DFXML."""

import csv
import xml.etree.ElementTree as ET

from conftest import recover, run_cli
from dumpkit import build_dump, corpus_file, sha256

DFXML_NS = {"d": "http://www.forensicswiki.org/wiki/Category:Digital_Forensics_XML"}


def listing(root):
    """The files a run left, but for index.html and recovercr3.log (test_sheet's and
    test_log's business)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
                  and p.name not in ("index.html", "recovercr3.log", ".recovercr3-state"))


def test_name_by_date_uses_date_and_model_and_counts_collisions(tmp_path, eos_r_cr3):
    hif = corpus_file("exiv2_Canon.HIF")
    undated = corpus_file("exiv2_sample_640x360.mov", exact=True)    # its mvhd time is 0
    build_dump(tmp_path / "card.img", 512, eos_r_cr3, 512, eos_r_cr3, 512, hif, 512, undated)
    out = recover(tmp_path / "card.img", tmp_path / "out", "--name-by", "date")
    assert [row["file"] for row in out.rows] == [
        "2019-12-05_13-32-49_EOS-R.cr3", "2019-12-05_13-32-49_EOS-R-2.cr3",
        "2021-02-18_19-54-47_EOS-R5.hif", "img1.mov"]
    assert out.shas() == [sha256(eos_r_cr3)] * 2 + [sha256(hif), sha256(undated)]
    again = recover(tmp_path / "card.img", tmp_path / "out", "--name-by", "date", "--restart")
    assert again.rows[0]["file"] == "2019-12-05_13-32-49_EOS-R-3.cr3"


def test_damaged_and_truncated_files_get_their_own_folders(tmp_path, eos_r_cr3):
    lost = corpus_file("gopro_karma.mp4")[:4115984]             # ftyp + mdat, moov lost
    build_dump(tmp_path / "card.img", 512, eos_r_cr3, 512, lost, 4096, eos_r_cr3[:5000000])
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert listing(tmp_path / "out") == ["damaged/img2.mp4", "img1.cr3",
                                         "recovercr3-report.csv", "truncated/img3.cr3",
                                         "truncated/img3.cr3.jpg"]
    assert [row["status"] for row in out.rows] == ["complete", "damaged", "truncated",
                                                   "complete"]     # its thumbnail
    assert out.shas() == [sha256(eos_r_cr3), sha256(lost), sha256(eos_r_cr3[:5000000]),
                          sha256(eos_r_cr3[12824:29023])]


def test_a_file_found_to_hold_others_moves_to_damaged(tmp_path, eos_r_cr3):
    inner = corpus_file("mei_sample.3gp")
    outer = bytearray(eos_r_cr3)
    outer[10000000:10000000 + len(inner)] = inner                 # inside the raw data
    build_dump(tmp_path / "card.img", 512, bytes(outer), 512)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert listing(tmp_path / "out") == ["damaged/img1.cr3", "img2.3gp",
                                         "recovercr3-report.csv"]
    assert out.rows[0]["detail"] == (
        "holds img2.3gp at +10000000: fragmented, or a file stored inside it")
    assert out.rows[1]["detail"] == ""          # said in img1.cr3's row


def test_dry_run_writes_only_the_report(tmp_path, eos_r_cr3):
    movie = corpus_file("gopro_karma.mp4")
    build_dump(tmp_path / "card.img", 512, eos_r_cr3, 512, movie, 512, eos_r_cr3[:100000])
    p = run_cli("-i", tmp_path / "card.img", "-o", tmp_path / "out", "--dry-run")
    assert p.returncode == 0
    assert listing(tmp_path / "out") == ["recovercr3-report.csv"]
    lines = p.stderr.splitlines()
    assert lines[1] == "[INFO] Would save %s, size 29,378,658 B" % (tmp_path / "out/img1.cr3")
    assert lines[-1] == "[INFO] Dry run: found 4 file(s), wrote none"
    report = (tmp_path / "out" / "recovercr3-report.csv").read_text().splitlines()
    assert [line.split(",")[:5] for line in report[1:]] == [
        ["img1.cr3", "cr3", "512", "29378658", "complete"],
        ["img2.mp4", "mp4", "29379682", "4134647", "complete"],
        ["truncated/img3.cr3", "cr3", "33514841", "100000", "truncated"],
        ["truncated/img3.cr3.jpg", "jpg", "33527665", "16199", "complete"],
        ["", "", "33614841", "33614841", "scan finished"]]


def test_dfxml_lists_every_file_with_its_byte_run_and_hash(tmp_path, eos_r_cr3):
    movie = corpus_file("mei_sample.3gp")
    offsets = build_dump(tmp_path / "card.img", 777, eos_r_cr3, 512, movie, 99)
    out = recover(tmp_path / "card.img", tmp_path / "out", "--dfxml", tmp_path / "carve.xml")
    root = ET.parse(tmp_path / "carve.xml").getroot()
    assert root.find("d:creator/d:program", DFXML_NS).text == "recovercr3"
    assert root.find("d:source/d:image_filename", DFXML_NS).text == str(tmp_path / "card.img")
    objects = [(o.find("d:filename", DFXML_NS).text, int(o.find("d:filesize", DFXML_NS).text),
                o.find("d:byte_runs/d:byte_run", DFXML_NS).attrib,
                o.find("d:hashdigest", DFXML_NS).text)
               for o in root.findall("d:fileobject", DFXML_NS)]
    assert objects == [
        ("img1.cr3", len(eos_r_cr3), {"file_offset": "0", "img_offset": str(offsets[0]),
                                      "len": str(len(eos_r_cr3))}, sha256(eos_r_cr3)),
        ("img2.3gp", len(movie), {"file_offset": "0", "img_offset": str(offsets[1]),
                                  "len": str(len(movie))}, sha256(movie))]
    assert out.shas() == [sha256(eos_r_cr3), sha256(movie)]


def test_dfxml_never_overwrites(tmp_path):
    build_dump(tmp_path / "card.img", 512, corpus_file("mei_sample.3gp"))
    (tmp_path / "carve.xml").write_text("someone's")
    p = run_cli("-i", tmp_path / "card.img", "-o", tmp_path / "out", "--dfxml",
                tmp_path / "carve.xml")
    assert p.returncode == 2
    assert p.stderr.splitlines()[-1] == (
        "[ERROR] %s exists: recovercr3 does not overwrite files" % (tmp_path / "carve.xml"))
    assert (tmp_path / "carve.xml").read_text() == "someone's"


def test_the_csv_and_the_dfxml_name_the_same_files_in_a_dry_run_and_a_real_one(tmp_path,
                                                                                eos_r_cr3):
    # A truncated CR3 gives its thumbnail as a file of its own: a dry run wrote its
    # CSV row but left it out of the DFXML (the dry run's copy of the recording).
    movie = corpus_file("gopro_karma.mp4")
    build_dump(tmp_path / "card.img", 512, eos_r_cr3, 512, movie, 4096, eos_r_cr3[:5000000])
    for mode in (["--dry-run"], []):
        xml, out = tmp_path / ("carve%d.xml" % len(mode)), tmp_path / ("out%d" % len(mode))
        assert run_cli("-i", tmp_path / "card.img", "-o", out, "--dfxml", xml,
                       *mode).returncode == 0
        with open(str(out / "recovercr3-report.csv"), newline="", encoding="utf-8") as f:
            rows = [row for row in csv.DictReader(f) if row["file"]]
        root = ET.parse(str(xml)).getroot()
        named = [(o.find("d:filename", DFXML_NS).text, int(o.find("d:filesize", DFXML_NS).text))
                 for o in root.findall("d:fileobject", DFXML_NS)]
        assert sorted(named) == sorted((row["file"], int(row["size"])) for row in rows)
        assert len(named) == 4, mode            # the CR3s, the MP4 and the thumbnail
