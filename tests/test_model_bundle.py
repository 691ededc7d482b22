"""asr-export's model directory carries its search (search.yaml, lm/) and a model card; Transcriber and
asr-transcribe decode with that search, and a malformed directory is named in one line."""

import datetime
import json
import re
import shutil
from collections import Counter

import pytest
from omegaconf import OmegaConf

from asr.cli.decode import decode_manifest
from asr.cli.export import decode_config, export
from asr.cli.export import main as export_main
from asr.cli.transcribe import build_parser, search_config
from asr.cli.transcribe import main as transcribe_main
from asr.data.librispeech import read_manifest
from asr.decoding.search import Search
from asr.decoding.search_config import read_search_file
from asr.transcriber import Transcriber
from asr.vad import VadOptions

from .conftest import run


@pytest.fixture(scope="module")
def lm_dir(tiny_corpus, tiny_model, tmp_path_factory):
    """A character LM (untrained: its scores are real, its sense is not), a lexicon and bigrams of the training
    text, as asr-train-lm and asr-lexicon write them."""
    from asr.data.tokenizer import load_tokenizer
    from asr.models.lexicon_lm import count_bigrams, write_bigrams, write_lexicon
    from asr.models.lm import CharLM, save_lm

    tokenizer = load_tokenizer(tiny_model / "tokenizer.json")
    out = tmp_path_factory.mktemp("lm")
    save_lm(CharLM(len(tokenizer), embed_dim=8, hidden=16, layers=1, dropout=0.0), out)
    tokenizer.save(out / "tokenizer.json")
    texts = [u.text for u in read_manifest(tiny_corpus / "manifests" / "train-synth.jsonl")]
    write_lexicon(Counter(w for t in texts for w in t.split()), out / "lexicon.tsv")
    write_bigrams(count_bigrams(texts), out / "bigrams.tsv")
    return out


def search_overrides(lm) -> list[str]:
    """A beam with joint CTC, the LM, the lexicon and its bigrams (beam 3: an untrained model's hypotheses run to
    the length limit)."""
    return [f"search.lm_dir={lm}", "search.method=beam", "search.beam_size=3", "search.ctc_weight=0.3",
            "search.lm_weight=0.2", "search.lexicon_weight=0.3", "search.lexicon_bigram=0.3"]


@pytest.fixture(scope="module")
def exported(tiny_corpus, tiny_model, lm_dir, tmp_path_factory):
    """A model directory exported with the search of search_overrides, a results file and the training
    manifest."""
    tmp = tmp_path_factory.mktemp("export")
    results = tmp / "results.json"
    results.write_text(json.dumps({"test-seen": {"wer": 12.5, "cer": 4.25, "sub": 3, "del": 1, "ins": 1, "words": 40,
                                                 "utterances": 6, "rtf": 0.05}, "stage_seconds": {"train": 10.0}}))
    return export(tiny_model, tmp / "model", overrides=search_overrides(lm_dir), results=results,
                  manifests=[tiny_corpus / "manifests" / "train-synth.jsonl"])


def test_export_bundles_search_lm_lexicon_and_card(exported, tiny_model):
    assert {p.name for p in exported.iterdir()} == {"config.yaml", "tokenizer.json", "norm.json", "model.pt",
                                                    "search.yaml", "lm", "README.md"}
    assert {p.name for p in (exported / "lm").iterdir()} == {"lm.yaml", "lm.pt", "tokenizer.json", "lexicon.tsv",
                                                             "bigrams.tsv"}
    assert (exported / "config.yaml").read_text() == (tiny_model / "config.yaml").read_text()
    assert "lm_dir: lm\n" in (exported / "search.yaml").read_text()  # relative: the directory can move
    bundle = read_search_file(exported)
    assert bundle.search["lm_dir"] == str(exported / "lm") and bundle.window is None
    assert {k: bundle.search[k] for k in ("method", "beam_size", "ctc_weight", "lm_weight", "lexicon_weight")} == \
        {"method": "beam", "beam_size": 3, "ctc_weight": 0.3, "lm_weight": 0.2, "lexicon_weight": 0.3}
    card = (exported / "README.md").read_text()
    assert datetime.datetime.now(datetime.timezone.utc).date().isoformat() in card
    assert "| train-synth | 40 |" in card  # the tiny corpus has 40 training utterances
    assert "ConvBLSTMListener" in card and "LocationAwareAttention" in card
    model = Transcriber.from_pretrained(exported).model
    assert f"parameters: {sum(p.numel() for p in model.parameters()):,}" in card
    assert "| test-seen | 12.50 |" in card and "0.0500" in card and "stage_seconds" not in card
    assert "beam search: beam 3, CTC weight 0.3" in card and "lexicon weight 0.3" in card


def test_bundled_search_decodes_as_asr_decode_and_moves(tiny_corpus, tiny_model, lm_dir, tmp_path, monkeypatch):
    lm = shutil.copytree(lm_dir, tmp_path / "lm")
    model = export(tiny_model, tmp_path / "model", overrides=search_overrides(lm))
    manifest = tiny_corpus / "manifests" / "test-seen.jsonl"
    cfg = decode_config([f"model_dir={tiny_model}", f"manifest={manifest}", f"out_dir={tmp_path / 'decode'}",
                         *search_overrides(lm)])
    decode_manifest(cfg)
    hyps = dict(line.split(" ", 1) for line in (tmp_path / "decode" / "hyp.txt").read_text().splitlines())
    # the directory moves, and the LM directory it was exported with goes: nothing may point outside it
    (tmp_path / "elsewhere").mkdir()
    moved = shutil.move(model, tmp_path / "elsewhere" / "model")
    shutil.rmtree(lm)
    transcriber = Transcriber.from_pretrained(moved)
    search = transcriber.search
    assert search.method == "beam" and search.beam.beam_size == 3 and search.beam.ctc_weight == 0.3
    assert search.lm is not None and search.lexicon is not None
    # asr-decode decodes each utterance whole, and so does the transcriber; the detector misses the tiny corpus's
    # whispered voices and the tiny model's CTC head is too weak to rescue or confirm any, so here the detector
    # finds speech everywhere and the gate is off
    transcriber = Transcriber.from_pretrained(moved, vad=VadOptions(ctc_gate=False))
    monkeypatch.setattr(transcriber.vad, "speech_spans", lambda wav: [(0, wav.numel())])
    utts = read_manifest(manifest)
    results = transcriber.transcribe_many([u.audio for u in utts])
    assert {u.id: r.text for u, r in zip(utts, results)} == hyps
    assert any(hyps.values())
    # asr-decode of the moved directory decodes with its bundle too, and the command line's search keys change it
    bundled = decode_manifest(decode_config([f"model_dir={moved}", f"manifest={manifest}",
                                             f"out_dir={tmp_path / 'bundled'}"]))
    assert (tmp_path / "bundled" / "hyp.txt").read_text() == (tmp_path / "decode" / "hyp.txt").read_text()
    assert bundled["search"] == "beam"
    greedy = ["search.method=greedy"]
    decode_manifest(decode_config([f"model_dir={moved}", f"manifest={manifest}", f"out_dir={tmp_path / 'g1'}",
                                   *greedy]), given={"search.method"})
    decode_manifest(decode_config([f"model_dir={tiny_model}", f"manifest={manifest}", f"out_dir={tmp_path / 'g2'}",
                                   *greedy]))
    assert (tmp_path / "g1" / "hyp.txt").read_text() == (tmp_path / "g2" / "hyp.txt").read_text()


def test_asr_decode_takes_the_keys_of_its_command_line_over_the_bundle(exported, tiny_corpus, tmp_path):
    from asr.cli.decode import search_settings

    cfg = decode_config([f"model_dir={exported}", "search.beam_size=5", "search.lm_weight=0.7"])
    settings, window = search_settings(cfg, given={"search.beam_size"})
    assert settings["beam_size"] == 5 and settings["lm_weight"] == 0.2 and settings["method"] == "beam"
    assert settings["lm_dir"] == str(exported / "lm") and window is None
    assert search_settings(cfg, given={"search.beam_size", "search.lm_weight"})[0]["lm_weight"] == 0.7
    plain = decode_config([f"model_dir={exported}", "bundled_search=false"])
    assert search_settings(plain)[0] == OmegaConf.to_container(plain.search)
    out = tmp_path / "cli"
    result = run("asr-decode", f"model_dir={exported}", f"manifest={tiny_corpus / 'manifests' / 'test-seen.jsonl'}",
                 f"out_dir={out}", "search.method=greedy", "threads=1")
    assert "asr-decode: test-seen" in result.stdout
    assert json.loads((out / "decode.json").read_text())["search"] == "greedy"


def test_cli_uses_the_bundle_unless_greedy(exported, tiny_corpus, tmp_path, capsys):
    files = [u.audio for u in read_manifest(tiny_corpus / "manifests" / "test-seen.jsonl")[:3]]
    bundled = [r.text for r in Transcriber.from_pretrained(exported).transcribe_many(files)]
    greedy = [r.text for r in Transcriber.from_pretrained(exported, search=Search()).transcribe_many(files)]
    assert transcribe_main([*files, "--model", str(exported)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{f}\t{t}" for f, t in zip(files, bundled)]
    assert transcribe_main([*files, "--model", str(exported), "--greedy"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{f}\t{t}" for f, t in zip(files, greedy)]


def test_flags_override_single_settings_of_the_bundle(exported):
    bundled = read_search_file(exported).search
    parse = build_parser().parse_args
    defaults = {"method": "beam", "beam_size": 32, "ctc_weight": 0.1, "lm_dir": None, "lm_weight": 0.1}
    cfg = search_config(parse(["x.wav", "--model", "m", "--beam", "5", "--lm-weight", "0.5"]), defaults, bundled)
    assert cfg == {**bundled, "beam_size": 5, "lm_weight": 0.5}
    cfg = search_config(parse(["x.wav", "--model", "m", "--ctc-weight", "0"]), defaults, bundled)
    assert cfg == {**bundled, "ctc_weight": 0.0}
    for flags in (["--greedy"], ["--beam", "1"]):  # greedy loads no language model
        assert search_config(parse(["x.wav", "--model", "m", *flags]), defaults, bundled) == \
            {**bundled, "method": "greedy", "lm_dir": None}
    # a directory without a bundle decodes as before: greedy unless --beam, conf/decode.yaml's other settings
    assert search_config(parse(["x.wav", "--model", "m"]), defaults)["method"] == "greedy"
    assert search_config(parse(["x.wav", "--model", "m", "--beam", "4"]), defaults) == \
        {**defaults, "beam_size": 4}
    with pytest.raises(SystemExit):  # one or the other
        parse(["x.wav", "--model", "m", "--greedy", "--beam", "4"])


def test_no_search_exports_a_greedy_directory(exported, tmp_path):
    target = shutil.copytree(exported, tmp_path / "model")
    assert export_main([str(exported), str(target), "--no-search"]) == 0
    assert not (target / "search.yaml").exists() and not (target / "lm").exists()
    assert Transcriber.from_pretrained(target).search.method == "greedy"
    assert "No bundled search" in (target / "README.md").read_text()


def test_bundle_carries_the_decode_window(tiny_model, tmp_path):
    from asr.models.attention.windowed import WindowedAttention

    target = export(tiny_model, tmp_path / "model", overrides=["window=[2,3]", "search.method=greedy"])
    assert read_search_file(target).window == (2, 3)
    transcriber = Transcriber.from_pretrained(target)
    attention = transcriber.model.speller.attention
    assert isinstance(attention, WindowedAttention) and (attention.before, attention.after) == (2, 3)
    assert transcriber.search.method == "greedy" and "attention window: [2, 3]" in (target / "README.md").read_text()
    assert not (target / "lm").exists()  # no LM in the search, none copied


@pytest.mark.parametrize("args, problem", [
    (["--results", "{tmp}/missing.json"], "missing.json: no such results file"),
    (["--decode", "search.lm_dir={tmp}/no-lm"], "no-lm/lm.yaml: no such file"),
    (["--decode", "search.beam_size=="], "--decode search.beam_size=="),
    (["--train-manifest", "{tmp}/none.jsonl"], "none.jsonl"),
])
def test_export_errors_are_one_line(tiny_model, tmp_path, capsys, args, problem):
    args = [a.format(tmp=tmp_path) for a in args]
    assert export_main([str(tiny_model), str(tmp_path / "model"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("asr-export: ") and problem.format(tmp=tmp_path) in err


def break_listener(target):
    """Replace the listener's class in a config.yaml text."""
    return lambda text: re.sub(r"_target_: asr\.models\.listener\.\w+", f"_target_: {target}", text, count=1)


MALFORMED = {
    "config, not YAML": ("config.yaml", lambda t: t + "model: [1, 2\n", ValueError, "not a readable YAML file"),
    "config, no features": ("config.yaml", lambda t: t[:t.index("features:")], ValueError,
                            "missing the `features` block"),
    "config, n_mels text": ("config.yaml", lambda t: t.replace("n_mels: 80", "n_mels: many"), ValueError,
                            "features.n_mels must be a positive integer"),
    "config, foreign class": ("config.yaml", break_listener("os.system"), ValueError,
                              "model.listener._target_: 'os.system' is not a model class of the asr package"),
    "config, package function": ("config.yaml", break_listener("asr.models.las.build_model"), ValueError,
                                 "is not a model class"),
    "config, unknown setting": ("config.yaml", lambda t: t.replace("  listener:\n", "  listener:\n    bogus: 1\n"),
                                ValueError, "cannot build the model"),
    "config, window past the FFT": ("config.yaml", lambda t: t.replace("win_length: 400", "win_length: 4000"),
                                    ValueError, "win_length (4000) must be between 1 and n_fft (512)"),
    "config, unknown feature": ("config.yaml", lambda t: t.replace("  n_mels: 80\n", "  n_mels: 80\n  hop: 10\n"),
                                ValueError, "features: unknown setting hop"),
    "stats of other features": ("norm.json", lambda t: t.replace('"n_fft": 512', '"n_fft": 1024'), ValueError,
                                "normalization stats of features"),
    "search, not YAML": ("search.yaml", lambda t: "search: [beam\n", ValueError, "not a readable YAML file"),
    "search, no block": ("search.yaml", lambda t: "beam_size: 3\n", ValueError, "a `search` block"),
    "search, unknown key": ("search.yaml", lambda t: t.replace("beam_size:", "beam_width:"), ValueError,
                            "unknown search key 'beam_width'"),
    "search, wrong type": ("search.yaml", lambda t: t.replace("beam_size: 3", "beam_size: three"), ValueError,
                           "search.beam_size must be an integer, got 'three'"),
    "search, bad method": ("search.yaml", lambda t: t.replace("method: beam", "method: guess"), ValueError,
                           "search.method must be one of greedy, beam, ctc_greedy"),
    "search, bad window": ("search.yaml", lambda t: t.replace("window: null", "window: [3]"), ValueError,
                           "window must be null or [before, after]"),
    "search, LM dir missing": ("lm", None, FileNotFoundError, "search.lm_dir 'lm' is not a directory"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_directory_is_named_in_one_line(exported, tmp_path, capsys, case):
    name, replace, error, problem = MALFORMED[case]
    directory = shutil.copytree(exported, tmp_path / "model")
    if replace is None:
        shutil.rmtree(directory / name)
        named = directory / "search.yaml"
    else:
        named = directory / name
        named.write_text(replace(named.read_text()))
    with pytest.raises(error) as caught:
        Transcriber.from_pretrained(directory)
    message = str(caught.value)
    assert message.startswith(f"{named}: ") and problem in message and "\n" not in message
    assert transcribe_main(["x.wav", "--model", str(directory)]) == 2
    err = capsys.readouterr().err
    assert err == f"asr-transcribe: {message}\n"


def test_nested_classes_are_checked_too(exported, tmp_path):
    import yaml

    from asr.models.config import read_model_config

    directory = shutil.copytree(exported, tmp_path / "model")
    path = directory / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    location = cfg["model"]["attention"]
    cfg["model"]["attention"] = {"_target_": "asr.models.attention.windowed.WindowedAttention", "_recursive_": False,
                                 "before": 2, "after": 3, "inner": location}
    path.write_text(yaml.safe_dump(cfg))
    assert read_model_config(path).model.attention.inner._target_ == location["_target_"]
    cfg["model"]["attention"]["inner"] = {**location, "_target_": "subprocess.Popen"}
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match=r"model\.attention\.inner\._target_: 'subprocess.Popen' is not a model class"):
        Transcriber.from_pretrained(directory)
