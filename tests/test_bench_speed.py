import json
import sys
import textwrap

import pytest
import torch

from asr.bench.speed import MODELS, TARGETS, TASKS, ratios
from asr.bench.speed import main as bench_speed

TINY = ["model.listener.channels=4", "model.listener.hidden=16", "model.listener.layers=2",
        "model.attention.attention_dim=8", "model.speller.hidden=16", "model.speller.embed_dim=8"]
TINY_RUN = ["--frames", "64", "--batch", "2", "--runs", "1", "--threads", "1", "--malloc", "default",
            "--overrides", *TINY]

# stands in for the peers' harness (bench_peers.py): same command line, writes its --out JSON with known seconds
FAKE_PEERS = textwrap.dedent("""
    import argparse, json
    p = argparse.ArgumentParser()
    p.add_argument("--configs", nargs="+"); p.add_argument("--frames", type=int); p.add_argument("--runs", type=int)
    p.add_argument("--tasks"); p.add_argument("--malloc"); p.add_argument("--out"); p.add_argument("--allow-busy",
                                                                                                  action="store_true")
    a = p.parse_args()
    seconds = {"espnet-blstmp": 2.0, "espnet-vggblstm": 4.0, "speechbrain-crdnn": 3.0}
    results = [dict(config=c, frames=a.frames, params=1000, malloc=a.malloc,
                    **{f"{t}_s": [seconds[c] * (i + 1), seconds[c] * (i + 1) * 3] for i, t in
                       enumerate(a.tasks.split(","))}) for c in a.configs]
    json.dump({"results": results}, open(a.out, "w"))
""")


def test_ratios_are_ours_over_the_matched_peer_and_targets_pick_the_right_peer():
    ours = {"location-mid": {"train_s": 1.0, "greedy_s": 0.5, "beam8_s": 3.0}}
    peers = {"espnet-vggblstm": {"train_s": 2.0, "greedy_s": 1.0, "beam8_s": 4.0},
             "speechbrain-crdnn": {"train_s": 1.6, "greedy_s": 0.25, "beam8_s": 2.0},
             "espnet-blstmp": {"train_s": 0.1, "greedy_s": 0.1, "beam8_s": 0.1}}  # another size: never compared
    out = ratios(ours, peers)["location-mid"]
    assert set(out["peers"]) == {"espnet-vggblstm", "speechbrain-crdnn"}
    assert out["peers"]["speechbrain-crdnn"] == {"train": 1.0 / 1.6, "greedy": 2.0, "beam8": 1.5}
    targets = out["targets"]
    assert targets["train"]["against"] == "speechbrain-crdnn"  # the faster same-size peer
    assert targets["train"]["ratio"] == pytest.approx(0.625) and targets["train"]["met"]
    assert targets["greedy"]["against"] == "espnet-vggblstm"  # ESPnet, even where SpeechBrain is faster
    assert targets["greedy"]["ratio"] == 0.5 and targets["greedy"]["met"]
    assert targets["beam8"]["ratio"] == 0.75 and not targets["beam8"]["met"]
    assert {k: v["at_most"] for k, v in targets.items()} == {k: v for k, (_, v) in TARGETS.items()}


@pytest.mark.slow
def test_our_side_runs_and_peers_are_skipped_with_a_note(tmp_path, capsys):
    out = tmp_path / "speed.json"
    bench_speed(["--models", "location", "mocha", *TINY_RUN, "--peers", str(tmp_path / "no-peers"),
                 "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["workload"]["target_len"] == 64 * 80 // 600
    (run,) = data["runs"]
    assert run["malloc"] == "default" and run["peers"] is None
    assert "peers skipped" in run["peers_note"] and "--peers-script" in run["peers_note"]
    assert "peers skipped" in capsys.readouterr().out
    for name in ("location", "mocha"):
        row, raw = run["ours"][name], run["raw"]["ours"][name]
        for task in TASKS:
            assert row[f"{task}_s"] > 0 and len(raw[f"{task}_s"]) == 1
        # decoding is bounded at exactly the target length, as the peers' is
        assert row["greedy_hyp_lens"] == row["beam8_hyp_lens"] == [data["workload"]["target_len"]]
        assert row["greedy_decoder_steps"] == row["target_len"]
        assert row["train_decoder_steps"] == row["target_len"] + 1  # <sos> y_1 .. y_U
        assert row["train_audio_s_per_s"] == pytest.approx(2 * 64 * 0.01 / row["train_s"])
        # the step's counted FLOPs against the matrix-product peaks measured in the same process
        assert row["train_gflop_per_s"] == pytest.approx(row["train_gflop"] / row["train_s"])
        for dtype in ("fp32", "bf16"):
            assert row[f"matmul_{dtype}_gflop_per_s"] > 0
            assert row[f"train_share_of_{dtype}_peak"] == pytest.approx(
                row["train_gflop_per_s"] / row[f"matmul_{dtype}_gflop_per_s"])
        assert raw["ld_preload"] is None and raw["threads"] == 1
        assert run["ratios"][name] == {"peers": {}, "targets": {}}


def test_a_training_steps_flops_are_counted_forward_and_backward():
    """A linear layer (B, D) -> (B, E): 2BDE FLOPs forward, twice that backward (gradients of input and weight);
    the same for the fused LSTM layers, which torch's counter leaves out."""
    from asr.bench.speed import counted_flops

    layer, x = torch.nn.Linear(64, 32, bias=False), torch.randn(8, 64, requires_grad=True)
    assert counted_flops(lambda: layer(x)) == 2 * 8 * 64 * 32
    assert counted_flops(lambda: layer(x).sum().backward()) == 3 * 2 * 8 * 64 * 32
    # a fused bidirectional LSTM (B=4, T=50, I=80, H=64): 2 x 4H x (I + H) per step, sequence and direction
    lstm, x = torch.nn.LSTM(80, 64, batch_first=True, bidirectional=True), torch.randn(4, 50, 80)
    forward = 2 * 4 * 64 * (80 + 64) * 4 * 50 * 2
    assert counted_flops(lambda: lstm(x)) == forward
    assert counted_flops(lambda: lstm(x)[0].sum().backward()) == 3 * forward


@pytest.mark.slow
def test_peer_ratios_in_the_json_come_from_the_peers_harness(tmp_path):
    venv = tmp_path / "peers"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    script = tmp_path / "bench_peers.py"
    script.write_text(FAKE_PEERS)
    out = tmp_path / "speed.json"
    bench_speed(["--models", "location", *TINY_RUN, "--tasks", "train,greedy", "--peers", str(venv),
                 "--peers-script", str(script), "--out", str(out)])
    (run,) = json.loads(out.read_text())["runs"]
    assert run["peers_note"] is None and set(run["peers"]) == set(MODELS["location"][1]) == {"espnet-blstmp"}
    peer = run["peers"]["espnet-blstmp"]
    assert peer["train_s"] == 4.0 and peer["greedy_s"] == 8.0  # medians of the fake's two runs
    ours = run["ours"]["location"]
    got = run["ratios"]["location"]
    assert got["peers"]["espnet-blstmp"] == {"train": ours["train_s"] / 4.0, "greedy": ours["greedy_s"] / 8.0}
    assert got["targets"]["train"]["ratio"] == ours["train_s"] / 4.0
    assert got["targets"]["greedy"]["met"] == (ours["greedy_s"] <= 8.0)
    assert "beam8" not in got["targets"]
