"""``report.html``: one calibration as a static, offline page a clinician can open.

Self-contained on purpose — no JavaScript, no external resources (fonts, stylesheets, CDNs):
the images are PNGs drawn with matplotlib `Figure` objects and embedded as base64 data URIs,
every text from the run is escaped with `html.escape`, so the file can be mailed, archived or
opened on a machine without network.

Content: patient and date; slices through the lesion (posterior mean density, P(u > u*), the
probabilistic CTV beside the 15 mm standard plan, the visible FLAIR); the posterior table
(``summary["parameters"]``); sampler diagnostics; volumes — CTV, 15 mm standard plan and
visible FLAIR — and the fraction of the visible FLAIR inside the CTV, with a prominent warning
when it is below `FLAIR_COVERAGE_WARNING`. Volumes and the fraction are computed on the ROI
grid the model was fitted on, so that the three are comparable voxel for voxel.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from bayestumor.imaging import BRAIN_THRESHOLD, Patient
from bayestumor.posterior import (
    FLAIR_INSIDE_TARGET_MIN,
    STANDARD_MARGIN_MM,
    PosteriorMaps,
    standard_plan,
)
from bayestumor.utils import atomic_path
from bayestumor.workflows._plots import _slices, _voxel_index

FLAIR_COVERAGE_WARNING = FLAIR_INSIDE_TARGET_MIN
"""Below this fraction of the visible FLAIR inside the CTV, the report warns prominently."""

FLAIR_OUTSIDE_MESSAGE = "the target volume leaves visible abnormality outside"

_ORIENTATIONS = ("axial", "coronal", "sagittal")

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 70em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; border-bottom: 1px solid #ccc; margin-top: 1.4em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #eee; }
.warning { background: #fde0dc; border: 2px solid #c0392b; color: #7b1d12;
  padding: 0.7em 1em; font-weight: bold; font-size: 1.1em; margin: 0.8em 0; }
.ok { color: #1e6b2e; font-weight: bold; }
.failed { color: #a93226; font-weight: bold; }
figure { display: inline-block; margin: 0.4em 0.6em 0.4em 0; }
figcaption { font-size: 0.9em; color: #444; }
img { max-width: 100%; }
.meta { color: #555; }
"""


def report_volumes(maps: PosteriorMaps, roi: Patient) -> dict[str, float | None]:
    """Volumes (ml, on the ROI grid) and the fraction of the visible FLAIR inside the CTV.

    The standard plan is `bayestumor.posterior.standard_plan`: the visible tumour core (T1c)
    dilated by 15 mm (Euclidean, mm) within the brain (wm + gm ≥ `BRAIN_THRESHOLD`).

    Returns:
        ``ctv_ml``, ``standard_plan_ml`` (None without a visible T1c core), ``flair_ml`` (None
        without FLAIR) and ``flair_inside_ctv`` (in [0, 1]; None without FLAIR voxels).
    """
    ml = roi.grid.voxel_volume_ml
    observations = roi.observations
    plan = _standard_plan(roi)
    flair = observations.flair
    has_flair = flair is not None and bool(flair.any())
    return {
        "ctv_ml": float(np.count_nonzero(maps.ctv)) * ml,
        "standard_plan_ml": None if plan is None else float(np.count_nonzero(plan)) * ml,
        "flair_ml": None if flair is None else float(np.count_nonzero(flair)) * ml,
        "flair_inside_ctv": (
            float(np.count_nonzero(flair & maps.ctv)) / float(np.count_nonzero(flair))
            if has_flair
            else None
        ),
    }


def _standard_plan(roi: Patient) -> np.ndarray | None:
    """The 15 mm standard plan on the ROI grid, or None without a visible T1c core."""
    core = roi.observations.t1c
    if core is None or not core.any():
        return None
    anatomy = roi.anatomy
    brain = (anatomy.wm + anatomy.gm) >= BRAIN_THRESHOLD
    return standard_plan(core, brain, roi.grid.spacing_mm, STANDARD_MARGIN_MM)


def write_report_html(
    maps: PosteriorMaps,
    roi: Patient,
    summary: dict[str, Any],
    path: str | Path,
    *,
    images: bool = True,
    date: datetime.datetime | None = None,
) -> Path:
    """Write the run's ``report.html`` (module docstring), atomically.

    Args:
        maps: posterior maps on the ROI grid.
        roi: the patient on the same ROI grid.
        summary: the run's ``summary.json`` content (``patient``, ``parameters``,
            ``diagnostics``, ``threshold_u``, ``ctv_probability``, ...).
        path: destination, usually ``RUN_DIR/report.html``.
        images: embed the slice images (PNG data URIs); False gives a text-only page.
        date: the date shown (default: now, UTC).
    """
    page = report_html(maps, roi, summary, images=images, date=date)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def report_html(
    maps: PosteriorMaps,
    roi: Patient,
    summary: dict[str, Any],
    *,
    images: bool = True,
    date: datetime.datetime | None = None,
) -> str:
    """The text of ``report.html`` (see `write_report_html`)."""
    date = datetime.datetime.now(datetime.UTC) if date is None else date
    patient = str(summary.get("patient", roi.name))
    volumes = report_volumes(maps, roi)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(patient)}: bayestumor calibration</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{_e(patient)}</h1>",
        f'<p class="meta">bayestumor calibration report, {_e(date.strftime("%Y-%m-%d %H:%M %Z"))}'
        f" · sampler {_e(summary.get('sampler', '—'))}"
        f" · forward {_e(summary.get('forward', '—'))}"
        f" · ROI spacing {_e(_number(summary.get('roi_spacing_mm'), '.3g'))} mm</p>",
    ]
    parts += _volumes_section(volumes, maps, summary)
    if images:
        parts += _slices_section(maps, roi)
    parts += _parameters_section(summary.get("parameters", {}))
    parts += _diagnostics_section(summary.get("diagnostics") or {})
    notes = summary.get("input_notes") or []
    if notes:
        parts.append("<h2>Input notes</h2><ul>")
        parts += [f"<li>{_e(note)}</li>" for note in notes]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _volumes_section(
    volumes: dict[str, float | None], maps: PosteriorMaps, summary: dict[str, Any]
) -> list[str]:
    ctv_name = f"CTV {{P(u &gt; {maps.threshold_u:g}) ≥ {maps.ctv_probability:g}}}"
    parts = ["<h2>Target volumes</h2>"]
    fraction = volumes["flair_inside_ctv"]
    if fraction is not None and fraction < FLAIR_COVERAGE_WARNING:
        parts.append(
            f'<div class="warning">Warning: {_e(FLAIR_OUTSIDE_MESSAGE)} — only '
            f"{100 * fraction:.1f} % of the visible FLAIR lies inside the CTV "
            f"(below {100 * FLAIR_COVERAGE_WARNING:g} %).</div>"
        )
    if summary.get("ctv_at_roi_edge") or maps.ctv_at_roi_edge:
        parts.append(
            '<div class="warning">Warning: the CTV reaches the edge of the region of interest '
            "and may be cut off: calibrate again with a larger margin.</div>"
        )
    rows = [
        (ctv_name, _number(volumes["ctv_ml"], ".1f")),
        (
            f"standard plan (T1c core + {STANDARD_MARGIN_MM:g} mm, in the brain)",
            _number(volumes["standard_plan_ml"], ".1f"),
        ),
        ("visible FLAIR", _number(volumes["flair_ml"], ".1f")),
    ]
    parts.append("<table><tr><th>volume</th><th>ml</th></tr>")
    parts += [f'<tr><td>{name}</td><td class="num">{value}</td></tr>' for name, value in rows]
    parts.append("</table>")
    shown = "—" if fraction is None else f"{100 * fraction:.1f} %"
    parts.append(f"<p>Visible FLAIR inside the CTV: <b>{shown}</b>.</p>")
    ctv_input = summary.get("ctv_ml")
    parts.append(
        '<p class="meta">Volumes on the model\'s region-of-interest grid'
        + (
            f"; the CTV re-thresholded on the input grid measures {_number(ctv_input, '.1f')} ml"
            if ctv_input is not None
            else ""
        )
        + ".</p>"
    )
    return parts


def _parameters_section(parameters: dict[str, dict[str, Any]]) -> list[str]:
    parts = [
        "<h2>Posterior</h2>",
        '<table class="parameters"><tr><th>parameter</th><th>mean</th><th>sd</th>'
        "<th>5 %</th><th>95 %</th><th>units</th></tr>",
    ]
    for name, stats in parameters.items():
        cells = "".join(
            f'<td class="num">{_number(stats.get(key), ".4g")}</td>'
            for key in ("mean", "sd", "q05", "q95")
        )
        parts.append(f"<tr><td>{_e(name)}</td>{cells}<td>{_e(stats.get('units', ''))}</td></tr>")
    parts.append("</table>")
    return parts


def _diagnostics_section(diagnostics: dict[str, Any]) -> list[str]:
    passed = diagnostics.get("passed")
    verdict = (
        '<span class="ok">passed</span>'
        if passed
        else '<span class="failed">failed</span>'
        if passed is not None
        else "—"
    )
    failures = diagnostics.get("failures") or []
    rows = [
        ("checks", verdict),
        ("divergences", _e(_number(diagnostics.get("divergences"), "d"))),
        ("min bulk ESS", _e(_number(diagnostics.get("min_ess_bulk"), ".0f"))),
    ]
    parts = ["<h2>Diagnostics</h2>", "<table>"]
    parts += [f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows]
    parts.append("</table>")
    if failures:
        parts.append('<ul class="failed">')
        parts += [f"<li>{_e(failure)}</li>" for failure in failures]
        parts.append("</ul>")
    return parts


def _slices_section(maps: PosteriorMaps, roi: Patient) -> list[str]:
    index = _voxel_index(roi.grid, roi.lesion_center_mm())
    anatomy = np.asarray(roi.anatomy.wm + 0.5 * roi.anatomy.gm)
    plan = _standard_plan(roi)
    flair = roi.observations.flair
    panels = [
        ("posterior mean density u", [(maps.mean, "magma", (0.0, 1.0))], []),
        (f"P(u &gt; {maps.threshold_u:g})", [(maps.exceedance, "inferno", (0.0, 1.0))], []),
        (
            "CTV (cyan) beside the 15 mm standard plan (orange)",
            [(anatomy, "gray", (0.0, 1.0))],
            [(maps.ctv, "cyan"), *([] if plan is None else [(plan, "orange")])],
        ),
        (
            "visible FLAIR (yellow)",
            [(anatomy, "gray", (0.0, 1.0))],
            [] if flair is None else [(flair, "yellow")],
        ),
    ]
    parts = [
        "<h2>Slices through the lesion</h2>",
        f'<p class="meta">Axial, coronal and sagittal slices through voxel {index} of the ROI '
        "grid (the T1c centre of mass).</p>",
    ]
    for caption, layers, contours in panels:
        uri = _png_data_uri(_slice_figure(layers, contours, index))
        parts.append(
            f'<figure><img src="{uri}" alt="{caption}"><figcaption>{caption}</figcaption></figure>'
        )
    return parts


def _slice_figure(
    layers: list[tuple[np.ndarray, str, tuple[float, float]]],
    contours: list[tuple[np.ndarray, str]],
    index: tuple[int, int, int],
) -> Figure:
    """One row of axial, coronal and sagittal slices: images, then contours over them."""
    # Figure, not pyplot: no global state, and the user's matplotlib backend is left alone.
    figure = Figure(figsize=(7.5, 2.7), layout="constrained")
    axes = figure.subplots(1, 3, squeeze=True)
    shown = None
    for column, ax in enumerate(axes):
        for volume, cmap, (vmin, vmax) in layers:
            image = _slices(np.asarray(volume, dtype=float), index)[column]
            shown = ax.imshow(image, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax)
        for mask, colour in contours:
            sliced = _slices(np.asarray(mask, dtype=float), index)[column]
            if sliced.any() and not sliced.all():
                ax.contour(sliced, levels=[0.5], colors=colour, linewidths=1.2)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(_ORIENTATIONS[column], fontsize=9)
    if shown is not None:
        figure.colorbar(shown, ax=list(axes), shrink=0.8)
    return figure


def _png_data_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _number(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if spec == "d":
        return str(int(value))
    return format(value, spec)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


__all__ = ["FLAIR_COVERAGE_WARNING", "report_html", "report_volumes", "write_report_html"]
