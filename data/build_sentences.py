"""Rebuild data/sentiment_sentences.tsv.gz from the vaderSentiment 3.3.2 source archive on PyPI.

    pip download --no-deps --no-binary :all: vadersentiment==3.3.2 -d /tmp/vader
    python data/build_sentences.py /tmp/vader/vaderSentiment-3.3.2.tar.gz
    python data/build_sentences.py /tmp/vader/vaderSentiment-3.3.2.tar.gz --check

The archive carries the sentence-level ground truth of Hutto & Gilbert (2014), "VADER: A Parsimonious
Rule-based Model for Sentiment Analysis of Social Media Text" (ICWSM): every sentence rated -4..+4 by
at least 20 people, the mean kept. The wheel does not include it, hence the source archive. The
output keeps every row as published (domain, id, mean rating, text); which ratings count as positive
or negative is the loader's choice (course_utils/text.py). Deterministic: fixed gzip header.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
INNER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
DOMAINS = {"movies": "movieReviewSnippets", "tweets": "tweets", "amazon": "amazonReviewSnippets",
           "nyt": "nytEditorialSnippets"}
OUT = "sentiment_sentences.tsv.gz"


def ground_truth(sdist: Path) -> dict[str, bytes]:
    """domain -> the raw ``*_GroundTruth.txt`` bytes, read from the archive in memory."""
    raw = sdist.read_bytes()
    if hashlib.sha256(raw).hexdigest() != SDIST_SHA256:
        raise SystemExit(f"{sdist} is not vaderSentiment-3.3.2.tar.gz (sha256 differs); download it again")
    with tarfile.open(fileobj=io.BytesIO(raw)) as outer:
        inner = outer.extractfile(INNER).read()
    with tarfile.open(fileobj=io.BytesIO(inner)) as tar:
        return {d: tar.extractfile(f"hutto_ICWSM_2014/{name}_GroundTruth.txt").read() for d, name in DOMAINS.items()}


def table(files: dict[str, bytes]) -> str:
    """One TSV: domain, id, rating, text. Tabs and line breaks inside a text become spaces."""
    lines = ["domain\tid\trating\ttext"]
    for domain, raw in files.items():
        for line in raw.decode("utf-8").splitlines():
            if not line.strip():
                continue
            sid, rating, text = line.split("\t", 2)
            lines.append(f"{domain}\t{sid.strip()}\t{float(rating):.4f}\t{' '.join(text.split())}")
    return "\n".join(lines) + "\n"


def gz_bytes(text: str) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as f:
        f.write(text.encode("utf-8"))
    return buf.getvalue()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sdist", type=Path, help="vaderSentiment-3.3.2.tar.gz (pip download, see above)")
    parser.add_argument("--check", action="store_true", help="compare with the registry instead of writing")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))
    from course_utils.datafiles import FILES

    data = gz_bytes(table(ground_truth(args.sdist)))
    digest, expected = hashlib.sha256(data).hexdigest(), FILES[OUT]["sha256"]
    print(f"{OUT}: {len(data) / 1e6:.2f} MB sha256 {digest} "
          f"({'matches registry' if digest == expected else 'DIFFERS from registry ' + expected})")
    if not args.check:
        (HERE / OUT).write_bytes(data)
    return 0 if digest == expected or not args.check else 1


if __name__ == "__main__":
    raise SystemExit(main())
