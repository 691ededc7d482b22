"""Listen, Attend and Spell with a joint CTC head on the listener."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from .ctc_head import CTCHead, ctc_loss
from .guided_attention import ctc_alignment_loss, ctc_token_frames, guided_attention_loss
from .speller import Speller


class LAS(nn.Module):
    """features (B, T, F) -> listener memory (B, T', D) -> speller logits (B, U, V).

    Token ids follow `CharTokenizer`: 0 = CTC blank (never predicted by the speller), 1 = <sos/eos>.
    Loss = ctc_weight * CTC(listener) + (1 - ctc_weight) * label-smoothed cross entropy(speller), plus the
    supervised-attention losses when training asks for them.

    ctc_upsample, ctc_layers, ctc_hidden: the CTC head's frames per listener frame and BLSTM layers of its own
    (asr/models/ctc_head.py); `asr-fit-ctc` fits such a head on a trained model's listener.
    """

    def __init__(self, listener: nn.Module, speller: Speller, vocab_size: int, ctc_weight: float = 0.3,
                 label_smoothing: float = 0.1, sos_eos: int = 1, blank: int = 0, ctc_upsample: int = 1,
                 ctc_layers: int = 0, ctc_hidden: int = 256):
        super().__init__()
        self.listener, self.speller = listener, speller
        self.ctc_head = (CTCHead(listener.output_dim, vocab_size, ctc_upsample, ctc_layers, ctc_hidden)
                         if ctc_weight > 0 else None)
        self.ctc_weight, self.label_smoothing = ctc_weight, label_smoothing
        self.sos_eos, self.blank, self.vocab_size = sos_eos, blank, vocab_size

    @property
    def ctc_upsample(self) -> int:
        """CTC frames per listener frame (the head's own setting; 1 without a head)."""
        return self.ctc_head.upsample if self.ctc_head is not None else 1

    def encode(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.listener(feats, lengths)

    def ctc_log_probs(self, memory: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Listener output (B, T', D), lengths (B,) -> CTC log-probabilities (B, k T', V) in fp32 and their
        lengths k * lengths; the k CTC frames of listener frame t are k t ... k t + k - 1."""
        return self.ctc_head(memory, lengths)

    def forward(self, feats: torch.Tensor, feat_lengths: torch.Tensor, targets: torch.Tensor,
                target_lengths: torch.Tensor, guide_weight: float = 0.0, guide_sigma: float = 0.2,
                align_weight: float = 0.0, align_width: float = 2.0) -> dict[str, torch.Tensor]:
        """targets (B, U) padded with anything past target_lengths. Returns losses and token accuracy.
        Supervised attention (asr/models/guided_attention.py) on the speller's alignments: guide_weight > 0 adds
        that much of the guided-attention loss (band width guide_sigma), align_weight > 0 that much of the loss
        against the CTC head's forced alignment (band width align_width listener frames)."""
        memory, mem_lengths = self.encode(feats, feat_lengths)
        b, u = targets.shape
        valid = torch.arange(u + 1, device=targets.device)[None, :] < (target_lengths[:, None] + 1)
        sos = targets.new_full((b, 1), self.sos_eos)
        inputs = torch.cat([sos, targets], 1)  # <sos> y_1 .. y_U
        outputs = torch.cat([targets, targets.new_zeros(b, 1)], 1)  # y_1 .. y_U <eos>
        outputs.scatter_(1, target_lengths[:, None], self.sos_eos)
        outputs = outputs.masked_fill(~valid, -100)
        logits, alignments = self.speller(memory, mem_lengths, inputs)
        att_loss = F.cross_entropy(logits.reshape(-1, self.vocab_size), outputs.reshape(-1),
                                   ignore_index=-100, label_smoothing=self.label_smoothing)
        with torch.no_grad():
            accuracy = (logits.argmax(-1) == outputs).masked_select(valid).float().mean()
        result = {"att_loss": att_loss, "accuracy": accuracy}
        loss = att_loss
        if self.ctc_head is not None:
            log_probs, lp_lengths = self.ctc_log_probs(memory, mem_lengths)
            ctc = ctc_loss(log_probs, lp_lengths, targets, target_lengths, self.blank)
            result["ctc_loss"] = ctc
            loss = self.ctc_weight * ctc + (1 - self.ctc_weight) * att_loss
        if align_weight > 0:
            if self.ctc_head is None:
                raise ValueError("the CTC alignment loss needs a model with a CTC head (ctc_weight > 0)")
            centres = ctc_token_frames(log_probs, lp_lengths, targets, target_lengths, self.blank, self.ctc_upsample)
            aligned = ctc_alignment_loss(alignments, centres, target_lengths + 1, mem_lengths, align_width)
            result["align_loss"] = aligned
            loss = loss + align_weight * aligned
        if guide_weight > 0:
            guided = guided_attention_loss(alignments, target_lengths + 1, mem_lengths, guide_sigma)
            result["guided_loss"] = guided
            loss = loss + guide_weight * guided
        result["loss"] = loss
        return result


def build_model(cfg: DictConfig | dict, vocab_size: int, feat_dim: int) -> LAS:
    """Build LAS from the `model` config: listener and attention are `_target_` classes, so a new
    listener or attention needs only its file and its yaml."""
    cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    listener = instantiate(cfg.listener, input_dim=feat_dim)
    attention = instantiate(cfg.attention, query_dim=cfg.speller.hidden, memory_dim=listener.output_dim)
    speller = Speller(vocab_size, listener.output_dim, attention, **OmegaConf.to_container(cfg.speller))
    # models exported before these keys existed: one CTC frame per listener frame, a linear head
    return LAS(listener, speller, vocab_size, ctc_weight=cfg.ctc_weight, label_smoothing=cfg.label_smoothing,
               ctc_upsample=cfg.get("ctc_upsample", 1), ctc_layers=cfg.get("ctc_layers", 0),
               ctc_hidden=cfg.get("ctc_hidden", 256))
