"""``python -m symlab.cli``: the same as the ``symlab`` command."""

from symlab.cli.typer_app import main

if __name__ == "__main__":
    main()
