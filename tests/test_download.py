"""Downloads without the internet: archives in the openslr layout served from 127.0.0.1, with Range support,
dropped connections and corrupted bodies on demand; MD5 checks, resume, re-fetch and safe extraction (the noise
corpora: tests/test_download_noise.py)."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from pathlib import Path

import pytest

from asr import compose_config
from asr.cli import download as cli
from asr.data.download import DownloadError, extract, fetch, is_extracted
from asr.data.librispeech import scan_subset

from .archive_server import ArchiveServer

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
    cfg = compose_config("librispeech/data")
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
