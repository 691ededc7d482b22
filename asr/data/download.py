"""Fetch corpus archives over HTTP(S) resumably, verify them against published MD5 sums, extract them safely.

    fetch(url, dest, md5)           dest.part grows with HTTP Range requests until complete; renamed to dest only
                                    when its MD5 matches, so a half-downloaded or corrupted archive is never used
                                    (md5=None: no checksum is known, the archive is used unverified and says so)
    extract(archive, root, expect)  tar members go through tarfile's "data" filter (no absolute paths, no "..",
                                    no links out of the tree, no device files); a .zip is refused whole when a
                                    member has an absolute path or ".."; a marker records a finished extraction
                                    so it is not redone

Only the standard library (urllib) is used for the network: no new dependency for a download.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PureWindowsPath

from tqdm import tqdm

CHUNK_BYTES = 1 << 20


class DownloadError(RuntimeError):
    """A download or extraction that cannot be completed; the message is one line naming the file or URL."""


def file_md5(path: Path, desc: str | None = None) -> str:
    """Hex MD5 of a file, read in 1 MiB chunks (with a progress bar when `desc` is given)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=desc,
                                     disable=desc is None, leave=False) as bar:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size} {st.st_mtime_ns}"


def _verified_marker(dest: Path) -> Path:
    return dest.with_name(dest.name + ".md5ok")


def is_verified(dest: Path, md5: str) -> bool:
    """True when `dest` was checked against `md5` and has not changed since (size and mtime), so a rerun of the
    download stage does not hash tens of gigabytes again."""
    marker = _verified_marker(dest)
    if not (dest.is_file() and marker.is_file()):
        return False
    return marker.read_text().split("\n")[:2] == [md5, _stamp(dest)]


def _mark_verified(dest: Path, md5: str) -> None:
    _verified_marker(dest).write_text(f"{md5}\n{_stamp(dest)}\n")


def _download_part(url: str, part: Path, timeout: float) -> None:
    """Append the rest of `url` to `part`, starting where it ends (HTTP Range). A server that ignores Range
    (200 instead of 206) restarts the file; 416 means there is nothing left to fetch."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the part already holds the whole file (or more: the MD5 will tell)
            return
        raise
    with response:
        if have and response.status != 206:
            have = 0  # Range not honoured: the body is the whole file
        total = response.headers.get("Content-Length")
        total = have + int(total) if total is not None else None
        mode = "ab" if have else "wb"
        with open(part, mode) as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                         desc=f"download {part.name.removesuffix('.part')}", leave=False) as bar:
            # read1: whatever has arrived, so the bytes before a dropped connection reach the disk and are kept
            while block := response.read1(CHUNK_BYTES):
                f.write(block)
                bar.update(len(block))
    if total is not None and part.stat().st_size < total:
        raise ConnectionError(f"connection closed after {part.stat().st_size} of {total} bytes")


def _download(url: str, part: Path, retries: int, timeout: float, log) -> None:
    """Bring `part` up to the whole of `url`, reconnecting and resuming up to `retries` times."""
    for connection in range(retries + 1):
        try:
            _download_part(url, part, timeout)
            return
        except urllib.error.HTTPError as err:
            raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            reason = getattr(err, "reason", err)
            if connection == retries:
                raise DownloadError(f"{url}: {reason} (gave up after {retries} retries; "
                                    f"{part} is kept and will be resumed)") from None
            log(f"{url}: {reason}; resuming")


def _fetch_unverified(url: str, dest: Path, retries: int, timeout: float, log) -> Path:
    """fetch() for an archive with no known MD5: downloaded (resumably) and used as it is, which is logged."""
    if dest.is_file():
        log(f"{dest.name}: present, MD5 not verified (no checksum configured)")
        return dest
    part = dest.with_name(dest.name + ".part")
    _download(url, part, retries, timeout, log)
    part.rename(dest)
    log(f"{dest.name}: downloaded, MD5 not verified (no checksum configured)")
    return dest


def fetch(url: str, dest: str | Path, md5: str | None, attempts: int = 3, retries: int = 5,
          timeout: float = 60.0, log=print) -> Path:
    """Download `url` to `dest` and check its MD5.

    The bytes go to `dest.part` first; an interrupted transfer is resumed from its end (up to `retries`
    reconnections per attempt). A finished file whose MD5 differs from `md5` is reported, deleted and
    fetched again from scratch, at most `attempts` times in all; only a matching file is renamed to `dest`.
    An existing `dest` is verified too (a corrupted one is fetched again). `md5=None` skips the check (and
    logs that it did). Raises DownloadError.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if md5 is None:
        return _fetch_unverified(url, dest, retries, timeout, log)
    if is_verified(dest, md5):
        log(f"{dest.name}: present, MD5 verified earlier")
        return dest
    if dest.is_file():
        got = file_md5(dest, desc=f"verify {dest.name}")
        if got == md5:
            _mark_verified(dest, md5)
            log(f"{dest.name}: present, MD5 ok")
            return dest
        log(f"{dest}: MD5 mismatch (got {got}, expected {md5}); fetching it again")
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    for attempt in range(1, attempts + 1):
        _download(url, part, retries, timeout, log)
        got = file_md5(part, desc=f"verify {dest.name}")
        if got == md5:
            part.rename(dest)
            _mark_verified(dest, md5)
            log(f"{dest.name}: downloaded, MD5 ok")
            return dest
        log(f"{url}: MD5 mismatch (got {got}, expected {md5}), attempt {attempt} of {attempts}; deleted")
        part.unlink()
    raise DownloadError(f"{url}: MD5 still wrong after {attempts} attempts (expected {md5})")


def _extracted_marker(archive: Path) -> Path:
    return archive.with_name(archive.name + ".extracted")


def is_extracted(archive: Path, root: Path) -> bool:
    """True when `archive` was extracted in full under `root` (its marker names that folder)."""
    marker = _extracted_marker(archive)
    return marker.is_file() and marker.read_text().strip() == str(root.resolve())


def extract(archive: str | Path, root: str | Path, expect: str | None = None) -> Path:
    """Extract a tar archive (or a .zip) under `root` safely and mark it done.

    Members go to a temporary folder inside `root` first and are moved into place only when the whole archive
    was read, so an interrupted extraction leaves nothing half-written behind. `expect` (e.g.
    "LibriSpeech/dev-clean") must be a folder in the archive. Returns `root`; raises DownloadError.
    """
    archive, root = Path(archive), Path(root)
    if is_extracted(archive, root):
        return root
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".extract-{archive.name}"
    if staging.exists():
        shutil.rmtree(staging)  # left by an interrupted run
    staging.mkdir()
    try:
        if archive.name.endswith(".zip"):
            _extract_zip(archive, staging)
        else:
            _extract_tar(archive, staging)
        if expect and not (staging / expect).is_dir():
            raise DownloadError(f"{archive}: no {expect}/ folder in the archive")
        _move_tree(staging, root)
    except (tarfile.TarError, zipfile.BadZipFile, NotImplementedError, EOFError, zlib.error, OSError) as err:
        # tarfile's FilterError (an unsafe member) is a TarError; NotImplementedError: an unknown zip compression
        raise DownloadError(f"{archive}: cannot extract ({err})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _extracted_marker(archive).write_text(f"{root.resolve()}\n")
    return root


def _extract_tar(archive: Path, staging: Path) -> None:
    """Every member of a tar archive into `staging`, through tarfile's "data" filter."""
    # Members are read in order as they come (no index pass first), so a 30 GB archive is decompressed once.
    with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as tar, \
            tqdm(total=archive.stat().st_size, unit="B", unit_scale=True, desc=f"extract {archive.name}",
                 leave=False) as bar:
        for member in tar:
            tar.extract(member, staging, filter="data")
            bar.update(raw.tell() - bar.n)


def escapes_root(name: str) -> bool:
    """True for an archive member path that points outside the folder it is extracted to: absolute (a POSIX
    root, a Windows drive or share) or with a ".." component."""
    path = name.replace("\\", "/")
    return path.startswith("/") or bool(PureWindowsPath(name).drive) or ".." in path.split("/")


def _extract_zip(archive: Path, staging: Path) -> None:
    """Every member of a zip archive into `staging`, after checking that none escapes it."""
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        # zipfile itself would quietly rewrite such a path; an archive that has one is not what it claims to be
        for info in members:
            if escapes_root(info.filename):
                raise DownloadError(f"{archive}: member {info.filename!r} has an absolute path or '..'; "
                                    "refusing to extract it")
        with tqdm(total=sum(i.file_size for i in members), unit="B", unit_scale=True,
                  desc=f"extract {archive.name}", leave=False) as bar:
            for info in members:
                zf.extract(info, staging)
                bar.update(info.file_size)


def _move_tree(src: Path, dst: Path) -> None:
    """Move every file of `src` to the same relative place under `dst`, replacing what is there (LibriSpeech's
    archives share top-level files such as README.TXT)."""
    for dirpath, _, filenames in os.walk(src):
        target = dst / Path(dirpath).relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            os.replace(Path(dirpath) / name, target / name)

