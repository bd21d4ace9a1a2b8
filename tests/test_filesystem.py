"""What the card's file system still says: directory entries, read from FAT32
images made by mkfs.vfat and mtools (skipped where they are not installed)."""

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import recovercr3 as r

CARD_MB = 80
MTOOLS = all(shutil.which(tool) for tool in ("mkfs.vfat", "mcopy", "mmd", "mdel", "mdir"))
needs_mtools = pytest.mark.skipif(not MTOOLS, reason="dosfstools or mtools not installed")


def fat32_card(tmp_path, files, deleted=()):
    """A FAT32 image of CARD_MB (1 KiB clusters: FAT32 needs 65525 of them) with files {path on the card: bytes},
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


@needs_mtools
def test_folder_paths_from_the_entries_and_after_the_root_is_lost(tmp_path):
    files = {"DCIM/100CANON/IMG_0001.CR3": b"a", "DCIM/101CANON/IMG_0100.CR3": b"b",
             "MISC/NOTE.TXT": b"c"}
    image = fat32_card(tmp_path, files)
    folders, entries_of, root, geometry = folders_of(image)
    paths = r.folder_paths(folders, entries_of, root)
    assert sorted(paths.values()) == ["DCIM", "DCIM/100CANON", "DCIM/101CANON", "MISC"]
    # a quick format: the root's entries are gone; the DCF folders are under DCIM still
    root_at = geometry.data_start + (root - 2) * geometry.cluster
    formatted = image[:root_at] + bytes(geometry.cluster) + image[root_at + geometry.cluster:]
    folders, entries_of, root, _ = folders_of(formatted)
    assert sorted(r.folder_paths(folders, entries_of, root).values()) == [
        "DCIM/100CANON", "DCIM/101CANON"]


def test_a_folder_loop_gives_no_path():
    # Two folders each the other's parent, as a hostile dump may have them.
    folders = [r.Folder(0, 5, 6), r.Folder(4096, 6, 5)]
    entry = r.DirEntry("A", "A", r.FAT_DIRECTORY, 5, 0, "", False, 0)
    other = entry._replace(name="B", short_name="B", first_cluster=6)
    assert r.folder_paths(folders, {6: [entry], 5: [other]}, 2) == {}


def entry(name, cluster, size, deleted=False):
    return r.DirEntry(name, name, 0x20, cluster, size, "2024-05-01T12:30:10", deleted, 0)


def test_a_carved_file_is_named_only_by_one_entry_that_fits_its_cluster_and_size():
    geometry = r.Geometry(4096, 5251072)
    at = 5251072 + (100 - 2) * 4096                          # cluster 100
    entries = [(entry("IMG_0001.CR3", 100, 5000), "DCIM/100CANON"),
               (entry("IMG_0002.CR3", 100, 6000), "DCIM/100CANON"),     # another size
               (entry("IMG_0003.CR3", 0x10064, 7000, deleted=True), None)]
    naming, why = r.name_for(at, 5000, geometry, entries)
    assert naming == r.Naming("DCIM/100CANON/IMG_0001.CR3", "entry", "2024-05-01T12:30:10")
    assert r.name_for(at + 512, 5000, geometry, entries) == (None, "")   # not a cluster
    assert r.name_for(at, 4999, geometry, entries) == (None, "")        # not its size
    # a deleted FAT32 entry that lost its cluster's high bits; its folder unknown
    high = 5251072 + (0x10064 - 2) * 4096
    naming, _ = r.name_for(high, 7000, geometry, entries)
    assert (naming.path, naming.source) == ("IMG_0003.CR3", "orphan directory")
    low_only = [(entry("IMG_0003.CR3", 0x64, 7000, deleted=True), "DCIM/100CANON")]
    naming, _ = r.name_for(high, 7000, geometry, low_only)
    assert (naming.path, naming.source) == ("DCIM/100CANON/IMG_0003.CR3", "deleted entry")
    # two entries fit: no name, and the reason
    twice = entries + [(entry("IMG_9999.CR3", 100, 5000), "DCIM/101CANON")]
    assert r.name_for(at, 5000, geometry, twice) == (None, "2 entries fit it")


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
