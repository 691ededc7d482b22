"""Measure streaming recognition of a model directory on a manifest, against offline greedy decoding.

    python -m asr.bench.streaming --model recipes/mini/exp/streaming --manifest M.jsonl [--chunk-ms 200]

Every utterance is fed to a `StreamingRecognizer` in chunks of `--chunk-ms` as if it arrived live, and also
decoded offline with `greedy_decode`. Reported: per-token emission delay (audio time received when the token
was emitted, minus the end of the 40 ms listener frame it attended; tokens that attended no frame are counted
apart), compute per chunk (median and p95 ms, wall and CPU time), real-time factor, WER/CER of streaming and
offline and how many streaming results equal offline. Writes --out (streaming_bench.json in the working directory).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data.librispeech import read_manifest
from ..decoding.greedy import greedy_decode
from ..decoding.streaming import StreamingRecognizer
from ..frontend import SAMPLE_RATE, AudioError, load_audio
from ..scoring import score


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def run(model_dir: str | Path, manifest: str | Path, chunk_ms: float, max_utts: int | None,
        max_len_ratio: float) -> dict:
    recognizer = StreamingRecognizer.from_pretrained(model_dir, max_len_ratio=max_len_ratio)
    model, features = recognizer.model, recognizer.features
    frame_seconds = model.listener.reduction * features.hop / SAMPLE_RATE
    utts = read_manifest(manifest)[:max_utts]
    chunk = int(round(SAMPLE_RATE * chunk_ms / 1000))
    refs, online, offline = {}, {}, {}
    chunk_ms_list, chunk_cpu_ms, delays = [], [], []
    unattended, same, audio, stream_seconds, offline_seconds = 0, 0, 0.0, 0.0, 0.0
    for utt in tqdm(utts, desc=f"stream {Path(manifest).stem}", unit="utt"):
        try:
            wav = load_audio(utt.audio)
        except AudioError as err:
            print(f"asr.bench.streaming: skipped: {err}", file=sys.stderr)
            continue
        refs[utt.id] = utt.text
        audio += wav.numel() / SAMPLE_RATE
        start = time.perf_counter()
        feats = features.norm(features.logmel(wav))
        tokens, _ = greedy_decode(model, feats[None], torch.tensor([len(feats)]), max_len_ratio)
        offline_seconds += time.perf_counter() - start
        offline[utt.id] = recognizer.tokenizer.decode(tokens[0])
        recognizer.reset()
        for begin in range(0, wav.numel(), chunk):
            piece = wav[begin: begin + chunk]
            start, start_cpu = time.perf_counter(), time.thread_time()
            recognizer.accept(piece)
            spent = time.perf_counter() - start
            stream_seconds += spent
            if piece.numel() == chunk:  # the short last piece is not a chunk of the measured size
                chunk_ms_list.append(spent * 1000)
                chunk_cpu_ms.append((time.thread_time() - start_cpu) * 1000)
        start = time.perf_counter()
        recognizer.finish()
        stream_seconds += time.perf_counter() - start
        online[utt.id] = recognizer.text
        same += recognizer.tokens == tokens[0]
        for e in recognizer.emissions:
            if e.frame < 0:
                unattended += 1
            else:
                delays.append((e.audio_seconds - (e.frame + 1) * frame_seconds) * 1000)
    streaming_score, offline_score = score(refs, online), score(refs, offline)
    return {
        "model": str(model_dir), "manifest": str(manifest), "utterances": len(refs), "chunk_ms": chunk_ms,
        "threads": torch.get_num_threads(), "audio_seconds": round(audio, 2),
        "delay_ms": {"median": percentile(delays, 50), "p95": percentile(delays, 95), "tokens": len(delays),
                     "tokens_without_frame": unattended},
        "chunk_compute_ms": {"median": percentile(chunk_ms_list, 50), "p95": percentile(chunk_ms_list, 95),
                             "chunks": len(chunk_ms_list)},
        # CPU time of this thread: what the chunk costs on an otherwise idle core (wall time includes waiting)
        "chunk_cpu_ms": {"median": percentile(chunk_cpu_ms, 50), "p95": percentile(chunk_cpu_ms, 95)},
        "rtf": {"streaming": round(stream_seconds / max(audio, 1e-9), 4),
                "offline": round(offline_seconds / max(audio, 1e-9), 4)},
        "wer": {"streaming": streaming_score["wer"], "offline": offline_score["wer"],
                "ratio": round(streaming_score["wer"] / offline_score["wer"], 4) if offline_score["wer"] else None},
        "cer": {"streaming": streaming_score["cer"], "offline": offline_score["cer"]},
        "identical_to_offline": same,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m asr.bench.streaming", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a model directory with a ulstm listener and monotonic or MoChA")
    p.add_argument("--manifest", required=True, help="a manifest (.jsonl) from asr-prepare")
    p.add_argument("--chunk-ms", type=float, default=200.0)
    p.add_argument("--max-utts", type=int, default=None)
    p.add_argument("--max-len-ratio", type=float, default=1.0, help="token limit per listener frame, as asr-decode")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("streaming_bench.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        result = run(args.model, args.manifest, args.chunk_ms, args.max_utts, args.max_len_ratio)
    except (FileNotFoundError, ValueError) as err:
        print(f"asr.bench.streaming: {err}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
