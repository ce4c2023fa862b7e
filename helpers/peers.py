"""The per-atom structure identification that researchers use today, from OVITO's Python module (``ovito``, MIT):
polyhedral template matching (PTM; Larsen, Schmidt and Schiøtz 2016) and adaptive common-neighbour analysis
(a-CNA; Stukowski 2012). Both read only the atom's nearest neighbours and need no training.

Their labels are translated to our class names: FCC → fcc, BCC → bcc, HCP → hex_rh, simple cubic → sc, cubic
diamond → diam; anything else (OTHER, icosahedral, hexagonal diamond, graphene) → "other". OVITO's default
structure types are used (PTM: fcc, hcp, bcc, icosahedral; a-CNA: the same four); only PTM's RMSD cutoff is varied.
"""
from __future__ import annotations

import time

import numpy as np
from ase import Atoms

OTHER = "other"
PTM_DEFAULT_RMSD = 0.1  # OVITO's default PolyhedralTemplateMatchingModifier.rmsd_cutoff


def _names(types: np.ndarray, table: dict) -> np.ndarray:
    out = np.full(len(types), OTHER, dtype=object)
    for code, name in table.items():
        out[types == code] = name
    return out.astype(str)


def _compute(atoms: Atoms, modifier) -> np.ndarray:
    from ovito.io.ase import ase_to_ovito
    from ovito.pipeline import Pipeline, StaticSource

    if len(atoms) == 0:
        raise ValueError("the structure has no atoms")
    plain = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    pipeline = Pipeline(source=StaticSource(data=ase_to_ovito(plain)))
    pipeline.modifiers.append(modifier)
    return np.asarray(pipeline.compute().particles["Structure Type"])


def ptm(atoms: Atoms, rmsd_cutoff: float = PTM_DEFAULT_RMSD) -> np.ndarray:
    """Per-atom class names from OVITO's polyhedral template matching; ``rmsd_cutoff=0`` accepts every match (its
    best case on disordered crystals, at the price of naming a liquid too)."""
    from ovito.modifiers import PolyhedralTemplateMatchingModifier as PTM

    types = _compute(atoms, PTM(rmsd_cutoff=float(rmsd_cutoff)))
    T = PTM.Type
    return _names(types, {T.FCC: "fcc", T.BCC: "bcc", T.HCP: "hex_rh", T.SC: "sc", T.CUBIC_DIAMOND: "diam"})


def adaptive_cna(atoms: Atoms) -> np.ndarray:
    """Per-atom class names from OVITO's adaptive common-neighbour analysis."""
    from ovito.modifiers import CommonNeighborAnalysisModifier as CNA

    types = _compute(atoms, CNA(mode=CNA.Mode.AdaptiveCutoff))
    T = CNA.Type
    return _names(types, {T.FCC: "fcc", T.BCC: "bcc", T.HCP: "hex_rh"})


METHODS = {"PTM (default cutoff)": lambda a: ptm(a, PTM_DEFAULT_RMSD), "PTM (no cutoff)": lambda a: ptm(a, 0.0),
           "a-CNA": adaptive_cna}


def all_methods(atoms: Atoms) -> tuple:
    """({method: per-atom class names}, {method: atoms per second}) of every method in :data:`METHODS`."""
    labels, rates = {}, {}
    for name, method in METHODS.items():
        start = time.perf_counter()
        labels[name] = method(atoms)
        rates[name] = len(atoms) / (time.perf_counter() - start)
    return labels, rates
