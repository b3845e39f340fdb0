"""Bach et al. 2015's MNIST experiments I and II: the reproduction (:mod:`.reproduce`) and its
heatmap figures (:mod:`.figures`)."""
