"""Feature dataset over a manifest, length-bucketed batches by total frames, and padding."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

from ..frontend import GlobalNorm, LogMel, load_audio
from .librispeech import Utterance
from .tokenizer import CharTokenizer

FRAMES_PER_SECOND = 100


class FeatureDataset(torch.utils.data.Dataset):
    """Normalized log-mel features (T, F) and token ids (U,) per utterance of a manifest.

    With `cache`, features are kept in memory after the first read: on a small corpus the front end then
    costs nothing after the first epoch.
    """

    def __init__(self, utts: Sequence[Utterance], tokenizer: CharTokenizer, logmel: LogMel, norm: GlobalNorm,
                 cache: bool = True):
        self.utts, self.tokenizer, self.logmel, self.norm = list(utts), tokenizer, logmel, norm
        self.cache: dict[int, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.utts)

    def features(self, i: int) -> torch.Tensor:
        if self.cache is not None and i in self.cache:
            return self.cache[i]
        feats = self.norm(self.logmel(load_audio(self.utts[i].audio)))
        if self.cache is not None:
            self.cache[i] = feats
        return feats

    def preload(self, desc: str = "features") -> None:
        """Fill the cache up front (with a progress bar) so training throughput is steady from step one."""
        for i in tqdm(range(len(self)), desc=desc, unit="utt", leave=False):
            self.features(i)

    def __getitem__(self, i: int) -> dict:
        return {"id": self.utts[i].id, "feats": self.features(i),
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


class BucketBatchSampler(torch.utils.data.Sampler):
    """Yields the bucketed batches in a fresh random order each epoch (seeded by seed + epoch), or from
    shortest to longest when `shortest_first` (curriculum for the first epoch: attention locks on short
    utterances first). `skip` drops the first batches of the epoch, to resume in the middle of one."""

    def __init__(self, durations: Sequence[float], max_frames: int, max_batch: int = 256, seed: int = 0):
        self.batches = bucket_batches(durations, max_frames, max_batch)
        self.seed, self.epoch, self.shortest_first, self.skip = seed, 0, False, 0

    def set_epoch(self, epoch: int, shortest_first: bool = False, skip: int = 0) -> None:
        self.epoch, self.shortest_first, self.skip = epoch, shortest_first, skip

    def __len__(self) -> int:
        return len(self.batches) - self.skip

    def __iter__(self) -> Iterator[list[int]]:
        if self.shortest_first:
            order = list(range(len(self.batches)))
        else:
            gen = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(len(self.batches), generator=gen).tolist()
        for b in order[self.skip:]:
            yield self.batches[b]
