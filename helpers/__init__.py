"""Shared code of the crystal-fingerprint notebook series (Ziletti et al., Nat. Commun. 2018).

Modules: ``config`` (paths, save_fig), ``structures`` (classes, prototypes, preparation),
``defects`` (vacancies, displacements), ``fingerprint`` (the 2D diffraction fingerprint),
``datasets`` (generation and storage), ``models`` (the CNN, its training, storage and MC-dropout
uncertainty), ``robustness`` (CNN against spglib on defective crystals), ``classify`` (your own
structures), ``maps`` (activations and attentive response maps), ``plots`` (figures), ``series``
(runs the notebooks).
"""
import os as _os

# TensorFlow's C++ start-up chatter (oneDNN, no CUDA driver, CPU features) fills notebooks with
# stderr noise; keep its warnings and errors only. Set TF_CPP_MIN_LOG_LEVEL yourself to see more.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
