"""Image shapes that cannot be resized safely (checked from the header, before decoding)."""

from __future__ import annotations

MAX_ASPECT = 100  # longer side / shorter side: beyond this a short-side resize explodes
MAX_RESIZED_PIXELS = 64_000_000  # what resizing the short side to the model's size may make


def shape_problem(width: int, height: int, short_side: int | None = None) -> str | None:
    """Why an image of this size cannot be resized safely, or None. Resizing the short side of a
    1 x 1,000,000 px strip to 256 px would make a 256 x 256,000,000 px image (tens of GB)."""
    short, long = min(width, height), max(width, height)
    if short < 1:
        return f"image has no pixels ({width} x {height} px)"
    if long / short > MAX_ASPECT:
        return (
            f"{width:,} x {height:,} px: an aspect ratio of {long / short:,.0f}:1 is too extreme to resize "
            f"(ftgui takes up to {MAX_ASPECT}:1)"
        )
    if short_side and short_side * round(long * short_side / short) > MAX_RESIZED_PIXELS:
        resized = round(long * short_side / short)
        return (
            f"{width:,} x {height:,} px would become {short_side:,} x {resized:,} px at this input size, "
            "too large to resize safely"
        )
    return None
