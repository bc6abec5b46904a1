"""Cloud Functions entry points of ION Ops, one per deployed function (see topology.yaml).

Entry points stay thin and import their capability on first call, so each deployed function's
cold start pays only for its own code.
"""

from __future__ import annotations
