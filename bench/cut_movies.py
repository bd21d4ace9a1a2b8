#!/usr/bin/env python3
"""Cards with movies cut by a dead battery: how many play again, against PhotoRec.

    python3 bench/cut_movies.py [--seeds 1-5] [--size-mb 384] [--scenario sequential]
                                [--script recovercr3.py] [--work DIR]

Each card holds recording sessions, one per camera mode: ffmpeg's H.264 + AAC MP4
(1280x720, 30p), HEVC + AAC MP4 (1280x720), H.264 + 16-bit PCM MOV (1920x1080,
25p, as Canon's EOS write), and the corpus's GoPro MP4 (with its timecode and GPS
tracks) and iPhone MOV. A session is 2 to 4 complete movies, then its last one cut
at a random point: its moov never written, its mdat's size the 0 it was opened
with, as a camera leaves a movie when its battery dies. The movies go onto a FAT32
image with mkfs.vfat and mcopy, session after session, the sessions in a random
order (seeded); --scenario formatted then makes a new file system over them, as a
quick format does. recovercr3 and PhotoRec (raw scan) run on each card.

Per cut movie the truth is what its original's moov says: the pictures that lie
whole in what was written. A tool's output counts as playing when ffmpeg decodes
it without a word (``-v error``), and as exact when its decoded pictures are the
original's first ones (framemd5, picture by picture). One row per card, then the
totals. Deterministic for a seed; work files go to --work (default
$BENCH_WORK/cut-movies).
"""

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))

import recovercr3 as r  # noqa: E402
from dumpkit import corpus_path  # noqa: E402

WORK = Path(os.environ.get("BENCH_WORK", "/tmp/recovercr3-bench")) / "cut-movies"
PR_OPTS = "partition_none,options,paranoid,keep_corrupted_file_no,fileopt,everything,enable,search"
# name, ffmpeg's video and sound options, container, frame size, rate
MODES = [("h264-aac", ["-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "2",
                       "-c:a", "aac", "-b:a", "128k"], ".MP4", "1280x720", 30),
         ("hevc-aac", ["-c:v", "libx265", "-preset", "veryfast", "-x265-params",
                       "log-level=error:keyint=30:bframes=3", "-tag:v", "hvc1",
                       "-c:a", "aac", "-b:a", "128k"], ".MP4", "1280x720", 30),
         ("h264-pcm", ["-c:v", "libx264", "-preset", "veryfast", "-g", "12", "-bf", "0",
                       "-c:a", "pcm_s16le"], ".MOV", "1920x1080", 25)]
CORPUS = [("gopro", "gopro_karma.mp4", ".MP4"), ("iphone", "nomexif_meta.mov", ".MOV")]


def ffmpeg_movie(path, options, size, rate, seconds, grain, seed):
    """A movie of testsrc2 with grain (the noise filter's strength: how hard the
    scene is to code), and a tone."""
    if path.is_file():                  # made by an earlier run: the same bytes
        return path.read_bytes()
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=%s:rate=%d:duration=%d" % (size, rate, seconds),
                    "-f", "lavfi", "-i", "sine=frequency=%d:sample_rate=48000:duration=%d"
                    % (300 + seed % 500, seconds),
                    "-vf", "noise=alls=%d:allf=t:all_seed=%d" % (grain, seed),
                    "-pix_fmt", "yuv420p", "-ac", "2", *options, "-fflags", "+bitexact",
                    str(path.with_name("part-" + path.name))], check=True)
    path.with_name("part-" + path.name).rename(path)
    return path.read_bytes()


def parsed(data):
    carved = r.carve_isobmff(data, 0, len(data), r.StopAfterMdat(), r.ALL_TYPES)
    return carved, r.IsoFile(data, 0, carved.size, carved.boxes,
                             r.read_ftyp(data, 0, len(data)))


def cut_movie(movie, rng):
    """(movie cut by a dead battery at a random point of its mdat, its count of
    whole pictures)."""
    carved, f = parsed(movie)
    mdat = next(box for box in carved.boxes if box.name == r.MDAT)
    head = b"".join(movie[box.offset:box.end] for box in carved.boxes
                    if box.offset < mdat.offset and box.name != r.MOOV)
    cut = mdat.body + int((mdat.end - mdat.body) * rng.uniform(0.1, 0.95))
    video = next(track for track in f.tracks() if track.entry in r.NAL_SAMPLE_ENTRIES)
    whole = sum(1 for offset, size in video.samples() if offset + size <= cut)
    return head + r.BOX_HEADER.pack(0, r.MDAT) + movie[mdat.body:cut], whole


def sessions(seed, folder):
    """[(name, bytes, None or (original, whole pictures))] in card order."""
    rng = random.Random(seed)
    made = []
    for name, options, suffix, size, rate in MODES:
        # a session: one mode, one kind of scene (a grain), each movie a little
        # easier or harder to code than the last
        count, grain = rng.randint(2, 4), rng.randint(4, 10)
        movies = [ffmpeg_movie(folder / ("%s-%d%s" % (name, n, suffix.lower())), options,
                               size, rate, rng.randint(3, 8), grain + rng.randint(-1, 1),
                               seed * 100 + n)
                  for n in range(count + 1)]
        made.append((suffix, movies))
    for name, corpus, suffix in CORPUS:
        path = corpus_path(corpus)
        if path.is_file():
            made.append((suffix, [path.read_bytes()] * rng.randint(2, 3)))
    rng.shuffle(made)
    files, number = [], 1
    for suffix, movies in made:
        for index, movie in enumerate(movies):
            truth = None
            if index == len(movies) - 1:
                cut, whole = cut_movie(movie, rng)
                movie, truth = cut, (movies[index], whole)
            files.append(("MVI_%04d%s" % (number, suffix), movie, truth))
            number += 1
    return files


def make_card(path, files, size_mb, scenario):
    with open(path, "wb") as f:
        f.truncate(size_mb << 20)
    subprocess.run(["mkfs.vfat", "-F", "32", "-s", "8", "-n", "EOS_DIGITAL", str(path)],
                   check=True, stdout=subprocess.DEVNULL)
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    for folder in ("::DCIM", "::DCIM/100CANON"):
        subprocess.run(["mmd", "-i", str(path), folder], check=True, env=env)
    with tempfile.TemporaryDirectory() as folder:
        for name, data, _ in files:
            local = Path(folder) / name
            local.write_bytes(data)
            subprocess.run(["mcopy", "-i", str(path), str(local), "::DCIM/100CANON/" + name],
                           check=True, env=env)
            local.unlink()
    if scenario == "formatted":
        subprocess.run(["mkfs.vfat", "-F", "32", "-s", "8", "-n", "EOS_DIGITAL", str(path)],
                       check=True, stdout=subprocess.DEVNULL)


def decoded(path):
    """(ffmpeg's errors decoding path, {time: md5} of each picture)."""
    done = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v",
                           "-fps_mode", "passthrough", "-f", "framemd5", "-"],
                          capture_output=True, text=True)
    rows = [line.split(",") for line in done.stdout.splitlines() if not line.startswith("#")]
    return done.stderr.strip(), {int(row[2]): row[-1].strip() for row in rows}


def same_pictures(frames, original_frames):
    """True when every picture of frames is the original's at its time."""
    return bool(frames) and all(original_frames.get(time) == md5
                                for time, md5 in frames.items())


def outcome(path, original_frames, whole):
    """(plays, pictures, exact) of a tool's output for a cut movie."""
    errors, frames = decoded(path)
    plays = not errors and bool(frames)
    return plays, len(frames), plays and same_pictures(frames, original_frames) \
        and len(frames) >= whole - 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1-5")
    parser.add_argument("--size-mb", type=int, default=384)
    parser.add_argument("--scenario", choices=["sequential", "formatted"], default="sequential")
    parser.add_argument("--script", default=str(HERE.parent / "recovercr3.py"))
    parser.add_argument("--work", type=Path, default=WORK)
    args = parser.parse_args()
    first, _, last = args.seeds.partition("-")
    seeds = range(int(first), int(last or first) + 1)
    totals = [0] * 9
    print("card\tcut movies\twith a whole picture\tpictures whole\trecovercr3 rebuilt"
          "\tplays\texact\tpictures back\tphotorec plays\tphotorec exact")
    for seed in seeds:
        work = args.work / ("%s-%d" % (args.scenario, seed))
        for made in ("product", "photorec"):
            shutil.rmtree(work / made, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        if (work / "card.img").exists():
            (work / "card.img").unlink()
        (args.work / ("media-%d" % seed)).mkdir(parents=True, exist_ok=True)
        files = sessions(seed, args.work / ("media-%d" % seed))
        card = work / "card.img"
        make_card(card, files, args.size_mb, args.scenario)
        subprocess.run([sys.executable, args.script, "--input", str(card), "--outdir",
                        str(work / "product")], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        (work / "photorec").mkdir()
        subprocess.run(["photorec", "/log", "/d", str(work / "photorec" / "recup_dir"), "/cmd",
                        str(card), PR_OPTS], cwd=str(work / "photorec"),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        repaired = sorted((work / "product" / "repaired").glob("*")) \
            if (work / "product" / "repaired").is_dir() else []
        ours = {}
        for path in repaired:
            errors, frames = decoded(path)
            ours[path] = (errors, frames)
        theirs = [path for path in (work / "photorec").rglob("*")
                  if path.is_file() and path.suffix.lower() in (".mp4", ".mov")]
        row = [0] * 9
        for name, data, truth in files:
            if truth is None:
                continue
            original, whole = truth
            with tempfile.NamedTemporaryFile(suffix=Path(name).suffix) as f:
                f.write(original)
                f.flush()
                _, original_frames = decoded(f.name)
            row[0] += 1
            if not whole:
                continue            # nothing to rebuild: the cut came before a picture ended
            row[1] += 1
            row[2] += whole
            # ours: the rebuilt movie whose first picture is the original's first
            for path, (errors, frames) in ours.items():
                if same_pictures(frames, original_frames):
                    row[3] += 1
                    row[4] += not errors
                    row[5] += not errors and len(frames) >= whole - 1
                    row[6] += len(frames)
                    break
            head = hashlib.sha256(data[:4096]).digest()
            for path in theirs:
                with open(path, "rb") as f:
                    if hashlib.sha256(f.read(4096)).digest() != head:
                        continue
                plays, _, exact = outcome(path, original_frames, whole)
                row[7] += plays
                row[8] += exact
                break
        totals = [a + b for a, b in zip(totals, row)]
        print("\t".join(["%s %d" % (args.scenario, seed)] + [str(value) for value in row]))
    print("\t".join(["all"] + [str(value) for value in totals]))


if __name__ == "__main__":
    main()
