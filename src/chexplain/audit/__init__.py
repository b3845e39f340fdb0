"""``chexplain.audit``: explain a whole data set and find the model's Clever-Hans strategies.

Spectral Relevance Analysis (SpRAy; Lapuschkin et al. 2019) of each class's relevance maps,
each cluster's distinctive evidence and a counterfactual test of it::

    from chexplain.audit import AuditConfig, run_audit
    run_audit(AuditConfig(checkpoint="best.pt", csv="test.csv", out="runs/audit"))

Modules: :mod:`.store` (NPY shards + index), :mod:`.sources`, :mod:`.explain`
(:func:`explain_dataset`), :mod:`.spray`, :mod:`.regions`, :mod:`.distinctive`,
:mod:`.counterfactual`, :mod:`.passes`, :mod:`.sentences`, :mod:`.analysis`, :mod:`.figures`,
:mod:`.report`, :mod:`.run`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import _lazy_exports

if TYPE_CHECKING:
    from .analysis import AnalysisConfig, audit_class
    from .counterfactual import CounterfactualConfig, counterfactual
    from .distinctive import DistinctConfig
    from .explain import MapMaker, explain_dataset
    from .regions import RegionConfig, region_shares
    from .run import AuditConfig, run_audit
    from .spray import SprayConfig, SprayResult, spray

# imported on first use: the store and the report are read without PyTorch (``chexplain view``)
_EXPORTS = {"AuditConfig": ".run", "run_audit": ".run", "AnalysisConfig": ".analysis", "audit_class": ".analysis",
            "SprayConfig": ".spray", "SprayResult": ".spray", "spray": ".spray", "RegionConfig": ".regions",
            "region_shares": ".regions", "DistinctConfig": ".distinctive", "CounterfactualConfig": ".counterfactual",
            "counterfactual": ".counterfactual", "MapMaker": ".explain", "explain_dataset": ".explain"}
__getattr__ = _lazy_exports(__name__, _EXPORTS)
__all__ = ["AuditConfig", "run_audit", "AnalysisConfig", "SprayConfig", "SprayResult", "spray",
           "RegionConfig", "region_shares", "DistinctConfig", "CounterfactualConfig", "counterfactual", "MapMaker",
           "explain_dataset", "audit_class"]
