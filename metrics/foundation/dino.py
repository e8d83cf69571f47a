"""``dino``: DINO ViT-B/16 (self-supervised, Caron et al. 2021) CLS-token embedding through timm.

Model: ``timm.create_model('vit_base_patch16_224.dino')``, the DINO release's weights in timm's
ViT (same parameter names and computation as the DINO repository's ``vit_base``: qkv bias,
LayerNorm eps 1e-6, GELU). Input: bicubic antialiased resize to 224 x 224 (identity at 224) and
ImageNet mean/std, inside :meth:`DinoMetric.embed`.

Feature (``feature=`` option):

* ``"cls_prenorm"`` (default): the CLS token output by the last transformer block, *before* the
  final LayerNorm. This is DreamSim's DINO feature (a forward hook on ``blocks[11]``): its
  published DINO baseline on NIGHT and the ``dreamsim-dino`` fine-tune both use it, so with this
  default ``dino`` reproduces the published untuned-DINO numbers and ``dino`` vs ``dreamsim-dino``
  isolates the effect of DreamSim's fine-tuning.
* ``"cls"``: timm's / DINO's own output, the CLS token after the final LayerNorm
  (``forward_features(x)[:, 0]`` = ``model(x)`` with ``num_classes=0``), the feature DINO's k-NN
  evaluation uses. The LayerNorm re-centres and re-scales each token, so the two give different
  cosine distances.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from lipsim_bench.extras import require
from lipsim_bench.metrics.base import PerceptualMetric
from lipsim_bench.metrics.conventions import Conventions
from lipsim_bench.metrics.errors import MetricError, WeightsUnavailableError
from lipsim_bench.metrics.foundation import weights as W
from lipsim_bench.metrics.foundation.clip import BICUBIC_RESIZE, INPUT_SIZE, Normalize, resize_square
from lipsim_bench.metrics.registry import register_metric

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TIMM_NAME = "vit_base_patch16_224.dino"
HF_REPO = "timm/vit_base_patch16_224.dino"
#: The DINO release's own file name (torch.hub checkpoints; DreamSim's cache holds one too).
DINO_RELEASE_FILE = "dino_vitbase16_pretrain.pth"
FEATURES = ("cls_prenorm", "cls")


class DinoMetric(PerceptualMetric):
    """CLS token of a timm VisionTransformer, before (``cls_prenorm``) or after (``cls``) the final norm."""

    def __init__(
        self,
        model: nn.Module,
        feature: str = "cls_prenorm",
        image_size: int = INPUT_SIZE,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if feature not in FEATURES:
            raise MetricError(f"feature must be one of {FEATURES}, got {feature!r}")
        self.model = model
        self.feature = feature
        self.normalize = Normalize(mean, std)
        self.image_size = image_size

    def preprocess(self, x: Tensor) -> Tensor:
        return self.normalize(resize_square(x, self.image_size))

    def embed(self, x: Tensor) -> Tensor:
        x = self.preprocess(x)
        if self.feature == "cls":
            return self.model.forward_features(x)[:, 0]
        ((_, prefix),) = self.model.forward_intermediates(
            x, indices=1, return_prefix_tokens=True, norm=False, output_fmt="NLC", intermediates_only=True
        )
        return prefix[:, 0]


def _local_weights():
    """The DINO ViT-B/16 weights on disk: timm's HF repo, else the DINO release file in a torch hub."""
    path = W.find_hf_file(HF_REPO, W.TIMM_HF_FILES)
    if path is None:
        path = W.find_torch_checkpoint(DINO_RELEASE_FILE, extra_hubs=W.dreamsim_caches())
    return path


HOW_TO_GET = W.how_to_get("dino", f"timm.create_model('{TIMM_NAME}', pretrained=True), HF repo {HF_REPO}")


@register_metric(
    "dino",
    description="DINO ViT-B/16 CLS token before the final LayerNorm (DreamSim's feature), 1 - cos",
    weights=f"timm {TIMM_NAME} (HF {HF_REPO}, or {DINO_RELEASE_FILE} in a torch hub / DreamSim cache)",
    available=lambda: _local_weights() is not None,
    fingerprint=lambda: W.cache_file_fingerprint(_local_weights()),
    how_to_get=HOW_TO_GET,
    fetch=lambda: _fetch(),
    requires=("timm",),
    conventions=Conventions(
        input="(x - mean) / std, ImageNet mean/std",
        resize=BICUBIC_RESIZE,
        distance="1 - cos of the CLS token before the final LayerNorm (feature='cls': after it)",
        mirrors=f"timm 1.0.31: create_model('{TIMM_NAME}'); the feature is DreamSim 0.2.1's DINO hook on blocks[11]",
    ),
)
def dino(pretrained: bool = True, feature: str = "cls_prenorm") -> DinoMetric:
    """DINO ViT-B/16; ``feature="cls"`` for timm's post-norm CLS token."""
    timm = require("timm", "the DINO metric")

    if feature not in FEATURES:
        raise MetricError(f"feature must be one of {FEATURES}, got {feature!r}")
    if not pretrained:
        return DinoMetric(timm.create_model(TIMM_NAME, pretrained=False), feature)
    path = _local_weights()
    if path is None:
        raise WeightsUnavailableError(f"DINO ViT-B/16 weights are not on this machine; {HOW_TO_GET}")
    model = timm.create_model(TIMM_NAME, pretrained=True, pretrained_cfg_overlay={"file": str(path)})
    return DinoMetric(model, feature)


def _fetch() -> None:
    timm = require("timm", "the DINO metric")

    timm.create_model(TIMM_NAME, pretrained=True, cache_dir=str(W.hf_caches()[0]))
