"""Robustness benchmark of a model directory: WER under noise, babble, reverberation, a telephone channel, unseen
voices, silence at the edges and real recordings, and what it makes of sounds that are not speech.

    python -m asr.bench.robustness --model exp/model --manifests data/manifests --lm exp/lm \
        [--baseline OTHER_MODEL_DIR] [--real DIR_WITH_LibriSpeech] [--out robustness.json]

Every condition is built from the test-seen utterances (so `clean` is test-seen itself) with the toolkit's own
augmentation, under seeds that training never draws (training's augmentation draws from "<seed>:augment:...";
this benchmark from "robustness:..."), babble from test-unseen utterances that training never heard, and
simulated rooms from another seed. `unseen_variants` is the test-unseen sentences spoken with espeak-ng variants
that the corpus keeps out of training. `real` is a handful of real LibriSpeech recordings (a LibriSpeech-layout
directory): too few to compare models on, reported because it is the only real speech here. Each condition is
transcribed the way a user transcribes, through `Transcriber` with the recipe's search (conf/decode.yaml with the
LM directory), its voice-activity gate and segmentation included. `nonspeech` counts the clips of noise, tones,
music-like sound and silence that come out empty; `looping` counts transcripts in which a word 4-gram occurs
three times or more.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from .. import compose_config
from ..data.augment import Babble, GeneratedNoise, mix_at_snr, reverberate, simulate_rirs, telephone
from ..data.librispeech import Utterance, read_manifest, scan_subset
from ..data.noise import torch_generator
from ..frontend import SAMPLE_RATE, load_audio
from ..scoring import score

SEED = "robustness"
NOISE_SNRS = {"noise_20db": 20.0, "noise_10db": 10.0, "noise_5db": 5.0, "noise_0db": 0.0}
BABBLE_SNR = 10.0
BABBLE_TALKERS = (3, 6)
ROOMS = 50
ROOM_SEED = 424242  # training simulates its rooms from augment.seed; a different bank of rooms here
EDGE_SILENCE = (0.5, 1.5)  # seconds of silence added before and after each utterance
NONSPEECH_CLIPS = 60
LOOP_NGRAM, LOOP_TIMES = 4, 3

Waves = dict[str, torch.Tensor]


def rng_for(*parts) -> random.Random:
    """A generator of its own for each (condition, utterance): conditions do not depend on each other's order."""
    return random.Random(":".join([SEED, *map(str, parts)]))


def repeats_ngram(text: str, n: int = LOOP_NGRAM, times: int = LOOP_TIMES) -> bool:
    """True when some word n-gram occurs at least `times` times in `text` (a looping hypothesis)."""
    words = text.split()
    counts = Counter(tuple(words[i: i + n]) for i in range(len(words) - n + 1))
    return bool(counts) and max(counts.values()) >= times


def noisy(clean: Waves, snr_db: float, name: str) -> Waves:
    """Each utterance with generated noise (a kind drawn per utterance) at `snr_db`."""
    source = GeneratedNoise()
    out = {}
    for uid, wav in clean.items():
        rng = rng_for(name, uid)
        out[uid] = mix_at_snr(wav, source.sample(wav.numel(), rng), snr_db)
    return out


def babble(clean: Waves, talkers: list[torch.Tensor], snr_db: float) -> Waves:
    """Each utterance over a crowd of 3-6 other voices saying other sentences (test-unseen utterances)."""
    crowd = Babble(talkers.__getitem__, len(talkers), BABBLE_TALKERS)
    return {uid: mix_at_snr(wav, crowd.sample(wav.numel(), rng_for("babble", uid)), snr_db)
            for uid, wav in clean.items()}


def reverberant(clean: Waves) -> Waves:
    """Each utterance convolved with one of ROOMS simulated rooms (direct-path delay compensated)."""
    rooms = simulate_rirs(ROOMS, ROOM_SEED)
    return {uid: reverberate(wav, rooms[rng_for("reverb", uid).randrange(len(rooms))]) for uid, wav in clean.items()}


def edge_silence(clean: Waves) -> Waves:
    """Each utterance with 0.5-1.5 s of near silence (a -70 dB noise floor) before and after it."""
    out = {}
    for uid, wav in clean.items():
        rng = rng_for("edges", uid)
        before, after = (round(rng.uniform(*EDGE_SILENCE) * SAMPLE_RATE) for _ in range(2))
        floor = 10 ** (-70 / 20) * torch.randn(before + wav.numel() + after, generator=torch_generator(rng))
        floor[before: before + wav.numel()] += wav
        out[uid] = floor
    return out


def nonspeech_clips(count: int = NONSPEECH_CLIPS) -> Waves:
    """Noise of every generated kind at several levels and lengths, clipped tones and digital silence."""
    source = GeneratedNoise()
    clips = {}
    for i in range(count):
        rng = rng_for("nonspeech", i)
        seconds = rng.uniform(1.0, 8.0)
        n = round(seconds * SAMPLE_RATE)
        kind = i % 4
        if kind == 0:  # digital silence or a faint hiss
            wav = torch.zeros(n) if i % 8 == 0 else 10 ** (-60 / 20) * source.sample(n, rng)
        elif kind == 1:  # a loud tone, clipped
            t = torch.arange(n) / SAMPLE_RATE
            wav = (3.0 * torch.sin(2 * math.pi * rng.uniform(100, 3000) * t)).clamp(-1, 1)
        else:  # generated noise, hum, tones and music-like sound at a random level
            wav = source.sample(n, rng)
            wav = wav / wav.abs().max().clamp_min(1e-9) * 10 ** (rng.uniform(-30, -1) / 20)
        clips[f"nonspeech{i:03d}"] = wav
    return clips


def load_waves(utts: list[Utterance]) -> Waves:
    return {u.id: load_audio(u.audio) for u in utts}


Condition = Callable[[], tuple[Waves, dict[str, str]]]


def conditions(test_seen: list[Utterance], test_unseen: list[Utterance], unseen_variants: Condition | None,
               real: list[Utterance]) -> dict[str, Condition]:
    """name -> a function making (waveforms, references): conditions are built one at a time, so memory holds
    one of them besides the clean audio."""
    refs = {u.id: u.text for u in test_seen}
    clean = load_waves(test_seen)
    out: dict[str, Condition] = {"clean": lambda: (clean, refs)}
    for name, snr in NOISE_SNRS.items():
        out[name] = lambda snr=snr, name=name: (noisy(clean, snr, name), refs)
    out[f"babble_{BABBLE_SNR:g}db"] = lambda: (babble(clean, list(load_waves(test_unseen).values()), BABBLE_SNR),
                                               refs)
    out["reverb"] = lambda: (reverberant(clean), refs)
    out["telephone"] = lambda: ({uid: telephone(wav) for uid, wav in clean.items()}, refs)
    if unseen_variants is not None:
        out["unseen_variants"] = unseen_variants
    out["edge_silence"] = lambda: (edge_silence(clean), refs)
    if real:
        out["real"] = lambda: (load_waves(real), {u.id: u.text for u in real})
    return out


def synthesize_unseen_variants(test_unseen: list[Utterance], cache_dir: Path) -> tuple[Waves, dict[str, str]]:
    """The test-unseen sentences spoken by held-out espeak-ng variants (rendered once into cache_dir)."""
    from ..data.synth import synthesize_sentences

    sentences = list(dict.fromkeys(u.text for u in test_unseen))
    utts = synthesize_sentences(sentences, cache_dir)
    return load_waves(utts), {u.id: u.text for u in utts}


def transcribe_condition(transcriber, waves: Waves) -> tuple[dict[str, str], float]:
    """Transcripts of every waveform and the real-time factor of doing so."""
    ids = list(waves)
    start = time.perf_counter()
    results = transcriber.transcribe_many([waves[i] for i in ids])
    seconds = time.perf_counter() - start
    audio = sum(w.numel() for w in waves.values()) / SAMPLE_RATE
    return {i: r.text for i, r in zip(ids, results)}, seconds / max(audio, 1e-9)


def evaluate(transcriber, suite: dict, clips: Waves, progress: bool = True) -> dict:
    """Scores of every condition, the non-speech count and the looping count for one model."""
    report: dict = {"conditions": {}}
    looping, files = 0, 0
    bar = tqdm(suite.items(), desc="conditions", unit="cond", disable=not progress)
    for name, make in bar:
        bar.set_postfix_str(name)
        waves, refs = make()
        hyps, rtf = transcribe_condition(transcriber, waves)
        result = score(refs, hyps)
        report["conditions"][name] = {"wer": result["wer"], "cer": result["cer"], "utterances": len(refs),
                                      "rtf": round(rtf, 4)}
        looping += sum(repeats_ngram(h) for h in hyps.values())
        files += len(hyps)
        tqdm.write(f"{name:16s} WER {result['wer']:7.2f} CER {result['cer']:7.2f} RTF {rtf:.4f}")
    hyps, _ = transcribe_condition(transcriber, clips)
    report["nonspeech"] = {"clips": len(clips), "empty": sum(not h for h in hyps.values()),
                           "not_empty": {k: h for k, h in hyps.items() if h}}
    looping += sum(repeats_ngram(h) for h in hyps.values())
    report["looping"] = {"files": files + len(hyps), "looping": looping}
    return report


def recipe_transcriber(model_dir: str | Path, lm_dir: str | Path | None, threads: int):
    """A Transcriber with conf/decode.yaml's search (the recipe's), fused with the LM directory when given, and
    its voice activity settings."""
    from ..decoding.search import Search
    from ..transcriber import Transcriber
    from ..vad import VadOptions

    conf = OmegaConf.to_container(compose_config("decode"))
    search = dict(conf["search"], lm_dir=str(lm_dir) if lm_dir else None)
    torch.set_num_threads(threads)
    return Transcriber.from_pretrained(model_dir, search=Search.from_config(search), vad=VadOptions(**conf["vad"]))


def format_report(report: dict) -> str:
    """A table: one row per condition, the model's WER/CER and the baseline's when there is one."""
    base = report.get("baseline", {}).get("conditions", {})
    head = "| condition | WER % | CER % |" + (" baseline WER % | baseline CER % |" if base else "")
    lines = [head, "|---|---:|---:|" + ("---:|---:|" if base else "")]
    for name, row in report["conditions"].items():
        cells = [name, f"{row['wer']:.2f}", f"{row['cer']:.2f}"]
        if base:
            other = base.get(name, {})
            cells += [f"{other.get('wer', float('nan')):.2f}", f"{other.get('cer', float('nan')):.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    for key in ("nonspeech", "looping"):
        mine = report[key]
        text = (f"{mine['empty']}/{mine['clips']} empty" if key == "nonspeech"
                else f"{mine['looping']}/{mine['files']} looping")
        if base:
            other = report["baseline"][key]
            text += " (baseline " + (f"{other['empty']}/{other['clips']})" if key == "nonspeech"
                                     else f"{other['looping']}/{other['files']})")
        lines.append(f"{key}: {text}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m asr.bench.robustness", description=__doc__.split("\n\n")[0],
                                epilog="example: python -m asr.bench.robustness --model exp/model --manifests "
                                       "data/manifests --lm exp/lm --out exp/robustness.json",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the model directory to test")
    p.add_argument("--manifests", required=True, help="folder with test-seen.jsonl and test-unseen.jsonl")
    p.add_argument("--lm", default=None, help="LM directory of the recipe's search (asr-train-lm, asr-lexicon)")
    p.add_argument("--baseline", default=None, help="a second model directory run on the same conditions")
    p.add_argument("--baseline-lm", default=None, help="its LM directory (default: --lm)")
    p.add_argument("--real", default=None, help="a LibriSpeech-layout folder of real recordings (any subset)")
    p.add_argument("--variants-dir", default=None,
                   help="where the held-out-variant audio is rendered (default: beside --out); none: skip")
    p.add_argument("--max-utts", type=int, default=0, help="first N test utterances (0: all)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", required=True, help="the JSON report to write")
    args = p.parse_args(argv)

    manifests = Path(args.manifests)
    test_seen = read_manifest(manifests / "test-seen.jsonl")
    test_unseen = read_manifest(manifests / "test-unseen.jsonl")
    if args.max_utts:
        test_seen, test_unseen = test_seen[: args.max_utts], test_unseen[: args.max_utts]
    real = []
    if args.real:
        for subset in sorted(p for p in Path(args.real).rglob("*") if p.is_dir() and p.parent.name == "LibriSpeech"):
            real += scan_subset(subset)[0]
    out = Path(args.out)
    variants = None
    if args.variants_dir != "none":
        cache = Path(args.variants_dir) if args.variants_dir else out.parent / "unseen_variants"
        variants = lambda: synthesize_unseen_variants(test_unseen, cache)  # noqa: E731
    suite = conditions(test_seen, test_unseen, variants, real)
    clips = nonspeech_clips()

    report = {"model": str(args.model), "lm": args.lm, "date": time.strftime("%Y-%m-%d"),
              **evaluate(recipe_transcriber(args.model, args.lm, args.threads), suite, clips)}
    if args.baseline:
        report["baseline"] = {"model": str(args.baseline),
                              **evaluate(recipe_transcriber(args.baseline, args.baseline_lm or args.lm,
                                                            args.threads), suite, clips)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(format_report(report))
    return report


if __name__ == "__main__":
    main()
