import math

import pytest
import torch

from npgbook.experiments.ascent import natural_ascent, vanilla_ascent

CENTRE = torch.tensor([1.0, -2.0, 0.5])
CURVATURE = torch.diag(torch.tensor([1.0, 4.0, 0.25]))


def objective(theta):
    d = theta - CENTRE
    return -0.5 * d @ CURVATURE @ d


def gradient(theta):
    return -CURVATURE @ (theta - CENTRE)


@pytest.mark.parametrize("alpha", [0.01, 0.1, 0.4])
def test_vanilla_matches_the_closed_form_of_gradient_ascent_on_a_quadratic(alpha):
    theta0 = torch.zeros(3)
    path = vanilla_ascent(objective, gradient, theta0, alpha, 25)
    k = torch.arange(26, dtype=torch.float64).unsqueeze(1)
    shrink = (1 - alpha * torch.diagonal(CURVATURE)) ** k  # each coordinate contracts geometrically
    assert torch.allclose(path.thetas, CENTRE + shrink * (theta0 - CENTRE), atol=1e-12)
    assert torch.allclose(path.values, torch.stack([objective(t) for t in path.thetas]))
    assert path.iterations == 25 and path.reached is None


def test_vanilla_stops_at_the_target_and_reports_the_iteration():
    full = vanilla_ascent(objective, gradient, torch.zeros(3), 0.1, 200)
    first = int(torch.nonzero(full.values >= -0.1)[0])
    stopped = vanilla_ascent(objective, gradient, torch.zeros(3), 0.1, 200, target=-0.1)
    assert stopped.reached == first == stopped.iterations
    assert torch.equal(stopped.thetas, full.thetas[: first + 1])
    assert vanilla_ascent(objective, gradient, CENTRE, 0.1, 5, target=-1.0).reached == 0


@pytest.mark.parametrize("eps", [1e-3, 0.05])
def test_natural_steps_have_kl_model_epsilon_and_point_along_f_inverse_g(eps):
    fisher = torch.diag(torch.tensor([2.0, 0.5, 3.0]))
    path = natural_ascent(objective, gradient, lambda th: fisher, torch.zeros(3), eps, 10)
    for before, after in zip(path.thetas[:-1], path.thetas[1:]):
        step = after - before
        assert math.isclose(0.5 * float(step @ fisher @ step), eps, rel_tol=1e-10)
        direction = torch.linalg.solve(fisher, gradient(before))
        assert torch.allclose(step / step.norm(), direction / direction.norm(), atol=1e-12)


def test_natural_accepts_an_operator():
    fisher = torch.diag(torch.tensor([2.0, 0.5, 3.0]))
    dense = natural_ascent(objective, gradient, lambda th: fisher, torch.zeros(3), 0.01, 5)
    op = natural_ascent(objective, gradient, lambda th: (lambda v: fisher @ v), torch.zeros(3), 0.01, 5)
    assert torch.allclose(dense.thetas, op.thetas, atol=1e-10)


def test_bad_inputs():
    with pytest.raises(ValueError, match="alpha"):
        vanilla_ascent(objective, gradient, torch.zeros(3), 0.0, 5)
    with pytest.raises(ValueError, match="epsilon"):
        natural_ascent(objective, gradient, lambda th: torch.eye(3), torch.zeros(3), -1.0, 5)
    with pytest.raises(ValueError, match="n_iter"):
        vanilla_ascent(objective, gradient, torch.zeros(3), 0.1, -1)
    with pytest.raises(ValueError, match="theta0"):
        vanilla_ascent(objective, gradient, torch.tensor([0.0, float("nan"), 0.0]), 0.1, 5)
    with pytest.raises(ValueError, match="target"):
        vanilla_ascent(objective, gradient, torch.zeros(3), 0.1, 5, target=float("nan"))
    with pytest.raises(ValueError, match="update step"):
        vanilla_ascent(objective, lambda th: torch.full((3,), float("inf")), torch.zeros(3), 0.1, 5)
