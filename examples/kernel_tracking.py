"""Track the empirical NTK while training your own model (Fort et al. 2020).

Run: python examples/kernel_tracking.py
"""

import torch
from torch import nn

from symlab.ntk import KernelTracker, empirical_ntk, kernel_distance
from symlab.ntk.data import load_digits_split

data = load_digits_split(dtype=torch.float32)
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
probe, labels = data.x_train[:100], data.y_train[:100]
tracker = KernelTracker(model, probe, targets=nn.functional.one_hot(labels, 10).float(), every=20)

optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
for step in range(201):
    tracker.update(step)  # records at steps 0, 20, 40, ...
    batch = torch.randint(0, len(data.x_train), (64,))
    loss = nn.functional.cross_entropy(model(data.x_train[batch]), data.y_train[batch])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

print(tracker.to_frame()[["step", "distance_from_init", "velocity", "alignment"]].to_string())
k = empirical_ntk(model, probe[:8], method="structured")  # (8, 8, 10, 10), no Jacobian built
print(
    "kernel shape",
    tuple(k.shape),
    "distance from init",
    kernel_distance(tracker.kernel_init, tracker.kernel()),
)
