import json

import pytest

from asr.bench.attention import main as bench_attention
from asr.bench.attention import rounds_at


def test_attention_step_bench_writes_ratios(tmp_path):
    out = tmp_path / "step_time.json"
    bench_attention(["--lengths", "12", "24", "--batch", "2", "--repeats", "2", "--threads", "1",
                     "--variants", "location", "mocha", "mocha:heads=2,scorer=mlp", "--out", str(out)])
    data = json.loads(out.read_text())
    variants = data["variants"]
    assert data["config"]["rounds"] == {"12": 2, "24": 2}
    assert variants["location"]["ratio_to_location"] == {"12": 1.0, "24": 1.0}
    for name in ("mocha", "mocha:heads=2,scorer=mlp"):
        row = variants[name]
        assert set(row["ratio_to_location"]) == {"12", "24"}
        for length, samples in row["samples"].items():  # the median of the timed rounds, warm-up left out
            assert len(samples) == 2 and all(s > 0 for s in samples)
            assert row["seconds"][length] == pytest.approx(sum(samples) / 2, abs=1e-4)


def test_rounds_get_fewer_as_steps_get_longer():
    assert [rounds_at(n, 3) for n in (200, 400, 800, 1600)] == [3, 3, 2, 1]
    assert all(rounds_at(n, 5) >= 1 for n in (10, 10_000))


@pytest.mark.parametrize("variant, message", [("nope", "no such attention config"), ("mocha:chnk=3", "bad override")])
def test_bad_variant_is_one_clear_line(tmp_path, variant, message):
    with pytest.raises(SystemExit, match=message):
        bench_attention(["--lengths", "12", "--variants", "location", variant, "--out", str(tmp_path / "x.json")])
