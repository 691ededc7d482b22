"""``asr-synth``: synthesize the offline LibriSpeech-layout corpus with espeak-ng (conf/synth.yaml)."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from asr.data.synth import EspeakUnavailableError, format_summary, synthesize_corpus

# Absolute on purpose: for a relative config_path Hydra resolves "../../conf" against the *package*
# (asr.cli -> pkg://conf) whenever main() is imported rather than run as a script, which is the case
# for the asr-synth console script, and conf/ is not a Python package.
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


@hydra.main(config_path=CONF_DIR, config_name="synth", version_base=None)
def main(cfg: DictConfig) -> None:
    """Render the corpus and print one summary line per subset."""
    try:
        stats = synthesize_corpus(cfg)
    except EspeakUnavailableError as err:
        print(err, file=sys.stderr)
        sys.exit(1)
    for line in format_summary(stats):
        print(line)


if __name__ == "__main__":
    main()
