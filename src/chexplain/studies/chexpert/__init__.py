"""The CheXpert study (Irvin et al. 2019; the 14-label DenseNet-121 of the study reproduced):
training with the uncertainty policies (:mod:`.train`) and its command group (:mod:`.cli`).
The data reader (:mod:`chexplain.data.chexpert`), the model (:mod:`chexplain.models.densenet`)
and the per-class AUROC (:mod:`chexplain.evaluate.auroc`) serve every command, so they stay in
the library's packages."""
