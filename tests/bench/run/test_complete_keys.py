"""A record is reused only when nothing that made it changed: the attack's and the evaluation's code (plugin
and built-in), the torch version, the device type and the images' bytes each recompute; the run folder's
path, the order of --metrics and an added metric do not."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lipsim_bench.attacks.registry import ATTACKS
from lipsim_bench.cli import main
from lipsim_bench.datasets import create_dataset
from lipsim_bench.evaluations.registry import EVALUATIONS
from lipsim_bench.metrics import fingerprint
from lipsim_bench.run import plan
from lipsim_bench.run.plan import DataIdentity, plan_units
from lipsim_bench.run.spec import RunSpec, resolve

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _done(out: Path) -> tuple[int, int]:
    """(computed, reused) of the last run into ``out``, from its run.log."""
    found = re.findall(r"done: (\d+) unit\(s\) computed, (\d+) reused", (out / "run.log").read_text())
    return int(found[-1][0]), int(found[-1][1])


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, int]:
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    return _done(Path(argv[argv.index("--out") + 1]))


def _keys(spec: RunSpec) -> dict[tuple, str]:
    dataset = create_dataset(spec.dataset, spec.split).head(spec.n)
    data = DataIdentity(dataset.name, dataset.split, spec.n, dataset.fingerprint())
    return {
        (u.metric, u.evaluation.column, u.threat): u.unit.key()
        for u in plan_units(spec, resolve(spec, dataset.name), data)
    }


@pytest.fixture
def forget_plugins():
    """Unregister what a test's plugin files registered (the same names are loaded again from an edited copy)."""
    yield
    for registry, name in ((ATTACKS, "noise"), (EVALUATIONS, "brightness")):
        if name in registry.own():
            registry.remove(name)


def _plugin_copy(tmp_path: Path, folder: str, name: str, edit: tuple[str, str] | None = None) -> Path:
    """examples/<name> copied to tmp/<folder>/<name> (same file name: only the content may differ)."""
    target = tmp_path / folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    text = (EXAMPLES / name).read_text()
    if edit is not None:
        assert edit[0] in text
        text = text.replace(*edit)
    target.write_text(text)
    return target


@pytest.mark.parametrize(
    "plugin, registry, name, evaluation, edit",
    [
        # the reported case: an edited attack plugin's perturb was served its old numbers
        ("my_attack.py", ATTACKS, "noise", "noise", ("for _ in range(self.draws):", "for _ in range(self.draws + 1):")),
        (
            "my_evaluation.py",
            EVALUATIONS,
            "brightness",
            "brightness",
            ("(ref - eps).clamp(0, 1)", "(ref - 2 * eps).clamp(0, 1)"),
        ),
    ],
)
def test_an_edited_plugin_recomputes(
    capsys, tmp_path: Path, forget_plugins, plugin: str, registry, name: str, evaluation: str, edit: tuple[str, str]
) -> None:
    out = tmp_path / "run"
    common = ["--metrics", "pixel-l2", "--n", "4", "--evaluations", evaluation, "--eps", "0.25", "--out", str(out)]
    if evaluation == "noise":
        common += ["--set", "noise.draws=2"]
    first = _plugin_copy(tmp_path, "a", plugin)
    assert _run(["--plugin", str(first), *common], capsys) == (1, 0)
    assert _run(["--plugin", str(first), *common], capsys) == (0, 1)
    registry.remove(name)
    edited = _plugin_copy(tmp_path, "b", plugin, edit)  # a new path: the first module stays imported in this process
    assert _run(["--plugin", str(edited), *common], capsys) == (1, 0)


@pytest.mark.parametrize(
    "evaluation, file",
    [
        ("apgd", "attacks/apgd.py"),
        ("apgd", "attacks/base.py"),
        ("apgd", "evaluations/decided.py"),
        ("natural", "evaluations/natural.py"),
        ("natural", "evaluations/twoafc.py"),
        ("smoothing", "evaluations/smoothing_noise.py"),
    ],
)
def test_a_changed_built_in_source_changes_the_key(monkeypatch: pytest.MonkeyPatch, evaluation: str, file: str) -> None:
    """attacks/apgd.py and attacks/base.py (the attack), evaluations/decided.py (what it skips), natural.py ...:
    a change to any file that computes the unit's numbers is a new key, with no version bump needed."""
    spec = RunSpec(metrics=["pixel-l2"], dataset="sample", n=3, evaluations=[evaluation], threats=[("l2", [0.25])])
    before = _keys(spec)
    real = Path.read_bytes

    def edited(path: Path) -> bytes:
        return real(path) + (b"\n# edited\n" if f"{path.parent.name}/{path.name}" == file else b"")

    monkeypatch.setattr(Path, "read_bytes", edited)
    after = _keys(spec)
    assert set(before) == set(after) and all(before[k] != after[k] for k in before), file


def test_torch_version_and_device_type_are_in_the_key(
    capsys, night_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (
        plan.device_type("cuda:1") == plan.device_type("cuda") == "cuda" and plan.device_type("cpu") == "cpu"
    )  # the type, not the index
    assert plan.runtime_identity(RunSpec(metrics=["pixel-l2"], device="cuda:1"))["device"] == "cuda"
    out = tmp_path / "run"
    argv = ["--metrics", "pixel-l2", "--dataset", f"night:{night_tree}", "--evaluations", "natural", "--out", str(out)]
    assert _run(argv, capsys) == (1, 0)
    monkeypatch.setattr(plan.torch, "__version__", "0.0.1-other")
    assert _run(argv, capsys) == (1, 0)
    monkeypatch.setattr(plan, "device_type", lambda device: "mps")
    assert _run(argv, capsys) == (1, 0)


def _uncompressed(path: Path, pixels: np.ndarray) -> None:
    """A PNG whose byte size depends only on the image's size (no compression)."""
    Image.fromarray(pixels).save(path, compress_level=0)


def test_an_image_replaced_by_one_of_the_same_size_and_time_recomputes(
    capsys, night_tree: Path, tmp_path: Path
) -> None:
    ref = night_tree / "ref" / "000" / "004.png"  # the first test triplet's reference
    pixels = np.asarray(Image.open(ref).convert("RGB")).copy()
    _uncompressed(ref, pixels)
    out = tmp_path / "run"
    argv = ["--metrics", "pixel-l2", "--dataset", f"night:{night_tree}", "--evaluations", "natural", "--out", str(out)]
    assert _run(argv, capsys) == (1, 0)
    assert _run(argv, capsys) == (0, 1)
    stat = ref.stat()
    pixels[0, 0] = 255 - pixels[0, 0]
    with open(ref, "r+b") as handle:  # rewritten in place: the same inode, as `cp -p` onto it does
        from io import BytesIO

        buffer = BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG", compress_level=0)
        handle.write(buffer.getvalue())
        handle.truncate()
    os.utime(ref, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the modification time kept
    after = ref.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (stat.st_size, stat.st_mtime_ns, stat.st_ino)
    assert _run(argv, capsys) == (1, 0)


def test_the_folder_path_the_metric_order_and_an_added_metric_still_reuse(
    capsys, night_tree: Path, tmp_path: Path
) -> None:
    base = ["--dataset", f"night:{night_tree}", "--evaluations", "natural,apgd", "--eps", "0.5", "--steps", "3"]
    first, moved = tmp_path / "first", tmp_path / "elsewhere" / "moved"
    assert _run([*base, "--metrics", "pixel-l2,convsim-tiny", "--out", str(first)], capsys) == (4, 0)
    shutil.copytree(first, moved)
    assert _run([*base, "--metrics", "pixel-l2,convsim-tiny", "--out", str(moved)], capsys) == (0, 4)
    assert _run([*base, "--metrics", "convsim-tiny,pixel-l2", "--out", str(moved)], capsys) == (0, 4)
    assert _run([*base, "--metrics", "convsim-tiny,lipsim-tiny,pixel-l2", "--out", str(moved)], capsys) == (2, 4)


def test_the_attack_class_and_its_helpers_are_hashed() -> None:
    from lipsim_bench.attacks.apgd import APGD
    from lipsim_bench.evaluations import get_evaluation

    names = {(p.parent.name, p.name) for p in fingerprint.code_files(get_evaluation("apgd"), APGD)}
    assert {
        ("attacks", "apgd.py"),
        ("attacks", "base.py"),
        ("evaluations", "attack.py"),
        ("evaluations", "decided.py"),
    } <= names
    assert not any(name in ("errors.py", "registry.py") for _, name in names)  # messages and names compute nothing
    assert not any("site-packages" in str(p) for p in fingerprint.code_files(get_evaluation("apgd"), APGD))
