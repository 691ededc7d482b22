"""Downloads without the internet: archives in the openslr layout served from 127.0.0.1, with Range support,
dropped connections and corrupted bodies on demand; MD5 checks, resume, re-fetch and safe extraction; the noise
corpora (MUSAN's tar.gz, RIRS_NOISES' zip) the same way."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import threading
import wave
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.cli import download as cli
from asr.data.download import DownloadError, escapes_root, extract, fetch, is_extracted
from asr.data.librispeech import scan_subset

REAL = Path(__file__).parent / "data" / "librispeech-real" / "LibriSpeech" / "dev-clean"


def make_archive(path: Path, subset_dir: Path, subset: str) -> str:
    """tar.gz of one subset in openslr's layout (LibriSpeech/<subset>/<spk>/<ch>/...); returns its MD5."""
    with tarfile.open(path, "w:gz") as tar:
        readme = b"LibriSpeech stand-in for tests\n"
        info = tarfile.TarInfo("LibriSpeech/README.TXT")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
        tar.add(subset_dir, arcname=f"LibriSpeech/{subset}")
    return hashlib.md5(path.read_bytes()).hexdigest()


def wav_bytes(seed: int, seconds: float = 0.05) -> bytes:
    """A short 16 kHz mono 16-bit wav of noise."""
    samples = np.random.default_rng(seed).integers(-3000, 3000, int(16000 * seconds), dtype=np.int16)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.tobytes())
    return buffer.getvalue()


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


class ArchiveServer:
    """HTTP server in a thread serving `files` {url path: bytes}. It honours `Range: bytes=N-` (206) unless
    `ignore_range`; `corrupt[path] = n` spoils the body of the next n responses; `cut[path] = k` closes the next
    response after k bytes. `requests` logs (path, Range header or None, body bytes sent)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.corrupt: dict[str, int] = {}
        self.cut: dict[str, int] = {}
        self.ignore_range = False
        self.requests: list[tuple[str, str | None, int]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                body = owner.files.get(self.path)
                if body is None:
                    owner.requests.append((self.path, None, 0))
                    self.send_error(404)
                    return
                if owner.corrupt.get(self.path, 0) > 0:
                    owner.corrupt[self.path] -= 1
                    body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
                header = self.headers.get("Range")
                start = 0
                if header and not owner.ignore_range:
                    start = int(header.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        owner.requests.append((self.path, header, 0))
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if self.path in owner.cut:
                    payload = payload[:owner.cut.pop(self.path)]
                # logged before the body goes out: the client may be done (and asserting) as soon as it has it
                owner.requests.append((self.path, header, len(payload)))
                self.wfile.write(payload)

            def log_message(self, *args):  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    with ArchiveServer() as s:
        yield s


@pytest.fixture(scope="module")
def dev_clean(tmp_path_factory) -> tuple[bytes, str]:
    """dev-clean.tar.gz built from the five real LibriSpeech recordings: (bytes, md5)."""
    path = tmp_path_factory.mktemp("archive") / "dev-clean.tar.gz"
    md5 = make_archive(path, REAL, "dev-clean")
    return path.read_bytes(), md5


PATH = "/12/dev-clean.tar.gz"


def test_fetch_checks_md5_and_is_idempotent(server, dev_clean, tmp_path):
    data, md5 = dev_clean
    server.files[PATH] = data
    dest = fetch(server.url + PATH, tmp_path / "dev-clean.tar.gz", md5, log=lambda _: None)
    assert dest.read_bytes() == data
    assert not (tmp_path / "dev-clean.tar.gz.part").exists()
    assert server.requests == [(PATH, None, len(data))]
    lines = []
    fetch(server.url + PATH, dest, md5, log=lines.append)  # verified before: no request, no re-hash
    assert len(server.requests) == 1 and "verified earlier" in lines[0]


def test_partial_download_resumes_with_range(server, dev_clean, tmp_path):
    data, md5 = dev_clean
    server.files[PATH] = data
    half = len(data) * 2 // 5
    (tmp_path / "dev-clean.tar.gz.part").write_bytes(data[:half])
    dest = fetch(server.url + PATH, tmp_path / "dev-clean.tar.gz", md5, log=lambda _: None)
    assert dest.read_bytes() == data
    assert server.requests == [(PATH, f"bytes={half}-", len(data) - half)]  # only the missing bytes travelled


def test_dropped_connection_resumes(server, dev_clean, tmp_path):
    data, md5 = dev_clean
    server.files[PATH] = data
    server.cut[PATH] = 12345
    lines = []
    dest = fetch(server.url + PATH, tmp_path / "dev-clean.tar.gz", md5, log=lines.append)
    assert dest.read_bytes() == data
    assert server.requests == [(PATH, None, 12345), (PATH, "bytes=12345-", len(data) - 12345)]
    assert any("resuming" in line for line in lines)


def test_server_ignoring_range_restarts_the_file(server, dev_clean, tmp_path):
    data, md5 = dev_clean
    server.files[PATH] = data
    server.ignore_range = True
    (tmp_path / "dev-clean.tar.gz.part").write_bytes(b"x" * 1000)  # would corrupt the file if appended to
    dest = fetch(server.url + PATH, tmp_path / "dev-clean.tar.gz", md5, log=lambda _: None)
    assert dest.read_bytes() == data


def test_corrupted_download_is_reported_and_fetched_again(server, dev_clean, tmp_path):
    data, md5 = dev_clean
    server.files[PATH] = data
    server.corrupt[PATH] = 1
    lines = []
    dest = fetch(server.url + PATH, tmp_path / "dev-clean.tar.gz", md5, log=lines.append)
    assert dest.read_bytes() == data
    assert [r[1] for r in server.requests] == [None, None]  # the second download starts from scratch
    assert any("MD5 mismatch" in line and md5 in line for line in lines)


def test_always_corrupted_download_is_never_used(server, dev_clean, tmp_path):
    data, md5 = dev_clean
    server.files[PATH] = data
    server.corrupt[PATH] = 10
    with pytest.raises(DownloadError, match=r"MD5 still wrong after 2 attempts") as err:
        fetch(server.url + PATH, tmp_path / "dev-clean.tar.gz", md5, attempts=2, log=lambda _: None)
    assert "\n" not in str(err.value)
    assert len(server.requests) == 2
    assert list(tmp_path.iterdir()) == []  # neither the archive nor a .part is left to be used


def test_corrupted_archive_on_disk_is_fetched_again(server, dev_clean, tmp_path):
    data, md5 = dev_clean
    server.files[PATH] = data
    dest = tmp_path / "dev-clean.tar.gz"
    dest.write_bytes(data[:-10] + b"0123456789")  # e.g. a copy that went wrong
    lines = []
    fetch(server.url + PATH, dest, md5, log=lines.append)
    assert dest.read_bytes() == data and len(server.requests) == 1
    assert "MD5 mismatch" in lines[0]


def test_http_error_is_one_line(server, tmp_path):
    with pytest.raises(DownloadError, match=r"/12/missing.tar.gz: HTTP 404"):
        fetch(server.url + "/12/missing.tar.gz", tmp_path / "m.tar.gz", "0" * 32, log=lambda _: None)


def test_extract_real_layout_once(dev_clean, tmp_path, monkeypatch):
    data, _ = dev_clean
    archive = tmp_path / "archives" / "dev-clean.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(data)
    extract(archive, tmp_path, expect="LibriSpeech/dev-clean")
    utts, problems = scan_subset(tmp_path / "LibriSpeech" / "dev-clean")
    reference, _ = scan_subset(REAL)
    assert problems == [] and [u.id for u in utts] == [u.id for u in reference]
    assert [u.text for u in utts] == [u.text for u in reference]
    for got, want in zip(utts, reference):
        assert Path(got.audio).read_bytes() == Path(want.audio).read_bytes()
    assert is_extracted(archive, tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".extract")] == []

    def refuse(*args, **kwargs):
        raise AssertionError("extracted twice")

    monkeypatch.setattr("tarfile.open", refuse)
    extract(archive, tmp_path, expect="LibriSpeech/dev-clean")  # marked done: the archive is not opened


def _evil_archive(path: Path, member: tarfile.TarInfo, payload: bytes = b"") -> None:
    with tarfile.open(path, "w:gz") as tar:
        good = tarfile.TarInfo("LibriSpeech/dev-clean/1/2/ok.txt")
        good.size = 2
        tar.addfile(good, io.BytesIO(b"ok"))
        member.size = len(payload) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(payload) if member.isfile() else None)


@pytest.mark.parametrize("kind", ["dotdot", "symlink-out", "hardlink-out"])
def test_extract_refuses_unsafe_members(tmp_path, kind):
    root = tmp_path / "root"
    outside = tmp_path / "outside.txt"
    if kind == "dotdot":
        member = tarfile.TarInfo("LibriSpeech/../../outside.txt")
    else:
        member = tarfile.TarInfo("LibriSpeech/dev-clean/link")
        member.type = tarfile.SYMTYPE if kind == "symlink-out" else tarfile.LNKTYPE
        member.linkname = str(outside)
    archive = tmp_path / "dev-clean.tar.gz"
    _evil_archive(archive, member, b"pwned")
    with pytest.raises(DownloadError, match=r"dev-clean.tar.gz: cannot extract"):
        extract(archive, root, expect="LibriSpeech/dev-clean")
    assert not outside.exists()
    assert not is_extracted(archive, root)
    assert list(root.iterdir()) == []  # nothing half-extracted is left in place


def test_extract_keeps_absolute_paths_inside(tmp_path):
    root = tmp_path / "root"
    outside = tmp_path / "outside.txt"
    archive = tmp_path / "dev-clean.tar.gz"
    _evil_archive(archive, tarfile.TarInfo(str(outside)), b"pwned")
    extract(archive, root, expect="LibriSpeech/dev-clean")  # the data filter strips the leading "/"
    assert not outside.exists()
    assert (root / str(outside).lstrip("/")).read_bytes() == b"pwned"


def test_extract_truncated_or_wrong_archive(dev_clean, tmp_path):
    data, _ = dev_clean
    archive = tmp_path / "dev-clean.tar.gz"
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(DownloadError, match="cannot extract"):
        extract(archive, tmp_path / "root")
    assert not (tmp_path / "root" / "LibriSpeech").exists()
    archive.write_bytes(data)
    with pytest.raises(DownloadError, match="no LibriSpeech/test-clean/ folder"):
        extract(archive, tmp_path / "root", expect="LibriSpeech/test-clean")


def test_cli_downloads_and_extracts_from_config(server, dev_clean, tmp_path, capsys):
    data, md5 = dev_clean
    server.files[PATH] = data
    common = [f"out_dir={tmp_path}", f"base_url={server.url}", "train=[]", "dev=[dev-clean]", "test=[]"]
    assert cli.main(["--step", "all", *common, "archives.dev-clean.md5=" + "0" * 32, "attempts=1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bars: one line
    assert err.startswith("asr-download: http://127.0.0.1") and "MD5 still wrong" in err
    assert not (tmp_path / "LibriSpeech").exists()

    assert cli.main(["--step", "fetch", *common, f"archives.dev-clean.md5={md5}"]) == 0
    assert not (tmp_path / "LibriSpeech").exists()
    assert cli.main(["--step", "extract", *common, f"archives.dev-clean.md5={md5}"]) == 0
    utts, problems = scan_subset(tmp_path / "LibriSpeech" / "dev-clean")
    assert len(utts) == 5 and problems == []
    capsys.readouterr()
    assert cli.main(["--get", "dev", "--get", "archives.dev-clean.resource", *common]) == 0
    assert capsys.readouterr().out.splitlines() == ["dev-clean", "12"]


def test_config_has_every_openslr_subset():
    cfg = cli.load_config("librispeech/data", [])
    assert cli.subsets(cfg) == ["train-clean-100", "dev-clean", "dev-other", "test-clean", "test-other"]
    names = {"train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other", "test-clean",
             "test-other", "train-clean-5", "dev-clean-2"}
    assert set(cfg.archives) == names
    for name in names:
        url, md5 = cli.archive_url(cfg, name)
        resource = 31 if name in ("train-clean-5", "dev-clean-2") else 12
        assert url == f"https://www.openslr.org/resources/{resource}/{name}.tar.gz"
        assert re.fullmatch("[0-9a-f]{32}", md5), (name, md5)  # a hex digest as md5sum.txt prints it
    assert len({cli.archive_url(cfg, n)[1] for n in names}) == len(names)


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
    cfg = cli.load_config("librispeech/data", [])
    assert cli.noise_url(cfg, "musan")[0] == "https://www.openslr.org/resources/17/musan.tar.gz"
    assert cli.noise_url(cfg, "rirs_noises")[0] == "https://www.openslr.org/resources/28/rirs_noises.zip"
    # the sums openslr publishes for the two archives (pages 17 and 28)
    assert cli.noise_url(cfg, "musan")[1] == "0c472d4fc0c5141eca47ad1ffeb2a7df"
    assert cli.noise_url(cfg, "rirs_noises")[1] == "e6f48e257286e05de56413b4779d8ffb"
    assert [job.expect for job in cli.noise_jobs(cfg)] == ["musan", "RIRS_NOISES"]
    with pytest.raises(ValueError, match="unknown noise corpus 'demand'"):
        cli.noise_url(cfg, "demand")
