"""Command-line entry points (console scripts declared in pyproject.toml)."""

from pathlib import Path

# Absolute on purpose: with a relative config_path Hydra resolves against the *package* (pkg://conf) when
# main() is imported by a console script, and conf/ at the repository root is not a Python package.
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
