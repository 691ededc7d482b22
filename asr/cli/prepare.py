r"""asr-prepare: LibriSpeech-layout subsets -> manifests, a tokenizer and normalization stats.

    asr-prepare --corpus data/LibriSpeech --subsets train-synth dev-seen --train train-synth --out data/manifests
    asr-prepare --corpus data/LibriSpeech --subsets train-clean-100 train-clean-360 dev-clean \
        --train train-clean-100 train-clean-360 --combine train --tokenizer unigram --vocab-size 5000 --out m

Writes <out>/<subset>.jsonl per subset; from the training subsets, <out>/tokenizer.json (characters, or
SentencePiece unigram/bpe) and <out>/norm.json; with --combine NAME, <out>/NAME.jsonl holding every training
subset. --steps runs some of manifests, stats, tokenizer. Each is skipped when its output exists (--force redoes it).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from tqdm import tqdm

from ..data.librispeech import read_manifest, scan_subset, write_manifest
from ..data.tokenizer import build_tokenizer
from ..frontend import AudioError, GlobalNorm, LogMel, load_audio

STEPS = ("manifests", "stats", "tokenizer")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="asr-prepare", description=__doc__.split("\n\n")[0].split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[:2]).split("\n", 1)[1])
    p.add_argument("--corpus", required=True, help="the LibriSpeech/ folder holding the subsets")
    p.add_argument("--subsets", nargs="+", required=True)
    p.add_argument("--train", nargs="+", help="subsets whose text builds the tokenizer and whose audio gives the stats")
    p.add_argument("--combine", metavar="NAME", help="also write the training subsets as one manifest NAME.jsonl")
    p.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS), help="what to do (default: all)")
    p.add_argument("--tokenizer", default="char", choices=["char", "unigram", "bpe"],
                   help="characters, or a SentencePiece model of this type")
    p.add_argument("--vocab-size", type=int, default=1000, help="SentencePiece vocabulary, special symbols included")
    p.add_argument("--character-coverage", type=float, default=1.0, help="SentencePiece character coverage")
    p.add_argument("--out", required=True, help="folder for manifests, tokenizer.json and norm.json")
    p.add_argument("--n-mels", type=int, default=80, help="the features of the stats: asr-train's features.n_mels")
    p.add_argument("--n-fft", type=int, default=512, help="... features.n_fft")
    p.add_argument("--win-length", type=int, default=400, help="... features.win_length (samples)")
    p.add_argument("--stats-utts", type=int, default=1000,
                   help="random training utterances the normalization stats are taken from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="redo stages whose output exists")
    return p.parse_args(argv)


def prepare_subset(corpus: Path, subset: str, out: Path, force: bool) -> None:
    path = out / f"{subset}.jsonl"
    if path.exists() and not force:
        print(f"{subset}: {path} exists, skipped")
        return
    utts, problems = scan_subset(corpus / subset)
    for line in problems:
        print(f"warning: {line}", file=sys.stderr)
    if not utts:
        raise ValueError(f"{corpus / subset}: no usable utterances")
    write_manifest(utts, path)
    hours = sum(u.duration for u in utts) / 3600
    print(f"{subset}: {len(utts)} utterances, {hours:.2f} h, {len(problems)} problems -> {path}")


def compute_stats(utts: list, logmel: LogMel, sample: int, seed: int) -> GlobalNorm:
    """Mean and deviation of `logmel`'s features over `sample` utterances, recorded with its settings (training
    refuses stats of other features)."""
    chosen = random.Random(seed).sample(utts, min(sample, len(utts)))
    feats = []
    for u in tqdm(chosen, desc="normalization stats", unit="utt", leave=False):
        try:
            feats.append(logmel(load_audio(u.audio)))
        except AudioError as err:
            print(f"warning: {err}", file=sys.stderr)
    return GlobalNorm.from_features(feats, logmel.settings)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    corpus, out = Path(args.corpus), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        if "manifests" in args.steps:
            for subset in args.subsets:
                prepare_subset(corpus, subset, out, args.force)
        if args.train:
            train = [u for name in args.train for u in read_manifest(out / f"{name}.jsonl")]
            combined = out / f"{args.combine}.jsonl"
            if args.combine and "manifests" in args.steps and (args.force or not combined.exists()):
                write_manifest(train, combined)
                print(f"{args.combine}: {len(train)} utterances of {' '.join(args.train)} -> {combined}")
            if "tokenizer" in args.steps and (args.force or not (out / "tokenizer.json").exists()):
                tokenizer = build_tokenizer(args.tokenizer, (u.text for u in train), args.vocab_size,
                                            args.character_coverage)
                tokenizer.save(out / "tokenizer.json")
                print(f"tokenizer: {args.tokenizer}, {len(tokenizer)} symbols -> {out / 'tokenizer.json'}")
            if "stats" in args.steps and (args.force or not (out / "norm.json").exists()):
                logmel = LogMel(args.n_mels, args.n_fft, args.win_length)
                compute_stats(train, logmel, args.stats_utts, args.seed).save(out / "norm.json")
                print(f"normalization stats -> {out / 'norm.json'}")
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        sys.exit(f"asr-prepare: {err}")


if __name__ == "__main__":
    main()
