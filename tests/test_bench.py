import json

from asr.bench.attention import main as bench_attention


def test_attention_step_bench_writes_ratios(tmp_path):
    out = tmp_path / "step_time.json"
    bench_attention(["--lengths", "12", "24", "--batch", "2", "--repeats", "1", "--threads", "1",
                     "--variants", "location", "mocha", "--out", str(out)])
    data = json.loads(out.read_text())["variants"]
    assert data["location"]["ratio_to_location"] == {"12": 1.0, "24": 1.0}
    assert all(v > 0 for v in data["mocha"]["seconds"].values())
    assert set(data["mocha"]["ratio_to_location"]) == {"12", "24"}
