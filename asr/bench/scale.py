"""Training at scale: step time, epoch time and memory of the LibriSpeech model configs on their largest batch.

    python -m asr.bench.scale [--configs librispeech/las_100h librispeech/mocha_100h ...] [--device auto]
                              [--precisions fp32 bf16] [--utts N [N ...]] [--runs 2] [--out FILE]

The batch is each config's worst case: utterances of `data.max_duration` seconds, as many as `data.max_frames`
padded frames hold (at most `data.max_batch`), random 80-dim features, transcripts as long as LibriSpeech
speech of that duration (14.9 characters or 2.8 words a second, measured on dev-clean), random untrained
weights. One step is forward, loss, backward and an Adam update, in the config's own mode (dropout on).

On a GPU the whole batch runs, in each precision, and the peak is `torch.cuda.max_memory_allocated`. On the CPU
`--utts` and twice as many utterances run (the full batch of a 960 h model takes many minutes a step on two
cores) and the full batch is extrapolated along the line through both, as LSTM work and activations grow with
the batch at a fixed length; its memory is counted rather than measured: weights, gradients and Adam's two moments plus
every tensor autograd keeps for the backward (seen through `saved_tensors_hooks`), which is what a GPU holds at
the top of the backward, less the kernels' workspace. The JSON says which figures are extrapolated.

Epoch time = the hours of audio in an epoch / the audio-seconds trained per second; on 8 devices it is divided
by 8, i.e. ideal DDP scaling, not measured. On the CPU each row also carries `gpu_estimate`: the step and epoch
on an A100 and an H100 extrapolated from the step's counted FLOPs, the host time of issuing its ops and a loader
worker's rate (asr/bench/gpu_estimate.py says how, and which figures are assumed). Writes --out
(scale_bench.json in the working directory) and the tables.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from .gpu_estimate import (
    LAUNCH_S,
    SKELETON,
    UTILIZATION,
    KernelCount,
    estimate,
    flop_counter,
    host_seconds,
    loader_rate,
    random_batch,
    split_flops,
)

CONFIGS = ["librispeech/las_100h", "librispeech/mocha_100h", "librispeech/las_960h", "librispeech/mocha_960h"]
# LibriSpeech dev-clean: 5.39 h, 288 k characters with spaces, 54 k words
CHARS_PER_SECOND, WORDS_PER_SECOND = 14.9, 2.8
# per config: vocabulary and tokens per second of speech. The 960 h configs are meant for 16 k unigram pieces
# (their headers); 1.3 pieces a word is an assumption, not a measurement.
TOKENS = {"librispeech/las_960h": (16384, WORDS_PER_SECOND * 1.3),
          "librispeech/mocha_960h": (16384, WORDS_PER_SECOND * 1.3)}
CHARACTERS = (32, CHARS_PER_SECOND)
EPOCH_HOURS = {"100h": 100.6, "960h": 961.1}  # train-clean-100; all three training subsets
GPU_MEMORY_GB = 80


def compose_config(name: str, overrides: list[str]):
    from .. import compose_config

    try:
        return compose_config(name, overrides)
    except ValueError as err:
        raise SystemExit(f"asr.bench.scale: {err}") from None


def full_batch(cfg) -> tuple[int, int]:
    """(utterances, frames per utterance) of the config's largest batch."""
    frames = int(round(cfg.data.max_duration * 100))
    return min(int(cfg.data.max_batch), int(cfg.data.max_frames) // frames), frames


class SavedBytes(contextlib.AbstractContextManager):
    """Bytes of the distinct storages autograd saves for the backward, parameters left out (counted apart)."""

    def __init__(self, params):
        self.skip = {p.untyped_storage().data_ptr() for p in params}
        self.storages: dict[int, torch.UntypedStorage] = {}
        self.hooks = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in self.skip:
            self.storages[s.data_ptr()] = s  # held, so that no later tensor reuses the address while counting
        return t

    def __enter__(self):
        self.hooks.__enter__()
        return self

    def __exit__(self, *exc):
        return self.hooks.__exit__(*exc)

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes() for s in self.storages.values())


def measure(name: str, device: torch.device, precision: str, utts: int, runs: int,
            overrides: list[str] = ()) -> dict:
    """Time `runs` training steps (after one warm-up) of config `name` on its full batch (utts 0) or, when
    utts > 0, on utts and 2 x utts utterances, and extrapolate linearly to the full batch."""
    from ..models.las import build_model
    cfg = compose_config(name, list(overrides))
    vocab, rate = TOKENS.get(name, CHARACTERS)
    n_full, frames = full_batch(cfg)
    u = int(round(frames / 100 * rate))
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    torch.manual_seed(0)
    model = build_model(cfg.model, vocab, 80).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    params = sum(p.numel() for p in model.parameters())

    def step(n: int, saved=None, counters=()) -> float:
        batch = random_batch(n, frames, u, vocab, device)
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with contextlib.ExitStack() as around_both:  # counters see forward and backward, `saved` the forward
            for c in counters:
                around_both.enter_context(c)
            with saved or contextlib.nullcontext():
                with torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext():
                    loss = model(*batch)["loss"]
            loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def measured_at(n: int) -> tuple[float, int, dict[str, int], collections.Counter]:
        """Median step seconds, saved bytes, forward + backward FLOPs and kernel ops at n utterances."""
        saved, flops, kernels = SavedBytes(model.parameters()), flop_counter(), KernelCount()
        step(n, saved, [flops, kernels] if device.type == "cpu" else [])  # warm-up, and the counts
        seconds = statistics.median(step(n) for _ in range(runs))
        return seconds, saved.nbytes, split_flops(flops), kernels.ops

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sizes = [n_full] if utts <= 0 or utts >= n_full else [utts, min(2 * utts, n_full)]
    measured = [measured_at(n) for n in sizes]

    def at_full_batch(values: list[float]) -> float:
        """a + b * n through both measured sizes: weights copied per step (a) do not grow with the batch."""
        if len(sizes) == 1:
            return values[0]
        (n1, n2), (v1, v2) = sizes, values
        return v1 + (v2 - v1) / (n2 - n1) * (n_full - n1)

    seconds = at_full_batch([m[0] for m in measured])
    saved = at_full_batch([m[1] for m in measured])
    row = {"params_m": round(params / 1e6, 2), "precision": precision, "device": device.type,
           "full_batch_utts": n_full, "frames_per_utt": frames, "tokens_per_utt": u, "vocab": vocab,
           "measured_utts": sizes, "measured_step_s": [round(m[0], 3) for m in measured],
           "measured_saved_bytes": [m[1] for m in measured], "extrapolated": sizes != [n_full],
           "step_s": round(seconds, 3), "saved_bytes": round(saved)}
    row["audio_s_per_s"] = round(n_full * frames / 100 / row["step_s"], 1)
    # weights, gradients, Adam's exp_avg and exp_avg_sq: 4 copies of the fp32 parameters
    row["activations_gb"] = round(saved / 1e9, 2)
    row["memory_gb"] = round(4 * 4 * params / 1e9 + row["activations_gb"], 2)
    row["memory_from"] = "saved tensors + 4 x parameters, counted"
    if device.type == "cuda" and not row["extrapolated"]:
        row["memory_gb"] = round(torch.cuda.max_memory_allocated(device) / 1e9, 2)
        row["memory_from"] = "torch.cuda.max_memory_allocated"
    row["fits_80gb"] = row["memory_gb"] < GPU_MEMORY_GB
    hours = EPOCH_HOURS["960h" if "960h" in name else "100h"]
    row["epoch_hours_1"] = round(hours / row["audio_s_per_s"], 2)
    row["epoch_hours_8"] = round(row["epoch_hours_1"] / 8, 2)
    if device.type == "cpu":
        flops = {kind: at_full_batch([m[2][kind] for m in measured]) for kind in ("cudnn", "other")}
        row["gpu_estimate"] = extrapolate_to_gpu(name, overrides, vocab, frames, u, runs, measured[-1][3], flops,
                                                 n_full, hours, cfg)
    return row


def extrapolate_to_gpu(name: str, overrides, vocab: int, frames: int, tokens: int, runs: int,
                       kernels: collections.Counter, flops: dict[str, float], n_full: int, hours: float,
                       cfg) -> dict:
    """The GPU step and epoch estimated from this CPU (asr/bench/gpu_estimate.py): FLOPs of the full batch,
    the skeleton's host seconds, one loader worker's rate."""
    skeleton = compose_config(name, [*overrides, *SKELETON])
    cpu_s, skeleton_kernels = host_seconds(skeleton, vocab, frames, tokens, max(runs, 5))  # a second a run
    host_s = cpu_s + LAUNCH_S * kernels.total()
    factors = list(cfg.data.get("speed_perturb") or [1.0])
    loader = loader_rate(factors)
    workers = max(1, int(cfg.data.num_workers))
    return {"flops_per_step": {k: round(v) for k, v in flops.items()}, "kernels_per_step": kernels.total(),
            "skeleton_cpu_s": round(cpu_s, 3), "launch_s_assumed": LAUNCH_S, "host_s": round(host_s, 3),
            "skeleton_same_ops": skeleton_kernels == kernels, "loader_audio_s_per_s_per_worker": round(loader, 1),
            "workers_per_gpu": workers, "utilization_assumed": UTILIZATION,
            "gpus": estimate(flops, host_s, n_full * frames / 100, loader, workers, hours)}


def table(rows: dict[str, dict]) -> str:
    head = ("| config | precision | device | params M | batch (utts x s) | step s | audio-s/s | epoch h, 1 device "
            "| epoch h, 8 (ideal) | memory GB | fits 80 GB |")
    lines = [head, "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for key, r in rows.items():
        mark = "*" if r["extrapolated"] else ""
        lines.append(f"| {key.split('@')[0]} | {r['precision']} | {r['device']} | {r['params_m']} | "
                     f"{r['full_batch_utts']} x {r['frames_per_utt'] / 100:g} | {r['step_s']}{mark} | "
                     f"{r['audio_s_per_s']}{mark} | {r['epoch_hours_1']}{mark} | {r['epoch_hours_8']}{mark} | "
                     f"{r['memory_gb']}{mark} | {'yes' if r['fits_80gb'] else 'no'} |")
    if any(r["extrapolated"] for r in rows.values()):
        lines.append("\n\\* extrapolated from a smaller batch (`measured_utts` in the JSON)")
    return "\n".join(lines)


def gpu_table(rows: dict[str, dict]) -> str:
    """The CPU rows' GPU estimates (extrapolated, not measured): one line per config, GPU and precision."""
    lines = ["| config | GPU | precision | TFLOP a step | compute s | host s | step s | bound | audio-s/s "
             "| epoch min, 1 GPU | epoch min, 8 (ideal) |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    for key, r in rows.items():
        est = r.get("gpu_estimate")
        for gpu_precision, g in (est or {}).get("gpus", {}).items():
            gpu, precision = gpu_precision.split("@")
            tflop = sum(est["flops_per_step"].values()) / 1e12
            lines.append(f"| {key.split('@')[0]} | {gpu} | {precision} | {tflop:.2f} | {g['compute_s']} | "
                         f"{est['host_s']} | {g['step_s']} | {g['bound']} | {g['audio_s_per_s']} | "
                         f"{g['epoch_min_1']} | {g['epoch_min_8']} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m asr.bench.scale", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=CONFIGS)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--precisions", nargs="+", default=None,
                   help="fp32 | bf16 | fp16 (default: fp32 on the CPU, fp32 and bf16 on a GPU)")
    p.add_argument("--utts", type=int, nargs="+", default=None,
                   help="utterances per measured batch, 0 for all (default: 1 on the CPU, all on a GPU); "
                        "one value for every config or one per config")
    p.add_argument("--runs", type=int, default=2, help="timed steps after one warm-up step")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides for every config")
    p.add_argument("--out", type=Path, default=Path("scale_bench.json"))
    args = p.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    precisions = args.precisions or (["fp32", "bf16"] if device.type == "cuda" else ["fp32"])
    utts = args.utts or [0 if device.type == "cuda" else 1]
    if len(utts) not in (1, len(args.configs)):
        p.error(f"--utts: {len(utts)} values for {len(args.configs)} configs (give one, or one per config)")
    utts_of = dict(zip(args.configs, utts * len(args.configs) if len(utts) == 1 else utts))
    rows = {}
    for name in args.configs:
        for precision in precisions:
            try:
                rows[f"{name}@{precision}"] = measure(name, device, precision, utts_of[name], args.runs,
                                                           args.overrides)
            except torch.OutOfMemoryError:
                rows[f"{name}@{precision}"] = {"error": "out of memory on the full batch"}
                torch.cuda.empty_cache()
            print(f"{name} {precision}: {rows[f'{name}@{precision}']}", file=sys.stderr, flush=True)
    good = {k: v for k, v in rows.items() if "error" not in v}
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    result = {"device": where, "torch": torch.__version__, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(good))
    if gpu_table(good):
        print("\nOn a GPU, estimated from this CPU's counts and timings (asr/bench/gpu_estimate.py), not measured:")
        print(gpu_table(good))
    for k, v in rows.items():
        if "error" in v:
            print(f"{k}: {v['error']}")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
