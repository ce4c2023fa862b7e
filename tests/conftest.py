import numpy as np
import pytest
from ase.build import bulk


def rotated(atoms, seed):
    from helpers.structures import random_rotation, rotate

    return rotate(atoms, random_rotation(np.random.default_rng(seed)))


@pytest.fixture(scope="session")
def crystals():
    """Small prepared-like supercells of the three cubic classes, randomly rotated."""
    return {
        "fcc": rotated(bulk("Cu", "fcc", a=3.61, cubic=True).repeat(4), 1),
        "bcc": rotated(bulk("W", "bcc", a=3.16, cubic=True).repeat(5), 2),
        "diam": rotated(bulk("Si", "diamond", a=5.43, cubic=True).repeat((4, 4, 2)), 3),
    }
