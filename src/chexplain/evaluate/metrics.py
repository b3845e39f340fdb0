"""The comparison's metrics: their names, directions and words (read without PyTorch by the
report and the viewer)."""

LOCALISATION = ("pointing_game", "relevance_mass", "relevance_rank", "iou")
FAITHFULNESS = ("aopc_morf", "aopc_lerf", "aopc_gap")
METRICS = LOCALISATION + FAITHFULNESS
#: direction of each metric: larger is better except LeRF's AOPC
HIGHER_IS_BETTER = {m: m != "aopc_lerf" for m in METRICS}
#: each metric in words, with its direction (report and console tables)
METRIC_LABELS = {
    "pointing_game": "pointing game: map's maximum inside the finding (higher is better)",
    "relevance_mass": "relevance mass: share of positive relevance inside the finding (higher is better)",
    "relevance_rank": "relevance rank: share of the top-|mask| pixels inside the finding (higher is better)",
    "iou": "IoU of the map above half its maximum with the finding (higher is better)",
    "aopc_morf": "AOPC, most relevant regions removed first: logit drop (higher is better)",
    "aopc_lerf": "AOPC, least relevant regions removed first: logit drop (lower is better)",
    "aopc_gap": "AOPC gap, MoRF minus LeRF (higher is better)",
}
