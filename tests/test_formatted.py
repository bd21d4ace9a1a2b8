"""Files in pieces on a quick-formatted card: put back together, or said to be broken.

A camera that writes on a card it has deleted from fills the holes the deleted files
left, so a file lies in pieces around the files still there; then the card is quick
formatted, and the FAT chains that said where the pieces are are gone.
"""

from conftest import recover
from dumpkit import corpus_file, sha256

CLUSTER = 4096


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
