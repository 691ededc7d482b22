"""asr-export SRC DST: copy a training exp dir's best model into a self-contained model directory, with the
search to decode it with and a model card.

DST gets config.yaml, tokenizer.json, norm.json and model.pt; search.yaml, conf/decode.yaml's `search` block and
`window` with the --decode overrides (the same Hydra overrides asr-decode takes, e.g. search.lm_dir=exp/lm
search.beam_size=16), and lm/, the files of that LM directory the search reads (character LM, lexicon, bigrams),
so that asr-transcribe --model DST and Transcriber.from_pretrained(DST) decode as asr-decode did; and README.md,
the model card (training data from --train-manifest, the model, its search, the scores of --results).

    asr-export exp/las_ctc exp/model --decode search.lm_dir=exp/lm --results exp/scores.json \\
        --train-manifest data/manifests/train-synth.jsonl
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .. import compose_config


def decode_config(overrides: list[str]) -> DictConfig:
    """conf/decode.yaml with Hydra overrides, as asr-decode composes it."""
    try:
        return compose_config("decode", overrides)
    except ValueError as err:
        raise ValueError(f"--decode {err}") from None


def export(source: str | Path, target: str | Path, weights: str | Path | None = None, search: bool = True,
           overrides: list[str] = (), results: str | Path | None = None, manifests: list[str] = ()) -> Path:
    """Write the model directory `target` (see the module docstring); returns it. Errors name the file."""
    from ..decoding.search_config import LM_SUBDIR, remove_search_bundle, write_search_bundle
    from ..modelcard import model_card, read_results, training_data
    from ..modeldir import export_model_dir, load_model_dir
    from ..models.config import read_model_config

    rows = read_results(results) if results else None  # a bad input fails before anything is written
    data = training_data(manifests)
    decode = decode_config(list(overrides)) if search else None
    target = Path(export_model_dir(source, target, weights))
    model, tokenizer, _, _ = load_model_dir(target)  # a directory that does not load is not exported
    bundle = bundled = None
    if decode is None:
        remove_search_bundle(target)
    else:
        cfg = OmegaConf.to_container(decode.search, resolve=True)
        if cfg.get("method") == "beam" and cfg.get("ctc_weight", 0) > 0 and model.ctc_head is None:
            raise ValueError(f"{source}: the model has no CTC head for search.ctc_weight={cfg['ctc_weight']} "
                             f"(--decode search.ctc_weight=0 exports a search without it)")
        bundle = write_search_bundle(target, cfg, decode.get("window"))
        # the card shows the file's relative lm_dir, not this machine's path
        bundled = dict(bundle.search, lm_dir=LM_SUBDIR if bundle.search.get("lm_dir") else None)
    config = OmegaConf.to_container(read_model_config(target / "config.yaml"))
    card = model_card(target.name, model, config, tokenizer, bundled, bundle and bundle.window, rows,
                      Path(results).name if results else None, data)
    (target / "README.md").write_text(card)
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="asr-export", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("source", help="training exp dir (config.yaml, tokenizer.json, norm.json, model.pt)")
    p.add_argument("target", help="model directory to write")
    p.add_argument("--weights", help="other weights to export instead of SOURCE/model.pt")
    p.add_argument("--decode", nargs="*", default=[], metavar="OVERRIDE",
                   help="Hydra overrides of conf/decode.yaml for the bundled search, as asr-decode takes them "
                        "(give them last: they take every word that follows)")
    p.add_argument("--search", action=argparse.BooleanOptionalAction, default=True,
                   help="bundle the search (the default); --no-search exports a directory that decodes greedily")
    p.add_argument("--results", metavar="JSON", help="results.json or scores.json: the model card's results table")
    p.add_argument("--train-manifest", nargs="+", default=[], metavar="JSONL",
                   help="the training manifests, for the model card (names, utterances, hours)")
    args = p.parse_args(argv)
    try:
        target = export(args.source, args.target, args.weights, args.search, args.decode, args.results,
                        args.train_manifest)
    except (FileNotFoundError, ValueError) as err:
        print(f"asr-export: {err}", file=sys.stderr)
        return 2
    print(f"asr-export: model directory {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
