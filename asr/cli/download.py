"""asr-download: fetch and extract the LibriSpeech subsets named in conf/librispeech/data.yaml.

    asr-download                                   # download (resumable, MD5-checked) and extract every subset
    asr-download --step fetch out_dir=/big/disk    # only download; then --step extract
    asr-download 'train=[train-clean-5]' 'dev=[dev-clean-2]' 'test=[dev-clean-2]'   # mini LibriSpeech
    asr-download --noise                           # the noise corpora instead: MUSAN and RIRS_NOISES
    asr-download --get dev --get test              # print config values, one line each (lists space-separated)

Arguments after the options are Hydra overrides of conf/librispeech/data.yaml (`--config` picks another file
under conf/). Archives land in <out_dir>/archives, subsets in <out_dir>/LibriSpeech/<subset>, noise corpora in
<out_dir>/<folder> (musan, RIRS_NOISES); both steps skip work already done (a verified archive, a marked
extraction).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from .. import compose_config
from ..data.download import DownloadError, extract, fetch

PROG = "asr-download"


def subsets(cfg: DictConfig) -> list[str]:
    """Every subset the recipe uses, once each, in train, dev, test order."""
    return list(dict.fromkeys([*cfg.train, *cfg.dev, *cfg.test]))


def archive_url(cfg: DictConfig, subset: str) -> tuple[str, str]:
    """(URL, MD5) of a subset's archive; a subset missing from `archives` is a one-line error."""
    entry = cfg.archives.get(subset)
    if entry is None:
        raise ValueError(f"unknown subset {subset!r} (known: {', '.join(cfg.archives)})")
    return f"{str(cfg.base_url).rstrip('/')}/{entry.resource}/{subset}.tar.gz", str(entry.md5)


def noise_url(cfg: DictConfig, name: str) -> tuple[str, str | None]:
    """(URL, MD5 or None when unknown) of a noise corpus's archive; an unknown name is a one-line error."""
    entry = cfg.noise.get(name)
    if entry is None:
        raise ValueError(f"unknown noise corpus {name!r} (known: {', '.join(cfg.noise)})")
    md5 = None if entry.md5 is None else str(entry.md5)
    return f"{str(cfg.base_url).rstrip('/')}/{entry.resource}/{entry.archive}", md5


@dataclass(frozen=True)
class Job:
    """One archive to fetch and extract: `expect` is the folder it must hold, relative to out_dir."""

    url: str
    md5: str | None
    archive: Path
    expect: str


def corpus_jobs(cfg: DictConfig) -> list[Job]:
    """The LibriSpeech subsets' archives, every name checked before anything is fetched."""
    out = Path(cfg.out_dir)
    jobs = []
    for subset in subsets(cfg):
        url, md5 = archive_url(cfg, subset)
        jobs.append(Job(url, md5, out / "archives" / f"{subset}.tar.gz", f"LibriSpeech/{subset}"))
    return jobs


def noise_jobs(cfg: DictConfig) -> list[Job]:
    """The noise corpora's archives (conf key `noise`)."""
    out = Path(cfg.out_dir)
    jobs = []
    for name, entry in cfg.noise.items():
        url, md5 = noise_url(cfg, name)
        jobs.append(Job(url, md5, out / "archives" / str(entry.archive), str(entry.folder)))
    return jobs


def run(cfg: DictConfig, step: str, noise: bool = False) -> None:
    """Fetch, extract or both (`step`) the LibriSpeech subsets' archives, or with `noise` the noise corpora's."""
    out = Path(cfg.out_dir)
    for job in noise_jobs(cfg) if noise else corpus_jobs(cfg):
        if step in ("fetch", "all"):
            fetch(job.url, job.archive, job.md5, attempts=cfg.attempts, retries=cfg.retries, timeout=cfg.timeout,
                  log=lambda line: print(line, flush=True))
        if step in ("extract", "all"):
            if not job.archive.is_file():
                raise DownloadError(f"{job.archive}: not downloaded yet (run the fetch step)")
            extract(job.archive, out, expect=job.expect)
            print(f"{job.archive.name}: extracted -> {out / job.expect}", flush=True)


def get(cfg: DictConfig, key: str) -> str:
    absent = object()
    value = OmegaConf.select(cfg, key, default=absent)
    if value is absent:
        raise ValueError(f"no key {key!r} in the config")
    if isinstance(value, ListConfig):
        return " ".join(str(v) for v in value)
    return str(value)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0].split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 1)[1])
    p.add_argument("--step", choices=["fetch", "extract", "all"], default="all")
    p.add_argument("--noise", action="store_true",
                   help="the noise corpora of the config's `noise` (MUSAN, RIRS_NOISES) instead of the subsets")
    p.add_argument("--get", metavar="KEY", action="append",
                   help="print this config value and exit (repeatable: one line each; lists space-separated)")
    p.add_argument("--config", default="librispeech/data", help="config name under conf/")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. out_dir=/data base_url=http://mirror")
    args = p.parse_args(argv)
    try:
        cfg = compose_config(args.config, args.overrides)
        if args.get:
            print("\n".join(get(cfg, key) for key in args.get))
        else:
            run(cfg, args.step, noise=args.noise)
    except (DownloadError, ValueError) as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # Hydra's composition errors: a bad override or config name
        if type(err).__module__.startswith(("hydra", "omegaconf")):
            print(f"{PROG}: {' '.join(str(err).split())}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run it again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
