"""A metric's stated conventions: what ``embed`` does to its [0, 1] input, how it resizes, what the distance is,
and which official package and version it mirrors.

Two adapters of the "same" published metric can disagree by a normalisation, a resize or a swapped argument and
still look fine; a stated record makes such a difference visible. It is given once, at registration
(``register_metric(..., conventions=Conventions(...))``), shown by ``run_bench.py list`` and stored in every result
record. The weights are not repeated here: the registry's ``weights`` text and fingerprint identify them already.
It is text about the code, not a setting: the adapter's source hash (in every result key) already covers it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from lipsim_bench.metrics.errors import MetricError

#: What ``list`` shows and records store for a metric registered without conventions (a plugin may omit them).
NOT_STATED = "not stated"
#: ``resize`` of an adapter that takes any image size as it is.
NO_RESIZE = "none: resolution-agnostic"
#: ``mirrors`` of the project's own models (no official package to match).
THIS_PROJECT = "this project"


@dataclass(frozen=True)
class Conventions:
    """What an adapter does, in words a reader can check against the official package (no field may be empty).

    ``input``: what ``embed`` maps its input to before the network (e.g. "x - 0.5", "[-1, 1] then LPIPS
    ScalingLayer", "CLIP mean/std"); ``resize``: target size, interpolation, antialias, crop, or
    :data:`NO_RESIZE`; ``distance``: what is compared and how (e.g. "1 - cos of encode_image");
    ``symmetric``: whether ``distance(a, b) == distance(b, a)`` (if not, ``distance`` says which argument is the
    reference: evaluations pass the reference first); ``mirrors``: the official package, version and call it
    reproduces, or :data:`THIS_PROJECT`; ``input_range``: what ``embed`` receives (always [0, 1] here).
    """

    input: str
    resize: str
    distance: str
    mirrors: str
    symmetric: bool = True
    input_range: str = "[0, 1]"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "symmetric":
                if not isinstance(value, bool):
                    raise MetricError(f"Conventions.symmetric must be True or False, got {value!r}")
            elif not isinstance(value, str) or not value.strip():
                raise MetricError(
                    f"Conventions.{f.name} must be a non-empty text, got {value!r}; say what the adapter does"
                )

    def as_dict(self) -> dict[str, str | bool]:
        """The record's form (JSON-ready, field names as keys)."""
        return asdict(self)

    def summary(self) -> str:
        """One line for ``list``: input map, resize, distance (with its symmetry), official source."""
        given = "" if self.input_range == "[0, 1]" else f"{self.input_range} -> "
        symmetry = "" if self.symmetric else " (asymmetric)"
        return (
            f"input: {given}{self.input} | resize: {self.resize} | {self.distance}{symmetry} | mirrors: {self.mirrors}"
        )


def convention_record(conventions: Conventions | None, weights: str) -> dict[str, str | bool | None]:
    """What a result record stores: every field (each :data:`NOT_STATED` when the metric states none, ``symmetric``
    None) and the registry's ``weights`` text (the weights' fingerprint is in the record's key)."""
    if conventions is None:
        record: dict[str, str | bool | None] = {f.name: NOT_STATED for f in fields(Conventions)}
        record["symmetric"] = None
    else:
        record = dict(conventions.as_dict())
    return {**record, "weights": weights}


def resize_text(size: int, interpolation: str, *, antialias: bool, crop: str = "no crop") -> str:
    """The ``resize`` field of an adapter that resizes every input to ``size`` x ``size`` (identity at that size)."""
    alias = "antialiased" if antialias else "no antialias"
    return f"{interpolation} to {size}x{size}, {alias}, {crop} (non-square squashed)"
