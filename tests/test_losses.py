import pytest
import torch
from conftest import MINI_RECIPE

from edgekd.errors import RecipeError
from edgekd.losses import LOSSES, build_loss
from edgekd.recipe import recipe_from_dict


def _loss(section):
    per_row = build_loss(recipe_from_dict(dict(MINI_RECIPE, loss=section), "r.yaml").loss)
    return lambda s, t: per_row(s, t).mean()


# A section for every registered loss; `combined` needs its terms.
SECTIONS = {name: {"name": name} for name in LOSSES} | {
    "combined": {"name": "combined", "terms": [{"name": "mse"}, {"name": "cosine", "weight": 0.5}]}}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_each_loss_is_zero_at_the_target_and_positive_elsewhere(name):
    torch.manual_seed(0)
    target = torch.randn(16, 8)
    per_row = build_loss(recipe_from_dict(dict(MINI_RECIPE, loss=SECTIONS[name]), "r.yaml").loss)
    assert per_row(target, target).shape == (16,)  # one loss per example, for the methods to weight
    fn = _loss(SECTIONS[name])
    assert float(fn(target.clone(), target)) == pytest.approx(0.0, abs=1e-5)
    assert float(fn(torch.randn(16, 8), target)) > 0.01


def test_relational_ignores_scale_but_not_structure():
    torch.manual_seed(1)
    target = torch.randn(16, 8)
    fn = _loss({"name": "relational", "temperature": 0.2})
    assert float(fn(3.0 * target, target)) == pytest.approx(0.0, abs=1e-5)  # same similarities, any scale
    shuffled = target[torch.randperm(16)]
    assert float(fn(shuffled, target)) > 0.05  # same vectors, wrong examples: similarities differ
    student = torch.randn(16, 8, requires_grad=True)
    fn(student, target).backward()
    assert student.grad.abs().sum() > 0


def test_combined_is_the_weighted_sum():
    torch.manual_seed(2)
    s, t = torch.randn(8, 4), torch.randn(8, 4)
    combined = _loss({"name": "combined", "terms": [{"name": "mse", "weight": 1.0},
                                                     {"name": "relational", "weight": 0.5, "temperature": 0.1}]})
    expected = _loss({"name": "mse"})(s, t) + 0.5 * _loss({"name": "relational", "temperature": 0.1})(s, t)
    assert float(combined(s, t)) == pytest.approx(float(expected), rel=1e-6)
    with pytest.raises(RecipeError, match="loss.terms"):
        _loss({"name": "combined", "terms": [{"name": "hinge"}]})
