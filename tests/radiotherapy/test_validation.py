"""Bad input gets a clear `InputError`; the CLI turns it into exit code 2 and writes nothing."""

import json

import jax
import numpy as np
import pandas as pd
import pytest

from bayestumor.cli import main
from bayestumor.errors import InputError
from bayestumor.radiotherapy import (
    BootstrapConfig,
    FitConfig,
    Series,
    bootstrap,
    fit,
    read_series_csv,
)

from .conftest import T_RT_DAYS, TIMES_DAYS, TRUE_PARAMS, true_burden


@pytest.mark.parametrize(
    ("times", "values", "t_rt", "message"),
    [
        ([0.0, 30.0, 20.0, 60.0], [1.0, 2.0, 3.0, 4.0], 25.0, "not sorted"),
        ([0.0, 20.0, 20.0, 60.0], [1.0, 2.0, 3.0, 4.0], 25.0, "duplicate time 20"),
        ([0.0, 20.0, 40.0, 60.0], [1.0, -2.0, 3.0, 4.0], 25.0, "positive"),
        ([0.0, 20.0, 40.0, 60.0], [1.0, 2.0, 3.0, 4.0], None, "missing RT start"),
        ([0.0, 20.0, 40.0, 60.0], [1.0, 2.0, 3.0, 4.0], float("nan"), "missing RT start"),
        ([-5.0, 20.0, 40.0, 60.0], [1.0, 2.0, 3.0, 4.0], 25.0, "≥ 0"),
        ([0.0, 20.0, 40.0], [1.0, 2.0, float("nan")], 25.0, "finite"),
    ],
)
def test_bad_series(times, values, t_rt, message):
    with pytest.raises(InputError, match=message):
        Series("bad", np.array(times), np.array(values), t_rt)


def test_fewer_points_than_parameters():
    three = Series("short", TIMES_DAYS[:3], true_burden(TIMES_DAYS[:3]), T_RT_DAYS)
    with pytest.raises(InputError, match=r"3 visit.*4 fitted"):
        fit(three)
    four = Series("four", TIMES_DAYS[:4], true_burden(TIMES_DAYS[:4]), T_RT_DAYS)
    with pytest.raises(InputError, match="after holding out 1"):
        bootstrap(four, jax.random.key(0), BootstrapConfig(setup="train"))


def test_bad_options():
    with pytest.raises(InputError, match="unknown parameter"):
        FitConfig(fixed={"rho": 1.0})
    with pytest.raises(InputError, match="setup"):
        BootstrapConfig(setup="test")


def _write(tmp_path, rows, name="series.csv"):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _rows(name="p1", with_rt=True):
    rows = [
        {"series": name, "time_days": t, "value": v}
        for t, v in zip(TIMES_DAYS, true_burden(TIMES_DAYS), strict=True)
    ]
    if with_rt:
        for row in rows:
            row["t_rt_days"] = T_RT_DAYS
    return rows


def test_csv_rt_column_or_sidecar(tmp_path):
    from_column = read_series_csv(_write(tmp_path, _rows()))
    sidecar = _write(tmp_path, [{"series": "p1", "t_rt_days": T_RT_DAYS}], "rt.csv")
    from_sidecar = read_series_csv(_write(tmp_path, _rows(with_rt=False), "s2.csv"), sidecar)
    assert from_column[0].t_rt_days == from_sidecar[0].t_rt_days == T_RT_DAYS
    np.testing.assert_array_equal(from_column[0].time_days, TIMES_DAYS)
    with pytest.raises(InputError, match="missing RT start"):
        read_series_csv(tmp_path / "s2.csv")
    with pytest.raises(InputError, match="missing column"):
        read_series_csv(_write(tmp_path, [{"series": "a", "time": 1.0}], "bad.csv"))


def test_cli_error_exit_code_and_no_output(tmp_path, capsys):
    rows = _rows()
    rows[2]["time_days"] = rows[1]["time_days"]  # duplicate time
    out = tmp_path / "out"
    assert main(["rt", "fit", str(_write(tmp_path, rows)), "--out", str(out)]) == 2
    assert "duplicate time" in capsys.readouterr().err
    assert not out.exists()


def test_cli_fit_writes_outputs(tmp_path):
    """Two series of noise-free burdens of `TRUE_PARAMS` (and a third with three visits, too
    short for any model), fitted through the command line on their first six visits (``--setup train`` holds out the last): the point estimates in
    parameters.csv are the true parameters to 0.5 % — six exact points determine the four
    fitted parameters, so what is left is the float32 optimiser's tolerance (the same bound as
    the library-level noiseless recovery, tests/radiotherapy/test_fit.py) — slope and delay keep
    their fixed values, and the outputs are complete and consistent."""
    rows = _rows("p1") + _rows("p2") + _rows("p3")[:3]
    out = tmp_path / "out"
    code = main(
        [
            "rt",
            "fit",
            str(_write(tmp_path, rows)),
            "--out",
            str(out),
            "--replicates",
            "8",
            "--setup",
            "train",
            "--method",
            "bootstrap",
        ]
    )
    assert code == 0
    parameters = pd.read_csv(out / "parameters.csv")
    assert parameters["series"].tolist() == ["p1", "p2", "p3"]
    # p3 has two visits left after the hold-out: no model can be fitted; it is reported, not
    # fatal, and the other series are unaffected.
    assert parameters["model"].isna().tolist() == [False, False, True]
    assert not parameters["converged"].iloc[2] and parameters["n_failed"].iloc[2] == 8
    parameters = parameters.iloc[:2]
    assert {"A0", "lam", "S", "lam_decay", "converged", "n_failed"} <= set(parameters.columns)
    assert parameters["converged"].all()
    for name in ("A0", "lam", "S", "lam_decay"):
        np.testing.assert_allclose(parameters[name], getattr(TRUE_PARAMS, name), rtol=5e-3)
    for name in ("slope", "delay"):  # fixed by default (`DEFAULT_FIXED`)
        np.testing.assert_allclose(parameters[name], getattr(TRUE_PARAMS, name), rtol=1e-5)
    bands = pd.read_csv(out / "bands.csv").dropna(subset=["median"])
    assert set(bands["series"]) == {"p1", "p2"}
    assert set(bands["kind"]) == {"grid", "forecast"}
    assert (bands["lower"] <= bands["median"]).all() and (bands["median"] <= bands["upper"]).all()
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["metrics"]["setup"] == "train" and "r2" in summary["metrics"]
    # Six noise-free visits: AICc is undefined for every candidate (n − K − 1 ≤ 0), so the
    # fallback (fewest parameters) is used and said to be.
    assert summary["model_selection"]["counts"] == {"fixed": 2, "none (too few visits)": 1}
    assert set(pd.read_csv(out / "model_selection.csv")["by_aicc"]) == {False}
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["p1.png", "p2.png", "p3.png"]
    assert summary["metrics"]["n_scored"] == 2
    assert summary["n_replicates_failed"]["p3"] == 8
