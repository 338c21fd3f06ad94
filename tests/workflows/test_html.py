"""report.html: a static, offline page — checked as parsed HTML and as a person sees it."""

import datetime
import html.parser
import re
import shutil
import subprocess

import numpy as np
import pytest

from bayestumor.imaging import Observations, Patient, make_phantom
from bayestumor.posterior import posterior_maps
from bayestumor.workflows import report_volumes, write_report_html

FLAIR_OUTSIDE_MESSAGE = "the target volume leaves visible abnormality outside"  # the spec's words

SHAPE = (20, 20, 20)
SPACING_MM = 4.0


class _Page(html.parser.HTMLParser):
    """Collects table rows (cell texts), image sources, every attribute value and all text."""

    def __init__(self):
        super().__init__()
        self.rows, self.images, self.attributes, self.text = [], [], [], []
        self._row = None
        self._cell = None
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [value or "" for _, value in attrs]
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr":
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _sphere(grid, radius_mm, center_mm=(0.0, 0.0, 0.0)):
    ijk = np.indices(grid.shape).reshape(3, -1).T
    xyz = grid.voxel_to_world(ijk).reshape(*grid.shape, 3)
    return np.linalg.norm(xyz - np.asarray(center_mm), axis=-1) <= radius_mm


def _case(ctv_radius_mm):
    """A phantom patient (T1c sphere r 6 mm, FLAIR sphere r 12 mm) and maps whose CTV is a
    sphere of `ctv_radius_mm`: the fraction of FLAIR inside is known by construction."""
    anatomy = make_phantom(SHAPE, SPACING_MM)
    grid = anatomy.grid
    t1c = _sphere(grid, 6.0)
    flair = _sphere(grid, 12.0)
    roi = Patient(anatomy, Observations(grid, t1c=t1c, flair=flair), name="Pat <&> 01")
    ctv = _sphere(grid, ctv_radius_mm)
    rng = np.random.default_rng(0)
    # Four draws, all above u* = 0.25 exactly inside the CTV sphere: P(u > u*) = 1 there, 0 out.
    densities = np.where(ctv, 0.6, 0.05)[None] + 0.01 * rng.random((4, *SHAPE))
    maps = posterior_maps(densities.astype(np.float32), grid, threshold_u=0.25)
    summary = {
        "patient": roi.name,
        "sampler": "smc",
        "forward": "pde",
        "roi_spacing_mm": SPACING_MM,
        "parameters": {
            "D_w": {"mean": 0.0123, "sd": 0.0045, "q05": 0.0061, "q95": 0.0201, "units": "mm²/day"},
            "rho": {"mean": 0.0211, "sd": 0.003, "q05": 0.0159, "q95": 0.0259, "units": "1/day"},
        },
        "diagnostics": {
            "passed": False,
            "failures": ["R-hat 1.2 > 1.01 for <rho>"],
            "divergences": 3,
            "min_ess_bulk": 57.4,
        },
        "threshold_u": 0.25,
        "ctv_probability": 0.5,
        "ctv_ml": 1.5,
        "ctv_at_roi_edge": False,
        "input_notes": [],
    }
    return maps, roi, summary, flair, ctv


@pytest.mark.parametrize("ctv_radius_mm, warned", [(14.0, False), (8.0, True)])
def test_report_html_content(tmp_path, ctv_radius_mm, warned):
    # Truth: the table rows repeat summary["parameters"]; the FLAIR fraction inside the CTV is
    # |FLAIR ∩ CTV| / |FLAIR| of the two spheres (all of it for r 14 ≥ 12, a part for r 8).
    maps, roi, summary, flair, ctv = _case(ctv_radius_mm)
    fraction = np.count_nonzero(flair & ctv) / np.count_nonzero(flair)
    assert (fraction < 0.95) == warned
    volumes = report_volumes(maps, roi)
    assert volumes["flair_inside_ctv"] == pytest.approx(fraction)
    voxel_ml = SPACING_MM**3 / 1000
    assert volumes["ctv_ml"] == pytest.approx(np.count_nonzero(ctv) * voxel_ml)
    assert volumes["flair_ml"] == pytest.approx(np.count_nonzero(flair) * voxel_ml)
    # The 15 mm plan around a 6 mm core holds every voxel within 21 mm of the centre (in brain).
    assert volumes["standard_plan_ml"] > volumes["flair_ml"]

    path = write_report_html(
        maps, roi, summary, tmp_path / "report.html", date=datetime.datetime(2026, 12, 1)
    )
    page_text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(page_text)
    page.close()

    rows = {row[0]: row[1:] for row in page.rows if row}
    assert rows["D_w"] == ["0.0123", "0.0045", "0.0061", "0.0201", "mm²/day"]
    assert rows["rho"] == ["0.0211", "0.003", "0.0159", "0.0259", "1/day"]
    assert rows["divergences"] == ["3"]
    assert rows["min bulk ESS"] == ["57"]
    assert rows["checks"] == ["failed"]
    assert rows["visible FLAIR"] == [f"{volumes['flair_ml']:.1f}"]

    text = "".join(page.text)
    assert "Pat <&> 01" in text and "Pat <&> 01" not in page_text  # escaped, read back
    assert "R-hat 1.2 > 1.01 for <rho>" in text
    assert "2026-12-01" in text
    assert f"{100 * fraction:.1f} %" in text
    assert (FLAIR_OUTSIDE_MESSAGE in text) == warned

    assert len(page.images) == 4
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    # Offline: no JavaScript, no linked resources.
    assert "script" not in page.tags and "link" not in page.tags
    # (base64 image data may spell anything, so it is left out of the search)
    outside_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page_text)
    assert "http" not in outside_images.lower()
    assert not any(value.startswith(("//", "http")) for value in page.attributes)


def test_report_html_without_images(tmp_path):
    maps, roi, summary, _, _ = _case(14.0)
    page_text = write_report_html(maps, roi, summary, tmp_path / "r.html", images=False).read_text()
    assert "<img" not in page_text and "D_w" in page_text


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "headless Chromium is needed to check report.html as a person sees it: run "
        "'bash scripts/install-chromium' (Debian's package; make test runs it)"
    )


@pytest.mark.slow
def test_report_html_screenshot(tmp_path):
    # Truth: a browser renders the page to a non-blank image of the requested size — the
    # images decode and the page is not empty.
    from PIL import Image

    maps, roi, summary, _, _ = _case(8.0)
    path = write_report_html(maps, roi, summary, tmp_path / "report.html")
    screenshot = tmp_path / "report.png"
    width, height = 1200, 1800
    subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={width},{height}",
            f"--screenshot={screenshot}",
            path.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pixels = np.asarray(Image.open(screenshot).convert("RGB"), dtype=np.float64)
    assert pixels.shape == (height, width, 3)
    assert pixels.std() > 10.0
    white = np.all(pixels > 250, axis=-1).mean()
    assert white < 0.97
    # The warning box is drawn in its red tint (#fde0dc) somewhere on the page.
    tint = np.all(np.abs(pixels - np.array([253, 224, 220])) < 6, axis=-1)
    assert tint.sum() > 1000


@pytest.mark.slow
def test_calibrate_and_report_write_report_html(tmp_path):
    # Truth: report.html belongs to the rendered report — written by a calibration and written
    # again (text-only with --no-plots) when `bayestumor report` re-renders the stored run.
    import warnings

    from bayestumor.cli import main
    from bayestumor.errors import DiagnosticsWarning
    from bayestumor.workflows import CalibrationConfig, calibrate_patient
    from tests._calibration_problems import FAST_PRIORS, REACTION_STEP, synthetic_patient

    config = CalibrationConfig(
        spacing_mm=10.0,
        margin_mm=20.0,
        chains=1,
        warmup=10,
        draws=10,
        priors=FAST_PRIORS,
        stepping="heun",
        reaction_step=REACTION_STEP,
        sampler="smc",
        smc_particles=16,
        smc_mcmc_steps=2,
        progress=False,
        plots=True,
        likelihood="exact",  # the page is under test, not η (its MAP and sandwich)
    )
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        calibrate_patient(synthetic_patient(), out, config)
        page = (out / "report.html").read_text()
        assert page.count('src="data:image/png;base64,') == 4 and "D_w" in page
        main(["report", str(out), "--out", str(tmp_path / "again"), "--no-plots"])
    again = (tmp_path / "again" / "report.html").read_text()
    assert "<img" not in again and "D_w" in again
