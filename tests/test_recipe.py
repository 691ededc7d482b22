"""End to end: every stage of recipes/mini/run.sh on a tiny corpus, then the files and numbers it writes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    exp = tmp_path / "exp"
    results = json.loads((exp / "results.json").read_text())
    assert list(results["stage_seconds"]) == STAGES
    for part in ("test-seen", "test-unseen"):
        row = results[part]
        assert row["utterances"] == 6 and row["words"] > 0
        assert 0 <= row["wer"] and 0 <= row["cer"] and row["rtf"] > 0
        assert set(row) == {"wer", "cer", "sub", "del", "ins", "words", "utterances", "rtf"}
        hyp = (exp / "las_ctc" / "decode" / part / "hyp.txt").read_text().splitlines()
        assert len(hyp) == 6
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
    for row in rows.values():
        assert row["train_seconds"] >= 0 and row["rtf"] > 0 and 0 <= row["cer"]
    for variant in variants:  # each variant really ran with its own attention
        config = (tmp_path / "exp" / variant / "las" / "config.yaml").read_text()
        assert {"location": "LocationAwareAttention", "monotonic": "MonotonicAttention", "mocha": "MoChA",
                "multihead": "MultiHeadLocationAttention", "windowed": "WindowedAttention"}[variant] in config
