"""Static factors of the bouncing-shapes data: shape, size and grey level per sequence.

Section 4.3 of the paper simulates "a ball (or a square)"; giving each sequence its own
shape, size and grey level adds the content that f should keep and a swap should carry
over. All factors are optional: the defaults (one white ball of radius 3) are the paper's.

Geometry is in pixels of a 32x32 canvas (scaled with the frame, as the polygon is). The
``size`` of every shape is the radius of the disc with the same area, so a square and a
ball of one size light about as many pixels. Shapes keep their orientation: their bodies
do not rotate (infinite moment of inertia), so a square stays axis-aligned and a triangle
points up; their collision bodies are the drawn outlines (pymunk ``Poly`` or ``Circle``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dsvae.errors import DataError

_SQUARE = math.sqrt(math.pi) / 2  # half side of the square with the area of the unit disc
_TRIANGLE = math.sqrt(4 * math.pi / (3 * math.sqrt(3)))  # circumradius, same area
_BAR = math.sqrt(math.pi / 10)  # half height of the 5:2 bar with the area of the unit disc


@dataclass(frozen=True)
class Shape:
    """A shape of unit size: a disc (``vertices`` None) or a convex polygon around (0, 0).

    ``vertices`` are (x, y) with y pointing down, the centroid at the origin, so a body's
    position is the centre of mass of its lit pixels.
    """

    name: str
    vertices: tuple[tuple[float, float], ...] | None = None
    bound: float = 1.0  # farthest point from the centre, in units of size
    inner: float = 1.0  # nearest edge from the centre (the inradius), in units of size

    def scaled(self, size: float) -> list[tuple[float, float]]:
        """The polygon's vertices (x, y) for ``size``."""
        if self.vertices is None:
            raise DataError(f"{self.name} is not a polygon")
        return [(x * size, y * size) for x, y in self.vertices]

    def inside(self, dx: np.ndarray, dy: np.ndarray, size: float) -> np.ndarray:
        """Whether the offsets (dx, dy) from the centre lie inside the shape of ``size``."""
        if self.vertices is None:
            return dx**2 + dy**2 <= size**2
        verts = np.asarray(self.scaled(size), dtype=np.float32)
        ends = np.roll(verts, -1, axis=0)
        turn = np.sign(np.sum(verts[:, 0] * ends[:, 1] - ends[:, 0] * verts[:, 1]))
        inside = np.ones(np.broadcast_shapes(dx.shape, dy.shape), dtype=bool)
        for (ax, ay), (bx, by) in zip(verts, ends, strict=True):
            inside &= turn * ((bx - ax) * (dy - ay) - (by - ay) * (dx - ax)) >= -1e-6
        return inside


def _regular(name: str, corners: int, circumradius: float, start_deg: float) -> Shape:
    angles = [math.radians(start_deg - 360.0 * k / corners) for k in range(corners)]
    vertices = tuple((circumradius * math.cos(a), circumradius * math.sin(a)) for a in angles)
    return Shape(name, vertices, circumradius, circumradius * math.cos(math.pi / corners))


SHAPES: dict[str, Shape] = {
    "ball": Shape("ball"),
    "square": _regular("square", 4, _SQUARE * math.sqrt(2), 45.0),
    "triangle": _regular("triangle", 3, _TRIANGLE, -90.0),  # a corner at the top
    "diamond": _regular("diamond", 4, _SQUARE * math.sqrt(2), 0.0),
    "bar": Shape(
        "bar",
        ((-2.5 * _BAR, -_BAR), (2.5 * _BAR, -_BAR), (2.5 * _BAR, _BAR), (-2.5 * _BAR, _BAR)),
        _BAR * math.sqrt(2.5**2 + 1),
        _BAR,
    ),  # a horizontal rectangle, five wide to two high
}
"""The shapes by name; every one has the area of the disc of its size."""


def _as_tuple(values: Sequence, kind: type) -> tuple:
    return tuple(kind(v) for v in values)


@dataclass(frozen=True)
class StaticFactors:
    """The choices a sequence's content is drawn from, each uniformly and independently.

    ``sizes`` are radii of equal-area discs on the 32x32 canvas; ``greys`` are the pixel
    values 1..255 that a shape is drawn with on the black background.
    """

    shapes: tuple[str, ...] = ("ball",)
    sizes: tuple[float, ...] = (3.0,)
    greys: tuple[int, ...] = (255,)
    bodies: tuple[Shape, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shapes", _as_tuple(self.shapes, str))
        object.__setattr__(self, "sizes", _as_tuple(self.sizes, float))
        object.__setattr__(self, "greys", _as_tuple(self.greys, int))
        for name, values in (("shapes", self.shapes), ("sizes", self.sizes), ("greys", self.greys)):
            if not values:
                raise DataError(f"give at least one value for {name}")
            if len(set(values)) != len(values):
                raise DataError(f"{name} repeats a value: {list(values)}")
        unknown = [s for s in self.shapes if s not in SHAPES]
        if unknown:
            raise DataError(f"unknown shape {unknown[0]!r}; choose from {', '.join(SHAPES)}")
        bad = [s for s in self.sizes if not (math.isfinite(s) and s > 0)]
        if bad:
            raise DataError(f"sizes must be positive numbers of pixels, got {bad[0]}")
        bad = [g for g in self.greys if not 1 <= g <= 255]
        if bad:
            raise DataError(f"grey levels must be in 1..255 (0 is the background), got {bad[0]}")
        object.__setattr__(self, "bodies", tuple(SHAPES[s] for s in self.shapes))

    @property
    def is_paper(self) -> bool:
        """One white ball: the paper's data, simulated exactly as without factors."""
        return self.shapes == ("ball",) and len(self.sizes) == 1 and self.greys == (255,)

    def check_room(self, room: float) -> None:
        """Refuse a shape that cannot start inside the walls (``room`` px on a 32 canvas)."""
        for body in self.bodies:
            for size in self.sizes:
                if body.bound * size >= room:
                    largest = room / body.bound
                    raise DataError(
                        f"a {body.name} of size {size:g} reaches {body.bound * size:.2f} px from "
                        f"its centre, but only {room:.2f} px fit inside the walls at the start; "
                        f"use sizes below {largest:.2f} for a {body.name}"
                    )

    def draw(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """Indices (shape, size, grey) of one sequence's content, uniform over each list."""
        return (
            int(rng.integers(len(self.shapes))),
            int(rng.integers(len(self.sizes))),
            int(rng.integers(len(self.greys))),
        )

    def to_json(self) -> dict:
        return {"shapes": list(self.shapes), "sizes": list(self.sizes), "greys": list(self.greys)}


def parse_list(text: str, kind: type, option: str) -> tuple:
    """``"a,b,c"`` as a tuple of ``kind``; a clear error names the option and the value."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise DataError(f"{option} needs at least one value, got {text!r}")
    try:
        return tuple(kind(item) for item in items)
    except ValueError as err:
        raise DataError(f"{option}: {err}; give comma-separated values, e.g. 3,4.5") from err


def render(shape: Shape, size: float, grey: int, positions: np.ndarray, frame: int) -> np.ndarray:
    """Frames ``(T, frame, frame, 1)`` uint8 of ``shape`` at centres ``positions`` (T, 2).

    Pixel (row, col) is lit when its centre (col + 0.5, row + 0.5) is inside the shape.
    """
    centres = np.arange(frame, dtype=np.float32) + 0.5
    dx = centres[None, None, :] - positions[:, 0, None, None].astype(np.float32)  # (T, 1, W)
    dy = centres[None, :, None] - positions[:, 1, None, None].astype(np.float32)  # (T, H, 1)
    return (shape.inside(dx, dy, size).astype(np.uint8) * np.uint8(grey))[..., None]
