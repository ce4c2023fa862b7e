"""The training augmentation is physics, not decoration: each detector symmetry equals the fingerprint of the
turned or mirrored crystal, and the diffuse background has the shape and the speckle of the Laue scattering that
vacancies add."""
import numpy as np
import pytest
from ase.build import bulk
from ase.data import atomic_numbers
from scipy.spatial.transform import Rotation

from helpers import augment, defects, fingerprint, models
from helpers.fingerprint import (_f2_image, _pattern_images, _prepared, solid_angle_image, diffraction_fingerprint,
                                  pixel_distance, ring_mask, rotation_matrix)


def transformed(atoms, matrix):
    out = atoms.copy()
    out.set_cell(out.cell @ matrix.T, scale_atoms=True)
    return out


@pytest.fixture(scope="module")
def crystal():
    """A randomly oriented fcc supercell (its fingerprint has no symmetry of its own)."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((4, 4, 4))
    return transformed(atoms, Rotation.random(random_state=1).as_matrix())


@pytest.mark.parametrize("degrees,k", [(90, 3), (180, 2), (270, 1)])
def test_turning_the_image_equals_turning_the_crystal_about_the_beam(crystal, degrees, k):
    fp = diffraction_fingerprint(crystal)
    turned = diffraction_fingerprint(transformed(crystal, rotation_matrix("z", degrees)))
    assert np.abs(augment.d4(fp, k, False) - turned).max() < 1e-5
    assert np.abs(augment.d4(fp, (k + 1) % 4, False) - turned).max() > 0.1  # the wrong turn is far off


def test_mirroring_the_image_equals_mirroring_the_crystal(crystal):
    fp = diffraction_fingerprint(crystal)
    mirrored = diffraction_fingerprint(transformed(crystal, np.diag([-1.0, 1.0, 1.0])))
    assert np.abs(augment.d4(fp, 0, True) - mirrored).max() < 1e-5


def test_diffuse_background_is_smooth_radial_and_on_the_ring():
    b = augment.diffuse_background("W")
    assert b.shape == (64, 64) and b.max() == pytest.approx(1.0) and np.all(b[~ring_mask()] == 0)
    assert np.allclose(b, np.rot90(b)) and np.allclose(b, b[:, ::-1])
    d = pixel_distance()
    inner, outer = b[ring_mask() & (d < 12)].mean(), b[ring_mask() & (d > 28)].mean()
    assert inner > outer > 0  # falls with |q| as f(q)^2 and the solid angle do


def test_augmented_batch_stays_a_fingerprint_and_is_reproducible(crystal):
    fp = diffraction_fingerprint(crystal)
    X = np.stack([fp] * 6)
    a = augment.augment_batch(X, ["Cu"] * 6, np.random.default_rng(3))
    b = augment.augment_batch(X, ["Cu"] * 6, np.random.default_rng(3))
    assert np.array_equal(a, b) and a.dtype == np.float32 and a.shape == X.shape
    assert np.allclose(a.max(axis=(1, 2, 3)), 1.0) and a.min() >= 0 and np.all(a[:, ~ring_mask(), :] == 0)
    x = augment.add_background(fp, "Cu", 0.05, np.random.default_rng(0))
    assert np.median(x[ring_mask()]) > 10 * np.median(fp[ring_mask()])
    assert np.array_equal(x, augment.add_background(fp, "Cu", 0.05, np.random.default_rng(0)))


def channel_intensities(atoms):
    """The three channels of ``atoms`` before normalisation (R, G, B)."""
    return fingerprint.channel_intensities(_pattern_images(*_prepared(atoms)))


def test_the_speckled_background_has_the_statistics_of_real_vacancies(crystal):
    """Away from the Bragg peaks, what 25 % vacancies add to the pristine channels is, per pixel, the smooth
    Laue mean 2 p (1 - p) N Omega f^2 times a noise of mean 1 and relative spread about 1/sqrt(2) (two
    exponential speckle patterns summed): the model behind ``add_background``."""
    p, n = 0.25, len(crystal)
    pristine = channel_intensities(crystal)
    laue_mean = 2 * p * (1 - p) * n * (_f2_image(atomic_numbers["Cu"]).reshape(64, 64) * solid_angle_image().reshape(64, 64))
    shape = laue_mean / laue_mean.max()
    assert np.allclose(shape, augment.diffuse_background("Cu"), atol=1e-6)  # the augmentation's mean shape
    off_peak = (pristine < 1e-3 * pristine.max()) & ring_mask()[..., None]
    ratios = []
    for seed in range(4):
        defective = channel_intensities(defects.vacancies(crystal, p, np.random.default_rng(seed)))
        ratios.append(((defective - (1 - p) ** 2 * pristine) / np.maximum(laue_mean[..., None], 1e-30))[off_peak])
    r = np.concatenate(ratios)
    assert r.size > 5000
    assert abs(r.mean() - 1) < 0.1 and 0.6 < r.std() < 1.0
    # the augmentation's background alone (on an empty fingerprint), divided by its smooth shape
    rng = np.random.default_rng(0)
    added = np.concatenate([augment.add_background(np.zeros((64, 64, 3), np.float32), "Cu", 0.01, rng)[ring_mask()]
                            / shape[ring_mask()][:, None] for _ in range(3)]).ravel()
    added /= added.mean()
    assert abs(added.std() - r.std()) < 0.15 and abs(np.median(added) - np.median(r)) < 0.1


def test_training_with_augmentation(crystal):
    rng = np.random.default_rng(0)
    X = rng.random((28, 64, 64, 3)).astype(np.float32) * ring_mask()[..., None]
    y = np.repeat(np.arange(7), 4)
    model, info = models.train(X, y, epochs=1, batch_size=8, validation_fraction=0.25, seed=0, progress=False,
                               elements=["Cu"] * 28)
    assert info["augmented"] and info["n_train"] == 21 and len(info["history"]["loss"]) == 1
    with pytest.raises(ValueError, match="element of each"):
        models.train(X, y, epochs=1, elements=["Cu"] * 3, progress=False)
