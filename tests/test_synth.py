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
OLD_VARIANTS = {"m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "klatt", "klatt2", "klatt3"}
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
    assert {s.word_gap for s in speakers} == set(range(cfg.word_gap[0], cfg.word_gap[1] + 1))
    again = synth.build_plan(cfg, data_path)[1]
    assert again == plan


def test_default_plan_draws_from_all_variants_but_the_held_out_ones():
    cfg = synth.SynthConfig()
    _, data_path = synth.espeak_paths()
    speakers, plan = synth.build_plan(cfg, data_path)
    heldout = set(cfg.heldout_variants)
    assert len(heldout) == 8 and heldout <= set(synth.available_variants(data_path))
    assert {utt.speaker.variant for utt in plan}.isdisjoint(heldout)  # every subset, unseen speakers too
    training = {s.variant for s in speakers if s.seen}
    assert len(training) > 14 and training - OLD_VARIANTS
    assert len(synth.usable_variants(cfg, data_path)) == len(synth.available_variants(data_path)) - 8


def _female(speakers, data_path: str) -> tuple[int, int]:
    """Female (training, unseen) speakers, by their variant's ``gender`` line."""
    from asr.data.espeak import variant_sex

    female = [variant_sex(data_path, s.variant) == "F" for s in speakers]
    return (sum(f for f, s in zip(female, speakers) if s.seen),
            sum(f for f, s in zip(female, speakers) if not s.seen))


def test_default_plan_balances_the_speakers_sex():
    cfg = synth.SynthConfig()
    _, data_path = synth.espeak_paths()
    speakers, _ = synth.build_plan(cfg, data_path)
    train, unseen = _female(speakers, data_path)
    assert abs(train / 60 - cfg.female_share) <= 1 / 60 and abs(unseen / 12 - cfg.female_share) <= 1 / 12
    assert len({(s.voice, s.variant) for s in speakers}) == len(speakers) == 72
    assert {s.variant for s in speakers}.isdisjoint(cfg.heldout_variants)
    assert len({s.voice for s in speakers if s.seen}) == len(cfg.voices)
    assert synth.build_plan(cfg, data_path)[0] == speakers


@pytest.mark.parametrize("share, expected", [(0.0, (0, 0)), (1.0, (60, 12)), (0.01, (1, 1))])
def test_female_share_sets_the_female_speakers(share, expected):
    cfg = synth.SynthConfig.from_any({"female_share": share})
    _, data_path = synth.espeak_paths()
    speakers, _ = synth.build_plan(cfg, data_path)
    assert _female(speakers, data_path) == expected
    assert len({(s.voice, s.variant) for s in speakers}) == len(speakers)


def test_female_share_without_female_variants_gives_male_speakers():
    cfg = synth.SynthConfig(variants=["m1", "m2", "m3", "m4"], n_train_speakers=20, n_unseen_speakers=4)
    _, data_path = synth.espeak_paths()
    speakers, _ = synth.build_plan(cfg, data_path)
    assert _female(speakers, data_path) == (0, 0) and len(speakers) == 24
    with pytest.raises(ValueError, match="female_share"):
        synth.SynthConfig.from_any({"female_share": 1.5})


def test_plan_keeps_dev_and_test_sentences_and_sizes():
    cfg = synth.SynthConfig()
    _, data_path = synth.espeak_paths()
    speakers, plan = synth.build_plan(cfg, data_path)
    split = synth.split_sentences(synth.load_sentences(cfg.min_words, cfg.max_words), cfg)
    by_subset: dict[str, list[str]] = {name: [] for name in SUBSETS}
    for utt in plan:
        by_subset[utt.subset].append(utt.text)
    assert by_subset["dev-seen"] == by_subset["dev-unseen"] == split["dev"]
    assert by_subset["test-seen"] == by_subset["test-unseen"] == split["test"]
    assert sum(s.seen for s in speakers) == 60 and sum(not s.seen for s in speakers) == 12


def test_edge_silence_share_applies_to_training_only():
    cfg = synth.SynthConfig()
    _, data_path = synth.espeak_paths()
    _, plan = synth.build_plan(cfg, data_path)
    train = [utt for utt in plan if utt.subset == "train-synth"]
    share = sum(utt.edge is not None for utt in train) / len(train)
    assert len(train) > 4000 and abs(share - cfg.edge_silence_share) < 0.03
    low, high = cfg.edge_silence
    assert all(low <= end <= high for utt in train if utt.edge is not None for end in utt.edge)
    assert all(utt.edge is None for utt in plan if utt.subset != "train-synth")


def test_silent_variants_are_left_out(monkeypatch):
    from asr.data import synth_voices

    def probe(lib_path, data_path, voice, variants):
        return {variant: 0.0 if variant == "m2" else 0.1 for variant in variants}

    monkeypatch.setattr(synth_voices, "probe_variants", probe)
    cfg = synth.SynthConfig(variants=["m1", "m2", "m3"])
    _, data_path = synth.espeak_paths()
    with pytest.warns(UserWarning, match="m2 make no sound"):
        assert synth.usable_variants(cfg, data_path) == ["m1", "m3"]
    with pytest.raises(ValueError, match="m2 make no sound"):
        synth_voices.check_variants(["m1", "m2"], cfg, data_path)


def test_probe_finds_a_variant_that_makes_no_sound(tmp_path):
    from asr.data import espeak

    lib_path, data_path = synth.espeak_paths()
    for entry in Path(data_path).iterdir():  # a copy of the data directory with one mute variant more
        if entry.name != "voices":
            (tmp_path / entry.name).symlink_to(entry)
    variants = tmp_path / "voices" / "!v"
    variants.mkdir(parents=True)
    (variants / "m1").symlink_to(Path(data_path) / "voices" / "!v" / "m1")
    (variants / "mute").write_text("language variant\nname mute\nvoicing 0\nconsonants 0 0\nbreath 0\n")
    rms = espeak.probe_variants(lib_path, str(tmp_path), "en-us", ("m1", "mute"))
    assert rms["m1"] > espeak.PROBE_MIN_RMS > rms["mute"]
    cfg = synth.SynthConfig(voices=["en-us"], heldout_variants=[])
    with pytest.warns(UserWarning, match="mute make no sound"):
        assert synth.usable_variants(cfg, str(tmp_path)) == ["m1"]


def test_heldout_variants_overlapping_variants_is_an_error():
    with pytest.raises(ValueError, match="also in heldout_variants"):
        synth.SynthConfig.from_any({"variants": ["m1", "m8"], "heldout_variants": ["m8"]})


def test_unseen_variant_sentences_use_only_held_out_variants(tmp_path):
    cfg = synth.SynthConfig(jobs=1, progress=False)
    sentences = synth.load_sentences(max_words=8)[:6]
    result = synth.synthesize_sentences(sentences, tmp_path, seed=3, cfg=cfg)
    assert [utt.text for utt in result] == sentences
    subset = tmp_path / "LibriSpeech" / "unseen-variants"
    assert _transcripts(subset) == {utt.id: utt.text for utt in result}
    for utt in result:
        speaker, chapter, _ = utt.id.split("-")
        path = Path(utt.audio)
        assert path == subset / speaker / chapter / f"{utt.id}.flac" and utt.speaker == speaker
        assert utt.duration == sf.info(path).frames / 16000 > 0.3
        assert _variant(path) in cfg.heldout_variants
        assert _quiet_ends(path)[0] < 0.15  # trimmed as the corpus's test sets
    speakers, _ = synth.plan_sentences(sentences, cfg.heldout_variants, 3, cfg, "unseen-variants")
    assert sorted(s.variant for s in speakers) == sorted(cfg.heldout_variants * 2)
    assert all(s.id >= 1000 for s in speakers)
    again = synth.synthesize_sentences(sentences, tmp_path / "again", seed=3, cfg=cfg)
    assert [Path(u.audio).read_bytes() for u in again] == [Path(u.audio).read_bytes() for u in result]


def test_word_gap_is_recorded_and_lengthens_the_audio(tmp_path):
    sentence = ["THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG"]
    frames = {}
    for gap in (0, 4):
        cfg = synth.SynthConfig(jobs=1, progress=False, word_gap=[gap, gap])
        [utt] = synth.synthesize_sentences(sentence, tmp_path / str(gap), ["m3"], cfg=cfg, speakers_per_variant=1)
        assert f" gap={gap} " in _comment(Path(utt.audio))
        frames[gap] = sf.info(utt.audio).frames
    assert frames[4] > frames[0] + 0.2 * 16000  # eight pauses between words, each 40 ms longer at least


def test_edge_silence_in_the_corpus_training_set_only(tmp_path):
    low, high = 0.4, 0.6
    _run(tmp_path, jobs=1, n_train=3, edge_silence_share=1.0, edge_silence=[low, high])
    root = tmp_path / "LibriSpeech"
    train = sorted((root / "train-synth").rglob("*.flac"))
    assert len(train) == 3
    for path in train:
        assert f",{-70.0} " in _comment(path)
        for quiet in _quiet_ends(path):
            assert low - 0.01 <= quiet <= high + 0.01
        audio, rate = sf.read(path, dtype="float32")
        floor = 20 * np.log10(np.sqrt(np.mean(audio[: int(low * rate)] ** 2)))
        assert -73 < floor < -67  # the noise floor, not digital silence
    for path in (root / "dev-seen").rglob("*.flac"):
        assert "edge=none" in _comment(path)
        assert max(_quiet_ends(path)) < 0.15  # trimmed to the 0.1 s margin as before


def test_sentences_with_edge_silence(tmp_path):
    cfg = synth.SynthConfig(jobs=1, progress=False, edge_noise_db=None)
    result = synth.synthesize_sentences(synth.load_sentences(max_words=6)[:3], tmp_path, ["m1", "f2"],
                                        subset="edges", edge_silence=(0.5, 0.9), cfg=cfg)
    for utt in result:
        lead, trail = _quiet_ends(Path(utt.audio))
        assert 0.49 <= lead <= 0.91 and 0.49 <= trail <= 0.91
        audio, rate = sf.read(utt.audio, dtype="float32")
        assert not np.any(audio[: int(0.45 * rate)])  # no noise floor asked for: digital silence


def test_add_edge_silence_on_a_waveform():
    rate = 1000
    x = np.concatenate([np.zeros(30, np.float32), np.full(200, 0.5, np.float32), np.zeros(10, np.float32)])
    y = synth.add_edge_silence(x, rate, lead=0.1, trail=0.25, noise_db=None)
    assert len(y) == 100 + 200 + 250 and not y[:100].any() and not y[300:].any()
    noisy = synth.add_edge_silence(x, rate, lead=0.1, trail=0.25, noise_db=-40.0, seed=1)
    noise = noisy - y
    assert np.all(noise != 0) and 0.008 < np.sqrt(np.mean(noise**2)) < 0.012  # -40 dB over the whole signal
    assert np.array_equal(noisy, synth.add_edge_silence(x, rate, lead=0.1, trail=0.25, noise_db=-40.0, seed=1))


def test_synthesize_sentences_refuses_a_corpus_subset_name(tmp_path):
    with pytest.raises(ValueError, match="corpus subset"):
        synth.synthesize_sentences(["HELLO"], tmp_path, subset="test-unseen")


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
