"""The examples figure (examples.png): drawn from a small run kept with --save-adversarial, its printed norms are
the stored perturbations' norms, and a run without stored examples gets one line saying how to get them."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lipsim_bench.cli import main
from lipsim_bench.datasets import create_dataset
from lipsim_bench.errors import BenchError
from lipsim_bench.report.examples import ExampleOptions, collect_examples, perturb_of, target_image
from lipsim_bench.report.examples_figure import examples_figure, to_rgb
from lipsim_bench.run.spec import RunSpec

RUN = ["--metrics", "pixel-l2,convsim-tiny", "--n", "6", "--steps", "3", "--eps", "0.5,1"]
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-"}


def quiet_main(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(argv))
    return code, out.getvalue()


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two cheap metrics on the first 6 bundled triplets, 3 APGD steps, examples kept."""
    folder = tmp_path_factory.mktemp("kept") / "run"
    assert quiet_main(*RUN, "--save-adversarial", "--out", str(folder))[0] == 0
    return folder


def stored_file(run: Path, metric: str, eps: float) -> Path:
    """The adversarial file of a metric's attack unit at eps, found from the records alone (not the code tested)."""
    for path in (run / "records").glob(f"{metric}__apgd__*.json"):
        if json.loads(path.read_text())["threat"]["eps"] == eps:
            return path.with_name(path.name.replace(".json", ".adversarial.safetensors"))
    raise AssertionError(f"no apgd unit of {metric} at {eps}")


def test_plot_draws_the_examples_beside_the_other_figures(kept: Path) -> None:
    code, out = quiet_main("plot", str(kept))
    assert code == 0
    for fmt, magic in MAGIC.items():
        assert (kept / "plots" / f"examples.{fmt}").read_bytes().startswith(magic)
    assert (kept / "plots" / "robustness_curves.png").is_file()
    assert "--save-adversarial" not in out


def test_the_title_names_attack_radius_data_and_n_and_mixed_triplets_come_first(kept: Path) -> None:
    examples = collect_examples(kept, ExampleOptions(count=2))
    assert not isinstance(examples, str) and examples is not None
    assert (examples.attack, examples.norm, examples.n, examples.metrics) == (
        "apgd",
        "l2",
        6,
        ["pixel-l2", "convsim-tiny"],
    )
    assert len(examples.shown) == 2
    assert examples.mixed >= 1  # seeded: the chosen radius has a triplet flipped for one metric, not the other
    assert len({p.flipped for p in examples.shown[0].panels}) == 2  # and it comes first
    title = examples_figure(examples).get_suptitle()
    assert "apgd" in title and "sample / test" in title and "n = 6" in title and "ε = " in title


def test_printed_norms_are_the_stored_perturbations_norms(kept: Path) -> None:
    assert_printed_norms(kept, "ref")


def test_a_run_perturbing_x1_shows_x1_and_its_perturbations_norms(tmp_path: Path) -> None:
    if "perturb" not in RunSpec.__dataclass_fields__:
        pytest.skip("this tree has no --perturb")
    run = tmp_path / "x1"
    assert quiet_main(*RUN, "--perturb", "x1", "--save-adversarial", "--out", str(run))[0] == 0
    assert_printed_norms(run, "x1")


def assert_printed_norms(run: Path, target: str) -> None:
    """Every shown perturbation's printed l2 and l-inf norms are those of the stored input minus the clean one."""
    examples = collect_examples(run, ExampleOptions(count=6))
    assert not isinstance(examples, str) and examples is not None and examples.perturb == target
    fig = examples_figure(examples)
    labels = [ax.get_xlabel() for ax in fig.axes]
    data = create_dataset("sample", "test").head(6)
    position = {str(rec.id): i for i, rec in enumerate(data.records)}
    checked = 0
    for shown in examples.shown:
        for panel in shown.panels:
            if panel.delta is None:
                continue
            tensors = load_file(stored_file(run, panel.metric, panel.from_eps or examples.eps))
            row = tensors["position"].tolist().index(position[shown.id])
            delta = (tensors["x_adv"][row].double() - data[position[shown.id]][target].double()).flatten()
            l2, linf = f"{float(delta.norm()):.3f}", f"{float(delta.abs().max()):.3f}"
            printed = [label for label in labels if "\\|_2$ = " in label]
            assert any(
                re.search(rf"_2\$ = {re.escape(l2)}\n.*_\\infty\$ = {re.escape(linf)}", label) for label in printed
            ), (panel.metric, shown.id, l2, linf, printed)
            checked += 1
    assert checked > 0  # some flip at the shown radius: otherwise this test would check nothing


def test_a_file_that_does_not_match_its_rows_is_refused_in_one_line(kept: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(kept, copy)
    path = stored_file(copy, "convsim-tiny", 0.5)
    tensors = load_file(path)
    if not len(tensors["position"]):
        pytest.skip("nothing attacked at 0.5")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    save_file({"position": tensors["position"], "x_adv": (tensors["x_adv"] + 0.01).clamp(0, 1)}, str(path), metadata)
    with pytest.raises(BenchError, match=r"rows stored .*delete the file and rerun with --save-adversarial"):
        collect_examples(copy, ExampleOptions(count=6, eps=0.5))
    figures = tmp_path / "figures"
    code, out = quiet_main("plot", str(copy), "--eps", "0.5", "--examples", "6", "--out", str(figures))
    assert code == 0 and [line for line in out.splitlines() if "examples.png" in line][0].startswith("examples.png not")
    assert (figures / "robustness_curves.png").is_file() and not (figures / "examples.png").exists()  # others drawn


def test_a_run_without_stored_examples_gets_one_line_and_the_other_figures(tmp_path: Path) -> None:
    run = tmp_path / "plain"
    assert quiet_main(*RUN, "--out", str(run))[0] == 0
    code, out = quiet_main("plot", str(run))
    assert code == 0
    hints = [line for line in out.splitlines() if "--save-adversarial" in line]
    assert len(hints) == 1 and hints[0].startswith("examples.png:")
    assert not (run / "plots" / "examples.png").exists()
    assert (run / "plots" / "robustness_curves.png").is_file()


def test_plot_options_choose_the_radius_or_no_figure_and_refuse_a_radius_not_kept(kept: Path, tmp_path: Path) -> None:
    examples = collect_examples(kept, ExampleOptions(count=1, eps=1.0))
    assert not isinstance(examples, str) and examples is not None and examples.eps == 1.0
    assert quiet_main("plot", str(kept), "--out", str(tmp_path / "none"), "--examples", "0")[0] == 0
    assert not (tmp_path / "none" / "examples.png").exists()
    with pytest.raises(BenchError, match=r"--eps 2: apgd kept no examples there; it has l2 0.5, l2 1"):
        collect_examples(kept, ExampleOptions(eps=2.0))


def test_other_targets_show_the_input_that_was_perturbed() -> None:
    images = {k: torch.full((3, 4, 4), v) for k, v in (("ref", 0.1), ("x0", 0.2), ("x1", 0.3))}
    record = {"unit": {"settings": {}}, "config": {"perturb": "x0"}}
    assert perturb_of(record, torch.zeros(3, 4, 4), 3) == "x0"
    assert torch.equal(target_image(images, "x0"), images["x0"])
    stacked = torch.zeros(9, 4, 4)
    assert perturb_of({"unit": {"settings": {}}}, stacked, 3) == "all"
    assert target_image(images, "all").shape == (9, 4, 4)
    assert to_rgb(stacked).shape == (4, 3 * 4 + 2, 3)  # the three images side by side, a 1-pixel gap each


def test_triplets_flipped_for_some_metrics_but_not_others_come_first() -> None:
    """Hand-built rows of two metrics over four triplets: c is mixed, a flipped by both, b by neither, d was
    wrong for one metric before the attack; the order is c, a, b, d and one triplet is mixed."""
    import pandas as pd

    from lipsim_bench.report.examples import AttackUnit, ranked

    ids = ["a", "b", "c", "d"]

    def unit(metric: str, flipped: list[bool]) -> AttackUnit:
        rows = pd.DataFrame({"id": ids, "flipped": flipped, "attacked": True, "carried": False}).set_index("id")
        return AttackUnit({"unit": {"metric": metric}}, rows, Path(f"{metric}.json"))

    units = [unit("m1", [True, False, True, False]), unit("m2", [True, False, False, False])]
    cleans = {
        "m1": pd.DataFrame({"id": ids, "correct": [True, True, True, False]}).set_index("id"),
        "m2": pd.DataFrame({"id": ids, "correct": True}).set_index("id"),
    }
    assert ranked(units, cleans) == (["c", "a", "b", "d"], 1)
