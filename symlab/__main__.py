"""``python -m symlab``: the same as the ``symlab`` command (useful where the script is not on
PATH, e.g. a cluster node with only the interpreter)."""

from symlab.cli.typer_app import main

if __name__ == "__main__":
    main()
