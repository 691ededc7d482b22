"""The noise corpora downloaded without the internet: MUSAN's tar.gz and RIRS_NOISES' zip served from 127.0.0.1,
MD5-checked, fetched again when corrupted, extracted once and safely."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest
import soundfile as sf

from asr import compose_config
from asr.cli import download as cli
from asr.data.download import DownloadError, escapes_root, extract, fetch, is_extracted

from .archive_server import ArchiveServer, wav_bytes

# Stand-ins for the noise corpora, laid out as openslr's archives are (a few files of each kind)
MUSAN_WAVS = ["musan/noise/free-sound/noise-free-sound-0000.wav", "musan/noise/free-sound/noise-free-sound-0001.wav",
              "musan/music/fma/music-fma-0000.wav", "musan/speech/librivox/speech-librivox-0000.wav"]
RIRS_WAVS = ["RIRS_NOISES/simulated_rirs/smallroom/Room001/Room001-00001.wav",
             "RIRS_NOISES/simulated_rirs/smallroom/Room001/Room001-00002.wav",
             "RIRS_NOISES/real_rirs_isotropic_noises/air_type1_air_binaural_lecture_0_1.wav",
             "RIRS_NOISES/pointsource_noises/noise-free-sound-0232.wav"]


def make_musan(path: Path) -> str:
    """A tiny musan.tar.gz; returns its MD5."""
    with tarfile.open(path, "w:gz") as tar:
        for i, name in enumerate(["musan/README", *MUSAN_WAVS]):
            body = wav_bytes(i) if name.endswith(".wav") else b"MUSAN stand-in for tests\n"
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return hashlib.md5(path.read_bytes()).hexdigest()


def make_rirs(path: Path, extra: tuple[str, ...] = ()) -> str:
    """A tiny rirs_noises.zip, with `extra` members (e.g. a path that escapes); returns its MD5."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, name in enumerate([*RIRS_WAVS, *extra]):
            zf.writestr(zipfile.ZipInfo(name), wav_bytes(100 + i))  # a ZipInfo keeps the name as it is
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def server():
    with ArchiveServer() as s:
        yield s


MUSAN_PATH, RIRS_PATH = "/17/musan.tar.gz", "/28/rirs_noises.zip"


@pytest.fixture(scope="module")
def noise_archives(tmp_path_factory) -> dict[str, tuple[bytes, str]]:
    """{URL path: (bytes, md5)} of the MUSAN and RIRS_NOISES stand-ins."""
    folder = tmp_path_factory.mktemp("noise")
    md5s = {MUSAN_PATH: make_musan(folder / "musan.tar.gz"), RIRS_PATH: make_rirs(folder / "rirs_noises.zip")}
    return {path: ((folder / path.split("/")[-1]).read_bytes(), md5) for path, md5 in md5s.items()}


def serve_noise(server, noise_archives, tmp_path) -> list[str]:
    """Put the noise archives on `server`; returns asr-download's overrides for it (its URL, their MD5s)."""
    for path, (data, _) in noise_archives.items():
        server.files[path] = data
    return [f"out_dir={tmp_path}", f"base_url={server.url}", f"noise.musan.md5={noise_archives[MUSAN_PATH][1]}",
            f"noise.rirs_noises.md5={noise_archives[RIRS_PATH][1]}"]


def noise_layout(root: Path) -> list[str]:
    """Every wav under root/musan and root/RIRS_NOISES, relative to root, after checking it reads as 16 kHz audio."""
    wavs = sorted(str(p.relative_to(root)) for folder in ("musan", "RIRS_NOISES")
                  for p in (root / folder).rglob("*.wav"))
    for wav in wavs:
        assert sf.info(str(root / wav)).samplerate == 16000
    return wavs


def test_noise_corpora_fetched_checked_extracted_once(server, noise_archives, tmp_path, capsys):
    overrides = serve_noise(server, noise_archives, tmp_path)
    assert cli.main(["--noise", *overrides]) == 0
    assert server.requests == [(MUSAN_PATH, None, len(server.files[MUSAN_PATH])),
                               (RIRS_PATH, None, len(server.files[RIRS_PATH]))]
    out = capsys.readouterr().out
    assert out.count("downloaded, MD5 ok") == 2
    assert noise_layout(tmp_path) == sorted(MUSAN_WAVS + RIRS_WAVS)
    for name in ("musan.tar.gz", "rirs_noises.zip"):
        assert is_extracted(tmp_path / "archives" / name, tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".extract")] == []
    inodes = {wav: (tmp_path / wav).stat().st_ino for wav in MUSAN_WAVS + RIRS_WAVS}

    assert cli.main(["--noise", *overrides]) == 0  # nothing fetched, nothing extracted again
    assert len(server.requests) == 2
    assert capsys.readouterr().out.count("MD5 verified earlier") == 2
    assert {wav: (tmp_path / wav).stat().st_ino for wav in inodes} == inodes


def test_noise_fetch_and_extract_steps(server, noise_archives, tmp_path):
    overrides = serve_noise(server, noise_archives, tmp_path)
    assert cli.main(["--noise", "--step", "extract", *overrides]) == 1  # nothing downloaded yet
    assert cli.main(["--noise", "--step", "fetch", *overrides]) == 0
    assert not (tmp_path / "musan").exists() and not (tmp_path / "RIRS_NOISES").exists()
    assert cli.main(["--noise", "--step", "extract", *overrides]) == 0
    assert noise_layout(tmp_path) == sorted(MUSAN_WAVS + RIRS_WAVS)
    assert not (tmp_path / "LibriSpeech").exists()  # --noise leaves the LibriSpeech subsets alone


def test_corrupted_noise_archive_is_fetched_again(server, noise_archives, tmp_path, capsys):
    overrides = serve_noise(server, noise_archives, tmp_path)
    server.corrupt[RIRS_PATH] = 1
    assert cli.main(["--noise", *overrides]) == 0
    assert [r[:2] for r in server.requests] == [(MUSAN_PATH, None), (RIRS_PATH, None), (RIRS_PATH, None)]
    assert "rirs_noises.zip: MD5 mismatch" in capsys.readouterr().out
    assert noise_layout(tmp_path) == sorted(MUSAN_WAVS + RIRS_WAVS)


def test_always_corrupted_noise_archive_is_never_extracted(server, noise_archives, tmp_path, capsys):
    overrides = serve_noise(server, noise_archives, tmp_path)
    server.corrupt[RIRS_PATH] = 10
    assert cli.main(["--noise", *overrides, "attempts=2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("asr-download: http://127.0.0.1") and "rirs_noises.zip: MD5 still wrong" in err
    assert not (tmp_path / "RIRS_NOISES").exists()
    assert sorted(p.name for p in (tmp_path / "archives").iterdir() if "rirs" in p.name) == []


@pytest.mark.parametrize("member", ["../evil", "RIRS_NOISES/../../evil", "..\\evil", "C:/evil", "ABSOLUTE"])
def test_zip_member_escaping_the_folder_is_refused(tmp_path, member):
    root = tmp_path / "root"
    outside = tmp_path / "evil"
    member = str(outside) if member == "ABSOLUTE" else member
    archive = tmp_path / "rirs_noises.zip"
    make_rirs(archive, extra=(member,))
    with pytest.raises(DownloadError, match=r"rirs_noises.zip: member .* absolute path or '..'") as err:
        extract(archive, root, expect="RIRS_NOISES")
    assert "\n" not in str(err.value) and repr(member) in str(err.value)
    assert not outside.exists() and not (tmp_path.parent / "evil").exists()
    assert not is_extracted(archive, root)
    assert list(root.iterdir()) == []  # refused whole: not even the good members are in place


def test_escapes_root():
    assert not any(map(escapes_root, ["RIRS_NOISES/a.wav", "RIRS_NOISES/", "a..b/c..wav", "musan/x"]))
    assert all(map(escapes_root, ["/etc/passwd", "..", "a/../../b", "a\\..\\b", "C:\\x", "c:x", "\\\\host\\share\\x"]))


def test_cli_refuses_an_escaping_zip_in_one_line(server, noise_archives, tmp_path, capsys):
    evil = tmp_path / "served.zip"
    md5 = make_rirs(evil, extra=("../evil",))
    overrides = serve_noise(server, noise_archives, tmp_path / "data")
    server.files[RIRS_PATH] = evil.read_bytes()
    assert cli.main(["--noise", *overrides, f"noise.rirs_noises.md5={md5}"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("asr-download")]
    assert len(err) == 1 and "rirs_noises.zip: member '../evil' has an absolute path or '..'" in err[0]
    assert not (tmp_path / "evil").exists() and not (tmp_path / "data" / "RIRS_NOISES").exists()


def test_truncated_zip_cannot_extract(noise_archives, tmp_path):
    data, _ = noise_archives[RIRS_PATH]
    archive = tmp_path / "rirs_noises.zip"
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(DownloadError, match=r"rirs_noises.zip: cannot extract"):
        extract(archive, tmp_path / "root", expect="RIRS_NOISES")
    assert not (tmp_path / "root" / "RIRS_NOISES").exists()


def test_fetch_without_md5_is_logged_as_unverified(server, noise_archives, tmp_path, capsys):
    overrides = serve_noise(server, noise_archives, tmp_path)
    assert cli.main(["--noise", "--step", "fetch", *overrides, "noise.rirs_noises.md5=null"]) == 0
    out = capsys.readouterr().out
    assert "rirs_noises.zip: downloaded, MD5 not verified (no checksum configured)" in out
    assert "musan.tar.gz: downloaded, MD5 ok" in out
    lines = []
    fetch(server.url + RIRS_PATH, tmp_path / "archives" / "rirs_noises.zip", None, log=lines.append)
    assert lines == ["rirs_noises.zip: present, MD5 not verified (no checksum configured)"]
    assert len(server.requests) == 2


def test_config_has_the_noise_corpora():
    cfg = compose_config("librispeech/data")
    assert cli.noise_url(cfg, "musan")[0] == "https://www.openslr.org/resources/17/musan.tar.gz"
    assert cli.noise_url(cfg, "rirs_noises")[0] == "https://www.openslr.org/resources/28/rirs_noises.zip"
    # the sums openslr publishes for the two archives (pages 17 and 28)
    assert cli.noise_url(cfg, "musan")[1] == "0c472d4fc0c5141eca47ad1ffeb2a7df"
    assert cli.noise_url(cfg, "rirs_noises")[1] == "e6f48e257286e05de56413b4779d8ffb"
    assert [job.expect for job in cli.noise_jobs(cfg)] == ["musan", "RIRS_NOISES"]
    with pytest.raises(ValueError, match="unknown noise corpus 'demand'"):
        cli.noise_url(cfg, "demand")
