"""The HTML report in a real browser: headless Chromium loads every figure and shows the claims.

Chromium comes from the system's packages: when no binary is found and the tests run as root
with apt-get, the set-up installs the ``chromium`` package; otherwise the test is skipped with
the reason."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")

PROBE = """<script>
window.addEventListener("load", () => {
  const table = document.getElementById("claims");
  const box = table ? table.getBoundingClientRect() : null;
  const style = table ? getComputedStyle(table) : null;
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({
    images: [...document.images].map(i => [i.getAttribute("src"), i.complete && i.naturalWidth > 0]),
    claims: table ? {width: box.width, height: box.height, rows: table.rows.length,
                     visibility: style.visibility, display: style.display,
                     outcomes: [...table.rows].slice(1).map(r => r.cells[1].textContent)} : null,
  });
  document.body.appendChild(probe);
});
</script>"""


def _browser() -> str:
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if found:
        return found
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        pytest.skip("no Chromium binary, and no root apt-get to install the chromium package")
    install = subprocess.run(
        ["apt-get", "install", "-y", "chromium"], capture_output=True, text=True, timeout=900,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )  # fmt: skip
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if not found:
        tail = (install.stderr or install.stdout).strip().splitlines()[-1:] or ["no output"]
        pytest.skip(f"apt-get install chromium failed (exit {install.returncode}): {tail[0]}")
    return found


def _chromium(browser: str, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"]
    return subprocess.run(
        [browser, *flags, *args], capture_output=True, text=True, timeout=180, check=True
    )


def test_report_loads_every_figure_and_shows_the_claims_table(tmp_path):
    from symlab.engine import run_study

    spec = {"width": 1024, "dim": 4, "n_train": 8, "iterations": 60, "seeds": 2}
    run = run_study("ntk-optimizers", spec, tmp_path / "run")
    outcomes = [c["outcome"] for c in run.summary.extras["claims"]]
    # verdict.md (what `symlab show` prints) and claims.json carry the same claims
    assert (
        json.loads((tmp_path / "run" / "claims.json").read_text()) == run.summary.extras["claims"]
    )
    verdict = (tmp_path / "run" / "verdict.md").read_text()
    assert "## Claims" in verdict and all(f"| {o} |" in verdict for o in outcomes)
    browser = _browser()
    report = tmp_path / "run" / "report.html"
    probe_page = report.with_name("report_probe.html")
    probe_page.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"))
    dom = _chromium(browser, "--virtual-time-budget=10000", "--dump-dom", probe_page.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert found, "the probe script did not run"
    probe = json.loads(html.unescape(found.group(1)))
    assert len(probe["images"]) >= 1
    assert all(loaded for _, loaded in probe["images"]), probe["images"]
    claims = probe["claims"]
    assert claims and claims["rows"] == 1 + len(outcomes) and claims["outcomes"] == outcomes
    assert claims["height"] > 20 and claims["width"] > 200
    assert claims["visibility"] == "visible" and claims["display"] != "none"

    shot = tmp_path / "report.png"
    _chromium(browser, f"--screenshot={shot}", "--window-size=1000,900", report.as_uri())
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (900, 1000)
    assert (pixels.std(axis=2) > 0.05).mean() > 0.001  # coloured outcome cells, not a blank page
    assert np.mean(pixels < 0.5) > 0.005  # text drawn
