"""Pictures: heatmaps and overlays (:mod:`.render`), the study's figure layouts
(:mod:`.figures`) and the check that a figure's texts neither overlap nor leave the canvas
(:mod:`.layout`)."""
