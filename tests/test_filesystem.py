"""What the card's file system still says: directory entries, read from FAT32
images made by mkfs.vfat and mtools (skipped where they are not installed)."""

import os
import shutil
import subprocess
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import recovercr3 as r
from conftest import recover
from dumpkit import CAMERA_FOLDERS, ExfatCard, MtoolsCard, corpus_file, sha256

CARD_MB = 80
MTOOLS = all(shutil.which(tool) for tool in ("mkfs.vfat", "mcopy", "mmd", "mdel", "mdir"))
needs_mtools = pytest.mark.skipif(not MTOOLS, reason="dosfstools or mtools not installed")


def fat32_card(tmp_path, files, deleted=()):
    """A FAT32 image of CARD_MB (1 KiB clusters: FAT32 needs 65525 of them) with
    files {path on the card: bytes},
    then the paths in deleted deleted again."""
    image = tmp_path / "card.img"
    with open(str(image), "wb") as f:
        f.truncate(CARD_MB << 20)
    subprocess.run(["mkfs.vfat", "-F", "32", "-S", "512", "-s", "2", "-n", "EOS_DIGITAL",
                    str(image)], check=True, capture_output=True)
    env = {"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"}
    folders = sorted({"/".join(path.split("/")[:i]) for path in files
                      for i in range(1, path.count("/") + 1)})
    for folder in folders:
        subprocess.run(["mmd", "-i", str(image), "::/" + folder], check=True, env=env)
    for path, data in files.items():
        source = tmp_path / "source.bin"
        source.write_bytes(data)
        subprocess.run(["mcopy", "-i", str(image), str(source), "::/" + path], check=True,
                       env=env)
    for path in deleted:
        subprocess.run(["mdel", "-i", str(image), "::/" + path], check=True, env=env)
    return image.read_bytes()


def directory_entries(image, marker):
    """The entries of the directory cluster that holds the short name marker."""
    at = image.index(marker)
    with_geometry = r.boot_geometry(image[:512])
    first = at - (at - with_geometry.data_start) % with_geometry.cluster
    return r.fat_entries(image, first, first + with_geometry.cluster), with_geometry


@needs_mtools
def test_live_and_deleted_entries_with_their_long_names(tmp_path):
    files = {"DCIM/100CANON/IMG_0001.CR3": b"a" * 10000,
             "DCIM/100CANON/IMG_0002.JPG": b"b" * 5000,
             "DCIM/100CANON/Holiday at the lake.jpg": b"c" * 7000}
    image = fat32_card(tmp_path, files, deleted=["DCIM/100CANON/IMG_0002.JPG"])
    entries, geometry = directory_entries(image, b"IMG_0001CR3")
    by_name = {entry.name: entry for entry in entries}
    assert by_name[".."].attributes & r.FAT_DIRECTORY
    cr3 = by_name["IMG_0001.CR3"]
    assert (cr3.size, cr3.deleted, cr3.short_name) == (10000, False, "IMG_0001.CR3")
    at = geometry.data_start + (cr3.first_cluster - 2) * geometry.cluster
    assert image[at:at + 10000] == files["DCIM/100CANON/IMG_0001.CR3"]
    assert cr3.modified[:2] == "20"
    lake = by_name["Holiday at the lake.jpg"]
    assert (lake.size, lake.short_name[:6]) == (7000, "HOLIDA")
    # the deleted one lost its first character with no long name to give it back
    gone = [entry for entry in entries if entry.deleted]
    assert [(entry.name, entry.short_name, entry.size) for entry in gone] == [("", "", 5000)]


@needs_mtools
def test_a_deleted_long_name_that_checks_out_names_its_entry(tmp_path):
    files = {"DCIM/100CANON/Holiday at the lake.jpg": b"c" * 7000,
             "DCIM/100CANON/IMG_0003.CR3": b"d" * 3000}
    image = fat32_card(tmp_path, files, deleted=["DCIM/100CANON/Holiday at the lake.jpg"])
    entries, _ = directory_entries(image, b"IMG_0003CR3")
    gone = [entry for entry in entries if entry.deleted]
    assert [(entry.name, entry.size) for entry in gone] == [("Holiday at the lake.jpg", 7000)]


@needs_mtools
def test_a_long_name_whose_checksum_fails_is_not_used(tmp_path):
    files = {"DCIM/100CANON/Holiday at the lake.jpg": b"c" * 7000}
    image = bytearray(fat32_card(tmp_path, files))
    at = image.index("Holi".encode("utf-16-le")) - 1        # its first LFN part
    image[at + 13] ^= 0xFF                                   # its checksum
    entries, _ = directory_entries(bytes(image), b"HOLIDA")
    names = [entry.name for entry in entries if not entry.attributes & r.FAT_DIRECTORY]
    assert names and all(name.startswith("HOLIDA") for name in names)


def test_the_lfn_checksum_of_a_short_name():
    # The FAT specification's rotate-and-add over the 11 bytes of the 8.3 name.
    assert r.lfn_checksum(b"IMG_0001CR3") == r.lfn_checksum(bytearray(b"IMG_0001CR3"))
    assert r.lfn_checksum(b"           ") != r.lfn_checksum(b"A          ")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=32 * 40))
def test_random_directory_bytes_never_crash(data):
    for entry in r.fat_entries(data, 0, len(data)):
        assert entry.size >= 0 and entry.first_cluster >= 0


# --- exFAT entry sets, as tests/dumpkit.py writes them to the specification ------------

from dumpkit import exfat_entry_set, noise  # noqa: E402


def test_exfat_entry_sets_live_and_deleted_with_their_names():
    directory = (exfat_entry_set("IMG_0001.CR3", 40, 29378658)
                 + exfat_entry_set("A long holiday name, by the lake.HIF", 9000, 1253392,
                                   contiguous=False)
                 + exfat_entry_set("MVI_0002.MP4", 77, 4134647, deleted=True) + bytes(64))
    entries = r.exfat_entries(directory, 0, len(directory))
    assert [(e.name, e.first_cluster, e.size, e.contiguous, e.deleted) for e in entries] == [
        ("IMG_0001.CR3", 40, 29378658, True, False),
        ("A long holiday name, by the lake.HIF", 9000, 1253392, False, False),
        ("MVI_0002.MP4", 77, 4134647, True, True)]
    assert entries[0].modified == "2024-05-01T12:30:10"


def test_an_exfat_set_whose_checksum_or_name_hash_fails_gives_no_name():
    good = bytearray(exfat_entry_set("IMG_0001.CR3", 40, 1000))
    broken_set = bytearray(good)
    broken_set[20] ^= 1                                 # a byte the set's checksum covers
    broken_name = bytearray(good)
    broken_name[66] ^= 1                                # a character of its name ...
    broken_name[2:4] = r.exfat_checksum(broken_name, skip=(2, 3)).to_bytes(2, "little")
    for data in (broken_set, broken_name):              # ... its set's checksum made good
        assert r.exfat_entries(bytes(data), 0, len(data)) == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=32 * 30), st.integers(0, 29))
def test_random_exfat_directory_bytes_never_crash(data, at):
    data = bytearray(data)
    if len(data) > 32 * at:
        data[32 * at] = 0x85                            # a File entry, most often broken
    for entry in r.exfat_entries(bytes(data), 0, len(data)):
        assert entry.size >= 0


def test_exfat_entries_amid_noise_are_found():
    directory = noise(4096, seed=2) + exfat_entry_set("IMG_0003.CR3", 5, 77) + noise(512)
    names = [entry.name for entry in r.exfat_entries(directory, 0, len(directory))]
    assert "IMG_0003.CR3" in names


@needs_mtools
def test_folders_are_found_by_their_dot_entries_and_tell_the_geometry(tmp_path):
    files = {"DCIM/100CANON/IMG_0001.CR3": b"a" * 3000, "DCIM/101CANON/IMG_0100.CR3": b"b",
             "MISC/NOTE.TXT": b"c"}
    image = fat32_card(tmp_path, files)
    geometry = r.boot_geometry(image[:512])
    folders = r.dot_folders(image, 0, len(image))
    assert len(folders) == 4                            # DCIM, 100CANON, 101CANON, MISC
    for folder in folders:                              # each where its number says
        assert folder.offset == geometry.data_start + (folder.cluster - 2) * geometry.cluster
    by_cluster = {folder.cluster: folder for folder in folders}
    dcim = [folder for folder in folders if folder.parent == 0]
    assert len(dcim) == 2                               # DCIM and MISC lie in the root
    assert sum(folder.parent in by_cluster for folder in folders) == 2  # the CANON ones
    assert r.folders_geometry(folders) == geometry
    # a quick format leaves them where they were, with no boot sector needed
    assert r.folders_geometry(r.dot_folders(bytes(512) + image[512:], 0, len(image))) == \
        geometry


FAT32_ROOT_CLUSTER_AT = 44


def folders_of(image):
    """The card's folders, each one's entries (first cluster only), the root's."""
    geometry = r.boot_geometry(image[:512])
    root = int.from_bytes(image[FAT32_ROOT_CLUSTER_AT:FAT32_ROOT_CLUSTER_AT + 4], "little")
    folders = r.dot_folders(image, 0, len(image))
    entries_of = {}
    for cluster in [root] + [folder.cluster for folder in folders]:
        at = geometry.data_start + (cluster - 2) * geometry.cluster
        entries_of[cluster] = r.fat_entries(image, at, at + geometry.cluster)
    return folders, entries_of, root, geometry


def parents_of(folders):
    return {folder.cluster: folder.parent for folder in folders}


@needs_mtools
def test_folder_paths_from_the_entries_and_after_the_root_is_lost(tmp_path):
    files = {"DCIM/100CANON/IMG_0001.CR3": b"a", "DCIM/101CANON/IMG_0100.CR3": b"b",
             "MISC/NOTE.TXT": b"c"}
    image = fat32_card(tmp_path, files)
    folders, entries_of, root, geometry = folders_of(image)
    paths = r.folder_paths(parents_of(folders), entries_of, root)
    assert sorted(paths.values()) == [("DCIM", True), ("DCIM/100CANON", True),
                                      ("DCIM/101CANON", True), ("MISC", True)]
    # a quick format: the root's entries are gone; the DCF folders are under DCIM still
    root_at = geometry.data_start + (root - 2) * geometry.cluster
    formatted = image[:root_at] + bytes(geometry.cluster) + image[root_at + geometry.cluster:]
    folders, entries_of, root, _ = folders_of(formatted)
    assert sorted(r.folder_paths(parents_of(folders), entries_of, root).values()) == [
        ("DCIM/100CANON", False), ("DCIM/101CANON", False)]       # orphaned


def test_a_folder_loop_gives_no_path():
    # Two folders each the other's parent, as a hostile dump may have them.
    folders = [r.Folder(0, 5, 6), r.Folder(4096, 6, 5)]
    entry = r.DirEntry("A", "A", r.FAT_DIRECTORY, 5, 0, "", False, 0)
    other = entry._replace(name="B", short_name="B", first_cluster=6)
    assert r.folder_paths(parents_of(folders), {6: [entry], 5: [other]}, 2) == {}


def entry(name, cluster, size, deleted=False, when="2024-05-01T12:30:10"):
    return r.DirEntry(name, name, 0x20, cluster, size, when, deleted, 0)


def test_a_carved_file_is_named_only_by_one_entry_that_fits_its_cluster_and_size():
    geometry = r.Geometry(4096, 5251072)
    at = 5251072 + (200 - 2) * 4096                          # cluster 200
    fs = r.FileSystem(geometry=geometry, entries=[
        (entry("IMG_0001.CR3", 200, 5000), "DCIM/100CANON", True),
        (entry("IMG_0002.CR3", 200, 6000, when="2024-05-02T09:00:00"), "DCIM/100CANON",
         True),                                                          # another size
        (entry("IMG_0003.CR3", 0x10064, 7000, when="2024-06-01T08:00:00"), None, False),
        (entry("IMG_0004.CR3", 0x64, 8000, deleted=True), "DCIM/100CANON", True)])
    naming, why = fs.naming(at, 5000)
    assert naming == r.Naming("DCIM/100CANON/IMG_0001.CR3", "entry", "2024-05-01T12:30:10")
    assert fs.naming(at + 512, 5000) == (None, "")          # not where a cluster starts
    assert fs.naming(at, 4999) == (None, "")                # not its size, no time
    high = 5251072 + (0x10064 - 2) * 4096
    naming, _ = fs.naming(high, 7000)
    assert (naming.path, naming.source) == ("IMG_0003.CR3", "orphan directory")  # no folder
    # a deleted FAT32 entry that lost its cluster's high bits: its size and time agree
    naming, _ = fs.naming(high, 8000, "2024-05-01T12:30:10")
    assert (naming.path, naming.source) == ("DCIM/100CANON/IMG_0004.CR3", "deleted entry")
    # ... but a live one has all its bits: cluster 0x64 is not 0x10064
    assert fs.naming(at + 0x10000 * 4096, 5000) == (None, "")
    # two of three must agree: cluster, size, time (when both have one)
    assert fs.naming(at, 4999, "2024-05-01T12:30:09")[0].path.endswith("IMG_0001.CR3")
    assert fs.naming(at, 4999, "2024-05-01T10:30:40")[0] is not None     # UTC+2
    assert fs.naming(at, 4999, "2023-01-07T08:00:00") == (None, "")
    assert fs.naming(at, 5000, "2023-01-07T08:00:00")[0] is not None     # cluster and size
    # the low 16 bits of a cluster do not count: size and time must agree then
    assert fs.naming(high, 8000, "2024-05-01T12:30:10")[0] is not None
    assert fs.naming(high, 8000, "2023-01-07T08:00:00") == (None, "")
    assert fs.naming(high, 8001, "2024-05-01T12:30:10") == (None, "")
    # two entries fit: no name, and the reason
    twice = r.FileSystem(geometry=geometry, entries=fs.entries + [
        (entry("IMG_9999.CR3", 200, 5000), "DCIM/101CANON", True)])
    assert twice.naming(at, 5000) == (None, "2 entries fit it")


def test_times_agree_within_the_write_delay_and_whole_time_zones():
    assert r.times_agree("2024-05-01T12:30:10", "")
    assert r.times_agree("2024-05-01T12:30:10", "2024-05-01T12:29:40")
    assert r.times_agree("2024-05-01T12:30:10", "2024-05-01T07:00:20")     # 5:30 away
    assert not r.times_agree("2024-05-01T12:30:10", "2024-05-01T12:20:10")
    assert not r.times_agree("2024-05-01T12:30:10", "2024-05-03T12:30:10")


def fat_of(image):
    """The first FAT of a FAT32 image, as its boot sector places it."""
    reserved = int.from_bytes(image[14:16], "little")
    fat_sectors = int.from_bytes(image[36:40], "little")
    return image[reserved * 512:(reserved + fat_sectors) * 512]


@needs_mtools
def test_a_fragmented_live_file_is_read_through_its_chain(tmp_path):
    # The card is full but for the hole A left and a little at its end: B, written
    # then, is split between them.
    a, b, c = noise(20000, seed=1), noise(50000, seed=2), noise(8000, seed=3)
    fat32_card(tmp_path, {"DCIM/A.JPG": a, "DCIM/C.JPG": c})
    path = tmp_path / "card.img"
    env = {"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"}
    subprocess.run(["mdel", "-i", str(path), "::/DCIM/A.JPG"], check=True, env=env)
    listing = subprocess.run(["mdir", "-i", str(path), "::/"], check=True, env=env,
                             capture_output=True, text=True).stdout
    free = int("".join(ch for ch in listing.split("bytes free")[0].splitlines()[-1]
                       if ch.isdigit()))                 # "83 217 408 bytes free"
    filler = tmp_path / "filler.bin"
    with open(str(filler), "wb") as f:
        f.truncate(free - 20 * 1024 - 40 * 1024)
    subprocess.run(["mcopy", "-i", str(path), str(filler), "::/FILLER.BIN"], check=True,
                   env=env)
    (tmp_path / "b.bin").write_bytes(b)
    subprocess.run(["mcopy", "-i", str(path), str(tmp_path / "b.bin"), "::/DCIM/B.JPG"],
                   check=True, env=env)
    image = path.read_bytes()
    geometry = r.boot_geometry(image[:512])
    (entry,) = [e for e in directory_entries(image, b"B       JPG")[0] if e.name == "B.JPG"]
    chain = r.fat_chain(fat_of(image), entry.first_cluster,
                        -(-entry.size // geometry.cluster))
    pieces = r.chain_pieces(chain, entry.size, geometry)
    assert len(pieces) >= 2                             # it was split around C
    assert b"".join(image[at:at + n] for at, n in pieces) == b


def test_broken_fat_chains_are_refused():
    def fat(*links):
        table = bytearray(4 * 16)
        for cluster, value in links:
            table[4 * cluster:4 * cluster + 4] = value.to_bytes(4, "little")
        return bytes(table)
    end = 0x0FFFFFFF
    assert r.fat_chain(fat((2, 5), (5, 3), (3, end)), 2, 3) == [2, 5, 3]
    for table, clusters in ((fat((2, 5), (5, 2)), 9),         # a loop
                            (fat((2, 5), (5, 0)), 9),         # a free cluster mid-chain
                            (fat((2, 99)), 9),                # out of the FAT
                            (fat((2, 3), (3, 4), (4, end)), 2)):  # longer than its file
        with pytest.raises(r.FormatError):
            r.fat_chain(table, 2, clusters)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=8, max_size=400), st.integers(0, 120), st.integers(1, 50))
def test_random_fats_never_hang(table, first, clusters):
    try:
        chain = r.fat_chain(table, first, clusters)
    except r.FormatError:
        return
    assert len(chain) <= clusters and len(set(chain)) == len(chain)


# A used card, as a camera leaves it, and what each step of its life leaves to name
# the files: live entries, a deleted one whose long name checks out, a live file
# split around another, then a quick format, then a little more written.
CAMERA_FILES = [
    ("DCIM/100CANON/IMG_0001.JPG", "mei_Canon_EOS_5D.jpg", (2024, 5, 1, 12, 30, 10)),
    ("DCIM/100CANON/IMG_0002.JPG", "mei_Canon_PowerShot_G11.jpg", (2024, 5, 1, 12, 31, 0)),
    ("DCIM/100CANON/MVI_0003.MP4", "gopro_karma.mp4", (2024, 5, 1, 12, 32, 4)),
    ("DCIM/101CANON/Holiday at the lake.jpg", "mei_Nikon_D70.jpg", (2024, 5, 2, 9, 0, 0)),
    ("DCIM/101CANON/IMG_0004.HIF", "exiv2_Canon.HIF", (2024, 5, 2, 9, 1, 0)),
    ("DCIM/101CANON/Sunset over the sea.3gp", "mei_sample.3gp", (2024, 5, 2, 9, 2, 0)),
]
LATER = ("DCIM/100CANON/IMG_0006.JPG", "mei_Canon_EOS_1000D.jpg", (2024, 5, 3, 18, 0, 0))
AFTER_FORMAT = ("DCIM/100CANON/IMG_0100.JPG", "exiftool_Canon.jpg", (2024, 6, 1, 8, 0, 0))


def named_rows(out):
    """{original_name: row} of the report, each row checked: the file written under
    that name holds the bytes the card had under it, and has its time."""
    return {row["original_name"]: row for row in out.rows if row["original_name"]}


def check_names(out, outdir, truth):
    """No file gets a wrong name: every name given is the one its bytes had."""
    for name, row in named_rows(out).items():
        assert sha256((outdir / row["file"]).read_bytes()) == truth[name], name
        when = time.mktime(time.strptime(row["fs_time"], "%Y-%m-%dT%H:%M:%S"))
        assert (outdir / row["file"]).stat().st_mtime == when


@needs_mtools
def test_a_used_card_then_formatted_then_written_gives_each_file_its_own_name(tmp_path):
    card = MtoolsCard(tmp_path / "card.img")
    for folder in ("DCIM", "DCIM/100CANON", "DCIM/101CANON"):
        card.mkdir(folder)
    truth = {}
    for path, source, when in CAMERA_FILES:
        card.copy(path, corpus_file(source), when)
        truth[path] = sha256(corpus_file(source))
    card.delete("DCIM/100CANON/IMG_0002.JPG")           # its hole takes IMG_0006's start
    path, source, when = LATER
    card.copy(path, corpus_file(source), when)
    truth[path] = sha256(corpus_file(source))
    card.delete("DCIM/101CANON/Sunset over the sea.3gp")    # deleted, not overwritten

    out = recover(card.path, tmp_path / "used", "--name-by", "original")
    rows = named_rows(out)
    assert sorted(rows) == sorted(set(truth) - {"DCIM/100CANON/IMG_0002.JPG"})
    assert {name: row["name_source"] for name, row in rows.items()} == {
        "DCIM/100CANON/IMG_0001.JPG": "entry", "DCIM/100CANON/MVI_0003.MP4": "entry",
        "DCIM/100CANON/IMG_0006.JPG": "entry", "DCIM/101CANON/IMG_0004.HIF": "entry",
        "DCIM/101CANON/Holiday at the lake.jpg": "entry",
        "DCIM/101CANON/Sunset over the sea.3gp": "deleted entry"}
    assert all(row["file"] == name for name, row in rows.items())   # written as named
    split = rows["DCIM/100CANON/IMG_0006.JPG"]                        # around MVI_0003
    assert split["detail"].startswith("read through its FAT chain, in 2 pieces")
    assert split["status"] == "complete"
    check_names(out, tmp_path / "used", truth)
    # the default names stay imgN, and the report has the card's names all the same
    plain = recover(card.path, tmp_path / "plain")
    assert all(row["file"].startswith("img") for row in plain.rows)
    assert {row["original_name"] for row in plain.rows} == set(rows)

    card.format()                       # the root is new: the folders are orphans
    out = recover(card.path, tmp_path / "formatted", "--name-by", "original")
    rows = named_rows(out)
    assert sorted(rows) == sorted(set(truth) - {"DCIM/100CANON/IMG_0002.JPG"})
    sunset = rows.pop("DCIM/101CANON/Sunset over the sea.3gp")
    assert sunset["name_source"] == "deleted entry"
    assert {row["name_source"] for row in rows.values()} == {"orphan directory"}
    check_names(out, tmp_path / "formatted", truth)

    card.mkdir("DCIM")                  # the camera's new folders and file take the
    card.mkdir("DCIM/100CANON")         # clusters of the old ones' entries: those names
    path, source, when = AFTER_FORMAT   # are gone, and no file may get one of them
    card.copy(path, corpus_file(source), when)
    truth[path] = sha256(corpus_file(source))
    out = recover(card.path, tmp_path / "after", "--name-by", "original")
    assert {name: row["name_source"] for name, row in named_rows(out).items()} == {
        path: "entry"}
    check_names(out, tmp_path / "after", truth)
    assert sorted(row["file"] for row in out.rows) == [path] + [
        "img%d.%s" % (n, ext) for n, ext in enumerate(["jpg", "mp4", "jpg", "hif", "3gp"], 1)]


needs_mkfs_exfat = pytest.mark.skipif(not shutil.which("mkfs.exfat"),
                                      reason="exfatprogs not installed")


@needs_mkfs_exfat
def test_an_exfat_card_names_its_files_and_still_does_after_a_quick_format(tmp_path):
    card = ExfatCard(tmp_path / "card.img")
    card.mkdir("DCIM")
    card.mkdir("DCIM/100CANON")
    truth = {}
    for path, source, when in [
            ("DCIM/100CANON/IMG_0001.JPG", "mei_Canon_EOS_5D.jpg", (2024, 5, 1, 12, 30, 10)),
            ("DCIM/100CANON/A long name for a film.MP4", "gopro_karma.mp4",
             (2024, 5, 1, 12, 40, 0)),
            ("DCIM/100CANON/IMG_0003.HIF", "exiv2_Canon.HIF", (2024, 5, 1, 12, 41, 0))]:
        card.copy(path, corpus_file(source), when)
        truth[path] = sha256(corpus_file(source))
    card.delete("DCIM/100CANON/IMG_0003.HIF")
    out = recover(card.path, tmp_path / "out", "--name-by", "original")
    assert {name: row["name_source"] for name, row in named_rows(out).items()} == {
        "DCIM/100CANON/IMG_0001.JPG": "entry",
        "DCIM/100CANON/A long name for a film.MP4": "entry",
        "DCIM/100CANON/IMG_0003.HIF": "deleted entry"}
    check_names(out, tmp_path / "out", truth)
    assert "File system: exFAT, 4,096 B clusters" in out.log

    card.format()                       # a new root: DCIM's entry is gone, its folder not
    out = recover(card.path, tmp_path / "formatted", "--name-by", "original")
    assert {name: row["name_source"] for name, row in named_rows(out).items()} == {
        "DCIM/100CANON/IMG_0001.JPG": "orphan directory",
        "DCIM/100CANON/A long name for a film.MP4": "orphan directory",
        "DCIM/100CANON/IMG_0003.HIF": "deleted entry"}
    check_names(out, tmp_path / "formatted", truth)


def fat_entry_bytes(short, attributes, cluster, size, first=None):
    raw = bytearray(32)
    raw[0:11] = short
    if first is not None:
        raw[0] = first
    raw[11] = attributes
    raw[20:22] = (cluster >> 16).to_bytes(2, "little")
    raw[26:28] = (cluster & 0xFFFF).to_bytes(2, "little")
    raw[28:32] = size.to_bytes(4, "little")
    return bytes(raw)


@needs_mtools
def test_hostile_directories_never_crash_and_never_give_a_name(tmp_path):
    card = MtoolsCard(tmp_path / "card.img", folders=CAMERA_FOLDERS)
    jpeg = corpus_file("mei_Canon_PowerShot_G11.jpg")
    card.copy("DCIM/100CANON/IMG_0001.JPG", jpeg)
    image = bytearray(card.image())
    geometry = r.boot_geometry(bytes(image[:512]))
    (entry,) = [e for e in directory_entries(bytes(image), b"IMG_0001JPG")[0]
                if e.name == "IMG_0001.JPG"]
    cluster_at = geometry.data_start + (entry.first_cluster - 2) * geometry.cluster
    # far out in free space: folders that are each other's parent, and one that is its
    # own; entries naming the JPEG's cluster at other sizes, a cluster past the card,
    # a size past the dump, a long name whose checksum fails
    hostile = (fat_entry_bytes(b".          ", 0x10, 70000, 0)
               + fat_entry_bytes(b"..         ", 0x10, 70001, 0)
               + fat_entry_bytes(b"LOOP       ", 0x10, 70001, 0)
               + fat_entry_bytes(b"WRONG   JPG", 0x20, entry.first_cluster, 12345)
               + fat_entry_bytes(b"FAR     JPG", 0x20, 0x0FFFFFF0, len(jpeg))
               + fat_entry_bytes(b"HUGE    JPG", 0x20, 3, 0xFFFFFFF0))
    lfn = bytearray(32)
    lfn[0], lfn[11], lfn[13] = 0x41, 0x0F, 0x00                 # checksum 0: wrong
    lfn[1:11] = "Stolen".ljust(5, "\0")[:5].encode("utf-16-le")
    hostile += bytes(lfn) + fat_entry_bytes(b"IMG_0001JPG", 0x20, entry.first_cluster,
                                            len(jpeg), first=0xE5)
    other = (fat_entry_bytes(b".          ", 0x10, 70001, 0)
             + fat_entry_bytes(b"..         ", 0x10, 70000, 0)
             + fat_entry_bytes(b"LOOP       ", 0x10, 70000, 0))
    for number, block in ((70000, hostile), (70001, other)):
        at = geometry.data_start + (number - 2) * geometry.cluster
        image[at:at + len(block)] = block
    # and the FAT: the JPEG's chain loops back on its first cluster
    fat = int.from_bytes(image[14:16], "little") * 512
    image[fat + 4 * (entry.first_cluster + 1):fat + 4 * (entry.first_cluster + 2)] = \
        entry.first_cluster.to_bytes(4, "little")
    (tmp_path / "hostile.img").write_bytes(bytes(image))
    out = recover(tmp_path / "hostile.img", tmp_path / "out", "--name-by", "original")
    assert out.rc == 0
    rows = [row for row in out.rows if int(row["offset"]) == cluster_at]
    assert len(rows) == 1
    # its own entry names it; the others do not fit, the deleted twin's long name
    # fails its checksum (so it has none), and the looping chain is not followed
    assert rows[0]["original_name"] == "DCIM/100CANON/IMG_0001.JPG"
    assert rows[0]["detail"] == "" and rows[0]["status"] == "complete"
    assert [row["original_name"] for row in out.rows] == ["DCIM/100CANON/IMG_0001.JPG"]
    assert out.shas() == [sha256(jpeg)]


class BytesDump:
    """What FileSystem.read needs of a Dump, over bytes."""

    def __init__(self, data):
        self.data = data
        self.size = len(data)

    def read(self, offset, size):
        return self.data[offset:offset + size]


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.integers(0, 8191), st.integers(0, 40))
def test_mutated_directories_never_crash(patch, at, flips):
    clusters = fat32_image_once()
    data = bytearray(clusters)
    data[at:at + len(patch)] = patch
    for index in range(flips):
        data[(at * 7 + index * 131) % len(data)] ^= 0x5A
    dump = BytesDump(bytes(data))
    volume = r.boot_volume(dump.read(0, 512))
    sectors, sets = r.directory_sieve(dump.data, 0, len(data))
    fs = r.FileSystem.read(dump, volume, sectors, sets)
    for entry, path, reached in fs.entries:
        assert isinstance(entry.name, str) and (path is None or isinstance(path, str))
        at = volume.data_start if volume else 0
        fs.naming(at, entry.size)
        fs.chain(at)


_IMAGE = []


def fat32_image_once():
    """The first 8 KiB of folders of a small FAT32 card, after its boot region: the
    hypothesis test mutates it (built once, by hand, so it needs no mtools)."""
    if not _IMAGE:
        cluster, reserved, fat_sectors = 512, 32, 8
        boot = bytearray(512)
        boot[3:11] = b"MSWIN4.1"
        boot[11:13], boot[13] = (512).to_bytes(2, "little"), 1
        boot[14:16], boot[16] = reserved.to_bytes(2, "little"), 1
        boot[32:36] = (2048).to_bytes(4, "little")
        boot[36:40] = fat_sectors.to_bytes(4, "little")
        boot[44:48] = (2).to_bytes(4, "little")
        boot[82:90], boot[510:512] = b"FAT32   ", b"\x55\xaa"
        fat = bytearray(fat_sectors * 512)
        fat[0:12] = bytes.fromhex("f8ffff0fffffff0fffffff0f")
        for number in (3, 4):
            fat[4 * number:4 * number + 4] = (0x0FFFFFFF).to_bytes(4, "little")
        fat[20:24] = (6).to_bytes(4, "little")           # a file in clusters 5, 6
        fat[24:28] = (0x0FFFFFFF).to_bytes(4, "little")
        root = fat_entry_bytes(b"DCIM       ", 0x10, 3, 0)
        dcim = (fat_entry_bytes(b".          ", 0x10, 3, 0)
                + fat_entry_bytes(b"..         ", 0x10, 0, 0)
                + fat_entry_bytes(b"100CANON   ", 0x10, 4, 0))
        canon = (fat_entry_bytes(b".          ", 0x10, 4, 0)
                 + fat_entry_bytes(b"..         ", 0x10, 3, 0)
                 + fat_entry_bytes(b"IMG_0001JPG", 0x20, 5, 1000))
        image = bytes(boot) + bytes((reserved - 1) * 512) + bytes(fat)
        for block in (root, dcim, canon):
            image += block.ljust(cluster, b"\0")
        _IMAGE.append(image + bytes(8192 - len(image) % 8192))
    return _IMAGE[0]


def test_a_hand_made_card_names_its_file():
    dump = BytesDump(fat32_image_once())
    volume = r.boot_volume(dump.read(0, 512))
    fs = r.FileSystem.read(dump, volume, *r.directory_sieve(dump.data, 0, dump.size))
    at = volume.data_start + 3 * 512
    assert fs.naming(at, 1000)[0] == r.Naming("DCIM/100CANON/IMG_0001.JPG", "entry", "")
    assert fs.chain(at) == ([(at, 1000)], 1000)


def gpt_disk(partition, start_sector=2048):
    """A GPT disk (protective MBR, header, one entry) holding partition at start_sector."""
    mbr = bytearray(512)
    mbr[446 + 4], mbr[446 + 8:446 + 12] = 0xEE, (1).to_bytes(4, "little")
    mbr[446 + 12:446 + 16] = (0xFFFFFFFF).to_bytes(4, "little")
    mbr[510:512] = b"\x55\xaa"
    header = bytearray(512)
    header[0:8] = b"EFI PART"
    header[72:80] = (2).to_bytes(8, "little")
    header[80:84], header[84:88] = (128).to_bytes(4, "little"), (128).to_bytes(4, "little")
    entries = bytearray(128 * 128)
    entries[0:16] = bytes.fromhex("a2a0d0ebe5b9334487c068b6b72699c7")     # basic data
    entries[16:32] = bytes(range(16))
    entries[32:40] = start_sector.to_bytes(8, "little")
    entries[40:48] = (start_sector + len(partition) // 512 - 1).to_bytes(8, "little")
    disk = bytes(mbr) + bytes(header) + bytes(entries)
    return disk + bytes(start_sector * 512 - len(disk)) + partition


def zero_boot(image):
    """The first sector gone: the backup boot sector (sector 6) is what is left."""
    return bytes(512) + image[512:]


def zero_file_system(image):
    """Boot sectors, FATs and root gone: only the folders' own clusters tell."""
    geometry = r.boot_geometry(image[:512])
    end = geometry.data_start + geometry.cluster            # the root's first cluster
    return bytes(end) + image[end:]


@needs_mtools
def camera_card(path, files):
    """A FAT32 card (mkfs.vfat, mtools) with files ({path on the card: bytes}) in the
    camera's folders, written in that order."""
    card = MtoolsCard(path, folders=CAMERA_FOLDERS)
    for card_path, data in files.items():
        card.copy(card_path, data)
    return card


@pytest.mark.parametrize("damage, source", [
    (lambda image: b"\x17" * 100 + image, "entry"),          # a partition off the grid
    (gpt_disk, "entry"),
    (zero_boot, "entry"),
    (zero_file_system, "orphan directory")])
def test_the_names_come_back_wherever_the_file_system_lies(tmp_path, damage, source):
    files = {"DCIM/100CANON/IMG_0001.JPG": corpus_file("mei_Canon_PowerShot_G11.jpg"),
             "DCIM/100CANON/IMG_0002.CR2": corpus_file("exiftool_CanonRaw.cr2"),
             "DCIM/100CANON/MVI_0003.MP4": corpus_file("gopro_karma.mp4")}
    card = camera_card(tmp_path / "card.img", files)
    (tmp_path / "damaged.img").write_bytes(damage(card.image()))
    out = recover(tmp_path / "damaged.img", tmp_path / "out", "--name-by", "original")
    rows = named_rows(out)
    assert {name: row["name_source"] for name, row in rows.items()} == {
        path: source for path in files}
    check_names(out, tmp_path / "out", {path: sha256(data) for path, data in files.items()})
    assert len(out.rows) == len(files)


@needs_mtools
def test_the_sieve_finds_every_directory_sector_and_no_other(tmp_path):
    card = MtoolsCard(tmp_path / "card.img", folders=CAMERA_FOLDERS)
    for number in range(40):                    # 42 entries: two clusters of 100CANON
        card.copy("DCIM/100CANON/IMG_%04d.JPG" % number, noise(700, seed=number))
    image = card.image()
    geometry = r.boot_geometry(image[:512])
    listing = {}
    for name in (b"DCIM       ", b"100CANON   ", b"IMG_0000JPG", b"IMG_0039JPG"):
        at = image.index(name, geometry.data_start)
        listing[name] = at - at % 512
    found = set()
    for first in range(0, len(image), 1 << 20):         # in regions, as the scan does
        sectors, sets = r.directory_sieve(image, first, first + (1 << 20))
        found.update(sectors)
        assert sets == []
    assert set(listing.values()) <= found
    for sector in found:                        # each one holds entries, and is a folder's
        entries = r.fat_entries(image, sector, sector + 512)
        assert entries or image[sector + 11] == r.LFN_ATTRIBUTES or image[sector + 11] & 0x08
    assert len(found) <= 8      # root, DCIM, 100CANON's two clusters of 1 KiB: no noise


def test_exfat_sets_are_sieved_on_their_32_byte_grid_only():
    entry_set = exfat_entry_set("IMG_0003.CR3", 5, 77)
    data = noise(8192, seed=4) + entry_set + noise(4096, seed=5)
    (found,) = r.exfat_sets(data, 0, len(data))
    assert (found.name, found.offset) == ("IMG_0003.CR3", 8192)
    shifted = noise(16, seed=6) + data                  # off the grid: not a directory
    assert r.exfat_sets(shifted, 0, len(shifted)) == []
    assert [e.offset for e in r.exfat_sets(shifted, 0, len(shifted), phase=16)] == [8208]
    # a region holds the sets that start in it, whole though they run past its end
    assert len(r.exfat_sets(data, 0, 8193)) == 1
    assert r.exfat_sets(data, 0, 8192) == r.exfat_sets(data, 8224, len(data)) == []


@needs_mkfs_exfat
def test_a_fragmented_exfat_file_is_read_through_its_fat_chain(tmp_path):
    card = ExfatCard(tmp_path / "card.img")
    card.mkdir("DCIM")
    card.mkdir("DCIM/100CANON")
    movie = corpus_file("gopro_karma.mp4")
    clusters = -(-len(movie) // card.cluster_size)
    # in three runs, the last first on the card, with a whole JPEG between two
    order = (list(range(600, 600 + clusters // 3)) + list(range(3000, 3000 + clusters // 3))
             + list(range(200, 200 + clusters - 2 * (clusters // 3))))
    jpeg = corpus_file("mei_Canon_PowerShot_G11.jpg")
    card.next_cluster = 600 + clusters // 3
    card.copy("DCIM/100CANON/IMG_0002.JPG", jpeg)
    card.copy_in_pieces("DCIM/100CANON/MVI_0001.MP4", movie, order)
    out = recover(card.path, tmp_path / "out", "--name-by", "original")
    rows = named_rows(out)
    film = rows["DCIM/100CANON/MVI_0001.MP4"]
    assert (film["status"], film["name_source"]) == ("complete", "entry")
    assert film["detail"] == "read through its FAT chain, in 3 pieces"
    check_names(out, tmp_path / "out", {"DCIM/100CANON/MVI_0001.MP4": sha256(movie),
                                        "DCIM/100CANON/IMG_0002.JPG": sha256(jpeg)})


@needs_mtools
def test_original_names_never_replace_anything(tmp_path):
    card = MtoolsCard(tmp_path / "card.img", folders=CAMERA_FOLDERS)
    jpeg = corpus_file("exiftool_Canon.jpg")
    card.copy("DCIM/100CANON/IMG_0001.JPG", jpeg)
    outdir = tmp_path / "out"
    first = recover(card.path, outdir, "--name-by", "original")
    second = recover(card.path, outdir, "--name-by", "original", "--restart")
    assert [row["file"] for row in first.rows + second.rows] == [
        "DCIM/100CANON/IMG_0001.JPG", "DCIM/100CANON/IMG_0001-2.JPG"]
    assert first.shas() == second.shas() == [sha256(jpeg)]
    # a file where the card's folder would go: the name falls back to imgN
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "DCIM").write_bytes(b"mine")
    third = recover(card.path, blocked, "--name-by", "original")
    assert [row["file"] for row in third.rows] == ["img1.jpg"]
    assert third.rows[0]["original_name"] == "DCIM/100CANON/IMG_0001.JPG"
    assert (blocked / "DCIM").read_bytes() == b"mine"


def test_a_path_from_the_card_cannot_leave_the_output_directory():
    assert r.card_path("DCIM/100CANON/IMG_0001.CR3") == "DCIM/100CANON/IMG_0001.CR3"
    assert r.card_path("DCIM/../../etc/passwd") == ""
    assert r.card_path("/IMG.JPG") == "" and r.card_path("A//B") == ""
    assert r.card_path("DCIM/a\\b\x07c.jpg") == "DCIM/a_b_c.jpg"
    assert r.card_path("x" * 300) == "x" * 300      # shortened when it is given (fitted)


@needs_mtools
def test_a_card_name_that_is_the_tools_own_is_saved_as_card_name(tmp_path):
    # A card entry index.html took the contact sheet's place (a page a browser runs:
    # the real sheet became index-2.html); recovercr3-report-99.csv was taken for the
    # newest report; a card folder "damaged" looks like a verdict. Each is saved under
    # "card-" and its own name; the tool's files keep theirs.
    card = MtoolsCard(tmp_path / "card.img")
    card.mkdir("DAMAGED")                      # an 8.3 name: upper case on the card
    card.mkdir("DCIM")
    truth = {}
    for path, source in [("index.html", "mei_Canon_EOS_5D.jpg"),
                         ("recovercr3-report-99.csv", "mei_Nikon_D70.jpg"),
                         ("DAMAGED/IMG_0001.JPG", "mei_Canon_PowerShot_G11.jpg"),
                         ("DCIM/IMG_0002.JPG", "exiftool_Canon.jpg")]:
        card.copy(path, corpus_file(source))
        truth[path] = sha256(corpus_file(source))
    out = recover(card.path, tmp_path / "out", "--name-by", "original")
    assert out.rc == 0, out.log
    assert sorted(row["file"] for row in out.rows) == [
        "DCIM/IMG_0002.JPG", "card-DAMAGED/IMG_0001.JPG", "card-index.html",
        "card-recovercr3-report-99.csv"]
    assert {row["original_name"]: sha256((tmp_path / "out" / row["file"]).read_bytes())
            for row in out.rows} == truth
    sheet = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "card-index.html" in sheet and not (tmp_path / "out" / "index-2.html").exists()
    assert os.path.basename(r.newest_report(tmp_path / "out")) == "recovercr3-report.csv"
    # the same command again: the card's page is still not the sheet, which the run
    # replaces; it wrote nothing, and says so
    again = recover(card.path, tmp_path / "out", "--name-by", "original")
    assert again.log.splitlines()[-1] == "[INFO] Nothing new: 4 file(s) already in %s, " \
        "listed in %s" % (tmp_path / "out", tmp_path / "out" / "recovercr3-report.csv")
    assert sorted(p.name for p in (tmp_path / "out").glob("*.html")) == [
        "card-index.html", "index.html"]
    assert sha256((tmp_path / "out" / "card-index.html").read_bytes()) == truth["index.html"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["index.html", "INDEX-2.HTML", "recovercr3.log",
                                 "recovercr3-report-7.csv", ".recovercr3-x", "damaged",
                                 "Truncated", "DCIM", "index.htm", "card-index.html",
                                 "x" * 250, "index" + "y" * 246 + ".html"]),
                min_size=1, max_size=3))
def test_no_card_path_takes_a_name_of_the_tools_own(parts):
    path = "/".join(parts)
    safe = r.unreserved(path)
    top = parts[0]
    if r.RESERVED_TOP.match(top):
        assert safe == r.CARD_PREFIX + path
        given = r.fitted(safe, 4000)            # however it is shortened, it is no tool's
        assert not r.RESERVED_TOP.match(given.split("/")[0])
    else:
        assert safe == path


@needs_mtools
def test_the_sheet_of_a_formatted_card_after_a_second_run_shows_every_file(tmp_path):
    # a quick-formatted card, saved first for its JPEGs, then again for everything:
    # index.html is then the one page, every file on it with its card name; the
    # second run says what it kept and what it wrote
    files = {"DCIM/100CANON/IMG_0001.JPG": corpus_file("mei_Canon_EOS_5D.jpg"),
             "DCIM/100CANON/MVI_0002.MOV": corpus_file("nomexif_meta.mov"),
             "DCIM/100CANON/IMG_0003.JPG": corpus_file("mei_Nikon_D70.jpg")}
    card = camera_card(tmp_path / "card.img", files)
    card.format()
    out = tmp_path / "out"
    first = recover(card.path, out, "--name-by", "original", "--types", "jpg")
    second = recover(card.path, out, "--name-by", "original")
    assert [row["file"] for row in first.rows] == [
        "DCIM/100CANON/IMG_0001.JPG", "DCIM/100CANON/IMG_0003.JPG"]
    assert {row["file"]: sha256((out / row["file"]).read_bytes()) for row in second.rows} \
        == {path: sha256(data) for path, data in files.items()}
    assert second.log.splitlines()[-1] == "[INFO] Restored 1 file(s)"
    assert "[INFO] Kept 2 file(s) an earlier run saved in %s" % out in second.log
    assert sorted(p.name for p in out.glob("index*")) == ["index.html"]
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.count("<figure") == 3
    assert all('href="%s"' % path in page for path in files)
