"""Run the ``symlab`` CLI in the test process (shared by the CLI and engine tests)."""

import pytest

from symlab.cli import main


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``symlab argv`` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err
