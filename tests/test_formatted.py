"""CR3s in pieces on a quick-formatted card: put back together, or the guess said as one.

A camera that writes on a card it has deleted from fills the holes the deleted files
left, so a CR3 lies in pieces around the files still there; then the card is quick
formatted, and the FAT chains that said where the pieces are are gone. Each card here
is made by the real tools (mkfs.vfat and mtools, which fill the first free clusters
as a camera does; or mkfs.exfat and dumpkit.ExfatCard, which put each piece where it
is told), written, and formatted again. The CR3 is the EOS R's real header with an mdat
rebuilt to its co64/stsz tables and CRX headers built to LibRaw's layout
(dumpkit.rebuild_cr3: the corpus has no complete full-size CR3), with a real camera
JPEG as its full-size JPEG. Its splits lie in that JPEG (decoded whole, a proof), in
the small raw picture and in the big one (only their CRX headers are marks).

What lies between the pieces: whole files, zeros (a file of them), another file's
middle (a video's), another CR3's raw data (the rebuilt CR3s' raw data is noise).
Whatever it is, the CR3 must never come back wrong and called complete; it comes
back exact and complete where a proof exists, and else in damaged/, exact or with a
detail saying the split was guessed; the files in the gaps that are whole come back.
"""

import shutil

import pytest

from conftest import recover
from dumpkit import (CAMERA_FOLDERS, ExfatCard, MtoolsCard, corpus_file, noise, sha256,
                     with_real_jpeg)

CLUSTER = 4096
MB = 1 << 20
# where the CR3's pieces end (its JPEG is at +403258..+2467426, its small raw picture
# at ..+3873394, its big one at ..+29336978): in the JPEG, the small raw, the big raw
CUTS = {2: [10 * MB], 3: [MB, 12 * MB], 4: [MB, 3 * MB, 15 * MB]}
GAPS = ["file", "zeros", "middle", "raw"]

needs_fat_tools = pytest.mark.skipif(not (shutil.which("mkfs.vfat") and shutil.which("mcopy")),
                                     reason="needs mkfs.vfat and mtools (dosfstools, mtools)")
needs_exfat_tools = pytest.mark.skipif(not shutil.which("mkfs.exfat"),
                                       reason="needs mkfs.exfat (exfatprogs)")


def gap(kind, index):
    """What a camera jumped over: the bytes of a live file between two pieces."""
    if kind == "file":          # a whole JPEG, found and complete
        return corpus_file("mei_Canon_EOS_5D.jpg")
    if kind == "zeros":
        return bytes(16 * CLUSTER)
    if kind == "middle":        # a video's middle, no header of its own
        return corpus_file("gopro_karma.mp4")[MB:MB + (40 + index) * CLUSTER]
    return noise((48 + index) * CLUSTER, seed=90 + index)     # another CR3's raw data


@pytest.fixture(scope="module")
def cr3(eos_r_cr3):
    data, _, _ = with_real_jpeg(eos_r_cr3, corpus_file("mei_Canon_EOS_5D.jpg"))
    return data


def fat32_card(path, cr3, cuts, kind):
    """Holes of the pieces' sizes between live files (the gaps), the holes deleted,
    the CR3 written (mtools fills them first to last, then runs on), formatted."""
    card = MtoolsCard(path, size_mb=96, folders=CAMERA_FOLDERS)     # 1 KiB clusters
    ends = cuts + [None]
    for index, (first, last) in enumerate(zip([0] + cuts, cuts)):
        card.copy("DCIM/100CANON/HOLE%d.BIN" % index, bytes(last - first))
        card.copy("DCIM/100CANON/GAP%d.BIN" % index, gap(kind, index))
    for index in range(len(ends) - 1):
        card.delete("DCIM/100CANON/HOLE%d.BIN" % index)
    card.copy("DCIM/100CANON/IMG_0001.CR3", cr3)
    card.format()


def exfat_card(path, cr3, cuts, kind):
    """The CR3 written into the clusters between live files (the gaps), formatted."""
    card = ExfatCard(path, size_mb=96, cluster=CLUSTER)
    for folder in CAMERA_FOLDERS:
        card.mkdir(folder)
    clusters = []
    for index, (first, last) in enumerate(zip([0] + cuts, cuts + [len(cr3)])):
        count = -(-(last - first) // CLUSTER)
        clusters += range(card.next_cluster, card.next_cluster + count)
        card.next_cluster += count
        if index < len(cuts):
            card.copy("DCIM/100CANON/GAP%d.BIN" % index, gap(kind, index))
    card.copy_in_pieces("DCIM/100CANON/IMG_0001.CR3", cr3, clusters)
    card.format()


CARDS = {"fat32": pytest.param(fat32_card, marks=needs_fat_tools),
         "exfat": pytest.param(exfat_card, marks=needs_exfat_tools)}
# Where a proof exists: the whole files in the gaps are taken out of the CR3's extent
# (the JPEG, decoded whole, proves the join inside it), or a run of zeros right after
# a piece pins its split. Past another file's middle or raw data, a split inside raw
# data is a guess: nothing checks the bytes around it.
PROVEN = {(pieces, kind) for pieces in CUTS for kind in ("file", "zeros")}


@pytest.mark.parametrize("kind", GAPS)
@pytest.mark.parametrize("pieces", sorted(CUTS))
@pytest.mark.parametrize("make", [CARDS["fat32"], CARDS["exfat"]], ids=["fat32", "exfat"])
def test_a_cr3_in_pieces_on_a_formatted_card(tmp_path, cr3, make, pieces, kind):
    make(tmp_path / "card.img", cr3, CUTS[pieces], kind)
    out = recover(tmp_path / "card.img", tmp_path / "out", "--name-by", "original")
    rows = {row["file"].rpartition("/")[2]: row for row in out.rows if row["file"]}
    shas = dict(out.outputs)
    row = rows["IMG_0001.CR3"]
    exact = shas[row["file"]] == sha256(cr3)
    if row["status"] == "complete":
        assert exact, "called complete with the wrong bytes"
    if (pieces, kind) in PROVEN:
        assert (row["file"], row["status"], exact) == (
            "DCIM/100CANON/IMG_0001.CR3", "complete", True)
    else:
        # a guess, and the right one: the folders the format left say where each
        # gap's file began, so where the piece before it ended
        assert (row["file"], row["status"], exact) == (
            "damaged/DCIM/100CANON/IMG_0001.CR3", "damaged", True)
        assert row["detail"].startswith("reassembled from %d pieces by a guess: split "
                                        "guessed between +" % pieces)
        assert "no mark inside the raw data" in row["detail"]
        assert rows["IMG_0001.CR3.jpg"]["status"] == "complete"       # its full-size JPEG
    if kind == "file":          # the files in the gaps come back, and are not the CR3's
        gaps = [r for r in out.rows if r["type"] == "jpg" and "IMG_0001" not in r["file"]]
        assert [r["status"] for r in gaps] == ["complete"] * (pieces - 1)
        assert all(shas[r["file"]] == sha256(gap("file", 0)) for r in gaps)


def test_a_heif_whose_rest_is_another_copy_of_it_is_not_complete(tmp_path):
    # Bench formatted seed 3 (512 MB, 4 KiB): a HEIC in 3 pieces came back complete
    # and wrong. It had been carved in one run: past its first piece lay a piece of
    # another copy of the same picture, from an earlier place in it, and a picture's
    # last NAL unit is checked where it begins and ends, not inside. Here the HIF's
    # first piece ends inside the last NAL unit of its last picture (+1198933 on);
    # its clusters from +790528 on, another copy's, follow; a whole copy lies further
    # on.
    hif = corpus_file("exiv2_Canon.HIF")
    cut = 293 * CLUSTER
    rest = hif[cut - 100 * CLUSTER:][:len(hif) - cut]
    dump = tmp_path / "card.img"
    dump.write_bytes(bytes(CLUSTER) + hif[:cut] + rest + bytes(-len(hif) % CLUSTER)
                     + hif + bytes(CLUSTER))
    out = recover(dump, tmp_path / "out")
    assert [(row["file"], row["status"]) for row in out.rows] == [
        ("damaged/img1.hif", "damaged"), ("img2.hif", "complete")]
    assert out.rows[0]["detail"].startswith(
        "item 259: the 4096 bytes at +1200128 are those at +790528: another copy of "
        "the picture follows where it was split")
    assert out.shas()[1] == sha256(hif)


def test_a_heif_whose_unchecked_tail_is_a_movies_piece_is_not_complete(tmp_path):
    # Bench formatted seed 7 (2100 MB, 32 KiB clusters): a HEIC whose first piece ends
    # inside its last NAL unit (read where it begins and ends only) lay before a
    # movie's second piece, bytes a NAL unit's rules allow; it was complete and
    # wrong, and it hid the movie's piece from the movie. Here: the MP4's first 89
    # clusters, the HIF's first 293, the MP4's rest (its next 53,264 bytes hold no
    # 00 00 0x a NAL unit forbids), the HIF's rest. The HIF waits for the end of the
    # scan; the MP4, put together past it, has a piece in its tail: the HIF is
    # damaged, and laid over the clusters past the MP4's (a guess, the right one).
    from test_fragments import card_start
    from dumpkit import build_dump, faststart
    mp4 = faststart(corpus_file("gopro_karma.mp4"))
    hif = corpus_file("exiv2_Canon.HIF")
    build_dump(tmp_path / "card.img", *card_start("fat32"), mp4[:89 * CLUSTER],
               hif[:293 * CLUSTER], padded(mp4[89 * CLUSTER:]), padded(hif[293 * CLUSTER:]))
    out = recover(tmp_path / "card.img", tmp_path / "out")
    rows = {row["type"]: row for row in out.rows}
    assert [(row["file"], row["status"]) for row in out.rows] == [
        ("damaged/img1.mp4", "damaged"), ("damaged/img2.hif", "damaged")]
    assert rows["heif"]["detail"] == ("reassembled from 2 pieces by a guess: the free "
                                      "clusters on from +1200128, past the files there")
    assert out.shas() == [sha256(mp4), sha256(hif)]


def padded(data):
    return data + bytes(-len(data) % CLUSTER)
