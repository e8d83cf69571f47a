"""Footer notes, condensed: the per-radius lines of one metric and evaluation said once, numbers side by side.

Every attack unit says what it attacked, carried and proved; an ensemble over four radii and four metrics makes a
hundred such lines. Lines ``<metric> <evaluation> <norm> <eps>: <text>`` whose texts differ only in their numbers
become one line, ``<metric> <evaluation> <norm> 0.25 / 0.5 / 1: 3 / 5 / 9 attacked, ...``, in the order given; any
other line is kept as it is, in place.
"""

from __future__ import annotations

import re

_UNIT_LINE = re.compile(r"^(?P<head>.+) (?P<norm>l2|linf) (?P<eps>[0-9][0-9./e+-]*):? (?P<text>.*)$")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e[+-]?\d+)?(?![\w])")


def condense_notes(lines: list[str]) -> list[str]:
    """The footer lines with the radii of one (metric, evaluation, norm) and one sentence merged."""
    groups: dict[tuple[str, str, str], list[tuple[str, list[str], str]]] = {}
    order: list[tuple[str, ...] | str] = []
    for line in lines:
        found = _UNIT_LINE.match(line)
        if not found:
            order.append(line)
            continue
        text = found["text"]
        key = (found["head"], found["norm"], _NUMBER.sub("#", text))
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append((found["eps"], _NUMBER.findall(text), line))
    out = []
    for item in order:
        if isinstance(item, str):
            out.append(item)
            continue
        head, norm, template = item
        members = groups[item]
        if len(members) == 1:
            out.append(members[0][2])
            continue
        numbers = [" / ".join(values) for values in zip(*(m[1] for m in members), strict=True)]
        radii = " / ".join(m[0] for m in members)
        pieces = template.split("#")
        text = pieces[0] + "".join(n + rest for n, rest in zip(numbers, pieces[1:], strict=True))
        out.append(f"{head} {norm} {radii}: {text}")
    return out
