"""The report files of a run directory, written after every run (and by ``symlab report DIR``).

``summary.csv``  the study's Summary table;
``verdict.md``   a short header (study, spec, jobs, time, provenance), the claims table (one row
                 per claim of the paper: outcome, measurement, statistic; from
                 ``Summary.extras["claims"]``) and the verdict paragraph;
``claims.json``  the same claims as records (name, claim, measured, statistic, outcome), written
                 when the study states any, so scripts read outcomes, not prose;
``figures/``     the study's figures (its ``plot`` writes them there);
``report.html``  one self-contained page: claims table, verdict, summary table, figures (``<img>`` of the PNGs
                 by relative path, so keep the folder together), the spec and the provenance
                 (the sessions that computed the rows: software, BLAS, threads, machine).
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from symlab.engine.cells import flatten_cells
from symlab.engine.experiment import Experiment, Summary
from symlab.engine.provenance import Provenance
from symlab.engine.spec import spec_to_toml
from symlab.engine.store import now
from symlab.engine.verdict import claims_html, claims_markdown

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; font-size: 0.9rem; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th { background: #f3f3f3; }
pre { background: #f6f6f6; padding: 0.75rem; overflow-x: auto; }
figure { margin: 1.5rem 0; } img { max-width: 100%; }
.meta { color: #555; }
#claims td, #claims th { text-align: left; vertical-align: top; }
tr.outcome-reproduced td:nth-child(2) { background: #e3f4e3; }
tr.outcome-not-reproduced td:nth-child(2), tr.outcome-opposite td:nth-child(2) { background: #f8e0e0; }
tr.outcome-partly-reproduced td:nth-child(2), tr.outcome-inconclusive td:nth-child(2) { background: #fbf3d9; }
"""


def format_seconds(seconds: float | None) -> str:
    """'4.2 s', '3 min 5 s' or '1 h 2 min'; '?' for None or a non-finite value."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def spec_line(spec: BaseModel) -> str:
    """The spec on one line: ``field=value, ...``."""
    return ", ".join(f"{k}={v!r}" for k, v in spec.model_dump(mode="json").items())


def write_report(
    out_dir: Path,
    *,
    experiment: Experiment,
    spec: BaseModel,
    summary: Summary | None,
    figures: list[Path],
    n_total: int,
    n_stored: int,
    n_failed: int,
    job_seconds: float,
    wall_seconds: float | None,
    provenance: Provenance | None = None,
) -> dict[str, Path]:
    """Write summary.csv, verdict.md and report.html into ``out_dir``; return their paths.

    With ``provenance``, verdict.md gets a provenance line (and a warning line when the rows
    come from mixed environments) and report.html a table of the sessions.
    """
    out_dir = Path(out_dir)
    paths = {
        "summary": out_dir / "summary.csv",
        "verdict": out_dir / "verdict.md",
        "report": out_dir / "report.html",
        "spec": out_dir / "spec.toml",
        "figures": out_dir / "figures",
    }
    spec_text = spec_to_toml(spec, study=experiment.name)
    paths["spec"].write_text(spec_text, encoding="utf-8")
    table = summary.table if summary is not None else pd.DataFrame()
    flatten_cells(table).to_csv(paths["summary"], index=False)

    verdict = summary.verdict if summary is not None else "No job of this spec has a result yet."
    jobs = f"{n_stored} of {n_total} stored" + (f", {n_failed} failed" if n_failed else "")
    timing = f"{format_seconds(job_seconds)} of compute (sum over stored jobs)"
    if wall_seconds is not None:
        timing += f", this run {format_seconds(wall_seconds)} wall"
    header = [
        f"# {experiment.name}: verdict",
        "",
        f"- study: {experiment.name} (version {experiment.version}): {experiment.description}",
        f"- spec: {spec_line(spec)}",
        f"- jobs: {jobs}",
        f"- time: {timing}",
        f"- written: {now()}",
    ]
    if provenance is not None:
        header.append(f"- provenance: {provenance.line()}")
        warning = provenance.warning()
        if warning:
            header.append(f"- warning: {warning}")
    extras = summary.extras if summary is not None else {}
    checks = list(extras.get("claims") or [])
    if checks:
        paths["claims"] = out_dir / "claims.json"
        paths["claims"].write_text(json.dumps(checks, indent=1, ensure_ascii=False), "utf-8")
        header += ["", "## Claims", "", claims_markdown(checks), "", "## Verdict"]
    header += [
        "",
        verdict.strip(),
        "",
    ]
    paths["verdict"].write_text("\n".join(header), encoding="utf-8")

    paths["report"].write_text(
        _html(
            experiment,
            spec_text,
            table,
            verdict,
            figures,
            out_dir,
            jobs,
            timing,
            provenance,
            checks,
        ),
        encoding="utf-8",
    )
    return paths


def _html(
    experiment: Experiment,
    spec_text: str,
    table: pd.DataFrame,
    verdict: str,
    figures: list[Path],
    out_dir: Path,
    jobs: str,
    timing: str,
    provenance: Provenance | None = None,
    checks: list[dict[str, str]] | None = None,
) -> str:
    esc = html.escape
    pngs = [Path(f) for f in figures if Path(f).suffix.lower() == ".png"]
    figure_html = "\n".join(
        f'<figure><img src="{esc(_relative(p, out_dir))}" alt="{esc(p.stem)}">'
        f"<figcaption>{esc(p.stem)}</figcaption></figure>"
        for p in pngs
    )
    table_html = (
        flatten_cells(table).to_html(index=False, border=0, float_format=_float, na_rep="")
        if len(table.columns)
        else "<p>(no summary table)</p>"
    )
    parts: list[Any] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>symlab: {esc(experiment.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{esc(experiment.name)}</h1>",
        f'<p class="meta">{esc(experiment.description)}<br>jobs: {esc(jobs)}; '
        f"time: {esc(timing)}; written {esc(now())}</p>",
        *(["<h2>Claims</h2>", claims_html(checks)] if checks else []),
        "<h2>Verdict</h2>",
        f"<p>{esc(verdict.strip())}</p>",
        "<h2>Summary</h2>",
        table_html,
        "<h2>Figures</h2>",
        figure_html or "<p>(no figures)</p>",
        "<h2>Spec</h2>",
        f"<pre>{esc(spec_text)}</pre>",
    ]
    if provenance is not None:
        parts += ["<h2>Provenance</h2>", f"<p>{esc(provenance.line())}</p>"]
        warning = provenance.warning()
        if warning:
            parts.append(f"<p><strong>Warning:</strong> {esc(warning)}</p>")
        if len(provenance.sessions):
            sessions = provenance.sessions.drop(columns="finished_at")
            parts.append(sessions.to_html(index=False, border=0, na_rep=""))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _float(value: float) -> str:
    return f"{value:.4g}"


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:  # a figure outside the run directory: link it absolutely
        return path.resolve().as_uri()
