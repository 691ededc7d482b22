from pathlib import Path

import pytest
import soundfile as sf
import torch

from asr.bench.gpu_estimate import (
    PEAK_FLOPS,
    SKELETON,
    UTILIZATION,
    KernelCount,
    estimate,
    flop_counter,
    forward_backward,
    host_seconds,
    loader_rate,
    split_flops,
    stand_in_recording,
)
from asr.bench.scale import compose_config
from asr.models.las import build_model

REAL = Path(__file__).parent / "data/librispeech-real/LibriSpeech/dev-clean/1272/128104/1272-128104-0001.flac"

SMALL = ["data.max_duration=1.0", "data.max_frames=500", "model.listener.hidden=32", "model.listener.layers=2",
         "model.listener.channels=4", "model.speller.hidden=16", "model.speller.embed_dim=8",
         "model.attention.attention_dim=8"]


def test_the_fused_lstm_layer_is_counted_as_its_cell_unrolled():
    """The CPU's fused LSTM layer (unknown to torch's flop counter) costs what the same LSTM run a frame at a time
    through LSTMCell costs, whose matmuls torch counts itself: forward and backward."""
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(6, 5, batch_first=True)
    cell = torch.nn.LSTMCell(6, 5)
    x = torch.randn(3, 4, 6, requires_grad=True)
    with flop_counter() as fused:
        lstm(x)[0].sum().backward()
    with flop_counter() as unrolled:
        h = torch.zeros(3, 5, requires_grad=True)  # the fused layer returns the initial state's gradient too
        c = torch.zeros(3, 5)
        outs = []
        for t in range(4):
            h, c = cell(x[:, t], (h, c))
            outs.append(h)
        torch.stack(outs, 1).sum().backward()
    assert split_flops(fused)["cudnn"] > 0
    assert fused.get_total_flops() == unrolled.get_total_flops()


def test_kernel_count_leaves_out_views_and_allocations():
    a, b = torch.randn(4, 6), torch.randn(4, 6)
    with KernelCount() as count:
        y = a.t().reshape(4, 6) @ b.view(6, 4)  # view is free; reshaping a transpose copies it
        torch.empty(3)
        y.relu().detach()
    assert dict(count.ops) == {"clone": 1, "mm": 1, "relu": 1} and count.ops.total() == 3


def test_skeleton_issues_the_same_ops_as_the_model_whatever_the_batch():
    """What host_seconds times stands for the real step only if shrinking the widths and the batch leaves the
    sequence of ops unchanged."""
    for name in ("librispeech/las_100h", "librispeech/mocha_100h"):
        cfg = compose_config(name, SMALL)
        torch.manual_seed(0)
        model = build_model(cfg.model, 32, 80).train()
        counts = []
        for n in (2, 3):
            count = KernelCount()
            forward_backward(model, n, 100, 15, 32, [count])
            counts.append(count.ops)
        seconds, skeleton = host_seconds(compose_config(name, [*SMALL, *SKELETON]), 32, 100, 15, runs=1)
        assert counts[0] == counts[1] == skeleton and seconds > 0
        assert counts[0]["mkldnn_rnn_layer"] == 2 * 2  # two BLSTM layers, two directions each


def test_estimate_takes_the_slower_of_arithmetic_host_and_loader():
    peak = PEAK_FLOPS["A100 80GB"]
    flops = {"cudnn": peak["tf32"] * UTILIZATION * 2.0, "other": peak["fp32"] * UTILIZATION * 1.0}
    out = estimate(flops, host_s=0.5, audio_s=600, loader_s_per_s=1000, workers=8, epoch_hours=100)
    fp32 = out["A100 80GB@fp32"]
    assert fp32["compute_s"] == pytest.approx(3.0) and fp32["step_s"] == pytest.approx(3.0)
    assert fp32["bound"] == "compute" and fp32["audio_s_per_s"] == pytest.approx(200)
    assert fp32["epoch_min_1"] == pytest.approx(100 * 60 / 200) and fp32["epoch_min_8"] == pytest.approx(3.8, abs=0.1)
    # bf16 runs both kinds at the bf16 rate: slower than the host on an A100, faster on an H100
    bf16 = out["A100 80GB@bf16"]
    assert bf16["compute_s"] == pytest.approx((2 * 156 + 19.5) / 312, abs=1e-3) and bf16["bound"] == "compute"
    h100 = out["H100 80GB@bf16"]
    assert h100["compute_s"] == pytest.approx((2 * 156 + 19.5) / 989.4, abs=1e-3)
    assert h100["bound"] == "host" and h100["step_s"] == 0.5 and h100["audio_s_per_s"] == 1200
    slow_loader = estimate({"cudnn": 0, "other": 0}, 0.5, 600, loader_s_per_s=100, workers=2, epoch_hours=100)
    assert slow_loader["H100 80GB@bf16"]["bound"] == "loader"
    assert slow_loader["H100 80GB@bf16"]["audio_s_per_s"] == pytest.approx(200)


def test_loader_rate_is_audio_seconds_per_second_of_a_real_recording():
    rate = loader_rate([0.9, 1.0, 1.1], REAL, runs=1)
    assert 1 < rate < 100_000


def test_the_stand_in_recording_lasts_as_long_as_asked_and_costs_the_loader_like_a_real_one(tmp_path):
    """Without a path the loader reads a generated FLAC of a dev utterance's length; its rate stays within a
    factor of a real recording's (the same decoding, resampling and features per second of audio)."""
    path = stand_in_recording(tmp_path, seconds=2.5)
    info = sf.info(path)
    assert info.samplerate == 16000 and abs(info.duration - 2.5) < 1e-3
    stand_in, recorded = loader_rate([1.0], runs=2), loader_rate([1.0], REAL, runs=2)
    assert 0.3 < stand_in / recorded < 3
