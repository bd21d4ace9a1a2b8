#!/usr/bin/env python3
"""Build tests/sample-card.img: a newcomer's first card, from tests/corpus alone.

    python3 tests/make_sample_card.py [OUT]      # needs mkfs.vfat and mtools

A FAT32 card (512-byte clusters, a DCIM/100CANON folder) written as a camera writes,
each file into the first free clusters, then cut where a dump of a dying card ends:

1. IMG_0001.JPG   mei_Canon_PowerShot_G11.jpg       contiguous, stays
2. IMG_0002.CR3   filetype_fixture.cr3 (first 128 KiB of an EOS R CR3)  deleted
   IMG_0003.ARW   bep_sample.arw                    deleted
3. MVI_0004.3GP   mei_sample.3gp                    contiguous, stays
4. MVI_0005.MOV   nomexif_meta.mov                  written into the hole 2 left,
                                                    on past 3: fragmented; deleted
5. IMG_0006.JPG   mei_Nikon_D70.jpg                 contiguous, stays
6. IMG_0007.JPG   mei_Canon_EOS_5D.jpg              the card's dump ends in it: cut

The image holds the card up to the middle of the last file (some 5 MB): the rest
of a 33 MB card (FAT32's smallest with these clusters) is empty. The files' bytes
and places are the same on every build; the folders' entries carry the build's
own creation times, so the committed image is the one the tests know.
tests/test_sample_card.py holds it to what each file should give back.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from dumpkit import MtoolsCard, corpus_file  # noqa: E402

CARD_MB = 33
FOLDER = "DCIM/100CANON"
WRITES = [                      # (what is done, name on the card, corpus file)
    ("copy", "IMG_0001.JPG", "mei_Canon_PowerShot_G11.jpg"),
    ("copy", "IMG_0002.CR3", "filetype_fixture.cr3"),
    ("copy", "IMG_0003.ARW", "bep_sample.arw"),
    ("copy", "MVI_0004.3GP", "mei_sample.3gp"),
    ("delete", "IMG_0002.CR3", None),
    ("delete", "IMG_0003.ARW", None),
    ("copy", "MVI_0005.MOV", "nomexif_meta.mov"),
    ("copy", "IMG_0006.JPG", "mei_Nikon_D70.jpg"),
    ("copy", "IMG_0007.JPG", "mei_Canon_EOS_5D.jpg"),
    ("delete", "MVI_0005.MOV", None),
]
CUT_INSIDE_LAST = 0.5           # of the last file, kept by the dump


def build(out):
    card = MtoolsCard(out, size_mb=CARD_MB, sectors_per_cluster=1, folders=("DCIM", FOLDER))
    last = None
    for number, (action, name, source) in enumerate(WRITES):
        if action == "copy":
            data = corpus_file(source)
            card.copy("%s/%s" % (FOLDER, name), data, when=(2024, 5, 1, 12, 30, number))
            last = data
        else:
            card.delete("%s/%s" % (FOLDER, name))
    image = card.image()
    start = image.rindex(last[:4096])
    cut = start + int(len(last) * CUT_INSIDE_LAST)
    Path(out).write_bytes(image[:cut])
    return cut


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else HERE / "sample-card.img")
    size = build(target)
    print("%s: %d bytes" % (target, size))
