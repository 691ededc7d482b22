"""Decode a prepared dataset and score it: the one loop behind asr-decode, the trainer's dev pass and the
decoding benches."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from ..data.batching import BucketBatchSampler, FeatureDataset, collate
from ..models.las import LAS
from ..scoring import score

# (model, feats (B, T, F), feat_lengths (B,)) -> the token ids of each utterance
TokenSearch = Callable[[LAS, torch.Tensor, torch.Tensor], list[list[int]]]
# called after each batch with its utterance indices, the batch and its token ids; its time is not decoding's
AfterBatch = Callable[[list[int], dict, list[list[int]]], None]


def decode_and_score(model: LAS, dataset: FeatureDataset, search: TokenSearch, max_frames: int, *,
                     shard: tuple[int, int] = (0, 1), gather: Callable[[tuple], list[tuple]] | None = None,
                     after_batch: AfterBatch | None = None, progress: Callable | None = None) -> dict:
    """Decode every utterance of `dataset` in length-bucketed batches of at most `max_frames` padded frames and
    score the transcripts against its references.

    shard=(rank, world_size) decodes every world_size-th batch; `gather` then collects every rank's (refs, hyps)
    so that all ranks score the same whole set. `progress` wraps the batch list (e.g. tqdm).

    Returns `asr.scoring.score`'s figures plus refs and hyps ({utt id: text}), seconds (wall time, features
    included, `after_batch` excluded), search_seconds (the searches alone), audio_seconds and rtf (seconds per
    second of audio).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    batches = BucketBatchSampler([u.duration for u in dataset.utts], max_frames).batches[shard[0]::shard[1]]
    refs, hyps, search_seconds, hook_seconds = {}, {}, 0.0, 0.0
    start = time.perf_counter()
    for idx in progress(batches) if progress else batches:
        batch = collate([dataset[i] for i in idx])
        searched = time.perf_counter()
        tokens = search(model, batch["feats"].to(device), batch["feat_lengths"].to(device))
        search_seconds += time.perf_counter() - searched
        for i, t in zip(idx, tokens):
            refs[dataset.utts[i].id] = dataset.utts[i].text
            hyps[dataset.utts[i].id] = dataset.tokenizer.decode(t)
        if after_batch:
            hooked = time.perf_counter()
            after_batch(idx, batch, tokens)
            hook_seconds += time.perf_counter() - hooked
    seconds = time.perf_counter() - start - hook_seconds
    model.train(was_training)
    if gather:
        for part_refs, part_hyps in gather((refs, hyps)):
            refs.update(part_refs)
            hyps.update(part_hyps)
    audio = sum(u.duration for u in dataset.utts)
    return {**score(refs, hyps), "refs": refs, "hyps": hyps, "seconds": seconds, "search_seconds": search_seconds,
            "audio_seconds": audio, "rtf": seconds / audio if audio else 0.0}
