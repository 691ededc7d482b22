"""What the synthetic corpus holds: its settings, speakers and the plan of every utterance.

Everything here follows from the settings and ``seed`` alone; nothing is rendered. A speaker is an
espeak-ng voice and variant with a fixed pitch, pitch range and pause between words (its sex is the
variant's, see ``female_share``); an utterance adds its rate, the seed of espeak-ng's noise and, for some
training utterances, the silence kept before and after the speech.
"""

from __future__ import annotations

import importlib.resources
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from .espeak import variant_sex
from .synth_voices import usable_variants

SUBSET_KEYS = ("train", "dev_seen", "dev_unseen", "test_seen", "test_unseen")
DEFAULT_SUBSETS = {
    "train": "train-synth",
    "dev_seen": "dev-seen",
    "dev_unseen": "dev-unseen",
    "test_seen": "test-seen",
    "test_unseen": "test-unseen",
}
DEFAULT_VOICES = ["en", "en-us", "en-029", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                  "en-gb-x-gbcwmd", "en-us-nyc"]
# Never spoken in the corpus; kept for an unseen-variant test condition: three male, three female and
# two Klatt-synthesizer variants, all of ordinary loudness and pitch.
DEFAULT_HELDOUT_VARIANTS = ["m8", "gustave", "iven3", "f5", "belinda", "Annie", "klatt4", "edward"]
SENTENCE_FILES = ("dev-clean.trans.txt", "test-other.trans.txt")
FIRST_SPEAKER_ID = 100
# Speakers of :func:`plan_sentences` start here, clear of the corpus speakers (at most voices x variants).
SENTENCES_FIRST_SPEAKER_ID = 1000
# Chapter ids are ``speaker * 10 + k``: k = 1..5 for the corpus subsets, this for plan_sentences.
SENTENCES_CHAPTER_KEY = 6


@dataclass
class SynthConfig:
    """Settings of ``synthesize_corpus``; ``conf/synth.yaml`` holds the same keys and defaults."""

    out_dir: str = "data"
    seed: int = 0
    jobs: int | None = None  # None: one per available CPU
    progress: bool = True
    subsets: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SUBSETS))
    min_words: int = 1
    max_words: int = 40
    n_test: int = 200
    n_dev: int = 100
    n_train: int | None = None  # None: every sentence not used by dev/test
    train_copies: int = 1
    voices: list[str] = field(default_factory=lambda: list(DEFAULT_VOICES))
    variants: list[str] | None = None  # None: every variant espeak-ng holds, less the held-out ones
    heldout_variants: list[str] = field(default_factory=lambda: list(DEFAULT_HELDOUT_VARIANTS))
    n_train_speakers: int = 60
    n_unseen_speakers: int = 12
    female_share: float = 0.4  # share of speakers with a female variant, per group (training, unseen)
    pitch_min: int = 30
    pitch_max: int = 70
    range_min: int = 20
    range_max: int = 80
    word_gap: list[int] = field(default_factory=lambda: [0, 4])  # per speaker, units of 10 ms
    rate_min: int = 150
    rate_max: int = 210
    sample_rate: int = 16000
    trim_threshold: float = 0.01  # fraction of full scale; 0 turns trimming off
    trim_min_silence: float = 0.15  # seconds; shorter leading/trailing silences are kept
    trim_margin: float = 0.1  # seconds of silence kept before and after the speech
    edge_silence: list[float] = field(default_factory=lambda: [0.2, 1.5])  # seconds, drawn per end
    edge_silence_share: float = 0.3  # of the training utterances
    edge_noise_db: float | None = -70.0  # noise floor of edge-silence utterances; None: digital silence

    @classmethod
    def from_any(cls, cfg: SynthConfig | Mapping[str, Any] | Any) -> SynthConfig:
        """Build from a SynthConfig, a mapping or an OmegaConf DictConfig (unknown keys are an error)."""
        if isinstance(cfg, cls):
            return cfg
        if not isinstance(cfg, Mapping):
            from omegaconf import OmegaConf

            cfg = OmegaConf.to_container(cfg, resolve=True)
        values = {key: value for key, value in cfg.items() if key != "hydra"}
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown synth config keys: {', '.join(unknown)}")
        config = cls(**values)
        config.subsets = {**DEFAULT_SUBSETS, **dict(config.subsets)}
        config.voices, config.heldout_variants = list(config.voices), list(config.heldout_variants)
        config.variants = None if config.variants is None else list(config.variants)
        config.word_gap, config.edge_silence = list(config.word_gap), list(config.edge_silence)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ValueError for settings that cannot give a corpus."""
        unknown = sorted(set(self.subsets) - set(SUBSET_KEYS))
        if unknown:
            raise ValueError(f"unknown subsets keys {unknown}; expected {list(SUBSET_KEYS)}")
        names = [self.subsets[key] for key in SUBSET_KEYS]
        if len(set(names)) != len(names):
            raise ValueError(f"subset names must differ: {names}")
        for low, high in [("min_words", "max_words"), ("pitch_min", "pitch_max"),
                          ("range_min", "range_max"), ("rate_min", "rate_max")]:
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} > {high}")
        for name in ("word_gap", "edge_silence"):
            pair = getattr(self, name)
            if len(pair) != 2 or not 0 <= pair[0] <= pair[1]:
                raise ValueError(f"{name} must be [min, max] with 0 <= min <= max, not {pair}")
        if not 0 <= self.edge_silence_share <= 1:
            raise ValueError("edge_silence_share must be between 0 and 1")
        if not 0 <= self.female_share <= 1:
            raise ValueError("female_share must be between 0 and 1")
        if self.n_train_speakers < 1 or self.n_unseen_speakers < 1:
            raise ValueError("n_train_speakers and n_unseen_speakers must be at least 1")
        if not 1 <= self.train_copies <= self.n_train_speakers:
            raise ValueError("train_copies must be between 1 and n_train_speakers")
        overlap = sorted(set(self.variants or ()) & set(self.heldout_variants))
        if overlap:
            raise ValueError(f"variants {overlap} are also in heldout_variants")


@dataclass(frozen=True)
class Speaker:
    """A synthetic speaker: an espeak-ng voice and variant with fixed pitch, range and word gap."""

    id: int
    voice: str
    variant: str
    pitch: int
    range: int
    word_gap: int  # extra pause between words, units of 10 ms
    seen: bool  # True: a training speaker; False: held out for dev-unseen/test-unseen

    @property
    def espeak_name(self) -> str:
        return f"{self.voice}+{self.variant}"


@dataclass(frozen=True)
class PlannedUtterance:
    """One file of the corpus; ``text`` is the original uppercase LibriSpeech text.

    ``edge`` is (leading, trailing) seconds of silence around the speech, or None for the usual trim.
    """

    subset: str
    speaker: Speaker
    chapter: int
    index: int
    text: str
    rate: int
    seed: int
    edge: tuple[float, float] | None = None

    @property
    def id(self) -> str:
        return f"{self.speaker.id}-{self.chapter}-{self.index:04d}"

    @property
    def relpath(self) -> str:
        """Path of the FLAC below ``<out_dir>/LibriSpeech``."""
        return f"{self.subset}/{self.speaker.id}/{self.chapter}/{self.id}.flac"


def load_sentences(min_words: int = 1, max_words: int = 40) -> list[str]:
    """The distinct sentences of the bundled LibriSpeech transcripts, in file order."""
    root = importlib.resources.files("asr").joinpath("resources", "librispeech-text")
    sentences: dict[str, None] = {}
    for name in SENTENCE_FILES:
        for line in root.joinpath(name).read_text(encoding="utf-8").splitlines():
            parts = line.split(maxsplit=1)
            if len(parts) == 2 and min_words <= len(parts[1].split()) <= max_words:
                sentences[" ".join(parts[1].split())] = None
    return list(sentences)


def split_sentences(sentences: list[str], cfg: SynthConfig) -> dict[str, list[str]]:
    """Shuffle with the seed and cut into disjoint test, dev and train lists."""
    need = cfg.n_test + cfg.n_dev + 1
    if len(sentences) < need:
        raise ValueError(f"only {len(sentences)} sentences; n_test + n_dev + 1 = {need} needed")
    shuffled = list(sentences)
    random.Random(f"{cfg.seed}/sentences").shuffle(shuffled)
    test, rest = shuffled[: cfg.n_test], shuffled[cfg.n_test:]
    dev, train = rest[: cfg.n_dev], rest[cfg.n_dev:]
    if cfg.n_train is not None:
        train = train[: cfg.n_train]
    return {"train": train, "dev": dev, "test": test}


def _speaker(cfg: SynthConfig, rng: random.Random, speaker_id: int, voice: str, variant: str,
             seen: bool) -> Speaker:
    return Speaker(id=speaker_id, voice=voice, variant=variant, pitch=rng.randint(cfg.pitch_min, cfg.pitch_max),
                   range=rng.randint(cfg.range_min, cfg.range_max), word_gap=rng.randint(*cfg.word_gap),
                   seen=seen)


def _n_female(n: int, share: float) -> int:
    """Female speakers of a group of ``n``: ``share`` rounded, one of each sex from 2 speakers on
    (unless ``share`` is 0 or 1)."""
    n_female = int(n * share + 0.5)
    if n >= 2 and 0 < share < 1:
        n_female = min(max(n_female, 1), n - 1)
    return n_female


def _group_sizes(cfg: SynthConfig, capacity: Mapping[str, int]) -> list[dict[str, int]]:
    """{sex: speakers} of the training and the unseen group, within each sex's voice+variant pairs."""
    groups = []
    for n in (cfg.n_train_speakers, cfg.n_unseen_speakers):
        n_female = _n_female(n, cfg.female_share)
        groups.append({"F": n_female, "M": n - n_female})
    for sex, other in (("F", "M"), ("M", "F")):  # too few pairs of one sex: the other one fills in
        for group in groups:
            excess = sum(g[sex] for g in groups) - capacity[sex]
            moved = min(max(excess, 0), group[sex])
            group[sex] -= moved
            group[other] += moved
    return groups


def make_speakers(cfg: SynthConfig, variants: list[str], sexes: Mapping[str, str] | None = None
                  ) -> list[Speaker]:
    """The training speakers followed by the unseen ones; ids count up from FIRST_SPEAKER_ID.

    ``sexes`` maps each variant to F or M (missing: M). Each group has ``cfg.female_share`` female
    speakers (see :func:`_n_female`); each sex cycles through its variants in a shuffled order (the
    unseen speakers go on where the training speakers stop), and each speaker takes the voice its group
    and sex used least so far among those not yet paired with its variant, so no (voice, variant) repeats.
    """
    sexes = sexes or {}
    need = cfg.n_train_speakers + cfg.n_unseen_speakers
    if need > len(cfg.voices) * len(variants):
        raise ValueError(f"{need} speakers wanted but only {len(cfg.voices) * len(variants)} "
                         "voice+variant combinations")
    rng = random.Random(f"{cfg.seed}/speakers")
    by_sex = {sex: [v for v in variants if sexes.get(v, "M") == sex] for sex in ("F", "M")}
    for pool in by_sex.values():
        rng.shuffle(pool)
    groups = _group_sizes(cfg, {sex: len(pool) * len(cfg.voices) for sex, pool in by_sex.items()})
    voices_of: dict[str, set[str]] = {variant: set() for variant in variants}
    drawn: Counter[str] = Counter()
    combos = []
    for group in groups:
        members = []
        for sex in ("F", "M"):
            use: Counter[str] = Counter()
            for _ in range(group[sex]):
                variant = by_sex[sex][drawn[sex] % len(by_sex[sex])]
                drawn[sex] += 1
                free = [voice for voice in cfg.voices if voice not in voices_of[variant]]
                rng.shuffle(free)
                voice = min(free, key=lambda v: use[v])
                use[voice] += 1
                voices_of[variant].add(voice)
                members.append((voice, variant))
        rng.shuffle(members)
        combos += members
    return [_speaker(cfg, rng, FIRST_SPEAKER_ID + i, voice, variant, seen=i < cfg.n_train_speakers)
            for i, (voice, variant) in enumerate(combos)]


def _edge(rng: random.Random, span: Sequence[float], share: float) -> tuple[float, float] | None:
    """(leading, trailing) seconds for a share of the draws, else None.

    Always three draws, so that changing ``share`` does not move the lengths drawn for others.
    """
    chosen, lead, trail = rng.random(), rng.uniform(*span), rng.uniform(*span)
    return (round(lead, 3), round(trail, 3)) if chosen < share else None


def build_plan(cfg: SynthConfig, data_path: str) -> tuple[list[Speaker], list[PlannedUtterance]]:
    """Every speaker and utterance of the corpus, computed from ``cfg.seed`` alone.

    Chapter ids are ``speaker * 10 + k`` with k = 1..5 the subset's position in SUBSET_KEYS, so every
    (speaker, subset) has its own chapter; utterances are numbered per chapter in plan order. Only
    training utterances get edge silence; dev and test keep the usual trim.
    """
    split = split_sentences(load_sentences(cfg.min_words, cfg.max_words), cfg)
    variants = usable_variants(cfg, data_path)
    speakers = make_speakers(cfg, variants, {v: variant_sex(data_path, v) for v in variants})
    seen = [s for s in speakers if s.seen]
    unseen = [s for s in speakers if not s.seen]
    groups = [("train", split["train"], seen, cfg.train_copies),
              ("dev_seen", split["dev"], seen, 1), ("dev_unseen", split["dev"], unseen, 1),
              ("test_seen", split["test"], seen, 1), ("test_unseen", split["test"], unseen, 1)]
    counters: Counter[int] = Counter()
    plan = []
    for key, sentences, pool, copies in groups:
        # One stream per subset: dev/test speakers and rates stay put when n_train changes.
        rng = random.Random(f"{cfg.seed}/utterances/{key}")
        edge_rng = random.Random(f"{cfg.seed}/edge_silence/{key}")
        position = SUBSET_KEYS.index(key) + 1
        for text in sentences:
            for speaker in rng.sample(pool, copies):
                chapter = speaker.id * 10 + position
                edge = _edge(edge_rng, cfg.edge_silence, cfg.edge_silence_share) if key == "train" else None
                plan.append(PlannedUtterance(
                    subset=cfg.subsets[key], speaker=speaker, chapter=chapter, index=counters[chapter],
                    text=text, rate=rng.randint(cfg.rate_min, cfg.rate_max), seed=rng.getrandbits(31),
                    edge=edge))
                counters[chapter] += 1
    return speakers, plan


def plan_sentences(sentences: Sequence[str], variants: Sequence[str], seed: int, cfg: SynthConfig,
                   subset: str, edge_silence: Sequence[float] | None = None, speakers_per_variant: int = 2,
                   first_speaker_id: int = SENTENCES_FIRST_SPEAKER_ID,
                   ) -> tuple[list[Speaker], list[PlannedUtterance]]:
    """Speakers with exactly ``variants`` and one utterance per sentence, from ``seed`` alone.

    Every variant gets ``speakers_per_variant`` speakers with distinct voices (as far as ``cfg.voices``
    allows) and pitch, range and word gap drawn as for the corpus; each sentence goes to a random one.
    With ``edge_silence`` = (min, max) every utterance keeps that much silence at each end.
    """
    if speakers_per_variant < 1:
        raise ValueError("speakers_per_variant must be at least 1")
    rng = random.Random(f"{seed}/sentences/speakers")
    speakers = []
    for variant in variants:
        voices = rng.sample(cfg.voices, min(speakers_per_variant, len(cfg.voices)))
        for k in range(speakers_per_variant):
            speakers.append(_speaker(cfg, rng, first_speaker_id + len(speakers), voices[k % len(voices)],
                                     variant, seen=False))
    utt_rng = random.Random(f"{seed}/sentences/utterances")
    edge_rng = random.Random(f"{seed}/sentences/edge_silence")
    counters: Counter[int] = Counter()
    plan = []
    for text in sentences:
        speaker = utt_rng.choice(speakers)
        chapter = speaker.id * 10 + SENTENCES_CHAPTER_KEY
        edge = _edge(edge_rng, edge_silence, 1.0) if edge_silence is not None else None
        plan.append(PlannedUtterance(
            subset=subset, speaker=speaker, chapter=chapter, index=counters[chapter],
            text=" ".join(text.split()), rate=utt_rng.randint(cfg.rate_min, cfg.rate_max),
            seed=utt_rng.getrandbits(31), edge=edge))
        counters[chapter] += 1
    return speakers, plan
