"""Data: image reading and normalisation (:mod:`.images`), CheXpert (:mod:`.chexpert`), NIH
ChestX-ray14 (:mod:`.nih`) and synthetic phantom radiographs (:mod:`.phantom`).

Import the submodules directly; this package imports nothing heavy on its own.
"""
