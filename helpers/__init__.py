"""Shared code of the crystal-fingerprint notebook series (Ziletti et al., Nat. Commun. 2018).

Modules: ``config`` (paths, save_fig), ``structures`` (classes, prototypes, preparation),
``defects`` (vacancies, displacements), ``fingerprint`` (the 2D diffraction fingerprint),
``datasets`` (generation and storage), ``models`` (the CNN, its training, storage and MC-dropout
uncertainty), ``orientations`` (the answer averaged over random orientations of a structure),
``robustness`` (CNN against spglib on defective crystals), ``classify`` (your own structures),
``maps`` (activations and attentive response maps), ``plots`` (figures), ``series`` (runs the
notebooks).
"""
__version__ = "0.1.0"
