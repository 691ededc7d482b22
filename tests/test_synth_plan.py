"""The synthesizer's plan (speakers, variants, sentences, sizes) and its audio edits: word gaps and edge silence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("espeakng_loader")

from asr.data import synth  # noqa: E402

from .test_synth import SUBSETS, _comment, _quiet_ends, _run, _transcripts, _variant  # noqa: E402

OLD_VARIANTS = {"m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "klatt", "klatt2", "klatt3"}


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
