"""The papers' studies reproduced: Bach et al. 2015's MNIST experiments (:mod:`.mnist`) and the
CheXpert chest-radiograph study (:mod:`.chexpert`)."""
