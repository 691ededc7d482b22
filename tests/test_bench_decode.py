import json
from pathlib import Path

from omegaconf import OmegaConf

from asr import CONF_DIR
from asr.bench.decode import long_recordings
from asr.bench.decode import main as bench_decode
from asr.data.librispeech import read_manifest


def test_decode_bench_writes_every_search_and_long_audio(tiny_corpus, tiny_model, tmp_path):
    out = tmp_path / "decode_bench.json"
    manifests = tiny_corpus / "manifests"
    utts = read_manifest(manifests / "test-seen.jsonl")
    total = sum(u.duration for u in utts)
    bench_decode(["--model", str(tiny_model), "--manifests", str(manifests), "--parts", "test-seen",
                  "--beam", "2", "--long-seconds", str(total / 2), "--threads", "1", "--out", str(out)])
    report = json.loads(out.read_text())
    rows = report["parts"]["test-seen"]
    conf_ctc = OmegaConf.load(Path(CONF_DIR) / "decode.yaml").search.ctc_weight
    assert set(rows) == {"greedy", "ctc_greedy", "beam2", "beam2_ctc0.3", f"beam2_ctc{conf_ctc}"}
    assert rows["greedy"]["wer_change_vs_greedy"] == 0
    assert all(r["rtf"] > 0 and r["utterances"] == len(utts) for r in rows.values())
    long = report["long_audio"]
    assert long["recordings"] == len(long_recordings(utts, total / 2)) >= 1
    assert {"one_by_one", "segmented", "whole", "whole_windowed"} <= set(long)


def test_long_recordings_keep_order_and_length(tiny_corpus):
    utts = read_manifest(tiny_corpus / "manifests" / "test-seen.jsonl")
    recordings = long_recordings(utts, 4.0)
    members = [u.id for _, group in recordings for u in group]
    assert members == [u.id for u in utts][: len(members)]
    for wav, group in recordings:
        assert len(wav) / 16000 >= 4.0 - 0.31
        assert abs(len(wav) / 16000 - sum(u.duration for u in group) - 0.3 * (len(group) - 1)) < 0.01
