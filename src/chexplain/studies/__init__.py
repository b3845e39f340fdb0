"""The papers' studies reproduced: Bach et al. 2015's MNIST experiments (:mod:`.mnist`)."""
