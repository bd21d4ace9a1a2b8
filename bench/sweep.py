#!/usr/bin/env python3
"""recovercr3 against PhotoRec on many bench cards, not one.

    python3 bench/sweep.py [--seeds 1-20] [--scenarios deletions,formatted]
                           [--shapes 512:4096,2100:32768] [--tools product,photorec]
                           [--workdir /tmp/recovercr3-sweep] [--keep-cards-mb 600]

For every scenario, card shape (size in MB : cluster size) and seed it builds the
card with ../shared/bench/mkcard.py (same media and seed give the same card), runs
each tool on it and scores the output with ../shared/bench/score.py -v. It prints
one row per card: files recovered by each tool, and the outputs recovercr3 left
where the files it calls complete go (anywhere but truncated/ and damaged/) that
are not byte-identical to an original. recovercr3 runs with --name-by original:
the names column counts the files it gave the card's path that have it (right)
and that do not (wrong; it must be 0), of those it recovered exactly; PhotoRec
gives none. Both must be good on every card: recovered at least
PhotoRec's count, and no such output - but for a media file that carries bytes
after its own end (the corpus's flame.avi: 16 after its RIFF), counted apart in the
last column: only its structure can be carved.

PhotoRec's score of a card is kept in the work directory (it does not change with
our code); cards up to --keep-cards-mb are kept too, bigger ones are built again
when needed and deleted after use. Timing is not the point here: see throughput.py.
"""

import argparse
import csv
import hashlib
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
BENCH = PROJECT.parent / "shared" / "bench"
MEDIA = Path(os.environ.get("BENCH_WORK", "/tmp/recovercr3-bench")) / "media"
TIMEOUT = 1800
REPORT_PREFIX = "recovercr3-report"


def seeds(text):
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def shapes(text):
    return [tuple(int(n) for n in item.split(":")) for item in text.split(",")]


def by_format(score_tsv, formats):
    """{format: (recovered, expected)} of the "all" rows of a score.py table."""
    found = {}
    for line in Path(score_tsv).read_text().splitlines():
        cells = line.split("\t")
        if len(cells) > 3 and cells[0] in formats and cells[1] == "all":
            found[cells[0]] = (int(cells[3]), int(cells[2]))
    return found


def total(score_tsv, kind="all"):
    """(recovered, expected) of the TOTAL row of a score.py table: all files, or the
    fragmented ones (kind "frag")."""
    for line in Path(score_tsv).read_text().splitlines():
        cells = line.split("\t")
        if cells[:2] == ["TOTAL", kind]:
            return int(cells[3]), int(cells[2])
    raise SystemExit("no TOTAL %s row in %s" % (kind, score_tsv))


def piece_class(count):
    return str(count) if count < 4 else "4+"


def fragmented_by_pieces(truth, outdir):
    """{(format, "2"|"3"|"4+"): [recovered, expected]}: the card's fragmented files by
    format and by how many pieces they are in, and those recovercr3 gave back
    byte-identical anywhere in its output (put together, or a guess in damaged/): a
    row of its report that starts where the file does, with its sha256 (a copy of
    the same media elsewhere on the card does not count)."""
    expected = {}
    for line in Path(truth).read_text().splitlines():
        cells = line.split("\t")
        if len(cells) < 9 or cells[0] == "path" or cells[5] not in ("present", "deleted") \
                or cells[6] != "1":
            continue
        start = int(cells[8].split(",")[0].split("-")[0])
        expected[(start, cells[4])] = (cells[2], piece_class(int(cells[7])))
    counts = {}
    for key in expected.values():
        counts.setdefault(key, [0, 0])[1] += 1
    for report in Path(outdir).glob(REPORT_PREFIX + "*.csv"):
        with open(str(report), newline="") as f:
            for row in csv.DictReader(f):
                if not row["file"]:
                    continue
                with open(str(Path(outdir) / row["file"]), "rb") as out:
                    sha = hashlib.sha256()
                    for block in iter(lambda: out.read(1 << 20), b""):
                        sha.update(block)
                key = expected.pop((int(row["offset"]), sha.hexdigest()), None)
                if key:
                    counts[key][0] += 1
    return counts


def own_ends():
    """{sha256 of a media file's structure: name} for the media files that carry bytes
    after their own end (the corpus's flame.avi has 16 after its RIFF): the structure
    is all a carver can know, and score.py calls it partial."""
    known = {}
    for root, _, files in os.walk(str(MEDIA), followlinks=True):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                head = f.read(8)
                if head[:4] != b"RIFF":
                    continue
                end = 8 + struct.unpack("<I", head[4:])[0]
                f.seek(0)
                data = f.read()
            if end < len(data):
                known[hashlib.sha256(data[:end]).hexdigest()] = name
    return known


STATUS_FOLDERS = ("truncated", "damaged")
CONTACT_SHEET = re.compile(r"index(-\d+)?\.html")       # our own page, not a carved file
OWN_FILES = ("recovercr3.log", ".recovercr3-state")        # the run's log, the resume state


def not_exact_at_top(verbose_text, outdir, known):
    """Outputs where complete files go (all but truncated/, damaged/ and what is in
    them) that match no original."""
    top = str(outdir) + "/"
    bad = []
    for line in verbose_text.splitlines():
        cells = line.split("\t")
        if len(cells) < 3 or cells[0] in ("recovered", "dup") or not cells[2].startswith(top):
            continue
        rest = cells[2][len(top):]
        if rest.split("/")[0].split("-")[0] in STATUS_FOLDERS or rest.startswith(REPORT_PREFIX) \
                or CONTACT_SHEET.fullmatch(rest) or rest in OWN_FILES:
            continue
        with open(cells[2], "rb") as f:
            name = known.get(hashlib.sha256(f.read()).hexdigest())
        bad.append("%s:%s%s" % (cells[0], rest, "=%s-structure" % name if name else ""))
    return bad


def real_problems(bad):
    return [item for item in bad if not item.endswith("-structure")]


def names(truth, outdir):
    """(right, wrong, exact): of the outputs byte-identical to a file of the card
    (exact), those whose original_name is that file's path (right); and the outputs,
    whole or not, named with a path whose file neither has their bytes nor starts
    where they do (wrong). A damaged output at the start of the file it is named
    after has its right name; a name without a folder (from a folder the card's
    file system no longer places) is that of a file of that name in any folder."""
    paths = {}
    shas = set()
    for line in Path(truth).read_text().splitlines():
        cells = line.split("\t")
        if len(cells) < 9 or cells[0] == "path" or line.startswith("#"):
            continue
        start = int(cells[8].split(",")[0].split("-")[0])
        paths.setdefault(cells[0], []).append((cells[4], start))
        if cells[5] in ("present", "deleted"):
            shas.add(cells[4])
    right = wrong = exact = 0
    for report in Path(outdir).glob(REPORT_PREFIX + "*.csv"):
        with open(str(report), newline="") as f:
            for row in csv.DictReader(f):
                if not row["file"]:
                    continue
                with open(str(Path(outdir) / row["file"]), "rb") as out:
                    sha = hashlib.sha256(out.read()).hexdigest()
                exact += sha in shas
                if not row["original_name"]:
                    continue
                files = paths.get(row["original_name"], [])
                if "/" not in row["original_name"]:     # a name from a folder not known
                    files = [item for path, items in paths.items()
                             if path.rsplit("/", 1)[-1] == row["original_name"]
                             for item in items]
                if any(sha == their for their, _ in files):
                    right += sha in shas
                elif not any(int(row["offset"]) == start for _, start in files):
                    wrong += 1
    return right, wrong, exact


def make_card(card, scenario, size_mb, cluster, seed):
    if card.exists() and Path(str(card) + ".truth.tsv").exists():
        return
    subprocess.run([sys.executable, str(BENCH / "mkcard.py"), "--media", str(MEDIA),
                    "--out", str(card), "--scenario", scenario, "--seed", str(seed),
                    "--cluster", str(cluster), "--size-mb", str(size_mb), "-q"],
                   check=True, stdout=subprocess.DEVNULL)


def run_photorec(card, resdir):
    score = resdir / "photorec_raw.score.tsv"
    if not score.exists():
        env = dict(os.environ, KEEP_OUTPUT="0", TOOL_TIMEOUT=str(TIMEOUT))
        subprocess.run(["bash", str(BENCH / "peers.sh"), str(card), str(resdir),
                        "photorec_raw"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return total(score), total(score, "frag")


def run_product(card, resdir, script, known):
    out = resdir / "product"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    with open(str(resdir / "product.log"), "w") as log:
        subprocess.run([sys.executable, str(script), "-q", "--name-by", "original",
                        "--input", str(card), "--outdir", str(out)], stdout=log, stderr=log,
                       timeout=TIMEOUT)
    truth = str(card) + ".truth.tsv"
    verbose = subprocess.run([sys.executable, str(BENCH / "score.py"), truth, str(out), "-v"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True).stdout
    with open(str(resdir / "product.score.tsv"), "w") as f:
        subprocess.run([sys.executable, str(BENCH / "score.py"), truth, str(out)], stdout=f)
    bad = not_exact_at_top(verbose, out, known)
    by_pieces = fragmented_by_pieces(truth, out)
    named = names(truth, out)
    subprocess.run(["rm", "-rf", str(out)], check=True)
    score = resdir / "product.score.tsv"
    return total(score), total(score, "frag"), by_pieces, bad, named


def main():
    global MEDIA
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=seeds, default=seeds("1-20"))
    parser.add_argument("--scenarios", default="deletions,formatted")
    parser.add_argument("--shapes", type=shapes, default=shapes("512:4096,2100:32768"))
    parser.add_argument("--tools", default="product,photorec")
    parser.add_argument("--script", type=Path, default=PROJECT / "recovercr3.py")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/recovercr3-sweep"))
    parser.add_argument("--keep-cards-mb", type=int, default=600)
    parser.add_argument("--media", type=Path, default=MEDIA,
                        help="media folder for the cards (bench/othermedia.py --with makes "
                             "one with the other cameras' formats too)")
    parser.add_argument("--formats", default="",
                        help="comma-separated formats to count apart, for both tools")
    args = parser.parse_args()
    MEDIA = args.media
    formats = [f for f in args.formats.split(",") if f]
    format_sums = {f: {"product": [0, 0], "photorec": [0, 0]} for f in formats}
    if not MEDIA.is_dir():
        subprocess.run(["bash", str(BENCH / "media.sh"), str(MEDIA)], check=True)
    tools = args.tools.split(",")
    known = own_ends()
    print("card\tproduct\tphotorec\tproduct_ge_photorec\tnot_exact_in_outdir"
          "\tstructure_only\tfrag_product\tfrag_photorec\tfrag_by_pieces"
          "\tnames_right/exact\tnames_wrong")
    failures = 0
    sums = {}
    name_sums = [0, 0, 0]
    for size_mb, cluster in args.shapes:
        for scenario in args.scenarios.split(","):
            for seed in args.seeds:
                name = "%s_%d_%d_%d" % (scenario, size_mb, cluster, seed)
                resdir = args.workdir / name
                resdir.mkdir(parents=True, exist_ok=True)
                card = args.workdir / "cards" / (name + ".img")
                card.parent.mkdir(parents=True, exist_ok=True)
                make_card(card, scenario, size_mb, cluster, seed)
                pr, pr_frag = (run_photorec(card, resdir) if "photorec" in tools
                               else (None, None))
                ours, frag, by_pieces, bad, named = (
                    run_product(card, resdir, args.script, known) if "product" in tools
                    else (None, None, {}, [], (0, 0, 0)))
                name_sums = [a + b for a, b in zip(name_sums, named)]
                for tool in ("product", "photorec_raw"):
                    score = resdir / (tool + ".score.tsv")
                    if formats and score.exists() and tool.split("_")[0] in tools:
                        for fmt, (got, want) in by_format(score, formats).items():
                            sums_of = format_sums[fmt][tool.split("_")[0]]
                            sums_of[0] += got
                            sums_of[1] += want
                failures += bool(named[1])
                ok = ours is None or pr is None or ours[0] >= pr[0]
                failures += (not ok) + bool(real_problems(bad))
                for key, (got, want) in by_pieces.items():
                    total_of = sums.setdefault(key, [0, 0])
                    total_of[0] += got
                    total_of[1] += want
                print("%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%d/%d\t%d" % (
                    name, "%d/%d" % ours if ours else "-", "%d/%d" % pr if pr else "-",
                    "yes" if ok else "NO", " ".join(real_problems(bad)) or "none",
                    len(bad) - len(real_problems(bad)), "%d/%d" % frag if frag else "-",
                    "%d/%d" % pr_frag if pr_frag else "-",
                    " ".join("%s/%s:%d/%d" % (*key, *by_pieces[key])
                             for key in sorted(by_pieces)) or "none",
                    named[0], named[2], named[1]), flush=True)
                if size_mb > args.keep_cards_mb:
                    for path in (card, Path(str(card) + ".truth.tsv")):
                        if path.exists():
                            path.unlink()
    print("fragmented files recovered exactly, by format and pieces: " + " ".join(
        "%s/%s:%d/%d" % (*key, *sums[key]) for key in sorted(sums)))
    for part in (0, 1):
        kinds = sorted({key[part] for key in sums})
        print("  by %s: " % ("format", "pieces")[part] + " ".join(
            "%s:%d/%d" % (kind, sum(got for key, (got, _) in sums.items() if key[part] == kind),
                          sum(want for key, (_, want) in sums.items() if key[part] == kind))
            for kind in kinds))
    print("names: %d of the %d files recovered exactly have their path on the card; "
          "%d wrong names" % (name_sums[0], name_sums[2], name_sums[1]))
    for fmt in formats:
        print("%s: product %d/%d, photorec %d/%d" % (fmt, *format_sums[fmt]["product"],
                                                     *format_sums[fmt]["photorec"]))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
