"""The README's library examples must run as written (README examples that rot are a known peer failure)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_library_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README must show a library example"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102
    fd, net = namespace["fd"], namespace["net"]
    # the README's number, re-derived: generic torch.func Jacobian + SVD rank on the same points
    import torch

    from symlab.linalg import parameter_jacobian

    jac = parameter_jacobian(net, fd.points, method="generic")
    assert int(torch.linalg.matrix_rank(jac)) == fd.rank
    assert tuple(namespace["k"].shape) == (64, 64, 1, 1)


def test_readme_shows_the_two_setup_commands_first():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1)
    assert first_block.splitlines()[0].startswith("make run")
    assert first_block.splitlines()[1].startswith("make test")


def test_readme_training_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    namespace: dict = {}
    exec(compile(blocks[1], "README.md", "exec"), namespace)  # noqa: S102
    t, runs = namespace["t"], namespace["runs"]
    assert t.steps[0] == 0 and t.steps[-1] == 2000 and len(t.steps) <= 30
    assert not t.diverged and t.stop_reason == "steps"
    assert len(runs.trajectories) == 100
    assert all(r.final_loss < r.losses[0] for r in runs.trajectories)
