"""asr-transcribe FILE... --model DIR: transcribe audio files, in the order given.

    asr-transcribe --model exp/model talk.flac call.wav          # FILE<TAB>TEXT per file, the model's own search
    asr-transcribe --model exp/model --greedy --format json a.flac
    asr-transcribe --model exp/model --output-dir subs *.flac    # subs/NAME.srt, .vtt and .json per input

Search: the one the model directory carries (search.yaml and lm/, written by asr-export: beam, CTC weight, LM,
lexicon), else greedy. --greedy decodes greedily anyway; --beam N and the options below change single settings
(without a search of the directory's own, the others come from conf/decode.yaml's `search`). A file without
speech (noise, music, hum, silence) gets an empty transcript; a file longer than segmenter.max_seconds
(conf/decode.yaml) is split at its pauses first.

Output on stdout, --format: text (`FILE<TAB>TEXT` per file), json (one object per file with word times), srt or
vtt (the subtitles of one file: these take a single input) or ctm (NIST CTM for scoring tools, one line per word,
NAME as utterance id). --output-dir DIR also writes DIR/NAME.srt, .vtt and .json per input. NAME is the input's
file name without its extension; an input whose NAME an earlier one took gets NAME-2, NAME-3, ...
A file that cannot be transcribed gives one line on stderr naming it and the problem; the other files are still
transcribed, and the exit status is 1. A bad model directory or option gives one line and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

import torch
from omegaconf import OmegaConf

from .. import compose_config
from ..outputs import FORMATS, SINGLE_FILE_FORMATS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asr-transcribe", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("files", nargs="*", help="audio files in any format soundfile reads; - reads paths from stdin")
    p.add_argument("--model", required=True, help="a model directory (asr-export or a training exp dir)")
    p.add_argument("--format", choices=FORMATS, default="text", help="what stdout gets (srt, vtt: one input)")
    p.add_argument("--output-dir", metavar="DIR", help="write NAME.srt, NAME.vtt and NAME.json here per input")
    search = p.add_mutually_exclusive_group()
    search.add_argument("--greedy", action="store_true",
                        help="greedy search (the fastest), whatever search the model directory carries")
    search.add_argument("--beam", type=int, default=None, metavar="N", help="beam search with N hypotheses (1: greedy)")
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


def search_config(args: argparse.Namespace, defaults: dict, bundled: dict | None = None) -> dict:
    """Search.from_config's settings: the model directory's own search (`bundled`) or, without one, conf/decode.yaml's
    `search` block (`defaults`) searching greedily unless --beam asks; then the command line's changes."""
    cfg = dict(bundled) if bundled is not None else {**defaults, "method": "greedy"}
    if args.greedy or args.beam == 1:
        cfg["method"] = "greedy"
    elif args.beam:
        cfg.update(method="beam", beam_size=args.beam)
    for key, value in (("ctc_weight", args.ctc_weight), ("lm_dir", args.lm), ("lm_weight", args.lm_weight),
                       ("lexicon_weight", args.lexicon_weight)):
        if value is not None:
            cfg[key] = value
    if args.lm and args.lm_weight is None and not cfg.get("lm_weight"):
        cfg["lm_weight"] = 0.3
    if cfg.get("method") != "beam":  # the language models take part in the beam only: load none
        cfg["lm_dir"] = None
    return cfg


def stream(args: argparse.Namespace, files: list[str]) -> int:
    from ..decoding.streaming import StreamingRecognizer, stream_file, stream_microphone
    from ..frontend import AudioError
    from ..modeldir import load_model_dir

    recognizer = StreamingRecognizer(*load_model_dir(args.model))

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


def check_outputs(args: argparse.Namespace, files: list[str]) -> str | None:
    """The problem with the output options for these inputs, or None."""
    if (args.stream or args.mic) and (args.format != "text" or args.output_dir):
        return "--stream and --mic print text only (no --format or --output-dir)"
    if args.format in SINGLE_FILE_FORMATS and len(files) != 1:
        return (f"--format {args.format} prints the subtitles of one input, got {len(files)}: use --output-dir DIR "
                f"for a .{args.format} per input")
    return None


def main(argv: list[str] | None = None) -> int:
    from ..decoding.search import Search
    from ..decoding.search_config import read_search_file
    from ..outputs import output_names, render, write_outputs
    from ..transcriber import Transcriber

    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    files = [line.strip() for line in sys.stdin if line.strip()] if args.files == ["-"] else args.files
    if not files and not args.mic:
        print("asr-transcribe: no input files (give paths, or - to read them from stdin)", file=sys.stderr)
        return 2
    problem = check_outputs(args, files)
    if problem:
        print(f"asr-transcribe: {problem}", file=sys.stderr)
        return 2
    try:
        if args.stream or args.mic:
            return stream(args, files)
        from ..segmenter import SegmenterOptions
        from ..vad import VadOptions

        conf = OmegaConf.to_container(compose_config("decode"))
        bundle = read_search_file(args.model)
        search = Search.from_config(search_config(args, conf["search"], bundle and bundle.search))
        transcriber = Transcriber.from_pretrained(args.model, search=search, segment=args.segment,
                                                  segmenter=SegmenterOptions(**conf["segmenter"]),
                                                  vad=VadOptions(**conf["vad"]))
        window = args.window or (bundle.window if bundle else conf.get("window"))
        if window:
            from ..models.attention.windowed import add_decode_window
            add_decode_window(transcriber.model, *window)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"asr-transcribe: {err}", file=sys.stderr)
        return 2
    failed = 0
    results = transcriber.transcribe_many(files)
    for result, name in zip(results, output_names(files)):
        if result.error:
            failed += 1
            print(f"asr-transcribe: {result.error}", file=sys.stderr)
            continue
        if args.output_dir:
            write_outputs(args.output_dir, name, result)
        print(render(result, args.format, name), end="", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
