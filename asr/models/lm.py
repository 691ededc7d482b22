"""Character LSTM language model over the ASR tokenizer's ids, for shallow fusion in beam search.

Sentences are ``<sos> y1 .. yU <eos>`` with the tokenizer's id 1 as both ``<sos>`` and ``<eos>``. The model
shares the ASR vocabulary so its log-probabilities add directly to the speller's; id 0 (the CTC blank) is
never a word of the text, so the LM gives it probability zero (logit -inf) rather than a little mass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

LM_WEIGHTS = "lm.pt"
LM_CONFIG = "lm.yaml"


@dataclass
class LMState:
    """The LSTM's recurrent state: ``h`` and ``c`` each (layers, B, H)."""

    h: torch.Tensor
    c: torch.Tensor

    def select(self, index: torch.Tensor) -> LMState:
        """Batch entries ``index`` (B',) in that order: reorders, repeats or drops hypotheses in beam search."""
        return LMState(self.h.index_select(1, index), self.c.index_select(1, index))


class CharLM(nn.Module):
    """Embedding -> multi-layer LSTM -> linear output over the vocabulary, blank masked out."""

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden: int = 256, layers: int = 2,
                 dropout: float = 0.25, sos_eos: int = 1, blank: int = 0):
        super().__init__()
        if vocab_size <= max(sos_eos, blank):
            raise ValueError(f"vocab_size {vocab_size} too small for sos_eos={sos_eos}, blank={blank}")
        self.vocab_size, self.sos_eos, self.blank = vocab_size, sos_eos, blank
        self.embed_dim, self.hidden, self.layers, self.dropout_p = embed_dim, hidden, layers, dropout
        self.embed = nn.Embedding(vocab_size, embed_dim)
        # Dropout between LSTM layers (PyTorch's own) and on the embedding and the top layer's output.
        self.lstm = nn.LSTM(embed_dim, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden, vocab_size)

    def _logits(self, lstm_out: torch.Tensor) -> torch.Tensor:
        logits = self.output(self.dropout(lstm_out))
        # -inf, not a large negative number: the blank must get exactly zero probability after softmax.
        blank_mask = torch.zeros(self.vocab_size, dtype=torch.bool, device=logits.device)
        blank_mask[self.blank] = True
        return logits.masked_fill(blank_mask, float("-inf"))

    def forward(self, inputs: torch.Tensor, state: LMState | None = None) -> torch.Tensor:
        """inputs (B, U) ids, each row starting with <sos> -> logits (B, U, V) for the next token (blank -inf).
        ``state`` (default zeros) continues sentences begun by ``step``.

        Padding may follow a row's end: the LSTM is causal, so positions before it are unaffected.
        """
        x = self.dropout(self.embed(inputs))
        out, _ = self.lstm(x, None if state is None else (state.h, state.c))
        return self._logits(out)

    def init_state(self, batch_size: int, device: torch.device | str = "cpu") -> LMState:
        """Zero state for ``batch_size`` sentences; the first ``step`` should be fed <sos>."""
        zeros = torch.zeros(self.layers, batch_size, self.hidden, device=device)
        return LMState(zeros, zeros.clone())

    def step(self, tokens: torch.Tensor, state: LMState) -> tuple[torch.Tensor, LMState]:
        """One token per sentence: tokens (B,) -> (log-probabilities (B, V) of the next one, new state)."""
        out, (h, c) = self.lstm(self.dropout(self.embed(tokens))[:, None], (state.h, state.c))
        return F.log_softmax(self._logits(out[:, 0]), dim=-1), LMState(h, c)

    def sentence_log_prob(self, tokens: list[list[int]]) -> torch.Tensor:
        """Total log-probability (B,) of each id sequence as a whole sentence ``<sos> y <eos>``."""
        inputs, targets = pad_sentences(tokens, self.sos_eos)
        log_probs = F.log_softmax(self.forward(inputs.to(self.output.weight.device)), dim=-1)
        targets = targets.to(log_probs.device)
        picked = log_probs.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
        return picked.masked_fill(targets < 0, 0.0).sum(-1)


def pad_sentences(tokens: list[list[int]], sos_eos: int, ignore: int = -100) -> tuple[torch.Tensor, torch.Tensor]:
    """Id lists -> inputs (B, U+1) ``<sos> y`` padded with <sos/eos>, targets (B, U+1) ``y <eos>`` padded with
    ``ignore`` (the cross-entropy's ignore_index), U the longest sentence."""
    width = max(len(t) for t in tokens) + 1
    inputs = torch.full((len(tokens), width), sos_eos, dtype=torch.long)
    targets = torch.full((len(tokens), width), ignore, dtype=torch.long)
    for i, t in enumerate(tokens):
        ids = torch.tensor(t, dtype=torch.long)
        inputs[i, 1: len(t) + 1] = ids
        targets[i, : len(t)] = ids
        targets[i, len(t)] = sos_eos
    return inputs, targets


def build_lm(model_cfg, vocab_size: int) -> CharLM:
    """CharLM from the ``model`` section of conf/lm.yaml."""
    return CharLM(vocab_size, embed_dim=model_cfg.embed_dim, hidden=model_cfg.hidden, layers=model_cfg.layers,
                  dropout=model_cfg.dropout)


def save_lm(model: CharLM, directory: str | Path, record: dict | None = None) -> None:
    """Write ``directory``/lm.yaml (what rebuilds the model, plus ``record`` for the reader) and lm.pt
    (weights, written atomically), the pair ``load_lm`` reads."""
    from ..weights import save_atomic

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {"vocab_size": model.vocab_size, "sos_eos": model.sos_eos, "blank": model.blank,
              "model": {"embed_dim": model.embed_dim, "hidden": model.hidden, "layers": model.layers,
                        "dropout": model.dropout_p}, **(record or {})}
    OmegaConf.save(OmegaConf.create(config), directory / LM_CONFIG)
    save_atomic({"model": model.state_dict()}, directory / LM_WEIGHTS)


def load_lm(directory: str | Path) -> CharLM:
    """The LM written by asr-train-lm into ``directory`` (lm.yaml + lm.pt), in eval mode on the CPU."""
    from ..weights import load_checkpoint

    directory = Path(directory)
    config = directory / LM_CONFIG
    if not config.is_file():
        raise FileNotFoundError(f"{config}: no such file (not an asr-train-lm directory)")
    try:
        cfg = OmegaConf.load(config)
        model = CharLM(cfg.vocab_size, embed_dim=cfg.model.embed_dim, hidden=cfg.model.hidden,
                       layers=cfg.model.layers, dropout=cfg.model.dropout, sos_eos=cfg.sos_eos, blank=cfg.blank)
    except Exception as err:
        raise ValueError(f"{config}: not an LM config ({str(err).splitlines()[0]})") from None
    ckpt = load_checkpoint(directory / LM_WEIGHTS)
    try:
        model.load_state_dict(ckpt["model"])
    except (KeyError, RuntimeError) as err:
        raise ValueError(f"{directory / LM_WEIGHTS}: weights do not fit {config} "
                         f"({str(err).splitlines()[0]})") from None
    return model.eval()
