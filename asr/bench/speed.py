"""Speed against the peers: our LAS beside ESPnet's and SpeechBrain's attention models of the same size, one run.

    python -m asr.bench.speed [--models location mocha location-mid] [--malloc both] [--runs 5]
                              [--peers VENV --peers-script bench_peers.py] [--out speed_bench.json]

The workload is the peers' harness's (`bench_peers.py`): a batch of 16 utterances of 600 frames (6 s) of random
80-dim features, 80 target tokens, vocabulary 30, untrained weights, dropout 0, loss 0.3 CTC + 0.7 attention,
2 threads. Timed: one training step (forward, loss, backward; the Adam update apart), greedy decoding and beam 8
with CTC weight 0.3, both from features to tokens and bounded at exactly the target length (no <eos> before it,
as the harness forces on the peers), and the listener forward alone. Each model runs in its own subprocess with
the allocator asked for (tcmalloc by LD_PRELOAD, or glibc's malloc: its page faults swing timings by up to 2x
between processes on our VMs), the peers through their harness under the peers' own venv (never imported here).
Writes --out (speed_bench.json in the working directory): medians, and each of our models' time over each
same-size peer's. The peers run when --peers names a venv with ESPnet and SpeechBrain installed and
--peers-script their harness (neither ships with this package); otherwise only our side runs, and the JSON says so.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

TCMALLOC_PATHS = ["/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
                  "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4"]
TASKS = ("train", "enc", "greedy", "beam8")
# our models: Hydra overrides of conf/train.yaml, and the peers of the same size (parameters) to compare with
MODELS = {
    "location": ([], ["espnet-blstmp"]),
    "mocha": (["model/attention=mocha"], ["espnet-blstmp"]),
    "location-mid": (["+model/size=mid"], ["espnet-vggblstm", "speechbrain-crdnn"]),
    "mocha-mid": (["+model/size=mid", "model/attention=mocha"], ["espnet-vggblstm", "speechbrain-crdnn"]),
}
# the peers' workload settings, for our models too
WORKLOAD_OVERRIDES = ["model.ctc_weight=0.3", "model.label_smoothing=0.0", "model.listener.dropout=0.0",
                      "model.speller.dropout=0.0"]
# targets of issue 5: our seconds over the peer's seconds, at most
TARGETS = {"train": ("faster", 0.7), "greedy": ("espnet", 1.0), "beam8": ("espnet", 0.5)}


def target_len(frames: int) -> int:
    return frames * 80 // 600  # 80 tokens per 6 s, as the peers' harness


def timeit(fn, runs: int, before=None, after_warmup=None) -> list[float]:
    """Seconds of `runs` calls of fn after one warm-up call; `before` runs untimed before each call."""
    times = []
    for i in range(runs + 1):
        if i == 1 and after_warmup:
            after_warmup()
        if before:
            before()
        gc.collect()
        start = time.perf_counter()
        fn()
        if i:
            times.append(time.perf_counter() - start)
    return times


def matmul_gflop_per_s(dtype: torch.dtype, runs: int, n: int = 1024) -> float:
    """GFLOP/s of an n x n by n x n matrix product in `dtype` on this process's threads (median after a warm-up):
    the machine's peak for dense work, to hold a training step's FLOP/s against."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g).to(dtype), torch.randn(n, n, generator=g).to(dtype)
    return 2 * n ** 3 / statistics.median(timeit(lambda: a @ b, runs)) / 1e9


def _lstm_layer_flops(input_shape, weight_ih_shape, weight_hh_shape, *args, **kwargs) -> int:
    """One fused LSTM layer in one direction (oneDNN's mkldnn_rnn_layer, which torch's counter does not know): the
    input and recurrent products of every step, 2 x 4H x (I + H) per step and sequence."""
    steps = math.prod(input_shape) // input_shape[-1]
    return 2 * steps * (math.prod(weight_ih_shape) + math.prod(weight_hh_shape))


def _lstm_layer_backward_flops(*shapes, **kwargs) -> int:
    return 2 * _lstm_layer_flops(*shapes)  # the gradients of the inputs and of the weights


def counted_flops(fn) -> int:
    """Floating-point operations of one call of fn, as torch.utils.flop_counter counts them (matrix products and
    convolutions; element-wise work is not counted), with the CPU's fused LSTM layers counted as well."""
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    lstm = {aten.mkldnn_rnn_layer: _lstm_layer_flops, aten.mkldnn_rnn_layer_backward: _lstm_layer_backward_flops}
    with FlopCounterMode(display=False, custom_mapping=lstm) as counter:
        fn()
    return counter.get_total_flops()


# ----------------------------------------------------------------------------- our side, one model per process
def run_ours(name: str, overrides: list[str], frames: int, batch: int, vocab: int, runs: int, tasks: set[str]
             ) -> dict:
    from .. import compose_config
    from ..decoding.greedy import greedy_decode
    from ..models.las import build_model

    cfg = compose_config("train", [*MODELS[name][0], *WORKLOAD_OVERRIDES, *overrides])
    torch.manual_seed(0)
    model = build_model(cfg.model, vocab, 80)
    # the peers' data: same generator and draws; token ids shifted by one as our 1 is <sos/eos>
    g = torch.Generator().manual_seed(0)
    u = target_len(frames)
    feats = torch.randn(batch, frames, 80, generator=g)
    targets = torch.randint(1, vocab - 2, (batch, u), generator=g) + 1
    lengths = torch.full((batch,), frames)
    target_lengths = torch.full((batch,), u)
    with torch.no_grad():
        t_enc = int(model.encode(feats[:1], lengths[:1])[1][0])  # listener frames T'
    res = {"params": sum(p.numel() for p in model.parameters()), "enc_frames": t_enc, "target_len": u,
           "overrides": [*MODELS[name][0], *overrides]}
    calls = {"n": 0}  # attention calls = decoder steps (one per step for the whole batch)
    model.speller.attention.register_forward_pre_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))

    def counted(key: str, fn, before=None) -> list[float]:
        """timeit, and the decoder steps of the warm-up run."""
        calls["n"] = 0
        return timeit(fn, runs, before, after_warmup=lambda: res.__setitem__(f"{key}_decoder_steps", calls["n"]))

    if "train" in tasks:
        model.train()
        initial = copy.deepcopy(model.state_dict())
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        last = {}

        def train_step():
            out = model(feats, lengths, targets, target_lengths)
            out["loss"].backward()
            last["loss"] = out["loss"].detach()

        res["train_s"] = counted("train", train_step, before=lambda: model.zero_grad(set_to_none=True))
        res["train_loss"] = float(last["loss"])
        model.zero_grad(set_to_none=True)
        res["train_flops"] = counted_flops(train_step)
        res["matmul_gflop_per_s"] = {"fp32": matmul_gflop_per_s(torch.float32, runs),
                                     "bf16": matmul_gflop_per_s(torch.bfloat16, runs)}
        res["adam_s"] = timeit(optimizer.step, runs)
        model.zero_grad(set_to_none=True)
        model.load_state_dict(initial)  # decode with the initial weights, as the peers
    model.eval()
    if "enc" in tasks:
        def encode():
            with torch.no_grad():
                model.encode(feats, lengths)

        res["enc_s"] = timeit(encode, runs)
    # exactly u tokens: at most ceil(T' * max) = u steps, no <eos> before floor(T' * min) = u + 0 steps
    bounds = {"max_len_ratio": (u - 0.5) / t_enc, "min_len_ratio": (u + 0.5) / t_enc}
    if "greedy" in tasks:
        out = {}

        def greedy():
            out["hyps"] = greedy_decode(model, feats, lengths, **bounds)[0]

        res["greedy_s"] = counted("greedy", greedy)
        res["greedy_hyp_lens"] = sorted({len(h) for h in out["hyps"]})
    if "beam8" in tasks:
        try:
            from ..decoding.beam import BeamOptions, beam_search
        except ImportError as e:
            res["beam8_note"] = f"not run: asr.decoding.beam is missing ({e})"
        else:
            options = BeamOptions(beam_size=8, ctc_weight=0.3, **bounds)
            out = {}

            def beam():
                out["hyps"] = beam_search(model, feats, lengths, options)

            res["beam8_s"] = counted("beam8", beam)
            res["beam8_hyp_lens"] = sorted({len(h.tokens) for h in out["hyps"]})
    res["minor_faults"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    return res


# ----------------------------------------------------------------------------- driver
def allocator_env(malloc: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if malloc == "tcmalloc":
        path = next((p for p in TCMALLOC_PATHS if os.path.exists(p)), None)
        if path is None:
            raise SystemExit("asr.bench.speed: tcmalloc not found (apt-get install libtcmalloc-minimal4), "
                             "or use --malloc default")
        env["LD_PRELOAD"] = path
    return env


def result_line(stdout: str) -> dict | None:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1][len("RESULT "):]) if lines else None


def summarize(res: dict, batch: int, frames: int) -> dict:
    """Medians in seconds, training audio-seconds per second and decoding real-time factors."""
    audio_s = batch * frames * 0.01
    row = {k: res[k] for k in ("params", "enc_frames", "target_len") if k in res}
    for task in TASKS:
        if f"{task}_s" in res:
            row[f"{task}_s"] = statistics.median(res[f"{task}_s"])
        for extra in ("decoder_steps", "hyp_lens"):
            if f"{task}_{extra}" in res:
                row[f"{task}_{extra}"] = res[f"{task}_{extra}"]
    if "train_s" in row:
        row["train_audio_s_per_s"] = audio_s / row["train_s"]
    if "train_flops" in res:  # how close a training step comes to the machine's matrix-product peaks
        row["train_gflop"] = res["train_flops"] / 1e9
        row["train_gflop_per_s"] = row["train_gflop"] / row["train_s"]
        for dtype, peak in res["matmul_gflop_per_s"].items():
            row[f"matmul_{dtype}_gflop_per_s"] = peak
            row[f"train_share_of_{dtype}_peak"] = row["train_gflop_per_s"] / peak
    for task in ("greedy", "beam8"):
        if f"{task}_s" in row:
            row[f"{task}_rtf"] = row[f"{task}_s"] / audio_s
    if "beam8_note" in res:
        row["beam8_note"] = res["beam8_note"]
    return row


def ratios(ours: dict[str, dict], peers: dict[str, dict]) -> dict[str, dict]:
    """For each of our models: its seconds over each same-size peer's, per task, and the issue's targets:
    training against the faster same-size peer, greedy and beam against ESPnet's."""
    out = {}
    for name, row in ours.items():
        matched = [p for p in MODELS[name][1] if p in peers]
        entry: dict = {"peers": {}}
        for peer in matched:
            entry["peers"][peer] = {task: row[f"{task}_s"] / peers[peer][f"{task}_s"] for task in TASKS
                                    if f"{task}_s" in row and f"{task}_s" in peers[peer]}
        targets = {}
        for task, (against, limit) in TARGETS.items():
            candidates = [p for p in matched if f"{task}_s" in peers[p] and (against == "faster"
                                                                            or p.startswith(against))]
            if f"{task}_s" not in row or not candidates:
                continue
            peer = min(candidates, key=lambda p: peers[p][f"{task}_s"])
            ratio = row[f"{task}_s"] / peers[peer][f"{task}_s"]
            targets[task] = {"against": peer, "ratio": ratio, "at_most": limit, "met": ratio <= limit}
        entry["targets"] = targets
        out[name] = entry
    return out


def run_peers(args, malloc: str, configs: list[str]) -> tuple[dict | None, str | None]:
    if args.peers is None or args.peers_script is None:
        return None, "peers skipped: give --peers (their venv) and --peers-script (their harness) to run them"
    python, script = args.peers / "bin" / "python", args.peers_script
    if not python.exists() or not script.exists():
        return None, f"peers skipped: {python if not python.exists() else script} not found"
    out = Path(f"/tmp/asr_speed_peers_{os.getpid()}_{malloc}.json")
    tasks = ",".join(t for t in TASKS if t in args.tasks)
    cmd = [str(python), str(script), "--configs", *configs, "--frames", str(args.frames), "--runs", str(args.runs),
           "--tasks", tasks, "--malloc", malloc, "--out", str(out), "--allow-busy"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        return None, f"peers failed ({' '.join(cmd)}): {(proc.stdout + proc.stderr)[-2000:]}"
    data = json.loads(out.read_text())
    out.unlink()
    return {r["config"]: r for r in data["results"]}, None


def table(runs: list[dict]) -> str:
    lines = ["| allocator | model | params | train s/step | train audio-s/s | greedy s | beam 8 + CTC s | "
             "train / peer | greedy / ESPnet | beam / ESPnet |", "|---|---|---:|---:|---:|---:|---:|---|---|---|"]
    f = lambda row, key, p=3: f"{row[key]:.{p}f}" if key in row else "-"  # noqa: E731
    for run in runs:
        for side, rows in (("ours", run["ours"]), ("peers", run["peers"] or {})):
            for name, row in rows.items():
                cells = ["", "", ""]
                if side == "ours":
                    t = run["ratios"][name]["targets"]
                    cells = [f"{t[k]['ratio']:.2f}x {t[k]['against']}" if k in t else "-"
                             for k in ("train", "greedy", "beam8")]
                label = name if side == "peers" else f"ours {name}"
                lines.append(f"| {run['malloc']} | {label} | {row['params'] / 1e6:.2f} M | {f(row, 'train_s')} | "
                             f"{f(row, 'train_audio_s_per_s', 1)} | {f(row, 'greedy_s')} | {f(row, 'beam8_s')} | "
                             + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m asr.bench.speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["location", "mocha", "location-mid"], choices=list(MODELS))
    p.add_argument("--malloc", choices=["tcmalloc", "default", "both"], default="both")
    p.add_argument("--runs", type=int, default=5, help="timed runs per task after one warm-up (medians)")
    p.add_argument("--frames", type=int, default=600)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--vocab", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tasks", default=",".join(TASKS), help="comma list of " + ", ".join(TASKS))
    p.add_argument("--overrides", nargs="*", default=[], help="more Hydra overrides for our models (tests)")
    p.add_argument("--peers", type=Path, default=None, help="the peers' venv (ESPnet, SpeechBrain)")
    p.add_argument("--peers-script", type=Path, default=None, help="the peers' harness, run by their venv's python")
    p.add_argument("--out", type=Path, default=Path("speed_bench.json"))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.tasks = [t for t in args.tasks.split(",") if t]
    if unknown := set(args.tasks) - set(TASKS):
        raise SystemExit(f"asr.bench.speed: unknown tasks {sorted(unknown)}; choose from {', '.join(TASKS)}")

    if args.worker:
        torch.set_num_threads(args.threads)
        res = run_ours(args.worker, args.overrides, args.frames, args.batch, args.vocab, args.runs, set(args.tasks))
        res.update(threads=torch.get_num_threads(), ld_preload=os.environ.get("LD_PRELOAD"))
        print("RESULT " + json.dumps(res), flush=True)
        return

    workload = {"batch": args.batch, "frames": args.frames, "target_len": target_len(args.frames),
                "vocab": args.vocab, "threads": args.threads, "runs": args.runs, "tasks": args.tasks,
                "beam": {"beam_size": 8, "ctc_weight": 0.3}, "loss": "0.3 CTC + 0.7 attention CE",
                "statistic": "median seconds", "targets": {k: {"against": a, "at_most": v}
                                                           for k, (a, v) in TARGETS.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs: list[dict] = []

    def write() -> None:  # after every allocator, so that a long run stopped half way keeps what it has
        args.out.write_text(json.dumps({"workload": workload, "cpu": platform.processor() or platform.machine(),
                                        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M"),
                                        "runs": runs}, indent=1) + "\n")

    for malloc in (["tcmalloc", "default"] if args.malloc == "both" else [args.malloc]):
        env = allocator_env(malloc)
        ours_raw = {}
        for name in args.models:
            cmd = [sys.executable, "-m", "asr.bench.speed", "--worker", name, "--runs", str(args.runs),
                   "--frames", str(args.frames), "--batch", str(args.batch), "--vocab", str(args.vocab),
                   "--threads", str(args.threads), "--tasks", ",".join(args.tasks), "--overrides", *args.overrides]
            load = os.getloadavg()[0]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            res = result_line(proc.stdout)
            if proc.returncode != 0 or res is None:
                raise SystemExit(f"asr.bench.speed: our model {name} failed:\n{proc.stderr[-3000:]}")
            res["loadavg_before"] = load
            ours_raw[name] = res
            print(f"{malloc:8s} ours {name}: {json.dumps(summarize(res, args.batch, args.frames))}", flush=True)
        configs = sorted({peer for name in args.models for peer in MODELS[name][1]})
        peers_raw, note = run_peers(args, malloc, configs)
        if note:
            print(note, flush=True)
        ours = {k: summarize(v, args.batch, args.frames) for k, v in ours_raw.items()}
        peers = {k: summarize(v, args.batch, args.frames) for k, v in peers_raw.items()} if peers_raw else None
        runs.append({"malloc": malloc, "ours": ours, "peers": peers, "peers_note": note,
                     "ratios": ratios(ours, peers or {}), "raw": {"ours": ours_raw, "peers": peers_raw}})
        write()
    print(table(runs))


if __name__ == "__main__":
    main()
