"""End to end: every stage of recipes/mini/run.sh on a tiny corpus, then the files and numbers it writes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from asr.data.librispeech import read_manifest
from asr.scoring import read_text_file, score

from .conftest import ROOT, TINY_MODEL, TINY_SYNTH

STAGES = ["synthesize", "prepare", "lm", "train", "ctc", "decode", "score", "export"]


@pytest.mark.slow
def test_mini_recipe_end_to_end(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "TQDM_DISABLE": "1"}
    cmd = ["bash", str(ROOT / "recipes" / "mini" / "run.sh"), "--data", str(tmp_path / "data"),
           "--exp", str(tmp_path / "exp"), "--synth", " ".join(TINY_SYNTH),
           "--train", " ".join([*TINY_MODEL, "train.max_epochs=2"]),
           "--lm", "train.max_epochs=1 model.hidden=32 model.layers=1 threads=1",
           "--ctc", "fit.passes=1 ctc.hidden=16 threads=1",
           "--decode", "search.beam_size=2"]  # an untrained model's hypotheses run to the length limit
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    exp, manifests = tmp_path / "exp", tmp_path / "data" / "manifests"
    results = json.loads((exp / "results.json").read_text())
    assert list(results["stage_seconds"]) == STAGES
    for part in ("test-seen", "test-unseen"):
        row = results[part]
        assert row["utterances"] == 6 and row["words"] > 0
        assert row["rtf"] > 0
        assert set(row) == {"wer", "cer", "sub", "del", "ins", "words", "utterances", "rtf"}
        # the table's figures are those of the decoded hypotheses against the test manifest's transcripts
        hyps, refs = (read_text_file(exp / "las_ctc" / "decode" / part / name) for name in ("hyp.txt", "ref.txt"))
        assert len(hyps) == 6 and refs == {u.id: u.text for u in read_manifest(manifests / f"{part}.jsonl")}
        measured = score(refs, hyps)
        assert (row["wer"], row["cer"], row["words"]) == (measured["wer"], measured["cer"], measured["words"])
        assert row["sub"] + row["del"] + row["ins"] == pytest.approx(row["wer"] * row["words"] / 100, abs=0.01)
    assert len(list((exp / "las_ctc" / "decode" / "test-seen").glob("alignment-*.png"))) == 3
    # stage 5's model (with the fitted head, or its own when that was no better) is the one decoded and exported
    assert (exp / "model" / "config.yaml").read_text() == (exp / "las_ctc" / "config.yaml").read_text()
    assert "| test-seen |" in result.stdout and "| test-unseen |" in result.stdout
    assert {"config.yaml", "tokenizer.json", "norm.json", "model.pt"} <= {p.name for p in (exp / "model").iterdir()}
    assert {"lm.pt", "lexicon.tsv", "bigrams.tsv"} <= {p.name for p in (exp / "lm").iterdir()}

    # idempotent: running the data stages again renders nothing and keeps the manifests
    manifest = tmp_path / "data" / "manifests" / "train-synth.jsonl"
    before = manifest.stat().st_mtime_ns
    again = subprocess.run([*cmd[:2], "--stage", "1", "--stop-stage", "2", *cmd[2:]], capture_output=True,
                           text=True, env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "rendered 0" in again.stdout + again.stderr
    assert manifest.stat().st_mtime_ns == before


@pytest.mark.slow
def test_compare_attention_trains_every_variant(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "TQDM_DISABLE": "1"}
    variants = ["location", "monotonic", "mocha", "multihead", "windowed"]
    cmd = ["bash", str(ROOT / "recipes" / "mini" / "compare_attention.sh"), "--data", str(tmp_path / "data"),
           "--exp", str(tmp_path / "exp"), "--variants", " ".join(variants), "--jobs", "2",
           "--synth", " ".join(TINY_SYNTH),
           "--train", " ".join([*(o for o in TINY_MODEL if "attention" not in o), "train.max_epochs=1"]),
           "--decode", "search.method=greedy"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = json.loads((tmp_path / "exp" / "results.json").read_text())
    assert list(rows) == variants
    for variant, row in rows.items():
        assert row["train_seconds"] >= 0 and row["rtf"] > 0
        for part, suffix in (("test-seen", ""), ("test-unseen", "_unseen")):  # each variant's own decoding
            decoded = tmp_path / "exp" / variant / "las" / "decode" / part
            measured = score(read_text_file(decoded / "ref.txt"), read_text_file(decoded / "hyp.txt"))
            assert (row[f"wer{suffix}"], row[f"cer{suffix}"]) == (measured["wer"], measured["cer"])
    for variant in variants:  # each variant really ran with its own attention
        config = (tmp_path / "exp" / variant / "las" / "config.yaml").read_text()
        assert {"location": "LocationAwareAttention", "monotonic": "MonotonicAttention", "mocha": "MoChA",
                "multihead": "MultiHeadLocationAttention", "windowed": "WindowedAttention"}[variant] in config
