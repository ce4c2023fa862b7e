"""Shared code of the crystal-fingerprint notebook series (Ziletti et al., Nat. Commun. 2018).

Modules: ``config`` (paths, save_fig), ``structures`` (classes, prototypes, preparation),
``defects`` (vacancies, displacements), ``neighbours`` (neighbour search and the fingerprint's scale),
``fingerprint`` (the 2D diffraction fingerprint), ``kernels`` (its compiled inner loops), ``warmup`` (caches
filled once for worker pools), ``batch`` (large collections on Dask, resumable), ``compare`` (how alike fingerprints are),
``lattice`` (the crystal behind a block of atoms, and the block the network was trained on),
``datasets`` (generation and storage), ``provenance`` (saving, loading and stale checks of every data file),
``models`` (the CNN, its training, storage and MC-dropout
uncertainty), ``orientations`` (the answer averaged over random orientations of a structure),
``any_orientation`` (notebook 07: turned structures, its robustness table),
``robustness`` (CNN against spglib on defective crystals), ``classify`` (your own structures),
``user_forms`` (real crystals in the forms users hand them in), ``evaluation`` (notebook 03's scores),
``explore`` (the notebooks' interactive explorers), ``quiet`` (Keras without TensorFlow's start-up notices), ``maps`` (activations and attentive
response maps), ``clustering`` (the classes without labels), ``report`` (REPORT.md), ``plots``
(figures), ``machine`` (the CPU a timing was measured on), ``series`` (runs the notebooks), ``results`` (the
results page of a run).
"""
__version__ = "0.1.0"
