"""A training step's time on a GPU, extrapolated from what the CPU can count and time (no GPU at hand).

`python -m asr.bench.scale` uses this on the CPU; on a GPU it measures instead. A step on a GPU takes at least
as long as its arithmetic at the GPU's sustained rate, and at least as long as the host takes to issue its
kernels one by one: eager PyTorch pays a Python call, a dispatch and a launch per op, and the speller's loop
issues tens of thousands of small ones a step. The estimate is the larger of the two,

    step_s = max(sum(flops[kind] / (PEAK_FLOPS[gpu][rate of kind] * UTILIZATION)), host_s)

- flops: counted by `torch.utils.flop_counter` over forward and backward (the CPU's fused LSTM layer, which it
  does not know, counted by its matmuls: `rnn_layer_flops`), split into the cuDNN ops (LSTM layers,
  convolutions), which PyTorch lets use TF32 tensor cores in fp32, and the rest (matmuls: TF32 off by default).
- host_s: the same step with every width shrunk to a few units (`SKELETON`), two utterances of the same length,
  timed on this CPU, which is the same op sequence (checked op by op) with almost no arithmetic left, i.e. what
  issuing the ops costs; plus LAUNCH_S for each kernel, which the CPU does not pay. A GPU host's CPU may be
  faster than this one; bf16 adds autocast's casts, so its host term is a lower bound.
- PEAK_FLOPS: the datasheets' dense figures. UTILIZATION and LAUNCH_S are assumptions, not measurements.

The data loader is a third bound: `loader_rate` times one worker reading, speed-perturbing and featurizing a
recording's length on this CPU; an epoch cannot go faster than the config's workers deliver.
"""

import collections
import contextlib
import math
import statistics
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

# dense peak FLOP/s from NVIDIA's datasheets (A100 SXM 80 GB; H100 SXM5 80 GB): fp32 without tensor cores,
# tf32 and bf16 on them
PEAK_FLOPS = {"A100 80GB": {"fp32": 19.5e12, "tf32": 156e12, "bf16": 312e12},
              "H100 80GB": {"fp32": 66.9e12, "tf32": 494.7e12, "bf16": 989.4e12}}
UTILIZATION = 0.5  # assumed share of the peak the step's matmuls sustain
LAUNCH_S = 5e-6    # assumed host seconds of one CUDA kernel launch (cudaLaunchKernel), on top of the dispatch
CUDNN_OPS = {"mkldnn_rnn_layer", "mkldnn_rnn_layer_backward", "convolution", "convolution_backward"}
# widths that leave the op sequence of a step unchanged but its arithmetic negligible
SKELETON = ["model.listener.hidden=8", "model.listener.channels=2", "model.speller.hidden=8",
            "model.speller.embed_dim=8", "model.attention.attention_dim=8"]
SAMPLE_SECONDS = 4.8  # the length of the stand-in recording the loader reads: a LibriSpeech dev utterance's


def rnn_layer_flops(input_shape, w_ih_shape, w_hh_shape, *args, **kwargs) -> int:
    """Forward FLOPs of one direction of one LSTM layer: the input and recurrent matmuls at every frame."""
    frames = math.prod(input_shape) // input_shape[-1]
    return 2 * frames * (math.prod(w_ih_shape) + math.prod(w_hh_shape))


def rnn_layer_backward_flops(input_shape, w_ih_shape, w_hh_shape, *args, **kwargs) -> int:
    """Backward: gradients of the inputs and of the weights, each a matmul as large as the forward's."""
    return 2 * rnn_layer_flops(input_shape, w_ih_shape, w_hh_shape)


def flop_counter() -> FlopCounterMode:
    aten = torch.ops.aten
    return FlopCounterMode(display=False, custom_mapping={aten.mkldnn_rnn_layer: rnn_layer_flops,
                                                          aten.mkldnn_rnn_layer_backward: rnn_layer_backward_flops})


def split_flops(counter: FlopCounterMode) -> dict[str, int]:
    """{"cudnn": FLOPs of LSTM layers and convolutions, "other": the rest} of a finished count."""
    split = {"cudnn": 0, "other": 0}
    for op, flops in counter.get_flop_counts()["Global"].items():
        split["cudnn" if op.__name__ in CUDNN_OPS else "other"] += flops
    return split


class KernelCount(TorchDispatchMode):
    """Counts the ops a step dispatches that would launch a GPU kernel: views and allocations left out."""

    FREE = {"empty", "empty_like", "empty_strided", "detach", "lift_fresh", "_unsafe_view"}  # no kernel either

    def __init__(self):
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if not func.is_view and name not in self.FREE:
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))


def random_batch(n: int, frames: int, tokens: int, vocab: int, device="cpu") -> tuple[torch.Tensor, ...]:
    """n utterances of random 80-dim features (n, frames, 80) and random tokens (n, tokens), with their lengths."""
    return (torch.randn(n, frames, 80, device=device), torch.full((n,), frames, device=device),
            torch.randint(2, vocab, (n, tokens), device=device), torch.full((n,), tokens, device=device))


def forward_backward(model, n: int, frames: int, tokens: int, vocab: int, counters=()) -> float:
    """Seconds of one forward and backward of `model` on n random utterances; `counters` are entered around it."""
    batch = random_batch(n, frames, tokens, vocab)
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        for c in counters:
            stack.enter_context(c)
        model(*batch)["loss"].backward()
    return time.perf_counter() - start


def host_seconds(cfg, vocab: int, frames: int, tokens: int, runs: int) -> tuple[float, collections.Counter]:
    """Median seconds of a forward and backward of the skeleton of `cfg` (built by the caller with SKELETON
    overrides) on two utterances, and the ops it dispatched. Two, not one: a batch of one takes a few other
    paths (a linear layer over (1, T, D) folds its bias into the matmul); from two on the ops are the same."""
    from ..models.las import build_model
    torch.manual_seed(0)
    model = build_model(cfg.model, vocab, 80).train()
    counter = KernelCount()
    forward_backward(model, 2, frames, tokens, vocab, [counter])
    return statistics.median(forward_backward(model, 2, frames, tokens, vocab) for _ in range(runs)), counter.ops


def stand_in_recording(directory: Path, seconds: float = SAMPLE_SECONDS) -> Path:
    """A 16 kHz FLAC of pink noise in `directory`: it costs the loader what a recording of that length does
    (decoding FLAC, resampling, features), and needs no corpus."""
    from ..data.noise import coloured_noise
    from ..frontend import SAMPLE_RATE
    noise = 0.05 * coloured_noise(int(seconds * SAMPLE_RATE), 1.0, torch.Generator().manual_seed(0))
    path = directory / "stand-in.flac"
    sf.write(path, noise.numpy(), SAMPLE_RATE, subtype="PCM_16")
    return path


def loader_rate(factors, path: Path | None = None, runs: int = 3) -> float:
    """Audio-seconds per second one DataLoader worker (one thread) turns into normalized features, reading and
    speed-perturbing the FLAC at `path` (None: `stand_in_recording`) with each of `factors` in turn, as an epoch
    draws them."""
    from ..data.batching import perturb_speed
    from ..frontend import SAMPLE_RATE, GlobalNorm, LogMel, load_audio
    if path is None:
        with tempfile.TemporaryDirectory() as tmp:
            return loader_rate(factors, stand_in_recording(Path(tmp)), runs)
    logmel, norm = LogMel(), GlobalNorm(torch.zeros(80), torch.ones(80))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seconds, audio = [], 0.0
        for _ in range(runs):
            start = time.perf_counter()
            for factor in factors:
                wav = perturb_speed(load_audio(path), factor)
                norm(logmel(wav))
                audio += len(wav) / SAMPLE_RATE
            seconds.append(time.perf_counter() - start)
        return audio / sum(seconds)
    finally:
        torch.set_num_threads(threads)


def estimate(flops: dict[str, float], host_s: float, audio_s: float, loader_s_per_s: float, workers: int,
             epoch_hours: float) -> dict:
    """Per GPU and precision: step seconds, what bounds it, and minutes per epoch on 1 GPU and on 8 (ideal).

    flops: `split_flops` of the batch; host_s: seconds to issue its kernels; audio_s: audio-seconds in the batch;
    loader_s_per_s: one worker's rate; workers: per GPU; epoch_hours: hours of audio in an epoch."""
    out = {}
    for gpu, peak in PEAK_FLOPS.items():
        for precision, rates in {"fp32": ("tf32", "fp32"), "bf16": ("bf16", "bf16")}.items():
            compute_s = sum(flops[kind] / (peak[rate] * UTILIZATION) for kind, rate in zip(("cudnn", "other"), rates))
            step_s = max(compute_s, host_s)
            speed = audio_s / step_s
            bound = "compute" if compute_s > host_s else "host"
            if workers * loader_s_per_s < speed:
                speed, bound = workers * loader_s_per_s, "loader"
            minutes = epoch_hours * 60 / speed  # hours of audio * 3600 / (audio-seconds a second) / 60
            out[f"{gpu}@{precision}"] = {"compute_s": round(compute_s, 3), "step_s": round(step_s, 3),
                                         "bound": bound, "audio_s_per_s": round(speed, 1),
                                         "epoch_min_1": round(minutes, 1), "epoch_min_8": round(minutes / 8, 1)}
    return out
