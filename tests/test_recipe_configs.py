"""A recipe's config (conf/mini/) is the neutral default it builds on plus the settings it lists, and nothing else."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from asr import CONF_DIR


def differences(a, b, prefix: str = "") -> dict[str, tuple]:
    """Every dotted key whose value differs between two plain nested dicts: {key: (a's, b's)}."""
    out = {}
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out.update(differences(x, y, f"{prefix}{key}."))
        elif x != y:
            out[f"{prefix}{key}"] = (x, y)
    return out


def composed(name: str) -> dict:
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        return OmegaConf.to_container(compose(name), resolve=False)


@pytest.mark.parametrize(("recipe", "base", "expected"), [
    ("mini/las", "train", {"specaug.enabled": (True, False), "train.max_minutes": (None, 29),
                           "train.lr": (1.0e-3, 2.0e-3)}),
    ("mini/lm", "lm", {"train.max_minutes": (None, 3)}),
    ("mini/fit_ctc", "fit_ctc", {"fit.max_minutes": (None, 8)}),
])
def test_a_recipe_config_changes_only_what_it_lists(recipe, base, expected):
    assert differences(composed(base), composed(recipe)) == expected


def test_the_defaults_set_no_time_budget():
    assert composed("train")["train"]["max_minutes"] is None
    assert composed("lm")["train"]["max_minutes"] is None
    assert composed("fit_ctc")["fit"]["max_minutes"] is None


def test_compose_config_errors_are_one_line():
    from asr import compose_config

    with pytest.raises(ValueError, match=r"nothing\.yaml: no such config"):
        compose_config("nothing")
    with pytest.raises(ValueError) as err:
        compose_config("decode", ["search.beam_size=="])
    assert str(err.value).startswith("search.beam_size==: ") and "\n" not in str(err.value)
    assert compose_config("decode", ["search.beam_size=3"]).search.beam_size == 3
