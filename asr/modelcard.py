"""The model card asr-export writes into a model directory (README.md): how to use it, what it was trained on,
the model and its decoding, and the scores of the recipe's test parts."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from .scoring import format_table

SCORE_KEYS = ("wer", "cer", "sub", "del", "ins", "words", "utterances")


def read_results(path: str | Path) -> dict[str, dict]:
    """The scored test parts of a results file: the recipe's results.json or asr-score's scores.json (part ->
    wer, cer, sub, del, ins, words, utterances and perhaps rtf); other entries (stage times) are left out."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such results file") from None
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a JSON results file ({err})") from None
    rows = {name: row for name, row in data.items() if isinstance(row, Mapping) and set(SCORE_KEYS) <= set(row)} \
        if isinstance(data, Mapping) else {}
    if not rows:
        raise ValueError(f"{path}: no scored test parts (expected part -> {', '.join(SCORE_KEYS)})")
    return rows


def training_data(manifests: Sequence[str | Path]) -> list[dict]:
    """name, utterances, speakers and hours of each training manifest."""
    from .data.librispeech import read_manifest

    rows = []
    for path in manifests:
        utts = read_manifest(path)
        rows.append({"name": Path(path).stem, "utterances": len(utts), "speakers": len({u.speaker for u in utts}),
                     "hours": sum(u.duration for u in utts) / 3600})
    return rows


def _settings(block: Mapping) -> str:
    """`Class (key value, ...)` of a config block with a `_target_`, or its settings alone."""
    cls = str(block.get("_target_", "")).rpartition(".")[2]
    values = ", ".join(f"{k} {json.dumps(v) if isinstance(v, (Mapping, list)) else v}"
                       for k, v in block.items() if k != "_target_")
    return f"{cls} ({values})" if cls else values


def _parameters(module) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def model_card(name: str, model, config: Mapping, tokenizer, search: Mapping | None = None,
               window: Sequence[int] | None = None, results: Mapping[str, dict] | None = None,
               results_source: str | None = None, data: Sequence[dict] = (),
               date: datetime.date | None = None) -> str:
    """The README.md text. config: config.yaml's content (model, features); search: the bundled search block
    (lm_dir relative to the directory) or None; results: read_results' rows; data: training_data's rows."""
    date = date or datetime.datetime.now(datetime.timezone.utc).date()
    m = config["model"]
    lines = [f"# {name}", "",
             f"A listen-attend-spell speech recognizer (the `asr` package), exported by asr-export on "
             f"{date.isoformat()}.", "",
             "```",
             f"asr-transcribe --model {name} audio.flac           # the bundled search below",
             f"asr-transcribe --model {name} --greedy audio.flac  # fast greedy decoding",
             "```", "", "```python",
             "from asr.transcriber import Transcriber",
             f"Transcriber.from_pretrained({json.dumps(name)}).transcribe(\"audio.flac\")",
             "```", "", "## Training data", ""]
    if data:
        lines += ["| manifest | utterances | speakers | hours |", "|---|---:|---:|---:|"]
        lines += [f"| {d['name']} | {d['utterances']} | {d['speakers']} | {d['hours']:.2f} |" for d in data]
    else:
        lines.append("Not recorded (asr-export --train-manifest names the training manifests).")
    ctc = (f"weight {m.get('ctc_weight')} in training, {m.get('ctc_upsample', 1)} frame(s) per listener frame, "
           f"{m.get('ctc_layers', 0)} BLSTM layer(s) of its own" if model.ctc_head is not None else "none")
    lines += ["", "## Model", "",
              f"- listener: {_settings(m['listener'])}",
              f"- attention: {_settings(m['attention'])}",
              f"- speller: {_settings(m['speller'])}",
              f"- CTC head: {ctc}",
              f"- features: {config['features']['n_mels']} log-mel bands, 10 ms hop",
              f"- tokenizer: {type(tokenizer).__name__}, {len(tokenizer)} tokens",
              f"- parameters: {_parameters(model):,} (listener {_parameters(model.listener):,}, "
              f"speller {_parameters(model.speller):,}, CTC head {_parameters(model.ctc_head):,})",
              "", "## Decoding", ""]
    if search:
        method = search.get("method", "greedy")
        lines += ["search.yaml (asr-transcribe flags override single settings):", ""]
        if method == "beam":
            lm = search.get("lm_dir")
            lines += [f"- beam search: beam {search.get('beam_size')}, CTC weight {search.get('ctc_weight')}",
                      f"- language models in {lm}/: character LM weight {search.get('lm_weight')}, lexicon weight "
                      f"{search.get('lexicon_weight')}, bigram weight {search.get('lexicon_bigram')}" if lm
                      else "- language models: none"]
        else:
            lines.append("- greedy search" if method == "greedy" else "- the CTC head's best path (no speller)")
        lines.append(f"- attention window: {list(window) if window else 'none'}")
    else:
        lines.append("No bundled search: greedy decoding unless asr-transcribe is given --beam.")
    lines += ["", "## Results", ""]
    if results:
        lines += [f"WER and CER in percent{f' ({results_source})' if results_source else ''}:", "",
                  format_table(dict(results))]
    else:
        lines.append("Not recorded (asr-export --results names a results.json or scores.json).")
    return "\n".join(lines) + "\n"
