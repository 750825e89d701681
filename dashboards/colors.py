"""One colour per method, the same in every plot and every report (fixed by name, not by order)."""

from __future__ import annotations

import zlib

_PALETTE = {
    "sgd": "#7f7f7f", "adamw": "#17becf", "sam": "#1f77b4", "asam": "#6baed6", "psam": "#9467bd",
    "fsam": "#2ca02c", "pfsam": "#74c476", "obar": "#ff7f0e", "nbar": "#d62728", "lora_sam": "#8c564b",
    "sgd_ire": "#bcbd22", "admire": "#e377c2", "sam_ire": "#393b79",
    # comparators (pytorch-optimizer)
    "po_sam": "#aec7e8", "gsam": "#843c39", "wsam": "#637939", "looksam": "#7b4173", "friendly_sam": "#e6550d",
}
_EXTRA = ("#3182bd", "#31a354", "#756bb1", "#636363", "#fd8d3c", "#9c9ede", "#ad494a", "#8ca252")


def method_color(method: str) -> str:
    """Hex colour of `method`; unknown names get a stable colour from a hash of the name."""
    return _PALETTE.get(method) or _EXTRA[zlib.crc32(method.encode()) % len(_EXTRA)]
