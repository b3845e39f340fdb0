"""The commands' work as Python functions, below the thin CLI: explaining image folders and
data sets with progress that survives an interruption (:mod:`.explain`, :mod:`.progress`) and
the demo's end-to-end run (:mod:`.demo`)."""
