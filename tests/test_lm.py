"""Character LSTM LM: step-by-step equals the parallel forward, state selection, blank masking, training,
save/load, and asr-train-lm end to end on tiny manifests and text files."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from asr.data.tokenizer import CharTokenizer
from asr.models.lexicon_lm import build_lexicon, read_lexicon
from asr.models.lm import CharLM, LMState, load_lm, pad_sentences, save_lm
from asr.training.lm import batch_loss, length_batches

from .conftest import run

RESOURCES = Path(__file__).resolve().parents[1] / "asr" / "resources" / "librispeech-text"
TINY_LM = ["model.embed_dim=16", "model.hidden=48", "model.layers=2", "model.dropout=0.0", "threads=1",
           "train.batch_size=8", "train.lr=1e-2", "train.max_epochs=6"]


def lm_and_tokens(vocab: int = 12, batch: int = 3, length: int = 7, seed: int = 0):
    torch.manual_seed(seed)
    model = CharLM(vocab, embed_dim=8, hidden=16, layers=2, dropout=0.3).eval()
    tokens = torch.randint(2, vocab, (batch, length))
    tokens[:, 0] = model.sos_eos
    return model, tokens


def step_through(model: CharLM, tokens: torch.Tensor) -> torch.Tensor:
    """Log-probs (B, U, V) by feeding tokens (B, U) one at a time through ``step``."""
    state, out = model.init_state(tokens.shape[0], tokens.device), []
    for u in range(tokens.shape[1]):
        log_probs, state = model.step(tokens[:, u], state)
        out.append(log_probs)
    return torch.stack(out, 1)


def test_step_by_step_equals_forward():
    model, tokens = lm_and_tokens()
    parallel = F.log_softmax(model(tokens), dim=-1)
    stepped = step_through(model, tokens)
    finite = torch.isfinite(parallel)
    assert torch.equal(finite, torch.isfinite(stepped))
    torch.testing.assert_close(stepped[finite], parallel[finite], atol=1e-5, rtol=0)
    # forward from a stepped state continues the same sentences.
    state = model.init_state(tokens.shape[0], "cpu")
    for u in range(3):
        _, state = model.step(tokens[:, u], state)
    continued = F.log_softmax(model(tokens[:, 3:], state), dim=-1)
    torch.testing.assert_close(continued[finite[:, 3:]], parallel[:, 3:][finite[:, 3:]], atol=1e-5, rtol=0)


def test_select_reorders_and_repeats_hypotheses():
    model, tokens = lm_and_tokens(batch=4)
    state = model.init_state(4, "cpu")
    for u in range(3):
        _, state = model.step(tokens[:, u], state)
    index = torch.tensor([2, 0, 2, 3, 1])  # reorder, repeat one and keep all: a beam step
    picked = state.select(index)
    assert isinstance(picked, LMState) and picked.h.shape == (2, 5, 16)
    # Continuing the selected states equals continuing each chosen sentence from scratch.
    continued, _ = model.step(tokens[index, 3], picked)
    reference = step_through(model, tokens[index, :4])[:, 3]
    torch.testing.assert_close(continued, reference, atol=1e-6, rtol=0)
    torch.testing.assert_close(picked.h[:, 1], state.h[:, 0])
    torch.testing.assert_close(picked.c[:, 2], state.c[:, 2])


def test_blank_never_gets_probability():
    model, tokens = lm_and_tokens()
    model.train()  # dropout on: the mask must hold in training too
    for log_probs in (F.log_softmax(model(tokens), dim=-1), step_through(model.eval(), tokens)):
        probs = log_probs.exp()
        assert torch.all(probs[..., model.blank] == 0)
        assert torch.all(probs[..., model.blank + 1:] > 0)
        torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]))


def test_training_loss_falls_and_blank_gradients_stay_finite():
    torch.manual_seed(0)
    sentences = [[5, 6, 7, 3, 8, 9], [7, 6, 5, 3, 9, 8, 9], [5, 6, 3, 7]]
    model = CharLM(12, embed_dim=8, hidden=24, layers=1, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with torch.no_grad():
        before = model.sentence_log_prob(sentences)
    losses = []
    for _ in range(40):
        nll, n = batch_loss(model, sentences)
        optimizer.zero_grad()
        (nll / n).backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())
        optimizer.step()
        losses.append(nll.item() / n)
    assert losses[-1] < 0.3 * losses[0]
    # Every whole sentence has become more probable, and the blank is still impossible.
    with torch.no_grad():
        assert torch.all(model.eval().sentence_log_prob(sentences) > before)
    assert torch.all(F.log_softmax(model(pad_sentences(sentences, 1)[0]), -1)[..., 0] == float("-inf"))


def test_pad_sentences_shifts_targets_by_one():
    inputs, targets = pad_sentences([[5, 6], [7]], sos_eos=1)
    assert inputs.tolist() == [[1, 5, 6], [1, 7, 1]]
    assert targets.tolist() == [[5, 6, 1], [7, 1, -100]]


def test_length_batches_cover_everything_once_and_group_lengths():
    lengths = [len(str(i)) * 10 + i % 3 for i in range(200)]
    batches = length_batches(lengths, 16, random.Random(0))
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(200)) and max(len(b) for b in batches) == 16
    # Grouped by length: the spread inside a batch is small compared with the whole range.
    assert max(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) <= 10


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    model, tokens = lm_and_tokens()
    save_lm(model, tmp_path, {"note": "test"})
    loaded = load_lm(tmp_path)
    assert not loaded.training
    assert torch.equal(loaded(tokens), model(tokens))
    assert torch.equal(step_through(loaded, tokens), step_through(model, tokens))


def test_load_lm_of_a_missing_directory_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="lm.yaml"):
        load_lm(tmp_path / "nothing")


# --- asr-train-lm ---------------------------------------------------------------------------------------------
def write_manifest(path: Path, texts: list[str]) -> None:
    path.write_text("".join(json.dumps({"id": f"1-1-{i}", "audio": "/none.flac", "duration": 1.0, "speaker": "1",
                                        "text": t}) + "\n" for i, t in enumerate(texts)))


@pytest.fixture(scope="module")
def tiny_text(tmp_path_factory) -> Path:
    """Manifests (train 60, dev 10, test 10 sentences; no audio needed) and a tokenizer."""
    root = tmp_path_factory.mktemp("lm")
    lines = (RESOURCES / "dev-clean.trans.txt").read_text().splitlines()
    texts = [" ".join(line.split()[1:]) for line in lines if 4 <= len(line.split()) <= 14][:80]
    write_manifest(root / "train-synth.jsonl", texts[:60])
    write_manifest(root / "dev-seen.jsonl", texts[60:70])
    write_manifest(root / "test-seen.jsonl", texts[70:80])
    CharTokenizer.build(texts).save(root / "tokenizer.json")
    return root


def train_lm_cli(manifests: Path, out: Path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    args = ("asr-train-lm", f"data.manifest_dir={manifests}", f"out_dir={out}", *TINY_LM, *overrides)
    if check:
        return run(*args)
    exe = Path(sys.executable).parent / args[0]
    return subprocess.run([str(exe), *args[1:]], capture_output=True, text=True)


def dev_ppls(out: Path) -> list[float]:
    with (out / "train_log.csv").open() as f:
        return [float(row["dev_ppl"]) for row in csv.DictReader(f)]


@pytest.mark.slow
def test_train_lm_cli_writes_a_loadable_lm_better_than_uniform(tiny_text, tmp_path):
    out = tmp_path / "lm"
    result = train_lm_cli(tiny_text, out)
    assert {"lm.pt", "lm.yaml", "tokenizer.json", "train_log.csv"} <= {p.name for p in out.iterdir()}
    vocab = len(CharTokenizer.load(tiny_text / "tokenizer.json"))
    ppls = dev_ppls(out)
    assert len(ppls) >= 2 and min(ppls) < vocab - 3  # uniform over the non-blank symbols is vocab - 1
    assert "best dev perplexity" in result.stdout
    # The saved model is the best epoch: recomputing its dev perplexity gives the logged minimum.
    lm = load_lm(out)
    dev = [json.loads(line)["text"] for line in (tiny_text / "dev-seen.jsonl").read_text().splitlines()]
    tok = CharTokenizer.load(out / "tokenizer.json")
    with torch.no_grad():
        nll = -lm.sentence_log_prob([tok.encode(t) for t in dev]).sum().item()
    ppl = torch.tensor(nll / sum(len(t) + 1 for t in dev)).exp().item()
    assert ppl == pytest.approx(min(ppls), rel=1e-3)


@pytest.mark.slow
def test_train_lm_cli_text_option_warns_on_unknown_characters_and_drops_test_sentences(tiny_text, tmp_path):
    test_sentence = json.loads((tiny_text / "test-seen.jsonl").read_text().splitlines()[0])["text"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("HELLO WORLD #1\n\n" + "THE CAT SAT ON THE MAT\n" * 3 + f"{test_sentence}\n")
    out = tmp_path / "lm"
    result = train_lm_cli(tiny_text, out, f"text={corpus}", "train.max_epochs=2")
    log = result.stdout + result.stderr
    assert "warning: 2 characters of the training text are not in the tokenizer" in log  # '#' and '1'
    assert "left out 1 training sentences that occur in dev-seen, test-seen" in log
    assert "asr-train-lm: 2 training sentences" in log  # deduplicated: HELLO WORLD #1 and THE CAT SAT ON THE MAT
    assert (out / "lm.pt").exists() and len(dev_ppls(out)) == 2


@pytest.mark.parametrize("content", [None, "\n  \n"], ids=["missing", "empty"])
def test_train_lm_cli_bad_text_file_gives_one_error_line(tiny_text, tmp_path, content):
    corpus = tmp_path / "corpus.txt"
    if content is not None:
        corpus.write_text(content)
    result = train_lm_cli(tiny_text, tmp_path / "lm", f"text={corpus}", check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("asr-train-lm: ") and str(corpus) in lines[0], result.stderr


def test_lexicon_cli_holds_common_and_training_words_but_no_held_out_sentence_words(tiny_text, tmp_path):
    out = tmp_path / "lm"
    result = run("asr-lexicon", f"data.manifest_dir={tiny_text}", f"out_dir={out}", "lexicon.size=3000")
    assert "asr-lexicon:" in result.stdout and (out / "lexicon.tsv").is_file()
    lexicon = read_lexicon(out / "lexicon.tsv")

    def words(name):
        return {w for line in (tiny_text / f"{name}.jsonl").read_text().splitlines()
                for w in json.loads(line)["text"].split()}

    train_words, held_out = words("train-synth"), words("dev-seen") | words("test-seen")
    assert train_words <= set(lexicon) and {"THE", "PEOPLE", "WATER"} <= set(lexicon)
    rare_held_out = held_out - train_words - set(build_lexicon([], size=3000))
    assert rare_held_out and not rare_held_out & set(lexicon)
