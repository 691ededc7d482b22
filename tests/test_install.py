"""The package as a user installs it: a wheel built from the tracked sources, installed into a fresh venv outside
the checkout, runs the README's quick start (synthesize, prepare, train, decode, transcribe) with its configs
found inside the package."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def quick_start_block() -> str:
    """The bash block under README.md's "Quick start" heading."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match, "README.md: the quick start has no bash block"
    return match.group(1)


def test_the_quick_start_uses_a_scratch_folder_and_the_venv():
    """The test below swaps these two for its own folders, so they must stay as written."""
    block = quick_start_block()
    assert block.startswith('PATH="$PWD/.venv/bin:$PATH"; T=/tmp/asr-tiny\n')
    for command in ("asr-synth", "asr-prepare", "asr-train", "asr-decode", "asr-transcribe"):
        assert re.search(rf"^{command} ", block, re.MULTILINE), command


def build_wheel(dest: Path) -> Path:
    """A wheel of the package from a copy of its sources (the build leaves nothing in the checkout)."""
    src = dest / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "asr", src / "asr", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest / "dist"), str(src)],
                   check=True, capture_output=True, text=True)
    (wheel,) = (dest / "dist").glob("asr-*.whl")
    return wheel


def fresh_venv(path: Path, wheel: Path) -> Path:
    """A venv that holds the wheel and sees this venv's dependencies (never its editable copy of the package)."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    python = path / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, text=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # a path in a .pth file joins sys.path after the venv's own site-packages; the .pth files found there (the
    # editable install's finder among them) are not run
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return path


@pytest.mark.slow
def test_wheel_installs_and_runs_the_quick_start(tmp_path):
    wheel = build_wheel(tmp_path)
    names = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheel)], check=True, capture_output=True,
                           text=True).stdout
    assert "asr/conf/train.yaml" in names and "asr/conf/model/attention/mocha.yaml" in names

    user = tmp_path / "user"  # the user's working folder: no checkout, no conf/, no tests/
    user.mkdir()
    venv = fresh_venv(user / ".venv", wheel)
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import asr; print(asr.__file__)"], cwd=user,
                           check=True, capture_output=True, text=True).stdout.strip()
    assert Path(where).is_relative_to(venv), where

    scratch = tmp_path / "tiny"
    block = quick_start_block().replace("T=/tmp/asr-tiny", f"T={scratch}", 1)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(TQDM_DISABLE="1", OMP_NUM_THREADS="1")
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=user, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, f"quick start failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert (scratch / "exp" / "model.pt").is_file()
    assert re.search(r"asr-decode: test-seen: WER [0-9.]+% CER", result.stdout), result.stdout[-2000:]
    transcribed = [line for line in result.stdout.splitlines() if ".flac" in line]
    assert len(transcribed) >= 2, result.stdout[-2000:]
