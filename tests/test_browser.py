"""Notebook 01 in JupyterLab in a real browser: its plotly figures and its ipywidgets explorer render.

JupyterLab serves a parameterised copy of ``notebooks/01_ecg_preprocessing.ipynb`` (papermill
injects ``SMOKE = True`` after the ``parameters`` cell without executing it; the committed
notebook is untouched) from a temporary root, on 127.0.0.1 with a token, with its config, data
and runtime directories (and the kernel's IPython directory and generated data) in temporary
folders. Selenium drives Debian's headless ``chromium`` through its ``chromedriver``, both named
explicitly so Selenium Manager never runs (there is no internet to download a driver from).
The test clicks Run > Run All Cells, waits for every cell, then checks what a reader would see:
plotly figures drawn as SVG with traces, the explorer's dropdowns and sliders, and that the
explorer redraws its figure when a dropdown changes (a round trip through the kernel).
Screenshots land in ``test-artifacts/browser/`` at the repository root (git-ignored).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_ecg_preprocessing.ipynb"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
RUN_TIMEOUT_S = 300.0  # Run All Cells on 2 busy cores: generous; smoke mode takes well under a minute
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

# JupyterLab user settings for the test's own config dir: no news or update checks (no internet, and
# their notification toasts would cover the screenshots).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}

# The notebook panel JupyterLab shows (``window.jupyterapp`` needs LabApp.expose_app_in_browser).
JS_PANEL = """
const app = window.jupyterapp;
const panel = app && app.shell.currentWidget;
if (!panel || !panel.content || !panel.sessionContext) { return null; }
"""

# Kernel status and, per code cell, its execution count, whether it is queued/running, and its errors.
JS_PROGRESS = (
    JS_PANEL
    + """
const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
const cells = panel.content.widgets.filter(c => c.model.type === 'code').map(c => {
  const outputs = c.model.outputs.toJSON();
  return {
    count: c.model.executionCount,
    busy: (c.promptNode && c.promptNode.textContent.includes('*')) || false,
    errors: outputs.filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue),
    mimetypes: outputs.flatMap(o => Object.keys(o.data || {})),
  };
});
return {kernel: kernel ? kernel.status : null, cells: cells};
"""
)

# What plotly drew: every figure's size, SVG layers, traces with a real path, and title.
JS_PLOTS = """
return [...document.querySelectorAll('.jp-Notebook .js-plotly-plot')].map(p => {
  const r = p.getBoundingClientRect();
  const paths = [...p.querySelectorAll('.scatterlayer .trace path, .barlayer .trace path')]
    .filter(e => (e.getAttribute('d') || '').length > 20);
  const title = p.querySelector('.gtitle');
  return {by_extension: !!p.closest('.jp-RenderedPlotly'), width: r.width, height: r.height,
          svgs: p.querySelectorAll('svg.main-svg').length,
          traces: p.querySelectorAll('.trace').length, drawn_paths: paths.length,
          title: title ? title.textContent : '', in_widget: !!p.closest('.jupyter-widgets')};
});
"""


@dataclass
class Lab:
    """A running JupyterLab and the browser looking at the notebook."""

    driver: Any  # selenium.webdriver.Chrome
    root: Path  # the server's root: the parameterised notebook and its OUTPUT_DIR
    output_dir: Path
    progress: dict[str, Any]  # JS_PROGRESS after Run All Cells finished
    run_seconds: float


def browser_binaries() -> tuple[str, str]:
    """Paths of Debian's ``chromium`` and ``chromedriver``; skip when absent, except in CI (CI=true)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    missing = " and ".join(n for n, p in (("chromium", chromium), ("chromedriver", driver)) if not p)
    if os.environ.get("CI") == "true":
        pytest.fail(f"{missing} missing: CI must install Debian's chromium and chromium-driver (.ci/run)")
    pytest.skip(f"{missing} not installed (apt-get install chromium chromium-driver to run the browser test)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def parameterised_copy(root: Path, output_dir: Path) -> Path:
    """Notebook 01 with the smoke parameters injected (papermill, not executed) in ``root``."""
    import papermill as pm

    target = root / NOTEBOOK.name
    pm.execute_notebook(
        str(NOTEBOOK),
        str(target),
        parameters={"SMOKE": True, "DATA_SOURCE": "synthetic", "DATA_DIR": "", "SEED": 0,
                    "OUTPUT_DIR": str(output_dir)},
        prepare_only=True,
        kernel_name="python3",
        progress_bar=False,
    )
    return target


def start_lab(tmp: Path, root: Path) -> tuple[subprocess.Popen, str, Path]:
    """Start JupyterLab on 127.0.0.1 with a fresh token and temporary Jupyter directories."""
    dirs = {name: tmp / name for name in ("config", "data", "runtime", "ipython", "evl_data")}
    for d in dirs.values():
        d.mkdir()
    for name, settings in LAB_SETTINGS.items():
        path = dirs["config"] / "lab" / "user-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    env = {k: v for k, v in os.environ.items() if k not in ("PLOTLY_RENDERER", "JUPYTER_PATH")}
    env.update(JUPYTER_CONFIG_DIR=str(dirs["config"]), JUPYTER_DATA_DIR=str(dirs["data"]),
               JUPYTER_RUNTIME_DIR=str(dirs["runtime"]), IPYTHONDIR=str(dirs["ipython"]),
               EVL_LITE_DATA=str(dirs["evl_data"]))
    token = secrets.token_hex(16)
    log_file = tmp / "jupyterlab.log"
    log = log_file.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={free_port()}", "--ServerApp.port_retries=5", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly", "--ServerApp.allow_root=True"],
        env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )

    def url() -> str | None:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{log_file.read_text()[-3000:]}")
        for info in dirs["runtime"].glob("jpserver-*.json"):  # the port it really bound
            try:
                base = json.loads(info.read_text())["url"].rstrip("/")
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as r:
                    return base if r.status == 200 else None
            except (OSError, ValueError, KeyError):  # not listening yet, or the file half written
                return None
        return None

    base = wait_for(url, 90, "JupyterLab to answer /api/status")
    return proc, f"{base}/lab/tree/{NOTEBOOK.name}?token={token}&reset", log_file


def stop_lab(proc: subprocess.Popen) -> None:
    """SIGTERM (the server shuts its kernels down), then kill its process group if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def start_browser(chromium: str, chromedriver: str, profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--no-first-run", "--disable-extensions",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    # an explicit driver path: Selenium Manager (which would try to download one) is skipped
    return webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)


def click_run_all(driver) -> None:
    """Run > Run All Cells, through the menu bar as a reader would."""
    from selenium.webdriver.common.by import By

    run_menu = driver.find_element(
        By.XPATH, "//li[contains(@class,'lm-MenuBar-item')][.//div[contains(@class,'lm-MenuBar-itemLabel')"
                  " and normalize-space()='Run']]")
    run_menu.click()
    item = wait_for(lambda: driver.find_elements(
        By.XPATH, "//li[contains(@class,'lm-Menu-item')][.//div[contains(@class,'lm-Menu-itemLabel')"
                  " and normalize-space()='Run All Cells']]"), 10, "Run All Cells in the Run menu")
    item[0].click()


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    chromium, chromedriver = browser_binaries()
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # this run's screenshots only
    tmp = tmp_path_factory.mktemp("browser")
    root, output_dir = tmp / "lab", tmp / "lab" / "outputs"
    root.mkdir()
    parameterised_copy(root, output_dir)
    proc, url, log = start_lab(tmp, root)
    driver = None
    try:
        driver = start_browser(chromium, chromedriver, tmp / "chromium-profile")
        driver.get(url)

        def kernel_idle() -> bool:
            state = driver.execute_script(JS_PROGRESS)
            return bool(state and state["kernel"] == "idle" and state["cells"])

        wait_for(kernel_idle, 120, "the notebook to open with an idle python3 kernel")
        start = time.monotonic()
        click_run_all(driver)

        def finished() -> dict[str, Any] | None:
            state = driver.execute_script(JS_PROGRESS)
            errors = [e for c in state["cells"] for e in c["errors"]]
            if errors:
                screenshot(driver, "01_ecg_preprocessing_error.png")
                pytest.fail(f"a cell failed in the browser: {errors}")
            done = state["kernel"] == "idle" and all(c["count"] and not c["busy"] for c in state["cells"])
            return state if done else None

        progress = wait_for(finished, RUN_TIMEOUT_S, "Run All Cells to finish", interval=1.0)
        run_seconds = time.monotonic() - start
        print(f"\nnotebook 01 ran in the browser in {run_seconds:.1f} s")
        yield Lab(driver, root, output_dir, progress, run_seconds)
    except BaseException:
        if driver is not None:
            screenshot(driver, "01_ecg_preprocessing_failure.png")
        print(log.read_text()[-3000:])
        raise
    finally:
        if driver is not None:
            driver.quit()
        stop_lab(proc)


def test_notebook_ran_in_smoke_mode_without_errors(lab: Lab):
    cells = lab.progress["cells"]
    assert [c["count"] for c in cells] == list(range(1, len(cells) + 1)), "cells ran out of order or not all"
    assert not [e for c in cells for e in c["errors"]]
    metrics = json.loads((lab.output_dir / "metrics.json").read_text())
    assert metrics["smoke"] is True and metrics["n_records"] == 80  # the injected SMOKE = True took effect
    assert metrics["explorer"]["default_ok"] is True
    committed = json.loads(NOTEBOOK.read_text())
    assert not any(c.get("outputs") for c in committed["cells"]), "the committed notebook was modified"


def test_plotly_figures_render_as_svg(lab: Lab):
    from selenium.webdriver.common.by import By

    expected = sum(c["mimetypes"].count(PLOTLY_MIME) for c in lab.progress["cells"])  # figures, not cells
    assert expected >= 10, f"notebook 01 should show a dozen plotly figures, its outputs carry {expected}"
    first = lab.driver.find_element(By.CSS_SELECTOR, ".jp-Notebook .js-plotly-plot")
    lab.driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", first)
    time.sleep(1.0)
    plots = [p for p in lab.driver.execute_script(JS_PLOTS) if not p["in_widget"]]
    drawn = [p for p in plots if p["svgs"] >= 1 and p["drawn_paths"] >= 1 and p["width"] > 300
             and p["height"] > 200]
    print(f"plotly: {len(drawn)} of {expected} figures drawn; titles {[p['title'][:40] for p in drawn][:4]}")
    path = screenshot(lab.driver, "01_ecg_preprocessing_plotly.png")
    assert len(drawn) == expected, f"only {len(drawn)} of {expected} plotly outputs were drawn: {plots}"
    assert any(p["title"].startswith("ecg_id") for p in drawn)  # the ECG paper figure, with its title
    # drawn by plotly's JupyterLab extension from the mimetype bundle (the renderer setup_plotly chooses),
    # not by the text/html fallback that the "notebook" renderer also puts in each output
    assert all(p["by_extension"] for p in drawn), "plotly's JupyterLab extension (jupyterlab-plotly) missing"
    assert path.stat().st_size > 10_000


def test_explorer_widgets_render_and_respond(lab: Lab):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    # widget views: the explorer, and tqdm.auto's progress bars
    assert WIDGET_MIME in lab.progress["cells"][-2]["mimetypes"]  # the explorer's cell
    driver = lab.driver

    def explorer_view() -> list:
        boxes = driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jupyter-widgets.widget-vbox")
        return [b for b in boxes if b.find_elements(By.CSS_SELECTOR, ".widget-dropdown")]

    view = wait_for(explorer_view, 30, "the explorer's view")[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", view)
    dropdowns = view.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")
    sliders = view.find_elements(By.CSS_SELECTOR, ".widget-slider")
    toggles = view.find_elements(By.CSS_SELECTOR, ".widget-toggle-buttons button")
    assert len(dropdowns) == 2 and len(sliders) == 2 and len(toggles) == 3
    assert all(e.is_displayed() for e in dropdowns + sliders)
    assert [o.text for o in Select(dropdowns[1]).options][:4] == ["I", "II", "III", "aVR"]
    assert "heart rate" in view.find_element(By.CSS_SELECTOR, ".widget-html").text

    def explorer_title() -> str:
        plots = [p for p in driver.execute_script(JS_PLOTS) if p["in_widget"]]
        return plots[0]["title"] if plots and plots[0]["drawn_paths"] >= 2 else ""

    assert wait_for(explorer_title, 30, "the explorer's figure").startswith("lead II at 500 Hz")
    Select(dropdowns[1]).select_by_visible_text("V5")  # the kernel recomputes and redraws the figure
    title = wait_for(lambda: explorer_title().startswith("lead V5") and explorer_title(), 60,
                     "the explorer to redraw for lead V5")
    assert title.startswith("lead V5 at 500 Hz")
    assert "lead V5" in view.find_element(By.CSS_SELECTOR, ".widget-html").text
    path = screenshot(driver, "01_ecg_preprocessing_explorer.png")
    assert path.stat().st_size > 10_000


# ----------------------------------------------------------------------------- offline export

JS_EXPORT = """
const plots = [...document.querySelectorAll('.js-plotly-plot')];
return {
  text: document.body.innerText,
  math: document.querySelectorAll('math').length,
  svgPlots: plots.filter(p => p.querySelector('svg.main-svg')).length,
  plots: plots.length,
};
"""


def test_an_exported_notebook_renders_equations_figures_and_explorer_offline(tmp_path, monkeypatch):
    """Notebook 05 (equations, figures, an explorer) run in smoke mode, its export opened with no network."""
    from evl_lite.course.runner import run_collection

    chromium, chromedriver = browser_binaries()
    monkeypatch.setenv("EVL_LITE_DATA", str(tmp_path / "data"))
    summary = run_collection(mode="smoke", out_dir=tmp_path / "run", only=["05_"])
    export = Path(summary["notebooks"]["05_optimal_transport.ipynb"]["html"])
    driver = start_browser(chromium, chromedriver, tmp_path / "chromium-profile")
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0})
        driver.get(export.as_uri())

        def drawn():
            r = driver.execute_script(JS_EXPORT)
            return r if 0 < r["svgPlots"] == r["plots"] else None

        page = wait_for(drawn, 60, "plotly figures drawn in the offline export")
        screenshot(driver, "offline_export_05.png")
    finally:
        driver.quit()
    assert "$$" not in page["text"] and "\\frac" not in page["text"], "an equation was left as LaTeX"
    assert page["math"] >= 20, f"only {page['math']} equations rendered as MathML"
    assert page["svgPlots"] == page["plots"] >= 5, page
    assert "Interactive explorer, shown as it was saved" in page["text"]
