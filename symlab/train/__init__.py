"""symlab.train: the training loops every study shares (GD, SGD, Adam, L-BFGS, Levenberg–Marquardt,
damped Newton).

Each loop trains a model in place on data = (x, y) and returns a :class:`Trajectory`.
"""

from symlab.train.loops import (
    Trajectory,
    adam,
    full_loss,
    gradient_descent,
    lbfgs,
    levenberg_marquardt,
    loss_and_grad_norm,
    mse_loss,
    newton,
    sgd,
)

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
