"""The ``symlab`` command line: run studies, list them, show, export and report their results.

    symlab run STUDY [--preset NAME | --config FILE.toml] [--out DIR] [--workers N] [--quiet]
    symlab list
    symlab show DIR [--failures]
    symlab export DIR [--format csv|parquet] [-o FILE]
    symlab report DIR [--out FOLDER]
    symlab fdim WIDTHS [--seeds N]
    symlab boolean leap SUPPORTS [--gaussian]
    symlab boolean walsh MODULE:FUNC --dim D [--top N] [--estimate --supports ...]

Bad input (unknown study, preset or config, missing directory, bad option) prints one red
sentence on stderr and exits with code 2, writing nothing; an exception raised by a study prints
a short message and exits with code 1 (``--debug`` shows the traceback). ``symlab run`` shows its
progress on stderr: a bar on a terminal, plain lines otherwise (see symlab.cli.progress).
Studies of your own: ``SYMLAB_EXPERIMENTS="pkg.mod,other.mod" symlab run my-study ...`` (see
symlab.engine.experiment).

Modules: ``typer_app`` (the typer app, consoles, exit codes, ``main``), ``progress``, and one
per group of commands: ``sweep`` (run), ``results`` (list, show, export, report), ``dimension``
(fdim), ``boolean`` (the ``symlab boolean`` sub-app: leap, walsh).
"""

from symlab.cli.boolean import boolean_app
from symlab.cli.dimension import fdim
from symlab.cli.results import export, list_studies, report, show
from symlab.cli.sweep import run
from symlab.cli.typer_app import EXIT_FAILED, EXIT_USAGE, app, main

# the order here is the order of `symlab --help`
app.command()(run)
app.command("list")(list_studies)
app.command()(show)
app.command()(export)
app.command()(report)
app.command()(fdim)
app.add_typer(boolean_app, name="boolean")

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "app", "main"]
