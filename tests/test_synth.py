"""Tests for the espeak-ng corpus synthesizer (asr/data/synth.py, asr-synth)."""

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
SMALL = {"n_train": 6, "n_dev": 2, "n_test": 2, "n_train_speakers": 3, "n_unseen_speakers": 2,
         "progress": False}
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


def test_plan_with_default_sizes():
    cfg = synth.SynthConfig(train_copies=2)
    _, data_path = synth.espeak_paths()
    speakers, plan = synth.build_plan(cfg, data_path)
    assert [s.id for s in speakers] == list(range(100, 172))
    by_subset: dict[str, list] = {name: [] for name in SUBSETS}
    for utt in plan:
        by_subset[utt.subset].append(utt)
    assert len(by_subset["dev-seen"]) == len(by_subset["dev-unseen"]) == 100
    assert len(by_subset["test-seen"]) == len(by_subset["test-unseen"]) == 200
    for name in ("train-synth", "dev-seen", "test-seen"):
        assert all(utt.speaker.seen for utt in by_subset[name])
    for name in ("dev-unseen", "test-unseen"):
        assert not any(utt.speaker.seen for utt in by_subset[name])
    train = by_subset["train-synth"]
    assert len({utt.text for utt in train}) * 2 == len(train)  # two copies ...
    pairs = {(utt.text, utt.speaker.id) for utt in train}
    assert len(pairs) == len(train)  # ... by different speakers
    assert len({utt.relpath for utt in plan}) == len(plan)
    assert all(cfg.rate_min <= utt.rate <= cfg.rate_max for utt in plan)
    assert all(cfg.pitch_min <= s.pitch <= cfg.pitch_max and cfg.range_min <= s.range <= cfg.range_max
               for s in speakers)
    again = synth.build_plan(cfg, data_path)[1]
    assert again == plan


def test_missing_variants_are_left_out():
    cfg = synth.SynthConfig(variants=["m1", "no-such-variant"])
    _, data_path = synth.espeak_paths()
    with pytest.warns(UserWarning, match="no-such-variant"):
        assert synth.usable_variants(cfg, data_path) == ["m1"]


def test_trim_keeps_margins():
    rate = 1000
    speech = np.full(500, 0.5, dtype=np.float32)
    x = np.concatenate([np.zeros(1000, np.float32), speech, np.zeros(50, np.float32)])
    y = synth.trim_silence(x, rate, threshold=0.01, min_silence=0.15, margin=0.1)
    assert len(y) == 100 + 500 + 50  # long leading silence cut to 0.1 s, short trailing one kept


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
