"""No existing entry is ever replaced or removed: files, symlinks, other runs' .part
files, the input itself; only what a run created is cleaned up. (Runs at the same
time: test_concurrency.)"""

import os

import pytest

import dumpkit
import recovercr3
from conftest import recover
from dumpkit import build_dump, corpus_file, sha256


def snapshot(root):
    """{relative path: (kind, content)} of everything under root, links unfollowed."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                state[rel] = ("link", os.readlink(path))
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    state[rel] = ("file", sha256(f.read()))
    return state


@pytest.fixture
def card(tmp_path):
    return dumpkit.three_file_card(tmp_path / "card.img")


def test_existing_files_links_and_parts_are_left_alone(tmp_path, card):
    dump, files = card
    out = tmp_path / "out"
    (out / "damaged").mkdir(parents=True)
    (out / "img1.3gp").write_bytes(b"the user's own file")
    os.symlink(str(tmp_path / "nowhere"), str(out / "img2.jpg"))          # dangling
    os.symlink(str(dump), str(out / "img3.mp4"))                         # to the input
    (out / "img4.3gp.part").write_bytes(b"another run's half file")
    (out / "damaged" / "img5.jpg").write_bytes(b"taken in a status folder")
    (out / "recovercr3-report.csv").write_text("an old report\n")
    before = snapshot(out)
    result = recover(dump, out)
    assert result.rc == 0
    after = snapshot(out)
    assert {k: v for k, v in after.items() if k in before} == before
    assert [r["file"] for r in result.rows] == ["img2.3gp", "img3.jpg", "img4.mp4"]
    assert result.shas() == [sha256(f) for f in files]
    assert not [name for name in after if name.endswith(".part") and name not in before]


def test_a_second_run_keeps_the_first_runs_files(tmp_path, card):
    # --restart: the second run does not go on from the first (see test_resume.py)
    dump, files = card
    first = recover(dump, tmp_path / "out")
    second = recover(dump, tmp_path / "out", "--restart")
    assert [r["file"] for r in first.rows] == ["img1.3gp", "img2.jpg", "img3.mp4"]
    assert [r["file"] for r in second.rows] == ["img2.3gp", "img3.jpg", "img4.mp4"]
    assert first.shas() == second.shas() == [sha256(f) for f in files]
    assert sorted(p.name for p in (tmp_path / "out").glob("recovercr3-report*")) == [
        "recovercr3-report-2.csv", "recovercr3-report.csv"]


def test_the_input_in_the_output_directory_is_never_touched(tmp_path):
    # The dump sits in the output directory under the name its 7z salvage would take.
    archive = corpus_file("filetype_fixture.7z")
    out = tmp_path / "out"
    out.mkdir()
    (out / "truncated").mkdir()
    dump = out / "truncated" / "img1.7z.salvaged"
    build_dump(dump, 4096, archive[:len(archive) - 40])
    before = sha256(dump.read_bytes())
    result = recover(dump, out)
    assert result.rc == 0
    assert sha256(dump.read_bytes()) == before
    assert result.rows[0]["file"] == "truncated/img1.7z"
    assert (out / "truncated" / "img1.7z.salvaged-2").is_file()


def test_a_file_where_a_status_folder_should_be(tmp_path, eos_r_cr3):
    out = tmp_path / "out"
    out.mkdir()
    (out / "truncated").write_bytes(b"not a folder")
    build_dump(tmp_path / "card.img", 512, eos_r_cr3, 512, corpus_file("mei_sample.3gp"),
               512, eos_r_cr3[:1000000])
    result = recover(tmp_path / "card.img", out)
    assert result.rc == 0 and "Traceback" not in result.log
    assert [r["file"] for r in result.rows] == ["img1.cr3", "img2.3gp", "truncated-2/img3.cr3",
                                               "truncated-2/img3.cr3.jpg"]
    assert (out / "truncated").read_bytes() == b"not a folder"
    assert "[WARNING] %s exists and is not a folder: truncated files go to %s" % (
        out / "truncated", out / "truncated-2") in result.log


def test_a_file_where_the_salvage_folder_should_be(tmp_path):
    archive = corpus_file("filetype_fixture.7z")
    out = tmp_path / "out"
    (out / "damaged").mkdir(parents=True)
    (out / "damaged" / "img1.7z.salvaged.files").write_bytes(b"in the way")
    build_dump(tmp_path / "card.img", 4096, archive[:len(archive) - 40], 4096,
               corpus_file("mei_sample.3gp"), 512)
    result = recover(tmp_path / "card.img", out)
    assert result.rc == 0 and "Traceback" not in result.log
    assert (out / "damaged" / "img1.7z.salvaged.files-2" / "img1.jpg").is_file()
    assert (out / "damaged" / "img1.7z.salvaged.files").read_bytes() == b"in the way"
    assert [r["file"] for r in result.rows] == ["damaged/img1.7z", "img2.3gp"]


def test_a_300_character_camera_model_makes_a_short_name(tmp_path, card, monkeypatch):
    # The scan processes are forked from this one, so they carve with this metadata.
    dump, files = card
    hostile = recovercr3.Meta("Canon EOS R" + "X" * 289, "2019-12-05T13:32:49", "1")
    monkeypatch.setattr(recovercr3, "isobmff_meta", lambda kind, f: hostile)
    result = recover(dump, tmp_path / "out", "--name-by", "date")
    assert result.rc == 0 and "Traceback" not in result.log
    names = [r["file"] for r in result.rows]
    assert names[0] == "2019-12-05_13-32-49_EOS-R" + "X" * 35 + ".3gp"
    assert names[2] == "2019-12-05_13-32-49_EOS-R" + "X" * 35 + ".mp4"
    assert result.shas() == [sha256(f) for f in files]


def test_a_name_taken_while_the_file_is_written_is_not_replaced(tmp_path, card, monkeypatch):
    dump, files = card
    out = tmp_path / "out"
    real_save = recovercr3.OutputDir.save

    def save_then_someone_writes(self, dump_, carved, claim, checkpoint, digest=None):
        real_save(self, dump_, carved, claim, checkpoint, digest)
        (self.path / claim.name).write_bytes(b"put there by something else")

    monkeypatch.setattr(recovercr3.OutputDir, "save", save_then_someone_writes)
    result = recover(dump, out)
    assert result.rc == 0
    assert [r["file"] for r in result.rows] == ["img1-2.3gp", "img2-2.jpg", "img3-2.mp4"]
    assert result.shas() == [sha256(f) for f in files]
    assert (out / "img1.3gp").read_bytes() == b"put there by something else"


def test_no_hard_links_falls_back_to_a_checked_rename(tmp_path, card, monkeypatch):
    dump, files = card

    def no_links(source, target):
        raise OSError(1, "Operation not permitted")        # as on FAT and exFAT

    monkeypatch.setattr(recovercr3.os, "link", no_links)
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(str(tmp_path / "nowhere"), str(out / "img1.3gp"))
    result = recover(dump, out)
    assert [r["file"] for r in result.rows] == ["img2.3gp", "img3.jpg", "img4.mp4"]
    assert result.shas() == [sha256(f) for f in files]
    assert os.readlink(str(out / "img1.3gp")) == str(tmp_path / "nowhere")
