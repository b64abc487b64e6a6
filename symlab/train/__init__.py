"""symlab.train: the training loops every study shares (GD, SGD, heavy ball, Nesterov, Adam, online
SGD, many small networks at once, L-BFGS, Levenberg–Marquardt, damped Newton).

Each loop trains a model in place on data = (x, y) and returns a :class:`Trajectory`.

- :mod:`symlab.train.trajectory`: data and loss conventions, :class:`Trajectory`, recording hooks;
- :mod:`symlab.train.schedule`: when to record and call back (every n, log-spaced, given steps);
- :mod:`symlab.train.first_order`: :func:`train` and its named settings ``gradient_descent``,
  ``sgd``, ``heavy_ball``, ``nesterov``, ``adam``, ``online_sgd``; ``noise_std`` makes any of
  them noisy (Gaussian noise on each step's gradient: noisy GD);
- :mod:`symlab.train.lr_schedules`: learning-rate schedules (warm-up + cosine, step decay) that
  :func:`train` takes as ``lr_schedule``;
- :mod:`symlab.train.optimizers`: update rules, per-group learning rates, the L2 term λ‖θ‖²;
- :mod:`symlab.train.momentum`: heavy ball (Polyak 1964) and Nesterov (1983) in textbook form;
- :mod:`symlab.train.ensemble`: ``train_ensemble``, independent copies of a small network (a
  batch of seeds) trained at once with ``torch.func.vmap`` over stacked parameters;
- :mod:`symlab.train.two_layer_sgd`: a fused closed-form SGD step for stacks of two-layer nets
  f = c Σ_j a_j σ(⟨w_j, x⟩) (3 passes over the first layer instead of 5), which ``train_ensemble``
  takes on models that declare ``two_layer_form()``;
- :mod:`symlab.train.second_order`: ``lbfgs``, ``levenberg_marquardt``, ``newton`` (float64, to
  reach critical points; Brea et al. 2023, arXiv 2301.10638);
- :mod:`symlab.train.continuation`: ``l2_continuation``, L-BFGS along an increasing ladder of the
  L2 weight λ (a deep net polished from an unregularized fit without falling to f = 0);
- :mod:`symlab.train.two_layer_derivatives`: closed-form L, ∇L, residual Jacobian and ∇²L of a
  one-hidden-layer net under the MSE, which the second-order loops use when the model has that
  form (``closed_form=True``, the default);
- :mod:`symlab.train.lbfgs_flat`: ``torch.optim.LBFGS``'s algorithm on a flat vector (the
  closed-form route of ``lbfgs``).
"""

from symlab.train.continuation import l2_continuation
from symlab.train.ensemble import EnsembleResult, train_ensemble
from symlab.train.first_order import (
    adam,
    gradient_descent,
    heavy_ball,
    nesterov,
    online_sgd,
    sgd,
    train,
)
from symlab.train.lr_schedules import step_decay, warmup_cosine
from symlab.train.momentum import Nesterov
from symlab.train.schedule import Schedule, at_steps, every, log_spaced, log_spaced_steps
from symlab.train.second_order import lbfgs, levenberg_marquardt, newton
from symlab.train.trajectory import (
    Trajectory,
    full_loss,
    logistic_loss,
    loss_and_grad_norm,
    mse_loss,
    sample_mse_loss,
)
from symlab.train.two_layer_sgd import TwoLayerForm, TwoLayerPass, two_layer_pass

__all__ = [
    "EnsembleResult",
    "Nesterov",
    "Schedule",
    "Trajectory",
    "TwoLayerForm",
    "TwoLayerPass",
    "adam",
    "at_steps",
    "every",
    "full_loss",
    "gradient_descent",
    "heavy_ball",
    "l2_continuation",
    "lbfgs",
    "levenberg_marquardt",
    "log_spaced",
    "log_spaced_steps",
    "logistic_loss",
    "loss_and_grad_norm",
    "mse_loss",
    "nesterov",
    "newton",
    "online_sgd",
    "sample_mse_loss",
    "sgd",
    "step_decay",
    "train",
    "train_ensemble",
    "two_layer_pass",
    "warmup_cosine",
]
