"""Named protocols: ``run_bench.py --preset NAME`` sets the options of a published evaluation.

A preset only sets defaults: any option given on the command line wins (``--preset paper --n 100``
runs the paper's protocol on the first 100 NIGHT test triplets). Options use the run parser's
destinations and the values it would parse; ``evaluation_options`` holds evaluations' options as
``--set`` spells them (``{"smoothing": {"sigma": "0.12,0.25,0.5"}}``), and ``--set`` overrides them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lipsim_bench.errors import BenchError
from lipsim_bench.registry import Registry

#: The paper's certified radii, as the CLI spells them.
PAPER_CERTIFIED_EPS = "36/255,72/255,108/255"
PAPER_L2_EPS = "l2:0.5,1,2,3"


@dataclass(frozen=True)
class Preset:
    """A named set of run options and the sentence that says where they come from."""

    name: str
    description: str
    options: dict[str, Any] = field(default_factory=dict)


PRESET_REGISTRY: Registry[Preset] = Registry("preset", error=BenchError)


def register_preset(preset: Preset) -> Preset:
    """Add a named protocol (also from a plugin file or the ``lipsim_bench.presets`` entry-point group)."""
    return PRESET_REGISTRY.add(preset.name, preset)


def get_preset(name: str) -> Preset:
    return PRESET_REGISTRY.get(name)


def list_presets() -> list[Preset]:
    return [preset for _, preset in PRESET_REGISTRY.items()]


#: The preset of a run that names no --preset and no --dataset: the bundled world's own protocol.
DEFAULT_PRESET = "bundled"
#: Its size and attack length: ST-LPIPS (alex) costs about 10x convsim-tiny per attack step on the CPU, so the
#: 300-triplet, 100-step protocol took 17 minutes on 2 cores (results/reference/sample-test-full); 100 triplets, 20 steps: 86 s.
BUNDLED_N, BUNDLED_STEPS = 100, 20

register_preset(
    Preset(
        DEFAULT_PRESET,
        f"the default run (no --preset, no --dataset): the bundled metrics on the first {BUNDLED_N} triplets of the "
        f"sample test split, l2 APGD-CE {BUNDLED_STEPS} steps at 0.25, 0.5, 1, 2, certified at 36/255, 72/255, 108/255; "
        "a quick demo on 2 CPU cores (--n 300 --steps 100 for the full split and attack)",
        {"dataset": "sample", "n": BUNDLED_N, "steps": BUNDLED_STEPS},
    )
)

register_preset(
    Preset(
        "stlpips",
        f"ST-LPIPS with both published trunks (stlpips-alex, stlpips-vgg: about 4x alex's cost) and the LipSim student "
        f"distilled from alex, on the bundled protocol ({BUNDLED_N} sample test triplets, APGD-CE {BUNDLED_STEPS} steps): "
        "the default run's units of alex and the student are reused",
        {
            "dataset": "sample",
            "n": BUNDLED_N,
            "steps": BUNDLED_STEPS,
            "metrics": ["stlpips-alex", "stlpips-vgg", "lipsim-tiny-stlpips"],
        },
    )
)

#: Restarts of APGD-margin in the robust preset (Croce et al. attack robust CLIP metrics with APGD on a margin loss
#: and restarts; 5 is AutoAttack's "plus" version's number of restarts).
CROCE_RESTARTS = 5

_PAPER_PROTOCOL: dict[str, Any] = {
    "dataset": "night",
    "split": "test",
    "attacks": ["apgd"],
    "threat": [PAPER_L2_EPS],
    "steps": 100,
    "restarts": 1,
    "certify": True,
    "certify_eps": PAPER_CERTIFIED_EPS,
    "download": True,
}

register_preset(
    Preset(
        "paper",
        "LipSim paper, Table (NIGHT test, size-weighted halves): DreamSim's NIGHT-fine-tuned CLIP / OpenCLIP / "
        "DINO branches, the DreamSim ensemble and LipSim; l2 APGD-CE 100 steps at 0.5, 1, 2, 3; certified at "
        "36/255, 72/255, 108/255",
        {**_PAPER_PROTOCOL, "metrics": ["dreamsim-clip", "dreamsim-open-clip", "dreamsim-dino", "dreamsim", "lipsim"]},
    )
)

register_preset(
    Preset(
        "paper-zero-shot",
        "the paper's protocol with the zero-shot backbones (OpenAI CLIP, OpenCLIP LAION-400M, DINO) instead of "
        "DreamSim's fine-tuned branches",
        {**_PAPER_PROTOCOL, "metrics": ["clip", "open-clip", "dino", "dreamsim", "lipsim"]},
    )
)

register_preset(
    Preset(
        "robust",
        "the paper preset plus robust CLIP (Croce et al.: TeCoA and FARE ConvNeXt-B) and their l-inf threat "
        "model at 4/255: APGD-CE, and Croce et al.'s APGD on the margin loss with restarts, and the worst case of both",
        {
            **_PAPER_PROTOCOL,
            "metrics": get_preset("paper").options["metrics"] + ["rclip", "rclip-fare-convnext"],
            "threat": [PAPER_L2_EPS, "linf:4/255"],
            "restarts": None,  # per attack: APGD-CE's 1, APGD-margin's CROCE_RESTARTS
            "evaluations": ["natural", "certified", "apgd", "apgd-margin", "worst-case"],
            "evaluation_options": {"apgd-margin": {"restarts": str(CROCE_RESTARTS)}},
        },
    )
)

#: The attack ensemble, AutoAttack's way: gradient attacks first (APGD-CE, APGD on the margin loss, FMN's minimum-norm
#: search), then the score-based Square on what they left; each attack skips the triplets those before it flipped
#: at that radius (``after``), and the worst case over all of them is its own column.
ENSEMBLE_ATTACKS = ("apgd", "apgd-margin", "fmn", "square")
ENSEMBLE_EVALUATIONS = ["natural", "certified", *ENSEMBLE_ATTACKS, "worst-case"]
#: Square's query budget on the bundled world: 100 queries cost 2.2x APGD-20 on stlpips-alex at l2 0.5 (228 s
#: against 105 s, 100 triplets, 2 shared cores). At such budgets Square is a check for gradient masking, not a
#: contender (convsim-tiny l2 2: APGD-20 flipped 20 of 20 triplets, Square 1 at 300 queries and 7 at 1000).
BUNDLED_SQUARE_QUERIES = 100


def ensemble_options(square_queries: int) -> dict[str, dict[str, str]]:
    """Each attack of the ensemble runs on what the attacks before it left (AutoAttack's cascade)."""
    options: dict[str, dict[str, str]] = {
        name: {"after": ",".join(ENSEMBLE_ATTACKS[:i])} for i, name in enumerate(ENSEMBLE_ATTACKS) if i
    }
    options["square"]["n_queries"] = str(square_queries)
    return options


register_preset(
    Preset(
        "ensemble",
        f"the bundled protocol ({BUNDLED_N} sample test triplets, {BUNDLED_STEPS} steps) under an attack ensemble: "
        f"APGD-CE, APGD-margin, FMN, then Square ({BUNDLED_SQUARE_QUERIES} queries), each on what the ones before left, "
        "and their worst case per triplet, certified at the paper's radii and the attacks'; pixel-l2, convsim-tiny, "
        "stlpips-alex, lipsim-tiny (--perturb x0|x1|all for "
        "the other targets)",
        {
            "dataset": "sample",
            "n": BUNDLED_N,
            "steps": BUNDLED_STEPS,
            "metrics": ["pixel-l2", "convsim-tiny", "stlpips-alex", "lipsim-tiny"],
            "evaluations": ENSEMBLE_EVALUATIONS,
            # the paper's radii and the attacks' own: the certified lower bound beside the attacks' upper bound
            "certify_eps": "36/255,0.25,72/255,108/255,0.5,1,2",
            "evaluation_options": ensemble_options(BUNDLED_SQUARE_QUERIES),
        },
    )
)

register_preset(
    Preset(
        "paper-ensemble",
        "the paper's metrics and NIGHT protocol under the full ensemble (APGD-CE, APGD-margin, FMN 100 steps each, "
        "Square 5000 queries, AutoAttack's budget) at l2 0.5, 1, 2, 3 and Croce et al.'s l-inf 4/255, with the worst "
        "case per triplet and the certificates",
        {
            **_PAPER_PROTOCOL,
            "metrics": get_preset("paper").options["metrics"],
            "evaluations": ENSEMBLE_EVALUATIONS,
            "threat": [PAPER_L2_EPS, "linf:4/255"],
            "evaluation_options": ensemble_options(5000),
        },
    )
)

#: The noise levels of the smoothing comparison: Cohen et al.'s 0.12, 0.25 and 0.5.
SMOOTHING_SIGMAS = "0.12,0.25,0.5"

register_preset(
    Preset(
        "smoothing",
        "randomized smoothing of the 2AFC decision (Cohen et al. CERTIFY, n0 100, n 1000, alpha 0.001) at sigma "
        "0.12, 0.25, 0.5, and the smoothed-embedding route at sigma 0.25, beside the Lipschitz certificate, on every "
        "3rd triplet of the bundled sample test split (100 of 300): pixel-l2, convsim-tiny, its noise-trained twin "
        "convsim-tiny-noise, lipsim-tiny",
        {
            "dataset": "sample",
            "metrics": ["pixel-l2", "convsim-tiny", "convsim-tiny-noise", "lipsim-tiny"],
            "evaluations": ["natural", "certified", "smoothing", "smoothing-embed"],
            "certify_eps": "36/255,0.25,72/255,108/255,0.5",  # the Lipschitz certificate at smoothing's radii too
            "evaluation_options": {"smoothing": {"sigma": SMOOTHING_SIGMAS}},
            "every": 3,
        },
    )
)
