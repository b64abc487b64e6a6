"""symlab.train: the training loops every study shares (GD, SGD, Adam, L-BFGS, Levenberg–Marquardt,
damped Newton).

Each loop trains a model in place on data = (x, y) and returns a :class:`Trajectory`.

- :mod:`symlab.train.trajectory`: data and loss conventions, :class:`Trajectory`, recording hooks;
- :mod:`symlab.train.first_order`: ``gradient_descent``, ``sgd``, ``adam``;
- :mod:`symlab.train.second_order`: ``lbfgs``, ``levenberg_marquardt``, ``newton`` (float64, to
  reach critical points; Brea et al. 2023, arXiv 2301.10638);
- :mod:`symlab.train.two_layer_derivatives`: closed-form L, ∇L, residual Jacobian and ∇²L of a
  one-hidden-layer net under the MSE, which the second-order loops use when the model has that
  form (``closed_form=True``, the default);
- :mod:`symlab.train.lbfgs_flat`: ``torch.optim.LBFGS``'s algorithm on a flat vector (the
  closed-form route of ``lbfgs``).
"""

from symlab.train.first_order import adam, gradient_descent, sgd
from symlab.train.second_order import lbfgs, levenberg_marquardt, newton
from symlab.train.trajectory import Trajectory, full_loss, loss_and_grad_norm, mse_loss

__all__ = [
    "Trajectory",
    "adam",
    "full_loss",
    "gradient_descent",
    "lbfgs",
    "levenberg_marquardt",
    "loss_and_grad_norm",
    "mse_loss",
    "newton",
    "sgd",
]
