#!/usr/bin/env python3
"""Media of the other cameras' formats, for cards that hold them.

    python3 bench/othermedia.py [--out DIR] [--with MEDIA]

Writes MTS (AVCHD-like M2TS: H.264 + AC-3 in 192-byte packets), TS, and MXF (MPEG-2
+ PCM, OP1a) files with ffmpeg's muxers, and RAF, X3F, SRW, GPR, ORF and RW2 files
built to their published layouts (tests/camerakit.py; SRW and GPR as TIFFs by
Pillow) with real JPEG previews taken from MEDIA, into DIR (default $BENCH_WORK/othermedia).
With --with MEDIA it also fills DIR/../media+other with hard links to both sets:
give that folder to ../shared/bench/mkcard.py --media (or to bench/sweep.py
--media) for cards where these formats lie among the usual ones. Deterministic;
files already there are kept.
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import camerakit as kit  # noqa: E402  (tests/ is not a package)
from dumpkit import noise  # noqa: E402

WORK = Path(os.environ.get("BENCH_WORK", "/tmp/recovercr3-bench"))
# (name, seconds, size, video bitrate) of each movie
MOVIES = [("MTS", 6, "1280x720", "6M"), ("MTS", 14, "1920x1080", "9M"), ("MTS", 25, "1280x720", "4M"),
          ("MTS", 40, "1920x1080", "5M"), ("TS", 8, "1280x720", "4M"), ("TS", 20, "640x480", "3M"),
          ("MXF", 5, "720x576", "15M"), ("MXF", 12, "720x576", "10M"), ("MXF", 20, "1280x720", "8M")]
STILLS = [("RAF", 4), ("X3F", 3), ("SRW", 3), ("GPR", 3), ("ORF", 3), ("RW2", 3)]


def ffmpeg(path, seconds, size, rate, kind, seed):
    source = ["-f", "lavfi", "-i", "testsrc2=size=%s:rate=25" % size,
              "-f", "lavfi", "-i", "sine=f=%d:sample_rate=48000" % (300 + 40 * seed),
              "-t", str(seconds)]
    if kind == "MXF":
        codecs = ["-c:v", "mpeg2video", "-b:v", rate, "-c:a", "pcm_s16le", "-f", "mxf"]
    else:
        codecs = ["-c:v", "libx264", "-preset", "veryfast", "-b:v", rate, "-c:a", "ac3",
                  "-f", "mpegts"] + (["-mpegts_m2ts_mode", "1"] if kind == "MTS" else [])
    subprocess.run(["ffmpeg", "-v", "error", "-y"] + source + codecs + ["-fflags", "+bitexact",
                    str(path)], check=True)


def previews(media):
    """Real camera JPEGs to put inside the raws."""
    found = sorted(p for p in Path(media).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg")
                   and 100000 < p.stat().st_size < 4000000) if media else []
    return [p.read_bytes() for p in found] or [None]


def still(kind, seed, jpeg):
    rng = random.Random(seed)
    raw = noise(rng.randrange(8, 20) << 20, seed=1000 + seed)
    if kind == "RAF":
        return kit.raf_file(jpeg, raw, model=b"X-T4",
                            second=([(0x0100, b"\0\x10\0\x10")], raw[:1 << 20]) if seed % 2 else None)
    if kind == "X3F":
        return kit.x3f_file(jpeg, raw)
    if kind == "SRW":
        return kit.tiff_raw("SAMSUNG", "NX500", False, seed, size=(1600, 1200))
    if kind == "ORF":           # Olympus-compressed: smaller than the size says
        return kit.orf_file(jpeg, raw, model=b"E-M10MarkIII", size=(5184, 3888))
    if kind == "RW2":
        return kit.rw2_file(jpeg, raw, model=b"DC-G9", sensor=(5248, 3920))
    return kit.tiff_raw("GoPro", "HERO11 Black", True, seed, size=(1600, 1200))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=WORK / "othermedia")
    parser.add_argument("--with", dest="media", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if shutil.which("ffmpeg") is None:
        sys.exit("othermedia: ffmpeg is needed for the movies")
    for number, (kind, seconds, size, rate) in enumerate(MOVIES):
        path = args.out / ("clip%02d.%s" % (number, kind))
        if not path.exists():
            ffmpeg(path, seconds, size, rate, kind, number)
    jpegs = previews(args.media)
    for kind, count in STILLS:
        for number in range(count):
            path = args.out / ("still%02d.%s" % (number, kind))
            if not path.exists():
                seed = number + 10 * STILLS.index((kind, count))
                jpeg = jpegs[seed % len(jpegs)]
                path.write_bytes(still(kind, seed, jpeg if jpeg else b"\xff\xd8\xff\xd9"))
    if args.media:
        both = args.out.parent / "media+other"
        both.mkdir(exist_ok=True)
        for source in (args.media, args.out):
            for path in sorted(Path(source).rglob("*")):
                target = both / source.name / path.relative_to(source)
                if path.is_file() and not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.link(str(path), str(target))
        print(both)
    total = sum(p.stat().st_size for p in args.out.iterdir())
    print("othermedia: %d files, %d MB in %s" % (len(list(args.out.iterdir())), total >> 20,
                                                  args.out))


if __name__ == "__main__":
    main()
