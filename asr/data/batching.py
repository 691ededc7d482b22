"""Feature dataset over a manifest (with speed perturbation and augmentation), length-bucketed batches by total
frames, split over distributed ranks, and padding."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch
import torchaudio
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

from ..frontend import FRAMES_PER_SECOND, SAMPLE_RATE, GlobalNorm, LogMel, load_audio
from .librispeech import Utterance
from .tokenizer import CharTokenizer

if TYPE_CHECKING:
    from .augment import Augmenter



def perturb_speed(wav: torch.Tensor, factor: float, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Kaldi-style speed perturbation of samples (N,) -> (about N / factor,): read the samples as if recorded at
    sample_rate * factor and resample to sample_rate, so tempo and pitch both change by `factor`."""
    if factor == 1.0:
        return wav
    return torchaudio.functional.resample(wav, round(sample_rate * factor), sample_rate)


class FeatureDataset(torch.utils.data.Dataset):
    """Normalized log-mel features (T, F) and token ids (U,) per utterance of a manifest.

    With `cache`, features are kept in memory after the first read: on a small corpus the front end then
    costs nothing after the first epoch. With `speed_perturb` (factors such as [0.9, 1.0, 1.1]) each utterance
    gets a factor drawn from (seed, epoch, index), so the choice is the same whatever the worker count and after
    a resume. The cache holds unperturbed features only: an utterance drawn at 1.0 comes from it, a perturbed one
    is read and featurized again.

    With `augment` (asr/data/augment.py) each read draws the utterance's effects from (seed, "augment", epoch,
    index) the same way; an utterance left clean by the draw (and at speed 1.0) still comes from the feature cache,
    an augmented one is speed-perturbed, augmented and featurized on every read. To spare decoding the audio file
    every time, augmenting with the cache on also keeps the decoded waveforms, as int16 (half of float32, and
    lossless for 16-bit audio). The augmentation runs in __getitem__, so in the DataLoader's workers when there
    are any. Babble draws its talkers from this dataset's own clean waveforms. Epochs before
    `augment_start_epoch` are clean.
    """

    def __init__(self, utts: Sequence[Utterance], tokenizer: CharTokenizer, logmel: LogMel, norm: GlobalNorm,
                 cache: bool = True, speed_perturb: Sequence[float] | None = None, seed: int = 0,
                 augment: Augmenter | None = None, augment_start_epoch: int = 0):
        self.utts, self.tokenizer, self.logmel, self.norm = list(utts), tokenizer, logmel, norm
        self.cache: dict[int, torch.Tensor] | None = {} if cache else None
        self.speed_perturb = [float(f) for f in speed_perturb] if speed_perturb else None
        if self.speed_perturb and min(self.speed_perturb) <= 0:
            raise ValueError(f"data.speed_perturb: factors must be positive, got {self.speed_perturb}")
        self.seed, self.epoch = seed, 0
        self.augment = augment if augment is not None and augment.active else None
        self.augment_start_epoch = augment_start_epoch
        self.waves: dict[int, torch.Tensor] | None = {} if cache and self.augment else None
        if self.augment is not None and self.augment.babble is None:
            self.augment.bind_utterances(self.waveform, len(self.utts))

    def __len__(self) -> int:
        return len(self.utts)

    def set_epoch(self, epoch: int) -> None:
        """Set before an epoch's DataLoader is created: its workers copy the dataset with this epoch."""
        self.epoch = epoch

    def speed_factor(self, i: int) -> float:
        if not self.speed_perturb:
            return 1.0
        # a string seed is hashed with SHA-512: the same factor in every process, worker and resumed run
        return random.Random(f"{self.seed}:{self.epoch}:{i}").choice(self.speed_perturb)

    def augment_rng(self, i: int) -> random.Random:
        """The generator of utterance i's augmentation in this epoch (seeded like speed_factor)."""
        return random.Random(f"{self.seed}:augment:{self.epoch}:{i}")

    def waveform(self, i: int) -> torch.Tensor:
        """Utterance i's clean samples (N,), float32; from the int16 waveform cache when there is one."""
        if self.waves is not None and i in self.waves:
            return self.waves[i].float() / 32768
        wav = load_audio(self.utts[i].audio)
        if self.waves is not None:
            self.waves[i] = (wav * 32768).round().clamp(-32768, 32767).to(torch.int16)
        return wav

    def features(self, i: int, factor: float = 1.0, rng: random.Random | None = None) -> torch.Tensor:
        """Features of utterance i at speed `factor`, augmented as `rng` draws (no rng: clean)."""
        plan = self.augment.draw(rng) if self.augment is not None and rng is not None else []
        if factor == 1.0 and not plan:
            if self.cache is not None and i in self.cache:
                return self.cache[i]
            feats = self.norm(self.logmel(self.waveform(i)))
            if self.cache is not None:
                self.cache[i] = feats
            return feats
        wav = perturb_speed(self.waveform(i), factor)
        if plan:
            wav = self.augment.apply(wav, plan, rng)
        return self.norm(self.logmel(wav))

    def preload(self, desc: str = "features") -> None:
        """Fill the cache up front (with a progress bar) so training throughput is steady from step one; with
        augmentation also the waveform cache and the simulated room bank, which DataLoader workers then inherit."""
        for i in tqdm(range(len(self)), desc=desc, unit="utt", leave=False):
            self.features(i)
        if self.augment is not None:
            self.augment.prepare()

    def __getitem__(self, i: int) -> dict:
        augmenting = self.augment is not None and self.epoch >= self.augment_start_epoch
        rng = self.augment_rng(i) if augmenting else None
        return {"id": self.utts[i].id, "feats": self.features(i, self.speed_factor(i), rng),
                "tokens": torch.tensor(self.tokenizer.encode(self.utts[i].text), dtype=torch.long)}


def collate(items: list[dict]) -> dict:
    """Pad a list of dataset items: feats (B, T, F), feat_lengths (B,), tokens (B, U) padded with 0."""
    return {
        "ids": [it["id"] for it in items],
        "feats": pad_sequence([it["feats"] for it in items], batch_first=True),
        "feat_lengths": torch.tensor([len(it["feats"]) for it in items]),
        "tokens": pad_sequence([it["tokens"] for it in items], batch_first=True),
        "token_lengths": torch.tensor([len(it["tokens"]) for it in items]),
    }


def bucket_batches(durations: Sequence[float], max_frames: int, max_batch: int = 256) -> list[list[int]]:
    """Group utterance indices sorted by length into batches whose padded size (longest x count) stays
    within max_frames: similar lengths share a batch, so little compute goes to padding."""
    order = sorted(range(len(durations)), key=lambda i: durations[i])
    batches, current, longest = [], [], 0
    for i in order:
        frames = int(durations[i] * FRAMES_PER_SECOND) + 1
        if current and (max(longest, frames) * (len(current) + 1) > max_frames or len(current) >= max_batch):
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, frames)
    if current:
        batches.append(current)
    return batches


def split_to_multiple(batches: list[list[int]], multiple: int) -> list[list[int]]:
    """Split the largest batches in two until their number is a multiple of `multiple` (ranks x accumulation
    steps): every rank then gets as many batches as the others and every optimizer step its full count of
    micro-batches, while each utterance is still seen once an epoch. Only when no batch can be split any more
    (fewer utterances than that) are the first batches repeated."""
    batches = [list(b) for b in batches]
    while len(batches) % multiple:
        largest = max(range(len(batches)), key=lambda j: len(batches[j]))
        if len(batches[largest]) < 2:
            batches += [batches[j % len(batches)] for j in range(multiple - len(batches) % multiple)]
            break
        half = len(batches[largest]) // 2
        batches[largest: largest + 1] = [batches[largest][:half], batches[largest][half:]]  # keeps length order
    return batches


class BucketBatchSampler(torch.utils.data.Sampler):
    """Yields the bucketed batches in a fresh random order each epoch (seeded by seed + epoch), or from
    shortest to longest when `shortest_first` (curriculum for the first epoch: attention locks on short
    utterances first). `skip` drops this rank's first batches of the epoch, to resume in the middle of one.

    Distributed: every rank draws the same epoch order and takes every `world_size`-th batch from `rank` on, so
    ranks see different batches, the epoch covers the data once, and all ranks run the same number of steps
    (DDP would hang otherwise). Rank r's j-th batch is the epoch's batch j * world_size + r: one process with
    `group` = world_size accumulation steps sees the same batches per optimizer step as world_size processes.
    """

    def __init__(self, durations: Sequence[float], max_frames: int, max_batch: int = 256, seed: int = 0,
                 rank: int = 0, world_size: int = 1, group: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside a world of {world_size}")
        self.batches = split_to_multiple(bucket_batches(durations, max_frames, max_batch), world_size * group)
        self.rank, self.world_size = rank, world_size
        self.seed, self.epoch, self.shortest_first, self.skip = seed, 0, False, 0

    @property
    def batches_per_rank(self) -> int:
        return len(self.batches) // self.world_size

    def set_epoch(self, epoch: int, shortest_first: bool = False, skip: int = 0) -> None:
        self.epoch, self.shortest_first, self.skip = epoch, shortest_first, skip

    def __len__(self) -> int:
        return self.batches_per_rank - self.skip

    def __iter__(self) -> Iterator[list[int]]:
        if self.shortest_first:
            order = list(range(len(self.batches)))
        else:
            gen = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(len(self.batches), generator=gen).tolist()
        for b in order[self.rank::self.world_size][self.skip:]:
            yield self.batches[b]
