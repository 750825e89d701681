"""One look per method, the same in every figure of a report: a colour-blind-safe colour, a marker, a line style.

The colours are Okabe & Ito's palette (Wong, Nature Methods 8:441, 2011) plus its grey: nine colours that stay
apart under the common colour-vision deficiencies. Each known method has a preferred colour (SAM blue, ASAM
vermillion: never two blues for the two methods most often compared), so a method keeps its colour from one
report to the next; within one report, `method_styles` gives every method a different colour (a later method
whose preferred colour is taken gets the next free one), and past nine methods a different marker and line
style tell the methods that share a colour apart.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

BLACK, ORANGE, SKY_BLUE, GREEN, YELLOW, BLUE, VERMILLION, PURPLE, GREY = (
    "#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999")
# in the order a colour is handed out when a method's preferred one is taken; yellow last (faint on white)
OKABE_ITO = (BLUE, VERMILLION, GREEN, ORANGE, PURPLE, SKY_BLUE, BLACK, GREY, YELLOW)
MARKERS = ("o", "s", "^", "D", "v", "P")
LINESTYLES = ("-", "--", "-.", ":")

_PREFERRED = {
    "sgd": BLACK, "adamw": GREY, "sam": BLUE, "asam": VERMILLION, "fsam": GREEN, "psam": PURPLE,
    "pfsam": SKY_BLUE, "obar": ORANGE, "nbar": SKY_BLUE, "lora_sam": BLUE, "sgd_ire": ORANGE, "admire": PURPLE,
    "sam_ire": GREEN,
    # comparators (pytorch-optimizer)
    "po_sam": SKY_BLUE, "gsam": ORANGE, "wsam": GREEN, "looksam": PURPLE, "friendly_sam": VERMILLION,
}


@dataclass(frozen=True)
class MethodStyle:
    """How one method is drawn: `color` for everything, `marker` for points, `linestyle` for curves."""

    color: str
    marker: str = "o"
    linestyle: str = "-"


def preferred_color(method: str) -> str:
    """The method's own colour when nothing else in the report takes it; unknown names hash to one."""
    return _PREFERRED.get(method) or OKABE_ITO[zlib.crc32(method.encode()) % len(OKABE_ITO)]


def method_styles(methods: Iterable[str]) -> dict[str, MethodStyle]:
    """A distinct style per method, in the given order (the spec's): each takes its preferred colour if still
    free, else the first free one; once all nine colours are used, the marker and line style change."""
    out: dict[str, MethodStyle] = {}
    used: list[str] = []
    for method in dict.fromkeys(methods):
        round_ = len(out) // len(OKABE_ITO)
        free = [c for c in OKABE_ITO if c not in used]
        color = preferred_color(method) if preferred_color(method) in free else free[0]
        used.append(color)
        if len(used) == len(OKABE_ITO):
            used = []
        out[method] = MethodStyle(color, MARKERS[round_ % len(MARKERS)], LINESTYLES[round_ % len(LINESTYLES)])
    return out
