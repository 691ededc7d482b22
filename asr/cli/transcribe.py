"""asr-transcribe FILE... --model DIR: transcribe audio files, in the order given.

Output formats: text (`FILE<TAB>TEXT` per file), json (one object per file with word times) or srt (subtitles,
one block per file). Greedy search unless --beam N > 1; the beam settings come from conf/decode.yaml
(`search`, `segmenter`, `vad`) and the options below override them. A file without speech (noise, music, hum,
silence) gets an empty transcript; a file longer than segmenter.max_seconds is split at its pauses first. A
file that cannot be transcribed gives one line on stderr naming it and the problem; the other files are still
transcribed, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from . import CONF_DIR


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asr-transcribe", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", help="audio files in any format soundfile reads; - reads paths from stdin")
    p.add_argument("--model", required=True, help="a model directory (asr-export or a training exp dir)")
    p.add_argument("--format", choices=["text", "json", "srt"], default="text")
    p.add_argument("--beam", type=int, default=None, metavar="N", help="beam search with N hypotheses (1: greedy)")
    p.add_argument("--ctc-weight", type=float, default=None, help="joint CTC weight in the beam")
    p.add_argument("--lm", default=None, metavar="DIR", help="a character LM (asr-train-lm) for the beam")
    p.add_argument("--lm-weight", type=float, default=None)
    p.add_argument("--lexicon-weight", type=float, default=None,
                   help="word LM from the LM directory's lexicon.tsv (and bigrams.tsv), in the beam")
    p.add_argument("--segment", action=argparse.BooleanOptionalAction, default=True,
                   help="split files longer than segmenter.max_seconds (conf/decode.yaml) at their pauses and "
                        "decode the pieces one by one (the default); --no-segment decodes them whole")
    p.add_argument("--window", type=int, nargs=2, default=None, metavar=("BEFORE", "AFTER"),
                   help="decode a soft attention within these listener frames around its previous peak")
    p.add_argument("--stream", action="store_true",
                   help="recognize each file as a live stream, printing partial text (streaming models)")
    p.add_argument("--mic", action="store_true", help="stream from the microphone (needs sounddevice)")
    p.add_argument("--chunk-ms", type=float, default=200.0, help="stream chunk size")
    p.add_argument("--threads", type=int, default=2)
    return p


def search_from_args(args: argparse.Namespace, defaults: dict):
    """The search of conf/decode.yaml's `search` block (`defaults`) with the command line's changes."""
    from ..decoding.search import Search

    cfg = dict(defaults)
    cfg["method"] = "beam" if args.beam and args.beam > 1 else "greedy"  # greedy unless asked: the fastest
    if args.beam:
        cfg["beam_size"] = args.beam
    for key, value in (("ctc_weight", args.ctc_weight), ("lm_dir", args.lm), ("lm_weight", args.lm_weight),
                       ("lexicon_weight", args.lexicon_weight)):
        if value is not None:
            cfg[key] = value
    if args.lm and args.lm_weight is None and not cfg["lm_weight"]:
        cfg["lm_weight"] = 0.3
    return Search.from_config(cfg)


def stream(args: argparse.Namespace, files: list[str]) -> int:
    from ..decoding.streaming import StreamingRecognizer, stream_file, stream_microphone
    from ..frontend import AudioError

    recognizer = StreamingRecognizer.from_pretrained(args.model)

    def show(text: str) -> None:
        print(f"\r{text}", end="", file=sys.stderr, flush=True)

    if args.mic:
        print(stream_microphone(recognizer, args.chunk_ms, show), flush=True)
        return 0
    failed = 0
    for path in files:
        try:
            text = stream_file(recognizer, path, args.chunk_ms, show)
            print(f"\r{path}\t{text}", flush=True)
        except AudioError as err:
            failed += 1
            print(f"asr-transcribe: {err}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    from ..decoding.timestamps import to_srt, words_as_dicts
    from ..transcriber import Transcriber

    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    files = [line.strip() for line in sys.stdin if line.strip()] if args.files == ["-"] else args.files
    if not files and not args.mic:
        print("asr-transcribe: no input files (give paths, or - to read them from stdin)", file=sys.stderr)
        return 2
    try:
        if args.stream or args.mic:
            return stream(args, files)
        from ..segmenter import SegmenterOptions
        from ..vad import VadOptions

        conf = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "decode.yaml"))
        transcriber = Transcriber.from_pretrained(args.model, search=search_from_args(args, conf["search"]),
                                                  segment=args.segment, segmenter=SegmenterOptions(**conf["segmenter"]),
                                                  vad=VadOptions(**conf["vad"]))
        window = args.window or conf.get("window")
        if window:
            from ..models.attention.windowed import add_decode_window
            add_decode_window(transcriber.model, *window)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"asr-transcribe: {err}", file=sys.stderr)
        return 2
    failed = 0
    for result in transcriber.transcribe_many(files):
        if result.error:
            failed += 1
            print(f"asr-transcribe: {result.error}", file=sys.stderr)
        elif args.format == "json":
            print(json.dumps({"file": result.source, "text": result.text, "duration": result.duration,
                              "words": words_as_dicts(result.words)}), flush=True)
        elif args.format == "srt":
            print(f"# {result.source}\n{to_srt(result.words)}", end="", flush=True)
        else:
            print(f"{result.source}\t{result.text}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
