"""An offline speech corpus in the LibriSpeech layout, spoken by espeak-ng.

The sentences of two LibriSpeech transcript files (shipped in ``asr/resources/librispeech-text``) are
spoken by synthetic "speakers": an espeak-ng voice and variant with a fixed pitch, pitch range and pause
between words. The result looks exactly like LibriSpeech::

    <out_dir>/LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt:04d>.flac
    <out_dir>/LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt

Subsets: a training set, dev/test sets spoken by training speakers ("seen") and the same dev/test
sentences spoken by held-out speakers ("unseen"). Dev, test and train sentences are disjoint. A list of
held-out variants never speaks in the corpus; :func:`synthesize_sentences` renders any sentences with
them (or with edge silence) for separate test conditions.

Determinism: the whole plan (sentence, speaker, rate, edge silence, path) comes from ``seed`` alone
(``asr.data.synth_plan``), and rendering makes every file depend on the plan only
(``asr.data.synth_render``).
"""

from __future__ import annotations

import os
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..textfile import write_text_atomic
from .espeak import ESPEAK_MISSING, EspeakUnavailableError, available_variants, espeak_paths, variant_sex
from .librispeech import Utterance
from .synth_audio import add_edge_silence, trim_silence
from .synth_plan import (
    DEFAULT_HELDOUT_VARIANTS,
    DEFAULT_SUBSETS,
    DEFAULT_VOICES,
    SUBSET_KEYS,
    PlannedUtterance,
    Speaker,
    SynthConfig,
    build_plan,
    load_sentences,
    plan_sentences,
    split_sentences,
)
from .synth_render import CHUNK_SIZE, RENDER_VERSION, fingerprint, make_chunks, render_chunks
from .synth_voices import check_variants, usable_variants

__all__ = [
    "CHUNK_SIZE", "DEFAULT_HELDOUT_VARIANTS", "DEFAULT_SUBSETS", "DEFAULT_VOICES", "ESPEAK_MISSING",
    "RENDER_VERSION", "SUBSET_KEYS", "EspeakUnavailableError", "PlannedUtterance", "Speaker", "SynthConfig",
    "add_edge_silence", "available_variants", "build_plan", "check_variants", "espeak_paths", "fingerprint",
    "format_summary", "load_sentences", "plan_sentences", "split_sentences", "synthesize_corpus",
    "synthesize_sentences", "trim_silence", "usable_variants", "write_speakers", "write_transcripts",
]


def _prepare_dirs(root: Path, plan: list[PlannedUtterance]) -> None:
    """Create the chapter directories and delete temp files a killed run left in them."""
    for directory in {(root / utt.relpath).parent for utt in plan}:
        directory.mkdir(parents=True, exist_ok=True)
        for tmp in directory.glob(".*.flac.*.tmp"):
            tmp.unlink(missing_ok=True)


def _warn_about_strays(root: Path, plan: list[PlannedUtterance], cfg: SynthConfig) -> None:
    """Warn about corpus files this plan did not make: a LibriSpeech reader would trip over them."""
    planned = {utt.relpath for utt in plan}
    planned |= {f"{utt.subset}/{utt.speaker.id}/{utt.chapter}/{utt.speaker.id}-{utt.chapter}.trans.txt"
                for utt in plan}
    strays = [path for name in cfg.subsets.values() for pattern in ("*/*/*.flac", "*/*/*.trans.txt")
              for path in sorted((root / name).glob(pattern))
              if path.relative_to(root).as_posix() not in planned]
    if strays:
        warnings.warn(f"{root} holds {len(strays)} file(s) that are not part of this corpus (left by a run "
                      f"with other settings?), e.g. {strays[0]}; delete them or use another out_dir", stacklevel=3)


def write_transcripts(root: Path, plan: list[PlannedUtterance]) -> None:
    """One ``<speaker>-<chapter>.trans.txt`` per chapter, lines ``ID TEXT`` sorted by id."""
    chapters: dict[Path, list[str]] = defaultdict(list)
    for utt in plan:
        chapters[(root / utt.relpath).parent].append(f"{utt.id} {utt.text}\n")
    for directory, lines in chapters.items():
        directory.mkdir(parents=True, exist_ok=True)
        write_text_atomic(directory / f"{directory.parent.name}-{directory.name}.trans.txt",
                          "".join(sorted(lines)))


def write_speakers(root: Path, speakers: list[Speaker], plan: list[PlannedUtterance],
                   frames: dict[str, int], sample_rate: int, data_path: str) -> None:
    """``SPEAKERS.TXT`` in LibriSpeech's format; NAME records the voice that speaks as the speaker."""
    minutes: Counter[int] = Counter()
    subsets: dict[int, list[str]] = defaultdict(list)
    for utt in plan:
        minutes[utt.speaker.id] += frames.get(utt.relpath, 0) / sample_rate / 60
        if utt.subset not in subsets[utt.speaker.id]:
            subsets[utt.speaker.id].append(utt.subset)
    lines = ["; Synthetic speakers of asr-synth: espeak-ng voice+variant, pitch, pitch range and word gap\n",
             ";ID  |SEX| SUBSET           |MINUTES| NAME\n"]
    for s in speakers:
        lines.append(f"{s.id:<5}| {variant_sex(data_path, s.variant)} | {','.join(subsets[s.id]):<17}| "
                     f"{minutes[s.id]:5.2f} | {s.espeak_name} pitch {s.pitch} range {s.range} gap {s.word_gap}\n")
    write_text_atomic(root / "SPEAKERS.TXT", "".join(lines))


def _render(plan: list[PlannedUtterance], root: Path, cfg: SynthConfig, lib_path: str,
            data_path: str) -> tuple[dict[str, int], set[str], int]:
    """Render what is not finished yet: (frames per relpath, relpaths rendered, files kept)."""
    _prepare_dirs(root, plan)
    frames: dict[str, int] = {}
    chunks = make_chunks(plan, root, cfg, frames)
    skipped = len(frames)
    rendered = render_chunks(chunks, cfg, lib_path, data_path, frames, root)
    write_transcripts(root, plan)
    return frames, rendered, skipped


def synthesize_corpus(cfg: SynthConfig | Mapping[str, Any] | Any) -> dict[str, Any]:
    """Render the corpus described by ``cfg`` (see SynthConfig) into ``<out_dir>/LibriSpeech``.

    Finished FLACs made with the same settings are kept, so a killed run can simply be started again.
    Returns ``{"subsets": {name: {"utterances", "speakers", "hours", "rendered"}}, "rendered",
    "skipped", "seconds", "root"}``.
    """
    started = time.monotonic()
    cfg = SynthConfig.from_any(cfg)
    lib_path, data_path = espeak_paths()
    speakers, plan = build_plan(cfg, data_path)
    root = Path(cfg.out_dir) / "LibriSpeech"
    frames, rendered, skipped = _render(plan, root, cfg, lib_path, data_path)
    write_speakers(root, speakers, plan, frames, cfg.sample_rate, data_path)
    _warn_about_strays(root, plan, cfg)
    return _stats(cfg, plan, frames, rendered, skipped, root, time.monotonic() - started)


def synthesize_sentences(sentences: Sequence[str], out_dir: str | os.PathLike[str],
                         variants: Sequence[str] | None = None, seed: int = 0, *,
                         subset: str = "unseen-variants", edge_silence: tuple[float, float] | None = None,
                         speakers_per_variant: int = 2,
                         cfg: SynthConfig | Mapping[str, Any] | None = None) -> list[Utterance]:
    """Speak ``sentences`` into ``<out_dir>/LibriSpeech/<subset>`` in the LibriSpeech layout.

    ``variants`` (default: ``cfg.heldout_variants``, which the corpus never uses) each get
    ``speakers_per_variant`` speakers on different voices of ``cfg.voices``, with ids from 1000 up and
    chapter ``speaker * 10 + 6``; each sentence goes to one of them at random. ``edge_silence`` =
    (min_s, max_s) keeps a drawn length of silence at each end of every file (with ``cfg.edge_noise_db``
    as noise floor); None trims as the corpus's dev/test sets do. ``cfg`` (default: the defaults of
    ``conf/synth.yaml``) supplies voices, pitch, range, word gap and rate ranges, audio settings, jobs and
    progress. The result depends only on the arguments; finished files are kept, as in
    :func:`synthesize_corpus`, and the transcripts are written too (no SPEAKERS.TXT: the corpus's stays).

    Returns one :class:`asr.data.librispeech.Utterance` (id, absolute FLAC path, duration in seconds,
    speaker id, text as given) per sentence, in the order given.
    """
    cfg = SynthConfig.from_any(cfg if cfg is not None else {})
    if edge_silence is not None and not 0 <= edge_silence[0] <= edge_silence[1]:
        raise ValueError(f"edge_silence must be (min, max) with 0 <= min <= max, not {edge_silence}")
    if subset in DEFAULT_SUBSETS.values() or subset in cfg.subsets.values():
        raise ValueError(f"subset {subset!r} is a corpus subset; choose another name")
    lib_path, data_path = espeak_paths()
    variants = check_variants(cfg.heldout_variants if variants is None else variants, cfg, data_path)
    _, plan = plan_sentences(sentences, variants, seed, cfg, subset, edge_silence, speakers_per_variant)
    root = (Path(out_dir) / "LibriSpeech").absolute()
    frames, _, _ = _render(plan, root, cfg, lib_path, data_path)
    return [Utterance(id=utt.id, audio=str(root / utt.relpath), duration=frames[utt.relpath] / cfg.sample_rate,
                      speaker=str(utt.speaker.id), text=utt.text) for utt in plan]


def _stats(cfg: SynthConfig, plan: list[PlannedUtterance], frames: dict[str, int], rendered: set[str],
           skipped: int, root: Path, seconds: float) -> dict[str, Any]:
    subsets = {}
    for key in SUBSET_KEYS:
        name = cfg.subsets[key]
        utts = [utt for utt in plan if utt.subset == name]
        subsets[name] = {
            "utterances": len(utts),
            "speakers": len({utt.speaker.id for utt in utts}),
            "hours": sum(frames[utt.relpath] for utt in utts) / cfg.sample_rate / 3600,
            "rendered": sum(utt.relpath in rendered for utt in utts),
        }
    return {"subsets": subsets, "rendered": len(rendered), "skipped": skipped, "seconds": seconds,
            "root": str(root)}


def format_summary(stats: dict[str, Any]) -> list[str]:
    """One line per subset and a total line, for printing."""
    lines = [f"{name:<14} {s['utterances']:6d} utterances {s['speakers']:4d} speakers {s['hours']:7.3f} h"
             for name, s in stats["subsets"].items()]
    lines.append(f"{stats['root']}: rendered {stats['rendered']}, kept {stats['skipped']} finished, "
                 f"in {stats['seconds']:.1f} s")
    return lines
