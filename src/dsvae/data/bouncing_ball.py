"""The bouncing ball of Li & Mandt (2018), Sec. 4.3, following Fraccaro et al. (2017).

A ball of radius 3 moves without gravity or friction inside an irregular polygon and bounces
off its walls fully elastically; the polygon makes the dynamics chaotic. Physics is pymunk,
rasterisation is numpy (no window).

Coordinates: pymunk space units are pixels of the frame, x = column and y = row (y points
down, as in the image). Pixel (row, col) covers ``[col, col + 1) x [row, row + 1)`` and is
lit when its centre ``(col + 0.5, row + 0.5)`` lies within the radius of the ball's centre,
so the stored ``positions`` (x, y) match the mean of the lit pixels' (col + 0.5, row + 0.5).

Bouncing shapes: with :class:`~dsvae.data.shapes.StaticFactors` each sequence gets its own
shape, size and grey level (its content), drawn from a random stream of its own, so the
trajectories are those of the same seed without factors; the default is the paper's ball.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from dsvae.data.shapes import SHAPES, Shape, StaticFactors, render
from dsvae.data.storage import DatasetWriter
from dsvae.errors import DataError

if TYPE_CHECKING:  # pymunk is imported where the physics runs, not with dsvae.data
    import pymunk

POLYGON_32 = ((3, 1), (1, 15), (8, 30), (25, 30), (30, 8), (15, 1))
"""Walls (x, y) on a 32x32 canvas, as in Fraccaro et al. (2017)."""
CENTRE_32 = (16.0, 16.0)
START_JITTER_32 = 2.0
"""The start position is uniform within this many pixels (x and y) of the centre."""
SOURCE = "simulated with pymunk (Fraccaro et al. 2017 setup; Li & Mandt 2018 Sec. 4.3)"
LICENCE = "generated data, no third-party content"
_SLOP = 1 / 30  # allowed overlap with a wall, as a fraction of the radius (0.1 px at 32 px)
_BLOCK = 256  # sequences simulated and written at a time by make_bouncing_ball_dataset


def _substeps(max_speed: float, dt: float, radius: float) -> int:
    """Physics steps per frame so that a body moves at most ``radius * _SLOP`` per step.

    ``radius`` is the body's inradius (the ball's radius; a polygon's nearest edge).

    The ball then overlaps a wall by at most that much before it bounces, which pymunk
    tolerates (collision slop) instead of pushing it out, so between bounces it moves at
    exactly its speed and it can never tunnel through a wall.
    """
    return max(1, math.ceil(max_speed * dt / (_SLOP * radius)))


def _wall_distance(point: tuple[float, float], polygon: np.ndarray) -> float:
    """Smallest distance from ``point`` to the polygon's edges."""
    p = np.asarray(point, dtype=np.float64)
    a, b = polygon, np.roll(polygon, -1, axis=0)  # (E, 2) edge ends
    ab = b - a
    t = np.clip(np.einsum("ed,ed->e", p - a, ab) / np.einsum("ed,ed->e", ab, ab), 0.0, 1.0)
    return float(np.min(np.linalg.norm(p - (a + t[:, None] * ab), axis=1)))


def _check_args(
    n: int,
    length: int,
    size: int,
    seed: int,
    radius: float,
    speed_range: tuple[float, float],
    dt: float,
    factors: StaticFactors | None = None,
) -> None:
    if not isinstance(seed, int) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    if n < 1 or length < 1:
        raise DataError(f"need at least 1 sequence of 1 frame, got n={n}, length={length}")
    if size < 8:
        raise DataError(f"size must be at least 8 pixels, got {size}")
    low, high = speed_range
    if not 0 < low <= high:
        raise DataError(f"speed_range must be (low, high) with 0 < low <= high, got {speed_range}")
    if dt <= 0:
        raise DataError(f"dt must be positive, got {dt}")
    room = _wall_distance(CENTRE_32, np.array(POLYGON_32, float)) - START_JITTER_32 * math.sqrt(2)
    if factors is not None and not factors.is_paper:
        factors.check_room(room)
    elif not 0 < radius < room:
        raise DataError(
            f"radius must be in (0, {room:.2f}) to start inside the walls, got {radius}"
        )


def _make_space(polygon: np.ndarray, radius: float) -> pymunk.Space:
    """An empty, gravity-free, undamped space walled in by ``polygon`` (slop from ``radius``)."""
    import pymunk

    space = pymunk.Space()
    space.gravity = (0.0, 0.0)
    space.damping = 1.0
    space.collision_slop = _SLOP * radius
    for a, b in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        wall = pymunk.Segment(space.static_body, tuple(a), tuple(b), 0.0)
        wall.elasticity, wall.friction = 1.0, 0.0
        space.add(wall)
    return space


def _add_body(
    space: pymunk.Space, shape: Shape, size: float, position: np.ndarray, velocity: np.ndarray
) -> pymunk.Body:
    """A frictionless, fully elastic body (elasticity 1 on body and walls).

    A ball has a disc's moment of inertia; a polygon never rotates (infinite moment).
    """
    import pymunk

    if shape.vertices is None:
        body = pymunk.Body(1.0, pymunk.moment_for_circle(1.0, 0.0, size))
        outline = pymunk.Circle(body, size)
    else:
        body = pymunk.Body(1.0, float("inf"))
        outline = pymunk.Poly(body, shape.scaled(size))
    body.position = tuple(position)
    body.velocity = tuple(velocity)
    outline.elasticity, outline.friction = 1.0, 0.0
    space.add(body, outline)
    return body


def _random_start(
    rng: np.random.Generator, scale: float, speed_range: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Position near the centre, uniform direction, uniform speed: ``(2,)`` and ``(2,)``."""
    jitter = rng.uniform(-START_JITTER_32, START_JITTER_32, size=2)
    position = (np.array(CENTRE_32) + jitter) * scale
    angle = rng.uniform(0.0, 2.0 * math.pi)
    speed = rng.uniform(*speed_range) * scale
    return position, speed * np.array([math.cos(angle), math.sin(angle)])


def _trajectory(
    rng: np.random.Generator,
    length: int,
    scale: float,
    radius: float,
    speed_range: tuple[float, float],
    dt: float,
    shape: Shape = SHAPES["ball"],
) -> np.ndarray:
    """Body centres ``(length, 2)`` at times 0, dt, 2 dt, ... from a random start.

    ``radius`` is the shape's size on the 32 px canvas (a ball's radius).
    """
    size = radius * scale
    inner = shape.inner * size
    space = _make_space(np.array(POLYGON_32, dtype=np.float64) * scale, inner)
    body = _add_body(space, shape, size, *_random_start(rng, scale, speed_range))
    k = _substeps(speed_range[1] * scale, dt, inner)
    out = np.empty((length, 2), dtype=np.float64)
    out[0] = body.position
    for t in range(1, length):
        for _ in range(k):
            space.step(dt / k)
        out[t] = body.position
    return out


def rasterise(positions: np.ndarray, size: int, radius: float) -> np.ndarray:
    """Binary frames ``(..., size, size, 1)`` in {0, 255} of balls at ``positions`` (..., 2)."""
    centres = np.arange(size, dtype=np.float32) + 0.5  # (W,) pixel centres
    x = positions[..., 0, None, None].astype(np.float32)  # (..., 1, 1)
    y = positions[..., 1, None, None].astype(np.float32)
    inside = (centres[None, :] - x) ** 2 + (centres[:, None] - y) ** 2 <= radius**2  # (..., H, W)
    return (inside.astype(np.uint8) * 255)[..., None]


def _simulate_range(
    start: int,
    stop: int,
    length: int,
    size: int,
    seed: int,
    radius: float,
    speed_range: tuple[float, float],
    dt: float,
    progress: tqdm,
    factors: StaticFactors | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames, positions and factor indices (n, 3) of sequences ``start .. stop - 1``.

    Sequence i depends on (seed, i) only; its content is drawn from a stream of its own.
    """
    factors = factors or StaticFactors(sizes=(radius,))
    scale = size / 32.0
    positions = np.empty((stop - start, length, 2), dtype=np.float32)  # (n, T, 2)
    frames = np.empty((stop - start, length, size, size, 1), dtype=np.uint8)  # (n, T, H, W, 1)
    content = np.zeros((stop - start, 3), dtype=np.int64)  # (n, [shape, size, grey])
    for j, i in enumerate(range(start, stop)):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,)))
        if not factors.is_paper:
            content[j] = factors.draw(
                np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i, 1)))
            )
        shape, r, grey = (
            factors.bodies[content[j, 0]],
            factors.sizes[content[j, 1]],
            factors.greys[content[j, 2]],
        )
        positions[j] = _trajectory(rng, length, scale, r, speed_range, dt, shape)
        frames[j] = render(shape, r * scale, grey, positions[j], size)
        progress.update(1)
    return frames, positions, content


def simulate_bouncing_ball(
    n: int,
    length: int,
    *,
    size: int = 32,
    seed: int = 0,
    radius: float = 3.0,
    speed_range: tuple[float, float] = (10.0, 15.0),
    dt: float = 0.2,
    show_progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate ``n`` sequences of ``length`` frames (Li & Mandt 2018, Sec. 4.3).

    Returns uint8 frames ``(n, length, size, size, 1)`` in {0, 255} and float32 ball centres
    ``(n, length, 2)`` as (x, y) pixel coordinates; frame t shows time ``t * dt``. The start
    is uniform within 2 px of the centre, the direction uniform, the speed uniform in
    ``speed_range``. ``radius`` and ``speed_range`` are in units of a 32 px canvas: for other
    sizes the polygon, radius and speed all scale by ``size / 32``, so only resolution
    changes. Sequence i depends only on ``(seed, i)``, not on ``n``.
    """
    frames, positions, _ = simulate_bouncing_shapes(
        n,
        length,
        StaticFactors(sizes=(radius,)),
        size=size,
        seed=seed,
        speed_range=speed_range,
        dt=dt,
        show_progress=show_progress,
    )
    return frames, positions


def simulate_bouncing_shapes(
    n: int,
    length: int,
    factors: StaticFactors,
    *,
    size: int = 32,
    seed: int = 0,
    speed_range: tuple[float, float] = (10.0, 15.0),
    dt: float = 0.2,
    show_progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bouncing shapes: each sequence's shape, size and grey level drawn from ``factors``.

    Returns frames and positions as :func:`simulate_bouncing_ball` does (frames in
    {0, grey}), and int64 ``(n, 3)`` indices into ``factors.shapes``, ``factors.sizes`` and
    ``factors.greys``. The trajectories depend on the shape and size only through the
    collisions: the start, direction and speed are those of the same seed without factors.
    """
    radius = factors.sizes[0]
    _check_args(n, length, size, seed, radius, speed_range, dt, factors)
    with tqdm(total=n, desc="bouncing shapes", unit="seq", disable=not show_progress) as bar:
        return _simulate_range(0, n, length, size, seed, radius, speed_range, dt, bar, factors)


def make_bouncing_ball_dataset(
    out_dir: str | os.PathLike,
    n: int = 5000,
    length: int = 30,
    size: int = 32,
    seed: int = 0,
    overwrite: bool = False,
    show_progress: bool = False,
    factors: StaticFactors | None = None,
) -> Path:
    """Simulate a bouncing-ball data set and write it to ``out_dir``; return the folder.

    The defaults are the paper's: 5,000 sequences of 30 frames at 32x32. Sequences are
    simulated and written in blocks, so memory stays small whatever ``n`` is. Labels:
    ``positions`` float32 ``(N, T, 2)``; with ``factors`` (bouncing shapes) also ``shape``
    (index into meta's ``factors.shapes``), ``size`` (pixels of the frame) and ``grey``
    per sequence. Every argument is checked before anything is written.
    """
    factors = factors or StaticFactors()
    radius, speed_range, dt = factors.sizes[0], (10.0, 15.0), 0.2
    _check_args(n, length, size, seed, radius, speed_range, dt, factors)
    positions = np.empty((n, length, 2), dtype=np.float32)  # (N, T, 2)
    content = np.empty((n, 3), dtype=np.int64)  # (N, [shape, size, grey])
    shape = (length, size, size, 1)
    with (
        DatasetWriter(out_dir, n, shape, np.uint8, overwrite=overwrite) as writer,
        tqdm(total=n, desc="bouncing shapes", unit="seq", disable=not show_progress) as bar,
    ):
        for start in range(0, n, _BLOCK):
            stop = min(n, start + _BLOCK)
            args = (length, size, seed, radius, speed_range, dt, bar, factors)
            frames, positions[start:stop], content[start:stop] = _simulate_range(start, stop, *args)
            writer.write(start, frames)
        labels = {"positions": positions}
        if not factors.is_paper:
            scale = size / 32.0
            labels["shape"] = content[:, 0]
            labels["size"] = np.asarray(factors.sizes, np.float32)[content[:, 1]] * scale
            labels["grey"] = np.asarray(factors.greys, np.uint8)[content[:, 2]]
        meta = _meta(n, length, size, seed, speed_range, dt, factors)
        return writer.finish(labels, meta)


def _meta(
    n: int,
    length: int,
    size: int,
    seed: int,
    speed_range: tuple[float, float],
    dt: float,
    factors: StaticFactors,
) -> dict:
    scale = size / 32.0
    radius = factors.sizes[0]
    inner = min(body.inner * r for body in factors.bodies for r in factors.sizes)
    meta = {
        "name": "bouncing-ball" if factors.is_paper else "bouncing-shapes",
        "source": SOURCE,
        "seed": seed,
        "licence": LICENCE,
        "num_sequences": n,
        "length": length,
        "simulation": {
            "canvas": [size, size],
            "polygon": [[x * scale, y * scale] for x, y in POLYGON_32],
            "radius": radius * scale,
            "speed_range": [s * scale for s in speed_range],
            "dt": dt,
            "substeps": _substeps(speed_range[1] * scale, dt, inner * scale),
            "start": f"uniform within {START_JITTER_32 * scale} px of "
            f"({CENTRE_32[0] * scale}, {CENTRE_32[1] * scale}), uniform direction",
        },
        "labels": {
            "positions": "centre (x, y) of the ball or shape in pixels; x = column, y = row; "
            "pixel (row, col) has centre (col + 0.5, row + 0.5)"
        },
    }
    if not factors.is_paper:
        meta["factors"] = {
            **factors.to_json(),
            "sizes_px": [r * scale for r in factors.sizes],
            "drawn": "uniformly and independently per sequence",
            "size": "radius of the disc of equal area, on the 32 px canvas",
            "rotation": "none: shapes keep their orientation (infinite moment of inertia)",
        }
        meta["simulation"].pop("radius")
        meta["labels"].update(
            shape="index into factors.shapes, per sequence",
            size="size in pixels of the frame (radius of the equal-area disc), per sequence",
            grey="pixel value the shape is drawn with, per sequence",
        )
    return meta
