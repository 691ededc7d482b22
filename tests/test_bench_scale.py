import json

import pytest
import torch

from asr.bench.scale import SavedBytes
from asr.bench.scale import main as bench_scale

TINY = ["data.max_duration=1.0", "data.max_frames=500", "model.listener.hidden=64", "model.listener.layers=1",
        "model.listener.channels=4", "model.speller.hidden=16", "model.speller.embed_dim=8",
        "model.attention.attention_dim=8"]


def test_saved_bytes_counts_what_autograd_keeps_without_parameters():
    w = torch.nn.Parameter(torch.randn(8, 8))
    x = torch.randn(4, 8, requires_grad=True)
    with SavedBytes([w]) as counter:
        y = (x @ w).relu()  # matmul keeps x (and w, a parameter), relu keeps its output
    assert counter.nbytes == x.nbytes + y.nbytes


def test_scale_bench_extrapolates_a_small_batch_to_the_full_one(tmp_path):
    out = tmp_path / "scale.json"
    args = ["--configs", "librispeech/las_100h", "--runs", "1", "--threads", "1", "--overrides", *TINY]
    bench_scale([*args, "--utts", "1", "--out", str(out)])
    part = json.loads(out.read_text())["rows"]["librispeech/las_100h@fp32"]
    bench_scale([*args, "--utts", "0", "--out", str(out)])
    full = json.loads(out.read_text())["rows"]["librispeech/las_100h@fp32"]
    assert (part["full_batch_utts"], part["frames_per_utt"], part["measured_utts"]) == (5, 100, [1, 2])
    assert part["extrapolated"] and not full["extrapolated"] and full["measured_utts"] == [5]
    # activations grow linearly with the batch at a fixed length: the line through 1 and 2 utterances gives the
    # count of the full batch of 5 (to a few percent: the CPU LSTM's workspace comes in aligned blocks)
    assert part["saved_bytes"] == pytest.approx(full["saved_bytes"], rel=0.05)
    (t1, t2), (s1, s2) = part["measured_step_s"], part["measured_saved_bytes"]
    assert part["step_s"] == pytest.approx(t1 + 4 * (t2 - t1), abs=4e-3)  # both read back rounded to 1 ms
    assert s2 > s1 and part["saved_bytes"] == round(s1 + 4 * (s2 - s1))
    assert full["audio_s_per_s"] == pytest.approx(5 * 1.0 / full["step_s"], rel=0.02)
    assert full["epoch_hours_1"] == pytest.approx(100.6 / full["audio_s_per_s"], rel=0.02)
    assert full["epoch_hours_8"] == pytest.approx(full["epoch_hours_1"] / 8, abs=0.01)
    # the GPU estimate: FLOPs grow exactly with the batch, and the skeleton timed for the host issues the same ops
    for kind in ("cudnn", "other"):
        assert part["gpu_estimate"]["flops_per_step"][kind] == pytest.approx(
            full["gpu_estimate"]["flops_per_step"][kind], rel=1e-6)
    assert part["gpu_estimate"]["skeleton_same_ops"] and full["gpu_estimate"]["skeleton_same_ops"]
    assert set(full["gpu_estimate"]["gpus"]) == {"A100 80GB@fp32", "A100 80GB@bf16", "H100 80GB@fp32",
                                                 "H100 80GB@bf16"}


def test_unknown_config_is_one_clear_line(tmp_path):
    with pytest.raises(SystemExit, match="no such config"):
        bench_scale(["--configs", "librispeech/nope", "--out", str(tmp_path / "x.json")])


def test_utts_are_one_for_all_configs_or_one_each(tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench_scale(["--configs", "librispeech/las_100h", "librispeech/mocha_100h", "--utts", "1", "2", "3",
                     "--out", str(tmp_path / "x.json")])
    assert "3 values for 2 configs" in capsys.readouterr().err
