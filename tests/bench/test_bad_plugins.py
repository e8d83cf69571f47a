"""Metric plugins that misbehave end in one line naming the metric and what it returned, exit 2."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from lipsim_bench.cli import main
from lipsim_bench.metrics import PerceptualMetric, register_metric, unregister_metric

NAME = "test-bad-plugin"


def _mean(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=(2, 3)) + 0.1


@pytest.fixture
def plugin() -> Iterator[Callable[..., str]]:
    """Register a toy metric from an ``embed`` function and class attributes; unregistered afterwards."""
    registered: list[str] = []

    def make(embed: Callable, **attrs: object) -> str:
        register_metric(NAME)(type("BadMetric", (PerceptualMetric,), {"embed": lambda self, x: embed(x), **attrs}))
        registered.append(NAME)
        return NAME

    yield make
    for name in registered:
        unregister_metric(name)


def _run(capsys: pytest.CaptureFixture, night_tree: Path, out: Path, *evaluations: str) -> tuple[int, str]:
    argv = ["--metrics", NAME, "--dataset", f"night:{night_tree}", "--out", str(out), "--batch-size", "4"]
    argv += ["--evaluations", ",".join(evaluations) or "natural", "--eps", "0.5", "--steps", "2"]
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def _one_line(code: int, err: str) -> str:
    assert code == 2, err
    lines = [line[line.index("error: ") :] for line in err.replace("\r", "\n").splitlines() if "error: " in line]
    assert len(lines) == 1 and "Traceback" not in err, err  # progress bars share the stream; one error line
    return lines[0]


def _raises(x: torch.Tensor) -> torch.Tensor:
    raise RuntimeError("CUDA kernel exploded")


BAD_EMBEDS = [
    (_raises, "embed raised RuntimeError: CUDA kernel exploded"),
    (lambda x: _mean(x)[:-1], "embed returned shape (11, 3) for a batch of 12 images; it must return (N, D)"),
    (lambda x: _mean(x).sum(dim=1), "embed returned shape (12,) for a batch of 12 images; it must return (N, D)"),
    (lambda x: _mean(x).tolist(), "embed returned list for a batch of 12 images; it must return a tensor (N, D)"),
    (lambda x: _mean(x).numpy(), "embed returned ndarray for a batch of 12 images"),
    (lambda x: torch.tensor(1.0), "embed returned shape () for a batch of 12 images"),
]


@pytest.mark.parametrize(
    ("embed", "message"), BAD_EMBEDS, ids=["raises", "short-batch", "1-D", "list", "numpy", "scalar"]
)
def test_bad_embed_is_one_line_naming_the_metric(
    capsys, night_tree: Path, tmp_path: Path, plugin, embed, message: str
) -> None:
    plugin(embed)
    line = _one_line(*_run(capsys, night_tree, tmp_path / "r"))
    assert f"metric {NAME!r}" in line and message in line


def test_bad_distance_shape_is_one_line(capsys, night_tree: Path, tmp_path: Path, plugin) -> None:
    plugin(_mean, distance=lambda self, a, b: (a - b).abs())  # (N, D), not (N,)
    line = _one_line(*_run(capsys, night_tree, tmp_path / "r"))
    assert f"metric {NAME!r}: distance returned shape (4, 3) for a batch of 4 pairs; it must return (N,)" in line


@pytest.mark.parametrize("evaluation", ["apgd", "pgd", "direct"])
def test_detached_embedding_under_attack_is_one_line(
    capsys, night_tree: Path, tmp_path: Path, plugin, evaluation: str
) -> None:
    """A detached embed has no gradient: without the check the attack moves nothing and the robust score is the clean one."""
    plugin(lambda x: _mean(x).detach())
    extra = ("--set", "direct.eps=0.5") if evaluation == "direct" else ()
    code = main(
        [
            "--metrics",
            NAME,
            "--dataset",
            f"night:{night_tree}",
            "--out",
            str(tmp_path / "r"),
            "--batch-size",
            "4",
            "--evaluations",
            evaluation,
            "--eps",
            "0.5",
            "--steps",
            "2",
            *extra,
        ]
    )
    line = _one_line(code, capsys.readouterr().err)
    assert f"metric {NAME!r}: embed returned a tensor without gradient" in line


@pytest.mark.parametrize(
    "bound", [-1.0, 0.0, float("nan"), float("inf"), "1"], ids=["negative", "zero", "nan", "inf", "text"]
)
def test_bad_lipschitz_bound_is_one_line(capsys, night_tree: Path, tmp_path: Path, plugin, bound: object) -> None:
    plugin(_mean, lipschitz=bound)
    line = _one_line(*_run(capsys, night_tree, tmp_path / "r", "certified"))
    assert f"metric {NAME!r}: Lipschitz bound {bound!r} for 224x224 images; it must be a positive finite number" in line


def test_bad_lipschitz_bound_is_caught_by_the_attack_check(night_tree: Path, plugin) -> None:
    """check_certificate (every flip against the certified radius) refuses a nonsense bound instead of passing it."""
    from lipsim_bench.errors import BenchError
    from lipsim_bench.evaluations.attack import check_certificate
    from lipsim_bench.evaluations.base import EmbeddedBatch

    metric = type("Neg", (PerceptualMetric,), {"embed": lambda self, x: _mean(x), "lipschitz": -2.0})()
    e = torch.rand(2, 3)
    item = EmbeddedBatch(
        {"ref": torch.zeros(2, 3, 8, 8), "id": ["a", "b"], "p": torch.ones(2)},
        e,
        e.flip(0),
        e,
        torch.ones(2),
        torch.zeros(2),
    )
    with pytest.raises(BenchError, match="metric 'neg': Lipschitz bound -2.0 for 8x8 images"):
        check_certificate(metric, item, torch.tensor([True, False]), "l2", torch.ones(2, dtype=torch.float64), "neg")


def test_good_plugin_still_runs_every_path(capsys, night_tree: Path, tmp_path: Path, plugin) -> None:
    plugin(_mean, lipschitz=1.0)
    code, err = _run(capsys, night_tree, tmp_path / "r", "natural", "apgd", "certified", "direct")
    assert code == 0, err


# -- a plugin cannot take a built-in's name (and silently its column) ---------------------------------------

from lipsim_bench.attacks import ATTACKS, list_attacks  # noqa: E402
from lipsim_bench.evaluations import EVALUATIONS, list_evaluations  # noqa: E402

BUILTIN_EVALUATIONS = list_evaluations()  # natural, certified, direct, smoothing*, and one per built-in attack
BUILTIN_ATTACKS = list_attacks()

EVALUATION_PLUGIN = """
from lipsim_bench.evaluations import Evaluation, Kind, register_evaluation

@register_evaluation
class Mine(Evaluation):
    name = "{name}"
    kind = Kind.CLEAN
    description = "a plugin evaluation that takes a built-in's name"

    def run(self, metric, batches, ctx):
        return None
"""

ATTACK_ON_NAME = """
from lipsim_bench.attacks import Attack, register_attack

@register_attack
class Mine(Attack):
    name = "{name}"

    def perturb(self, model, x, y):
        return x
"""


@pytest.mark.parametrize("name", BUILTIN_EVALUATIONS)
def test_a_plugin_evaluation_cannot_take_a_builtin_name(capsys, tmp_path: Path, name: str) -> None:
    """Each built-in evaluation (attack evaluations included): the plugin is refused at import, naming both."""
    before = EVALUATIONS.get(name)
    plugin = tmp_path / f"eval_{name.replace('-', '_')}.py"
    plugin.write_text(EVALUATION_PLUGIN.format(name=name))
    code = main(
        [
            "--plugin",
            str(plugin),
            "--metrics",
            "pixel-l2",
            "--n",
            "2",
            "--evaluations",
            "natural",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    line = _one_line(code, capsys.readouterr().err)
    assert f"'{name}'" in line and str(plugin) in line and "give yours another name" in line, line
    assert EVALUATIONS.get(name) is before and not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", sorted(set(BUILTIN_EVALUATIONS) | set(BUILTIN_ATTACKS)))
def test_a_plugin_attack_cannot_take_a_builtin_name(capsys, tmp_path: Path, name: str) -> None:
    """A built-in attack's name, or a built-in evaluation's (the attack's evaluation would be hidden by it)."""
    plugin = tmp_path / f"attack_{name.replace('-', '_')}.py"
    plugin.write_text(ATTACK_ON_NAME.format(name=name))
    attacks, evaluations = ATTACKS.names(), list_evaluations()
    code = main(
        [
            "--plugin",
            str(plugin),
            "--metrics",
            "pixel-l2",
            "--n",
            "2",
            "--evaluations",
            "natural",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    line = _one_line(code, capsys.readouterr().err)
    assert f"attack '{name}'" in line and str(plugin) in line and "another name" in line, line
    assert ATTACKS.names() == attacks and list_evaluations() == evaluations  # nothing registered


def test_an_attack_registered_after_an_evaluation_of_its_name_fails_every_read(tmp_path: Path) -> None:
    """Two plugins in that order: the clash is one error on the next read, not a silently hidden attack."""
    from lipsim_bench.errors import BenchError
    from lipsim_bench.plugins import load_plugin_file

    first, second = tmp_path / "clash_eval.py", tmp_path / "clash_attack.py"
    first.write_text(EVALUATION_PLUGIN.format(name="test-clash"))
    second.write_text(
        "from lipsim_bench.attacks import ATTACKS, Attack\n"
        "class Late(Attack):\n    name = 'test-clash'\n    def perturb(self, model, x, y):\n        return x\n"
        "ATTACKS._entries['test-clash'] = Late  # past the reservation, as a registry read in another order would\n"
    )
    try:
        load_plugin_file(first)
        load_plugin_file(second)
        with pytest.raises(
            BenchError, match="attack 'test-clash' from Late .* would be hidden by it; give the attack another name"
        ):
            list_evaluations()
    finally:
        EVALUATIONS.remove("test-clash")
        ATTACKS.remove("test-clash")


def test_a_plugin_under_a_new_name_still_registers(tmp_path: Path) -> None:
    plugin = tmp_path / "eval_new_name.py"
    plugin.write_text(EVALUATION_PLUGIN.format(name="test-new-name"))
    from lipsim_bench.plugins import load_plugin_file

    try:
        load_plugin_file(plugin)
        assert "test-new-name" in list_evaluations()
    finally:
        EVALUATIONS.remove("test-new-name")


@pytest.mark.parametrize(
    ("kind", "source"),
    [
        (
            "metric",
            "from lipsim_bench.metrics import PerceptualMetric, register_metric\n"
            "@register_metric('lipsim-tiny')\nclass Mine(PerceptualMetric):\n    def embed(self, x):\n        return x.mean(dim=(2, 3))\n",
        ),
        (
            "dataset",
            "from lipsim_bench.datasets import register_dataset\n"
            "@register_dataset('sample', splits=('test',), default_split='test', needs_root=False, description='mine')\n"
            "def build(root, split):\n    raise SystemExit\n",
        ),
        (
            "preset",
            "from lipsim_bench.protocol.presets import Preset, register_preset\nregister_preset(Preset('paper', 'mine', {}))\n",
        ),
    ],
)
def test_every_other_registry_refuses_a_builtin_name_naming_the_plugin(
    capsys, tmp_path: Path, kind: str, source: str
) -> None:
    plugin = tmp_path / f"takes_{kind}.py"
    plugin.write_text(source)
    code = main(
        [
            "--plugin",
            str(plugin),
            "--metrics",
            "pixel-l2",
            "--n",
            "2",
            "--evaluations",
            "natural",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    line = _one_line(code, capsys.readouterr().err)
    assert line.startswith(f"error: {kind} ") and "is built in (" in line and f"({plugin}) cannot replace it" in line, (
        line
    )


NO_RUN = (
    "from lipsim_bench.evaluations import Evaluation, Kind, register_evaluation\n@register_evaluation\nclass NoRun(Evaluation):\n"
    "    name = 'test-no-run'\n    kind = Kind.CLEAN\n"
)
WITH_OPTIONS = (
    "from dataclasses import dataclass\nfrom lipsim_bench.evaluations import Evaluation, Kind, register_evaluation\n"
    "@register_evaluation\nclass Opt(Evaluation):\n    name = 'test-options'\n    kind = Kind.CLEAN\n    sweeps = {sweeps}\n"
    "{options}\n    def run(self, metric, batches, ctx):\n        return None\n"
)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (NO_RUN, "does not define run(metric, batches, ctx)"),
        (
            WITH_OPTIONS.format(
                sweeps="()", options="    @dataclass(frozen=True)\n    class Options:\n        level: int"
            ),
            "option 'level' has no default; give every option a default",
        ),
        (
            WITH_OPTIONS.format(sweeps="()", options="    class Options:\n        level = 1"),
            "Options must be a dataclass",
        ),
        (
            WITH_OPTIONS.format(
                sweeps="('sigma',)", options="    @dataclass(frozen=True)\n    class Options:\n        level: int = 1"
            ),
            "sweeps names 'sigma', which is not one of its options (level)",
        ),
        (
            "from lipsim_bench.attacks import Attack, register_attack\n@register_attack\nclass NoPerturb(Attack):\n    name = 'test-no-perturb'\n",
            "does not define perturb; implement it",
        ),
        (
            "from lipsim_bench.attacks import register_attack\n@register_attack\nclass NotAnAttack:\n    name = 'test-not-attack'\n",
            "@register_attack takes an Attack subclass",
        ),
    ],
    ids=[
        "no-run",
        "option-without-default",
        "options-not-dataclass",
        "sweep-not-an-option",
        "attack-without-perturb",
        "not-an-attack",
    ],
)
def test_a_plugin_that_would_fail_later_is_refused_when_it_registers(
    capsys, tmp_path: Path, source: str, message: str
) -> None:
    """`list`, a run without --set, or the first batch would have raised a traceback; now the plugin's import is one line."""
    plugin = tmp_path / "half_done.py"
    plugin.write_text(source)
    code = main(["list", "--plugin", str(plugin)])
    line = _one_line(code, capsys.readouterr().err)
    assert message in line and str(plugin) in line or message in line and "half_done" in line, line
    assert not any(n.startswith("test-") for n in list_evaluations())


def test_a_plugin_fixed_after_a_failed_import_loads_and_an_edited_one_asks_for_a_restart(tmp_path: Path) -> None:
    """In one Python session (a notebook): a re-import of the same file replaces its own half-registered
    entries; a file edited after it loaded would run its old code under its new source hash, so it is refused."""
    import lipsim_bench as bench
    from lipsim_bench.errors import BenchError

    plugin = tmp_path / "half_metric.py"
    good = (
        "from lipsim_bench.metrics import PerceptualMetric, register_metric\n@register_metric('test-half')\n"
        "class Half(PerceptualMetric):\n    def embed(self, x):\n        return x.mean(dim=(2, 3))\n"
    )
    plugin.write_text(good + "raise RuntimeError('oops at the end')\n")
    try:
        with pytest.raises(BenchError, match="failed to import .*oops at the end"):
            bench.evaluate("test-half", n=2, plugins=[str(plugin)])
        plugin.write_text(good)
        assert list(bench.evaluate("test-half", n=2, plugins=[str(plugin)]).table.columns) == ["natural"]
        plugin.write_text(good.replace("x.mean(dim=(2, 3))", "2 * x.mean(dim=(2, 3))"))
        with pytest.raises(BenchError, match="changed since this Python session loaded it; restart the session"):
            bench.evaluate("test-half", n=2, plugins=[str(plugin)])
    finally:
        unregister_metric("test-half")
