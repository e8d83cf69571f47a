"""Footer notes: one line per metric, evaluation, norm and sentence, the radii's numbers side by side."""

from __future__ import annotations

from lipsim_bench.report.notes import condense_notes


def test_lines_differing_only_in_numbers_become_one() -> None:
    lines = [
        "m apgd l2 0.25: 3 attacked, 1 flips carried from the smaller radius",
        "m apgd l2 0.5: 7 attacked, 12 flips carried from the smaller radius",
        "m apgd l2 1: 9 attacked, 20 flips carried from the smaller radius",
    ]
    assert condense_notes(lines) == [
        "m apgd l2 0.25 / 0.5 / 1: 3 / 7 / 9 attacked, 1 / 12 / 20 flips carried from the smaller radius"
    ]


def test_other_sentences_norms_and_lines_keep_their_place() -> None:
    lines = [
        "(a) computed with pgd step_size = 0.0625",
        "m apgd l2 0.5: 3 attacked, 2 robust by the project's certificate (not attacked)",
        "m apgd l2 1: 4 attacked, 1 flips carried from the smaller radius",
        "m apgd linf 4/255: 5 attacked, 2 robust by the project's certificate (not attacked)",
        "m apgd l2 2: 6 attacked, 1 robust by the project's certificate (not attacked)",
        "provenance: lipsim-bench 0.1.0",
    ]
    assert condense_notes(lines) == [
        "(a) computed with pgd step_size = 0.0625",
        "m apgd l2 0.5 / 2: 3 / 6 attacked, 2 / 1 robust by the project's certificate (not attacked)",
        "m apgd l2 1: 4 attacked, 1 flips carried from the smaller radius",
        "m apgd linf 4/255: 5 attacked, 2 robust by the project's certificate (not attacked)",
        "provenance: lipsim-bench 0.1.0",
    ]


def test_metrics_and_evaluations_are_never_merged() -> None:
    lines = ["a apgd l2 1: 3 attacked", "b apgd l2 1: 3 attacked", "a pgd l2 1: 3 attacked"]
    assert condense_notes(lines) == lines
