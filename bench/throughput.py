#!/usr/bin/env python3
"""How fast recovercr3 reads a dump, against `cat DUMP > /dev/null` and PhotoRec on the
same file, in one run, with the page cache warm.

    python3 bench/throughput.py [--dumps mixed,jpeg,cr3] [--size-mb 2048]
                                [--sparse-gib 128] [--before OLD/recovercr3.py]

Each dump is built once by ../shared/bench/mkdump.py (pseudo-random background, media
files spliced in at sector boundaries) from the bench media (../shared/bench/media.sh,
in $BENCH_WORK/media):

    mixed   every media file once (CR3, MOV/MP4, JPEG, HEIC, TIFF, AVI, WAV, 7z), seed 1
    jpeg    the camera JPEGs (bench and corpus) x16, seed 5
    cr3     the CR3s x4, seed 7

Without the shared bench, `mixed` is built here from the corpus and two CR3s rebuilt
from real headers (tests/dumpkit.py). Every dump is read into the page cache, then
timed in turn: cat, recovercr3 (default, --jobs 1, --no-decode, --types cr3,
--careful-read), PhotoRec 7 (raw search, its paranoid check, run from a scratch folder
since it writes photorec.log where it runs), an earlier recovercr3 (--before) and the
original one (UPSTREAM_RECOVERCR3). Peak RSS is the largest of any process of a run.
--sparse-gib N also builds an N GiB exFAT card image (mkfs.exfat over a sparse file)
holding the mixed dump in its free space, and times it with --name-by original: what
memory a large card costs. Outputs are deleted after each run. Timing belongs here,
never in the test suite. The runs write into a tmpfs (/dev/shm) where there is one.
"""

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
SHARED_BENCH = PROJECT.parent / "shared" / "bench"
sys.path.insert(0, str(PROJECT / "tests"))
import dumpkit  # noqa: E402  (the test kit: corpus files and rebuilt CR3s)

SECTOR = 512
FILES_SHARE = 0.30
BLOCK = 64 << 20
PROFILES = {            # dump: (media subfolders, None for all; copies; seed)
    "mixed": (None, 1, 1),
    "jpeg": (["jpg", "corpus/*.jpg", "corpus/*.JPG"], 16, 5),
    "cr3": (["cr3"], 4, 7),
}
PHOTOREC_OPTIONS = ("partition_none,options,paranoid,keep_corrupted_file_no,fileopt,"
                    "everything,enable,search")


def corpus_media():
    """Complete real files (per the corpus MANIFEST) and two rebuilt full-size CR3s."""
    files = []
    manifest = dumpkit.CORPUS / "MANIFEST.tsv"
    if manifest.is_file():
        for line in manifest.read_text().splitlines()[1:]:
            fields = line.split("\t")
            if len(fields) > 5 and fields[5].startswith("yes") and "/" not in fields[0]:
                files.append((dumpkit.CORPUS / fields[0]).read_bytes())
        files += [dumpkit.eos_r_cr3(), dumpkit.eos_m50_cr3()]
    return files


def build_from_corpus(path, size, seed=1):
    """size bytes: random blocks, with the corpus files spliced in at sector
    boundaries up to FILES_SHARE of it."""
    files = corpus_media()
    rng = random.Random(seed)
    background = hashlib.shake_128(b"throughput-%d" % seed).digest(BLOCK)
    budget = int(size * FILES_SHARE)
    with open(path, "wb") as out:
        written = 0
        while written < size:
            out.write(background[:min(BLOCK, size - written)])
            written += min(BLOCK, size - written)
        pos, index = SECTOR, 0
        while files and budget > 0:
            data = files[index % len(files)]
            pos += rng.randrange(1, 2048) * SECTOR
            if pos + len(data) >= size:
                break
            out.seek(pos)
            out.write(data)
            pos += -(-len(data) // SECTOR) * SECTOR
            budget -= len(data)
            index += 1


def bench_media(work):
    """The shared bench's media folder (made once by its media.sh), or None."""
    if not (SHARED_BENCH / "media.sh").is_file():
        return None
    media = work / "media"
    subprocess.run(["bash", str(SHARED_BENCH / "media.sh"), str(media)], check=True,
                   stdout=subprocess.DEVNULL)
    return media


def build(work, name, size_mb):
    """The dump of a profile (built once, then reused)."""
    dump = work / ("%s_%dM.bin" % (name, size_mb))
    media = bench_media(work)
    if media is None:
        if name != "mixed":
            raise SystemExit("the %s dump needs ../shared/bench" % name)
        if not dump.is_file():
            subprocess.run([sys.executable, __file__, "--build", str(dump),
                            str(size_mb << 20)], check=True)
        return dump
    folders, copies, seed = PROFILES[name]
    source = media
    if folders is not None:
        source = work / ("media-" + name)
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir()
        for pattern in folders:
            for f in (media.glob(pattern) if "*" in pattern else (media / pattern).iterdir()):
                shutil.copy(f, source / f.name)
    subprocess.run([sys.executable, str(SHARED_BENCH / "mkdump.py"), "--media", str(source),
                    "--out", str(dump), "--size-mb", str(size_mb), "--seed", str(seed),
                    "--copies", str(copies), "--reuse"], check=True)
    return dump


def sparse_exfat(work, gib, inside):
    """An empty exFAT card image of gib GiB (sparse) with the bytes of inside written
    into its free space, 40 GiB in (or half way on a smaller card)."""
    image = work / ("exfat_%dG.img" % gib)
    if image.is_file():
        return image
    if not shutil.which("mkfs.exfat"):
        raise SystemExit("--sparse-gib needs mkfs.exfat (exfatprogs)")
    with open(image, "wb") as f:
        f.truncate(gib << 30)
    subprocess.run(["mkfs.exfat", str(image)], check=True, stdout=subprocess.DEVNULL)
    at = min(40 << 30, (gib << 30) // 2)
    with open(inside, "rb") as src, open(image, "r+b") as out:
        out.seek(at)
        shutil.copyfileobj(src, out, BLOCK)
    return image


def timed(command, cwd=None):
    """(wall seconds, peak RSS in MB of any process of the run) of one command."""
    start = time.monotonic()
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    if status:
        raise SystemExit("failed (%d): %s" % (status, " ".join(command)))
    return wall, usage.ru_maxrss / 1024


def runs_of(dump, script, jobs, before, upstream):
    """(name, command, where it writes) of every run on one dump."""
    me = [sys.executable, str(script), "-q", "-i", str(dump)] + jobs
    runs = [("recovercr3 (default)", me, "-o"),
            ("recovercr3 --jobs 1", me + ["--jobs", "1"], "-o"),
            ("recovercr3 --no-decode", me + ["--no-decode"], "-o"),
            ("recovercr3 --types cr3", me + ["--types", "cr3"], "-o"),
            ("recovercr3 --careful-read", me + ["--careful-read"], "-o")]
    if shutil.which("photorec"):
        runs.append(("PhotoRec 7 (paranoid)", ["photorec", "/log", "/d", "{out}/recup_dir",
                                               "/cmd", str(dump), PHOTOREC_OPTIONS], None))
    if before:
        runs.append(("before (default)", [sys.executable, before, "-q", "-i", str(dump)]
                     + jobs, "-o"))
    if os.path.isfile(upstream):
        runs.append(("upstream (CR3 only)", [sys.executable, upstream, "--input", str(dump)],
                     "--outdir"))
    return runs


def report(label, size, wall, cat_wall, rss, files):
    mbs = size / wall / 1e6
    cat = mbs / (size / cat_wall / 1e6) if cat_wall else 0
    print("%-28s %8.2f %8.0f %7.3f %7.0f %6d" % (label, wall, mbs, cat, rss, files), flush=True)


def main():
    if sys.argv[1:2] == ["--build"]:
        build_from_corpus(sys.argv[2], int(sys.argv[3]))
        return
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dumps", default="mixed,jpeg,cr3",
                   help="comma-separated: " + ", ".join(PROFILES))
    p.add_argument("--size-mb", type=int, default=2048, help="size of each dump")
    p.add_argument("--sparse-gib", type=int, default=0,
                   help="also time an exFAT card image of this many GiB (sparse)")
    p.add_argument("--workdir", default=os.environ.get("BENCH_WORK",
                                                       "/tmp/recovercr3-throughput"))
    p.add_argument("--out", default="/dev/shm/recovercr3-throughput-out"
                   if os.path.isdir("/dev/shm") else "",
                   help="where the runs write (default: a tmpfs, so that the disk is not "
                        "what is timed; else in the work directory)")
    p.add_argument("--jobs", default="", help="passed to recovercr3 as --jobs")
    p.add_argument("--before", default="", metavar="SCRIPT",
                   help="also time another recovercr3.py (an earlier version) the same way")
    a = p.parse_args()
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    script = PROJECT / "recovercr3.py"
    upstream = os.environ.get("UPSTREAM_RECOVERCR3", "")
    jobs = ["--jobs", a.jobs] if a.jobs else []
    out = Path(a.out) if a.out else work / "out"
    for name in a.dumps.split(","):
        dump = build(work, name, a.size_mb)
        size = dump.stat().st_size
        print("\n%s: %s, %.0f MB" % (name, dump, size / 1e6))
        print("%-28s %8s %8s %7s %7s %6s" % ("run", "wall_s", "MB/s", "x cat", "rss_MB",
                                             "files"))
        subprocess.run(["cat", str(dump)], stdout=subprocess.DEVNULL, check=True)
        cat_wall = min(timed(["sh", "-c", 'cat "$0" > /dev/null', str(dump)])[0]
                       for _ in range(3))
        report("cat", size, cat_wall, cat_wall, 0, 0)
        for label, command, flag in runs_of(dump, script, jobs, a.before, upstream):
            shutil.rmtree(out, ignore_errors=True)
            (out / "files").mkdir(parents=True)
            if flag is None:                # PhotoRec: its folder, and a scratch cwd
                command = [word.replace("{out}", str(out)) for word in command]
                wall, rss = timed(command, cwd=str(out))
            else:
                wall, rss = timed(command + [flag, str(out / "files")])
            files = sum(1 for f in out.rglob("*") if f.is_file() and not f.name.startswith(
                ("recovercr3", "index", "photorec")) and f.suffix != ".csv")
            report(label, size, wall, cat_wall, rss, files)
        shutil.rmtree(out, ignore_errors=True)
    if a.sparse_gib:
        image = sparse_exfat(work, a.sparse_gib, build(work, "mixed", a.size_mb))
        print("\nsparse exFAT card image: %s, %d GiB (the mixed dump in its free space)"
              % (image, a.sparse_gib))
        for label, extra in (("recovercr3 --name-by original", ["--name-by", "original"]),):
            shutil.rmtree(out, ignore_errors=True)
            wall, rss = timed([sys.executable, str(script), "-q", "-i", str(image), "-o",
                               str(out)] + extra + jobs)
            files = sum(1 for f in out.rglob("*") if f.is_file() and f.suffix != ".csv"
                        and not f.name.startswith(("recovercr3", "index")))
            report(label, image.stat().st_size, wall, 0, rss, files)
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
