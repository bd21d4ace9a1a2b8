"""Camera model, date and serial number, pinned to what exiftool 12.57 prints.

    exiftool -s -Model -DateTimeOriginal -OffsetTimeOriginal -SerialNumber -CreateDate FILE

(exiftool's SerialNumber is Exif tag 0xA431, BodySerialNumber.) The CR3s are the
rebuilt full-size files (real headers, see dumpkit); their metadata is the original's.
"""

import json
import shutil
import subprocess

import pytest

import recovercr3 as r
from conftest import recover
import dumpkit
from dumpkit import build_dump, corpus_file

PINNED = {
    # name: (model, datetime as the report gives it, serial)
    "eos_r": ("Canon EOS R", "2019-12-05T13:32:49+08:00", "085023000606"),
    "eos_m50": ("Canon EOS M50", "2018-02-21T12:08:56+00:00", "613040000565"),
    "exiv2_Canon.HIF": ("Canon EOS R5", "2021-02-18T19:54:47+00:00", "023021000484"),
    "gopro_karma.mp4": ("", "2017-04-17T19:27:57", ""),          # mvhd creation time
    "mei_sample.3gp": ("", "2005-10-28T17:36:40", ""),
    "exiv2_sample_640x360.mov": ("", "", ""),                      # mvhd time is 0
}


class Files(dict):
    """The pinned files, each read when a test first asks for it, as it is: never a
    stand-in (these values are the real files')."""

    def __missing__(self, name):
        if name == "eos_r":
            data = dumpkit.eos_r_cr3()
        elif name == "eos_m50":
            data = dumpkit.eos_m50_cr3(exact=True)
        else:
            data = corpus_file(name, exact=True)
        self[name] = data
        return data


@pytest.fixture(scope="module")
def files():
    return Files()


def meta_of(data):
    c = r.carve_isobmff(data, 0, len(data), r.StopAfterMdat(), frozenset(r.ALL_TYPES))
    return tuple(c.meta)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_metadata_matches_exiftool(files, name):
    assert meta_of(files[name]) == PINNED[name]


def test_report_has_model_datetime_and_serial(tmp_path, files):
    build_dump(tmp_path / "card.img", 512, files["eos_r"], 512, files["exiv2_Canon.HIF"])
    out = recover(tmp_path / "card.img", tmp_path / "out")
    assert [(row["model"], row["datetime"], row["serial"]) for row in out.rows] == [
        PINNED["eos_r"], PINNED["exiv2_Canon.HIF"]]


def test_exif_tags_survive_garbage():
    tiff = b"II*\0" + (8).to_bytes(4, "little") + (2).to_bytes(2, "little")
    entries = (0x0110).to_bytes(2, "little") + (2).to_bytes(2, "little") + \
        (500).to_bytes(4, "little") + (9999).to_bytes(4, "little")      # points past the end
    with pytest.raises(r.FormatError):
        r.exif_tags(tiff + entries, 0, len(tiff + entries))             # IFD cut short
    assert r.exif_tags(tiff + entries * 2 + bytes(4), 0, len(tiff) + 28) == {}


EXIFTOOL_FIELDS = ["-Model", "-DateTimeOriginal", "-OffsetTimeOriginal", "-SerialNumber"]


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed")
@pytest.mark.parametrize("name", ["eos_r", "eos_m50", "exiv2_Canon.HIF"])
def test_pinned_values_are_what_exiftool_prints_for_the_carved_file(tmp_path, files, name):
    build_dump(tmp_path / "card.img", 4096, files[name], 4096)
    out = recover(tmp_path / "card.img", tmp_path / "out")
    carved = tmp_path / "out" / out.rows[0]["file"]
    p = subprocess.run(["exiftool", "-j"] + EXIFTOOL_FIELDS + [str(carved)],
                       capture_output=True, text=True, check=True)
    tags = json.loads(p.stdout)[0]
    model, when, serial = PINNED[name]
    assert tags["Model"] == model and str(tags["SerialNumber"]) == serial
    date, clock = when[:19].split("T")
    assert tags["DateTimeOriginal"] == date.replace("-", ":") + " " + clock
    assert tags["OffsetTimeOriginal"] == when[19:]
