"""What is not a dump is refused at once, with the reason: one line, exit 2."""

import os
import socket
import tarfile
import zipfile

import pytest

import recovercr3 as r
from conftest import recover, run_cli
from dumpkit import build_dump, corpus_file, sha256


def refused(p, dump):
    assert p.returncode == 2, p.stderr
    assert len(p.stderr.splitlines()) == 1 and "Traceback" not in p.stderr
    return p.stderr.strip()


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "card.img"
    os.mkfifo(str(fifo))
    p = run_cli("-i", fifo, "-o", tmp_path / "out", timeout=30)
    assert refused(p, fifo) == ("[ERROR] %s is a FIFO (named pipe), not a dump: recovercr3 "
                                "reads an image file or a block device" % fifo)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_character_device_is_refused(tmp_path):
    p = run_cli("-i", "/dev/zero", "-o", tmp_path / "out")
    assert refused(p, "/dev/zero") == ("[ERROR] /dev/zero is a character device, not a dump: "
                                       "recovercr3 reads an image file or a block device")


def test_a_socket_is_refused(tmp_path):
    path = tmp_path / "s"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    try:
        p = run_cli("-i", path, "-o", tmp_path / "out")
    finally:
        server.close()
    assert refused(p, path).startswith("[ERROR] %s is a socket, not a dump" % path)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_a_proc_file_is_refused():
    p = run_cli("-i", "/proc/self/status", "-o", "/nonexistent/out")
    assert refused(p, "/proc/self/status") == (
        "[ERROR] /proc/self/status cannot be read at any offset (it is not seekable): "
        "not a dump")


def test_a_file_not_readable_by_the_user(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    dump = tmp_path / "card.img"
    dump.write_bytes(b"x" * 1000)
    dump.chmod(0)
    p = run_cli("-i", dump, "-o", tmp_path / "out")
    assert refused(p, dump) == "[ERROR] cannot read %s: Permission denied" % dump


@pytest.mark.parametrize("head, says", [
    (b"EVF\x09\x0d\x0a\xff\x00\x01\x01\x00", "an EWF (E01) evidence file, not a raw dump: "
                                             "make a raw image first, e.g. ewfexport"),
    (b"KDMV\x01\x00\x00\x00", "a VMDK virtual disk, not a raw dump"),
    (b"conectix\x00\x00\x00\x02", "a dynamic VHD virtual disk"),
    (b"QFI\xfb\x00\x00\x00\x03", "a QCOW2 virtual disk"),
    (b"\xfd7zXZ\x00\x00\x04", "xz-compressed, not a raw dump: make a raw image first, e.g. xz -dk"),
    (b"\x1f\x8b\x08\x00", "gzip-compressed"),
    (b"\x28\xb5\x2f\xfd\x04", "zstd-compressed"),
    (b"BZh91AY&SY", "bzip2-compressed"),
    (b"\x04\x22\x4d\x18\x64\x40", "lz4-compressed, not a raw dump: make a raw image "
                                   "first, e.g. lz4 -d"),
    (bytes(32769) + b"CD001\x01", "an ISO 9660 optical disc image"),
    (b"Rar!\x1a\x07\x01\x00", "a RAR archive, not a raw dump: make a raw image first, e.g. "
                             "unrar x IMAGE.rar (or 7z x IMAGE.rar), then give recovercr3 "
                             "the card image it holds"),
    (b"Rar!\x1a\x07\x00", "a RAR archive"),
    (b"PK\x05\x06" + bytes(18), "an empty ZIP archive"),
], ids=["e01", "vmdk", "vhd", "qcow2", "xz", "gzip", "zstd", "bzip2", "lz4", "iso", "rar5",
        "rar4", "empty-zip"])
def test_an_image_that_is_not_raw_is_named_with_the_way_to_a_raw_one(tmp_path, head, says):
    image = tmp_path / "card.img"
    image.write_bytes(head + bytes(1 << 16))
    out = tmp_path / "out"
    p = run_cli("-i", image, "-o", out)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    (line,) = [line for line in p.stderr.splitlines() if line.startswith("[ERROR]")]
    assert line.startswith("[ERROR] %s is " % image) and says in line
    assert not out.exists()                     # nothing written for it


@pytest.mark.parametrize("path, device", [
    (r"\\.\PhysicalDrive1", True), (r"\\.\E:", True), (r"\\?\E:", True),
    ("//./PhysicalDrive0", True), (r"\\?\Volume{6a1f}", True),
    (r"\\?\C:\cards\card.img", False), (r"C:\card.img", False), ("card.img", False),
    (r"\\server\share\card.img", False)])
def test_a_windows_device_is_told_from_a_file(path, device):
    assert r.windows_device(path) is device


def test_a_windows_device_is_refused_with_the_advice_to_image_it(monkeypatch):
    # Windows reads a device in whole sectors only and cannot map it: image it first.
    monkeypatch.setattr(r.os, "name", "nt")
    with pytest.raises(r.InputError) as refused:
        r.Dump(r"\\.\PhysicalDrive1")
    assert str(refused.value).startswith(
        r"\\.\PhysicalDrive1 is a Windows device: recovercr3 reads an image of it")
    assert "Image the card first" in str(refused.value)


def card_with_a_picture(path):
    """A small raw dump: filler, then a JPEG of the corpus on a sector."""
    build_dump(path, 4096, corpus_file("mei_Canon_EOS_5D.jpg"), 4096)
    return path


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_zipped_card_image_is_named_with_the_command_that_unpacks_it(tmp_path, compression):
    # someone sent the image zipped: a stored ZIP was scanned as a card before, and
    # its header moved the picture off the sector grid, where it was not found
    card = card_with_a_picture(tmp_path / "card.img")
    with zipfile.ZipFile(str(tmp_path / "card.zip"), "w", compression) as z:
        z.write(str(card), "card.img")
    p = run_cli("-i", tmp_path / "card.zip", "-o", tmp_path / "out")
    assert refused(p, tmp_path / "card.zip") == (
        "[ERROR] %s is a ZIP archive, not a raw dump: make a raw image first, e.g. unzip "
        "IMAGE.zip (or 7z x IMAGE.zip), then give recovercr3 the card image it holds"
        % (tmp_path / "card.zip"))
    assert not (tmp_path / "out").exists()


def test_a_tarred_card_image_is_named(tmp_path):
    card = card_with_a_picture(tmp_path / "card.img")
    with tarfile.open(str(tmp_path / "card.tar"), "w") as t:
        t.add(str(card), "card.img")
    p = run_cli("-i", tmp_path / "card.tar", "-o", tmp_path / "out")
    assert refused(p, tmp_path / "card.tar").endswith(
        "is a tar archive, not a raw dump: make a raw image first, e.g. tar -xf IMAGE.tar, "
        "then give recovercr3 the card image it holds")


def test_a_zip_on_a_card_does_not_make_the_card_an_archive(tmp_path):
    # only the input's first bytes name it: a ZIP lying on the card is one of its
    # files, and the picture after it is found
    with zipfile.ZipFile(str(tmp_path / "notes.zip"), "w") as z:
        z.writestr("notes.txt", "x" * 1000)
    archive = (tmp_path / "notes.zip").read_bytes()
    jpeg = corpus_file("mei_Canon_EOS_5D.jpg")
    build_dump(tmp_path / "card.img", 4096, archive, 512 - len(archive) % 512, jpeg, 512)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert out.rc == 0
    assert out.shas() == [sha256(jpeg)]


def test_a_7z_given_alone_is_carved_not_refused(tmp_path):
    # most often an archive cut short, whose streams are salvaged (section 15)
    archive = corpus_file("filetype_fixture.7z")
    (tmp_path / "files.7z").write_bytes(archive)
    out = recover(tmp_path / "files.7z", tmp_path / "out")
    assert out.rc == 0
    assert [(row["type"], row["status"]) for row in out.rows] == [("7z", "complete")]
    assert out.shas() == [sha256(archive)]
