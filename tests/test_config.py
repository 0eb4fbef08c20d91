import copy

import pytest
import yaml
from conftest import MINI_RECIPE, run_cli

from edgekd.errors import RecipeError
from edgekd.recipe import load_recipe, recipe_from_dict


def _with(**changes):
    raw = copy.deepcopy(MINI_RECIPE)
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        raw[section][key] = value
    return raw


def test_shipped_demo_recipe_is_valid():
    recipe = load_recipe("demo")
    assert recipe.teacher.name == "crepe" and recipe.teacher.variant == "full"
    assert recipe.student.sample_rate == 8000 and recipe.reduction.dim == 64


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"student__widthz": [4]}, "unknown key 'student.widthz'; allowed keys: "),
        ({"train__epochs": "many"}, "key 'train.epochs'"),
        ({"teacher__name": "bert"}, "unknown teacher 'bert'; allowed: birdnet, crepe"),
        ({"teacher__variant": "huge"}, "'full' or 'tiny'"),
        ({"reduction__method": "tsne"}, "key 'reduction.method'"),
        ({"data__split_fractions": [0.5, 0.5, 0.5]}, "split_fractions must be three positive numbers summing to 1"),
    ],
)
def test_bad_values_name_file_key_and_allowed(changes, expected):
    with pytest.raises(RecipeError) as err:
        recipe_from_dict(_with(**changes), "recipes/x.yaml")
    message = str(err.value)
    assert message.startswith("recipes/x.yaml: ")
    assert expected in message
    assert "\n" not in message


def test_unknown_top_level_section():
    raw = dict(MINI_RECIPE, optimiser={"name": "sgd"})
    with pytest.raises(RecipeError, match="unknown key 'optimiser'; allowed keys: name, seed, data"):
        recipe_from_dict(raw, "r.yaml")


@pytest.mark.slow
def test_cli_bad_recipe_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_with(student__widthz=[4])))
    for args in (["distill", bad], ["distill", tmp_path / "missing.yaml"]):
        result = run_cli(*args, "--out", tmp_path / "run")
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "Traceback" not in result.stderr + result.stdout
    assert "widthz" in run_cli("distill", bad).stderr
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("data: [unclosed")
    result = run_cli("distill", invalid)
    assert result.returncode == 2 and "not valid YAML" in result.stderr
