"""Lesion voxels' tissue (`with_lesion_tissue`): each choice on a hand-built patient with known
voxel values, the warning's threshold, the notes, and the options' configuration round trip."""

import json
import warnings

import numpy as np
import pytest

from bayestumor.config import CalibrationConfig
from bayestumor.errors import InputError
from bayestumor.imaging import (
    LESION_OUTSIDE_WHITE_MATTER_WARNING,
    LESION_TISSUES,
    Anatomy,
    Grid,
    Observations,
    Patient,
    lesion_tissue_fractions,
    with_lesion_tissue,
)

SHAPE = (4, 4, 4)


def patient_with(wm, gm, csf, lesion, notes=()) -> Patient:
    grid = Grid(SHAPE, np.diag([2.0, 2.0, 2.0, 1.0]))
    return Patient(
        anatomy=Anatomy(wm=wm, gm=gm, csf=csf, grid=grid),
        observations=Observations(grid=grid, t1c=lesion, flair=lesion),
        name="synthetic",
        notes=tuple(notes),
    )


def mixed_patient() -> Patient:
    """White matter everywhere; in the lesion (4 voxels): one mixed voxel (wm .2, gm .6,
    csf .2), one pure CSF voxel, one grey-matter voxel, one with no tissue at all."""
    wm, gm, csf = np.ones(SHAPE), np.zeros(SHAPE), np.zeros(SHAPE)
    lesion = np.zeros(SHAPE, bool)
    for voxel, tissue in [
        ((1, 1, 1), (0.2, 0.6, 0.2)),
        ((1, 1, 2), (0.0, 0.0, 1.0)),
        ((1, 2, 1), (0.0, 1.0, 0.0)),
        ((2, 1, 1), (0.0, 0.0, 0.0)),
    ]:
        lesion[voxel] = True
        wm[voxel], gm[voxel], csf[voxel] = tissue
    return patient_with(wm, gm, csf, lesion, notes=("read from nowhere",))


def test_fractions_are_the_lesion_means():
    fractions = lesion_tissue_fractions(mixed_patient())
    assert fractions == pytest.approx({"wm": 0.05, "gm": 0.4, "csf": 0.3, "none": 0.25})


def test_as_given_changes_no_voxel_but_warns_and_notes():
    """95 % of this lesion is not white matter: warned, in the notes, maps untouched."""
    patient = mixed_patient()
    with pytest.warns(UserWarning, match="95% of the lesion") as record:
        result = with_lesion_tissue(patient, "as-given")
    assert "--lesion-tissue white-matter" in str(record[0].message)
    for name in ("wm", "gm", "csf"):
        np.testing.assert_array_equal(getattr(result.anatomy, name), getattr(patient.anatomy, name))
    assert result.notes[0] == "read from nowhere"
    assert len(result.notes) == 2 and "95% of the lesion" in result.notes[1]


def test_white_matter_sets_every_lesion_voxel_and_nothing_else():
    patient = mixed_patient()
    lesion = patient.observations.lesion_mask
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the choice fixes what the warning is about
        result = with_lesion_tissue(patient, "white-matter")
    anatomy = result.anatomy
    assert np.all(anatomy.wm[lesion] == 1) and np.all(anatomy.gm[lesion] == 0)
    assert np.all(anatomy.csf[lesion] == 0)
    for name in ("wm", "gm", "csf"):
        np.testing.assert_array_equal(
            getattr(anatomy, name)[~lesion], getattr(patient.anatomy, name)[~lesion]
        )
    assert int(anatomy.brain_mask.sum()) == 64  # the 2 holes (CSF, no tissue) are brain now
    assert int(patient.anatomy.brain_mask.sum()) == 62
    assert "lesion tissue white-matter: the 4 lesion voxels" in result.notes[-1]
    assert "5% white matter, 40% grey matter, 30% CSF, 25% no tissue" in result.notes[-1]


def test_brain_keeps_the_white_grey_ratio_and_fills_holes_with_white_matter():
    with pytest.warns(UserWarning):
        result = with_lesion_tissue(mixed_patient(), "brain")
    anatomy = result.anatomy
    expected = {  # voxel: (wm, gm, csf)
        (1, 1, 1): (0.25, 0.75, 0.0),  # 0.2 : 0.6 renormalised
        (1, 1, 2): (1.0, 0.0, 0.0),  # CSF only: no wm/gm ratio, white matter
        (1, 2, 1): (0.0, 1.0, 0.0),  # grey matter stays grey
        (2, 1, 1): (1.0, 0.0, 0.0),  # no tissue: white matter
    }
    for voxel, (wm, gm, csf) in expected.items():
        assert (anatomy.wm[voxel], anatomy.gm[voxel], anatomy.csf[voxel]) == pytest.approx(
            (wm, gm, csf)
        )
    assert "lesion tissue brain" in result.notes[-1]


@pytest.mark.parametrize(("grey_voxels", "warns"), [(6, True), (5, False), (4, False)])
def test_warning_fires_above_half_the_lesion_outside_white_matter(grey_voxels, warns):
    """A 10-voxel lesion with `grey_voxels` pure grey-matter voxels: warned only above 50 %."""
    assert LESION_OUTSIDE_WHITE_MATTER_WARNING == 0.5
    wm, gm, csf = np.ones(SHAPE), np.zeros(SHAPE), np.zeros(SHAPE)
    lesion = np.zeros(SHAPE, bool)
    lesion.reshape(-1)[:10] = True
    grey = np.zeros(SHAPE, bool)
    grey.reshape(-1)[:grey_voxels] = True
    wm[grey], gm[grey] = 0.0, 1.0
    patient = patient_with(wm, gm, csf, lesion)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = with_lesion_tissue(patient, "as-given")
    messages = [str(w.message) for w in record if issubclass(w.category, UserWarning)]
    if warns:
        assert len(messages) == 1 and f"{grey_voxels * 10}% of the lesion" in messages[0]
        assert result.notes == (messages[0],)
    else:
        assert messages == [] and result.notes == ()
        assert result.anatomy is patient.anatomy


def test_empty_lesion_and_unknown_choice():
    empty = patient_with(np.ones(SHAPE), np.zeros(SHAPE), np.zeros(SHAPE), np.zeros(SHAPE, bool))
    assert with_lesion_tissue(empty, "white-matter") is empty
    with pytest.raises(InputError, match="unknown lesion tissue 'tumour'"):
        with_lesion_tissue(empty, "tumour")


def test_config_round_trip_and_validation():
    config = CalibrationConfig(lesion_tissue="white-matter")
    assert CalibrationConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert CalibrationConfig().lesion_tissue == "as-given"
    for choice in LESION_TISSUES:  # the config knows the imaging layer's choices
        CalibrationConfig(lesion_tissue=choice)
    with pytest.raises(InputError, match="unknown lesion tissue"):
        CalibrationConfig(lesion_tissue="tumour")


def test_sample_patient_applies_the_configured_lesion_tissue():
    """A lesion in a tissue hole has no tumour voxel inside the brain: refused as given; with
    ``lesion_tissue="white-matter"`` it passes validation and reaches the forward map's grid
    check (a deliberately wrong grid, so that nothing is sampled)."""
    from bayestumor.forward import PDEForward
    from bayestumor.imaging import make_phantom
    from bayestumor.workflows import sample_patient

    anatomy = make_phantom((16, 16, 16), 4.0)
    lesion = np.zeros(anatomy.shape, bool)
    lesion[7:9, 7:9, 7:9] = True
    wm, gm, csf = (np.array(getattr(anatomy, name)) for name in ("wm", "gm", "csf"))
    wm[lesion], gm[lesion], csf[lesion] = 0.0, 0.0, 1.0
    patient = Patient(
        Anatomy(wm=wm, gm=gm, csf=csf, grid=anatomy.grid),
        Observations(grid=anatomy.grid, t1c=lesion, flair=lesion),
        name="hole",
    )
    wrong_grid = PDEForward.from_anatomy(make_phantom((8, 8, 8), 4.0))
    config = CalibrationConfig(progress=False, plots=False)
    with pytest.warns(UserWarning), pytest.raises(InputError, match="inside the brain"):
        sample_patient(patient, config, forward=wrong_grid)
    white = config.replace(lesion_tissue="white-matter")
    with pytest.raises(InputError, match="not the region of interest's grid"):
        sample_patient(patient, white, forward=wrong_grid)
