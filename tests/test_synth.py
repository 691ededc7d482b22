"""Tests for the espeak-ng corpus synthesizer (asr/data/synth*.py, asr/data/espeak.py, asr-synth)."""

from __future__ import annotations

import dataclasses
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from omegaconf import OmegaConf

pytest.importorskip("espeakng_loader")

from asr.data import synth  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf" / "synth.yaml"
# Half the training files with edge silence, so that the determinism tests cover its noise floor too.
SMALL = {"n_train": 6, "n_dev": 2, "n_test": 2, "n_train_speakers": 3, "n_unseen_speakers": 2,
         "edge_silence_share": 0.5, "progress": False}
SUBSETS = list(synth.DEFAULT_SUBSETS.values())


def _run(out_dir: Path, **overrides) -> dict:
    return synth.synthesize_corpus({**SMALL, "out_dir": str(out_dir), **overrides})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    """A small corpus rendered once by two processes: (LibriSpeech dir, stats)."""
    out = tmp_path_factory.mktemp("synth")
    stats = _run(out, jobs=2)
    return out / "LibriSpeech", stats


def _transcripts(subset_dir: Path) -> dict[str, str]:
    lines = {}
    for path in subset_dir.glob("*/*/*.trans.txt"):
        for line in path.read_text(encoding="utf-8").splitlines():
            uid, text = line.split(" ", 1)
            lines[uid] = text
    return lines


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _comment(path: Path) -> str:
    with sf.SoundFile(path) as audio:
        return audio.comment


def _variant(path: Path) -> str:
    """The espeak-ng variant a FLAC's fingerprint names."""
    return re.search(r"^asr-synth \d+ [^+]+\+(.+?) pitch=", _comment(path)).group(1)


def _quiet_ends(path: Path, threshold: float = 0.01) -> tuple[float, float]:
    """Seconds before the first and after the last sample louder than ``threshold``."""
    audio, rate = sf.read(path, dtype="float32")
    loud = np.flatnonzero(np.abs(audio) > threshold)
    return loud[0] / rate, (len(audio) - 1 - loud[-1]) / rate


def test_layout_and_transcripts_follow_librispeech(corpus):
    root, stats = corpus
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(SUBSETS)
    sentences = set(synth.load_sentences())
    for subset in SUBSETS:
        flacs = set()
        for chapter_dir in (root / subset).glob("*/*"):
            speaker, chapter = chapter_dir.parent.name, chapter_dir.name
            assert speaker.isdigit() and chapter.isdigit()
            names = sorted(p.name for p in chapter_dir.iterdir())
            assert f"{speaker}-{chapter}.trans.txt" in names
            for name in names:
                assert re.fullmatch(rf"{speaker}-{chapter}(-\d{{4}}\.flac|\.trans\.txt)", name), name
            flacs.update(name[: -len(".flac")] for name in names if name.endswith(".flac"))
            lines = (chapter_dir / f"{speaker}-{chapter}.trans.txt").read_text(encoding="utf-8").splitlines()
            assert lines == sorted(lines)
        texts = _transcripts(root / subset)
        assert set(texts) == flacs and len(flacs) == stats["subsets"][subset]["utterances"] > 0
        for text in texts.values():
            assert text in sentences and text == text.upper()  # the original LibriSpeech text
    assert stats["subsets"]["train-synth"]["utterances"] == 6
    assert stats["subsets"]["dev-unseen"]["utterances"] == stats["subsets"]["test-seen"]["utterances"] == 2


def test_flacs_are_16k_mono_and_not_silent(corpus):
    root, _ = corpus
    paths = sorted(root.rglob("*.flac"))
    assert len(paths) == 14
    for path in paths:
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.format, info.subtype) == (16000, 1, "FLAC", "PCM_16")
        audio, _ = sf.read(path, dtype="float32")
        assert 0.3 < len(audio) / 16000 < 30
        assert np.sqrt(np.mean(audio**2)) > 0.01


def test_sentences_are_disjoint_and_unseen_speakers_held_out(corpus):
    root, _ = corpus
    texts = {subset: set(_transcripts(root / subset).values()) for subset in SUBSETS}
    assert texts["dev-seen"] == texts["dev-unseen"] and texts["test-seen"] == texts["test-unseen"]
    assert not texts["train-synth"] & texts["dev-seen"]
    assert not texts["train-synth"] & texts["test-seen"]
    assert not texts["dev-seen"] & texts["test-seen"]
    speakers = {subset: {p.name for p in (root / subset).iterdir()} for subset in SUBSETS}
    seen = speakers["train-synth"] | speakers["dev-seen"] | speakers["test-seen"]
    unseen = speakers["dev-unseen"] | speakers["test-unseen"]
    assert not seen & unseen
    assert len(speakers["train-synth"] | speakers["dev-seen"] | speakers["test-seen"]) <= 3
    assert "| dev-unseen" in (root / "SPEAKERS.TXT").read_text()


def test_same_seed_gives_identical_files_whatever_the_job_count(corpus, tmp_path):
    root, _ = corpus
    edges = [_comment(p) for p in (root / "train-synth").rglob("*.flac")]
    assert any("edge=none" not in c for c in edges) and any("edge=none" in c for c in edges)
    _run(tmp_path, jobs=1)
    assert _files(tmp_path / "LibriSpeech") == _files(root)


def test_rerun_skips_finished_files_and_renders_missing_ones(corpus, tmp_path):
    root, _ = corpus
    copy = Path(shutil.copytree(root, tmp_path / "LibriSpeech"))
    flacs = sorted(copy.rglob("*.flac"))
    before = {p: p.stat().st_mtime_ns for p in flacs}
    deleted = flacs[3]
    deleted.unlink()
    stale = deleted.with_name(f".{deleted.name}.999.tmp")  # as left by a killed run
    stale.write_bytes(b"half a file")

    stats = _run(tmp_path, jobs=1)

    assert (stats["rendered"], stats["skipped"]) == (1, 13)
    assert deleted.read_bytes() == (root / deleted.relative_to(copy)).read_bytes()
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in before.items() if p != deleted)
    assert not stale.exists()


def test_smaller_train_set_keeps_dev_and_test_and_warns_about_leftovers(corpus, tmp_path):
    root, _ = corpus
    copy = Path(shutil.copytree(root, tmp_path / "LibriSpeech"))
    with pytest.warns(UserWarning, match=r"holds 1 file\(s\) that are not part of this corpus"):
        stats = _run(tmp_path, jobs=1, n_train=5)
    assert stats["rendered"] == 0  # the first five train utterances, dev and test are unchanged
    assert len(_transcripts(copy / "train-synth")) == 5


def test_yaml_has_the_dataclass_keys_and_defaults():
    conf = OmegaConf.to_container(OmegaConf.load(CONF))
    conf.pop("defaults")
    conf.pop("hydra")
    assert conf == dataclasses.asdict(synth.SynthConfig())


def test_unknown_key_is_an_error():
    with pytest.raises(ValueError, match="n_trian"):
        synth.SynthConfig.from_any({"n_trian": 3})


def test_cli_without_espeak_prints_one_line(monkeypatch, capsys, tmp_path):
    from asr.cli import synth as cli

    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # makes the import fail
    monkeypatch.setattr(sys, "argv", ["asr-synth", f"out_dir={tmp_path}"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == synth.ESPEAK_MISSING


def test_cli_renders_a_corpus(monkeypatch, capsys, tmp_path):
    from asr.cli import synth as cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["asr-synth", "out_dir=corpus", "jobs=1", "n_train=2", "n_dev=2", "n_test=2",
                                      "n_train_speakers=3", "n_unseen_speakers=2", "progress=false"])
    cli.main()
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:5]] == SUBSETS
    assert len(list((tmp_path / "corpus" / "LibriSpeech").rglob("*.flac"))) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]  # no Hydra outputs/ clutter
