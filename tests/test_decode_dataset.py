"""decode_and_score, the loop behind asr-decode, the trainer's dev pass and the benches."""

from __future__ import annotations

from asr.data.batching import FeatureDataset
from asr.data.librispeech import read_manifest
from asr.decoding.dataset import decode_and_score
from asr.decoding.greedy import greedy_decode
from asr.modeldir import load_model_dir
from asr.scoring import score


def greedy(model, feats, lengths):
    return greedy_decode(model, feats, lengths, 1.0)[0]


def test_shards_gathered_equal_one_pass_and_hooks_see_every_batch(tiny_corpus, tiny_model):
    model, tokenizer, logmel, norm = load_model_dir(tiny_model)
    utts = read_manifest(tiny_corpus / "manifests" / "test-seen.jsonl")
    dataset = FeatureDataset(utts, tokenizer, logmel, norm, cache=True)
    seen = []
    whole = decode_and_score(model, dataset, greedy, 600, after_batch=lambda idx, batch, tokens: seen.extend(idx))
    assert sorted(seen) == list(range(len(utts)))  # small batches: several of them, each utterance once
    assert whole["refs"] == {u.id: u.text for u in utts}
    assert {k: whole[k] for k in ("wer", "cer")} == {k: score(whole["refs"], whole["hyps"])[k] for k in ("wer", "cer")}
    assert 0 < whole["search_seconds"] <= whole["seconds"] and whole["rtf"] == whole["seconds"] / whole["audio_seconds"]

    # two ranks: each decodes half the batches; gathering both halves gives every rank the whole set's figures
    halves = [decode_and_score(model, dataset, greedy, 600, shard=(rank, 2)) for rank in range(2)]
    assert halves[0]["hyps"] and halves[1]["hyps"] and not set(halves[0]["hyps"]) & set(halves[1]["hyps"])
    parts = [(h["refs"], h["hyps"]) for h in halves]
    gathered = decode_and_score(model, dataset, greedy, 600, shard=(0, 2), gather=lambda local: parts)
    assert gathered["hyps"] == whole["hyps"] and gathered["wer"] == whole["wer"] and gathered["cer"] == whole["cer"]
    assert not model.training  # left as it was
