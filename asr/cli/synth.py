"""``asr-synth``: synthesize the offline LibriSpeech-layout corpus with espeak-ng (conf/synth.yaml)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from asr import CONF_DIR
from asr.data.synth import EspeakUnavailableError, format_summary, synthesize_corpus


@hydra.main(config_path=CONF_DIR, config_name="synth", version_base=None)
def main(cfg: DictConfig) -> None:
    """Render the corpus and print one summary line per subset."""
    try:
        stats = synthesize_corpus(cfg)
    except EspeakUnavailableError as err:
        print(err, file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("asr-synth: interrupted; run the same command again to continue", file=sys.stderr)
        sys.exit(130)
    for line in format_summary(stats):
        print(line)


if __name__ == "__main__":
    main()
