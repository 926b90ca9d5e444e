"""The incasem 3D U-Net: funlib.learn.torch's UNet plus a logits head, re-implemented.

incasem trained ``funlib.learn.torch.models.UNet`` with a 3x3x3 convolution appended. That package
is not on PyPI, and its current version crops for translation equivariance only in eval mode, so a
network trained with it sees 204 -> 114 while prediction sees 204 -> 110. This module rebuilds the
same network from its specification, with the same module tree so that incasem's published
checkpoints load, and always crops, so training and prediction share one geometry
(:mod:`incasem.torch.models.shapes`).

Tensors are (batch, channel, z, y, x); sizes are in voxels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from incasem.torch.models import shapes

#: Normalisation layers a U-Net may put after each convolution (`ConvPass`); ``"none"`` is
#: ASEM's network, whose published weights load.
NORMALISATIONS = ("none", "batch", "instance", "group")
#: Channels per group of ``"group"`` normalisation (at least one group).
GROUP_CHANNELS = 4


def _norm_layer(kind: str, channels: int) -> nn.Module:
    """The normalisation layer of ``kind`` (`NORMALISATIONS`, not ``"none"``) for ``channels``.

    ``batch`` keeps running statistics and uses them in eval mode, so a prediction does not
    depend on the block it is computed in; ``instance`` (nnU-Net's choice) and ``group``
    normalise with the statistics of each input block, so block-wise predictions of the same
    voxel vary slightly with the block's content.
    """
    layers = {
        "batch": lambda: nn.BatchNorm3d(channels),
        "instance": lambda: nn.InstanceNorm3d(channels, affine=True),
        "group": lambda: nn.GroupNorm(max(1, channels // GROUP_CHANNELS), channels),
    }
    return layers[kind]()


class ConvPass(nn.Module):
    """Valid 3D convolutions, each followed by an activation (also the last one).

    The activations sit at the odd positions of ``conv_pass``, so the convolutions are
    ``conv_pass.0``, ``conv_pass.2``, ...: the parameter names of funlib checkpoints. A
    normalisation layer, when asked for, sits between each convolution and its activation
    (then the convolutions are ``conv_pass.0``, ``conv_pass.3``, ...).

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of every convolution's output.
        kernel_sizes: Edge length in voxels of each convolution's cubic kernel, in order.
        activation: Name of a ``torch.nn`` module, e.g. ``"ReLU"`` or ``"Identity"``.
        normalisation: One of `NORMALISATIONS` (default ``"none"``).
        residual: Add the input, centre-cropped to the output's size (valid convolutions
            shrink it) and projected by a 1x1x1 convolution (``skip``) when the channels
            differ, before the last activation (default False).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: Sequence[int],
        activation: str,
        normalisation: str = "none",
        residual: bool = False,
    ) -> None:
        super().__init__()
        if normalisation not in NORMALISATIONS:
            raise ValueError(
                f"unknown normalisation {normalisation!r}; expected one of {NORMALISATIONS}"
            )
        self.skip: nn.Module | None = None
        if residual:
            self.skip = (
                nn.Identity()
                if in_channels == out_channels
                else nn.Conv3d(in_channels, out_channels, 1)
            )
        layers: list[nn.Module] = []
        for kernel_size in kernel_sizes:
            layers.append(nn.Conv3d(in_channels, out_channels, kernel_size))
            if normalisation != "none":
                layers.append(_norm_layer(normalisation, out_channels))
            layers.append(getattr(nn, activation)())
            in_channels = out_channels
        self.conv_pass = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.skip is None:
            return self.conv_pass(x)
        y = self.conv_pass[:-1](x)
        y = y + center_crop(self.skip(x), y.shape[-3:])
        return self.conv_pass[-1](y)


def center_crop(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Crop the spatial (z, y, x) axes of ``x`` to ``shape``, dropping the odd voxel at the end."""
    slices = tuple(
        slice((have - want) // 2, (have - want) // 2 + want)
        for have, want in zip(x.shape[-3:], shape, strict=True)
    )
    return x[(..., *slices)]


class Upsample(nn.Module):
    """Upsample, crop to the coarsest lattice, and concatenate with the skip connection.

    After upsampling, the map is centre-cropped to the largest ``n * crop_factor + conv_crop``
    voxels per axis. Its output after the next conv pass is then a whole number of coarsest-level
    voxels, so shifting the input by a multiple of the total downsampling factor shifts the output
    by the same amount: tiles of a block-wise prediction agree with a single pass.

    Args:
        scale_factor: Upsampling factor per axis, (z, y, x).
        channels: Channels of the map to upsample (kept by both upsampling modes).
        crop_factor: Product of this and all coarser levels' factors, per axis (z, y, x).
        conv_crop: Voxels the following conv pass removes per axis.
        constant: Nearest-neighbour upsampling without weights, instead of a transposed
            convolution with kernel = stride = ``scale_factor``.
    """

    def __init__(
        self,
        scale_factor: Sequence[int],
        channels: int,
        crop_factor: Sequence[int],
        conv_crop: int,
        constant: bool,
    ) -> None:
        super().__init__()
        self.crop_factor = tuple(crop_factor)
        self.conv_crop = conv_crop
        self.up: nn.Module
        if constant:
            self.up = nn.Upsample(scale_factor=tuple(scale_factor))
        else:
            self.up = nn.ConvTranspose3d(
                channels, channels, kernel_size=tuple(scale_factor), stride=tuple(scale_factor)
            )

    def forward(self, skip: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        shape = tuple(
            (size - self.conv_crop) // factor * factor + self.conv_crop
            for size, factor in zip(x.shape[-3:], self.crop_factor, strict=True)
        )
        return torch.cat([center_crop(skip, shape), center_crop(x, shape)], dim=1)


def _check_input(
    x: torch.Tensor,
    in_channels: int,
    downsample_factors: Sequence[Sequence[int]],
    head_kernel_size: int,
) -> None:
    if x.dim() != 5 or x.shape[1] != in_channels:
        raise ValueError(
            f"expected input of shape (batch, {in_channels}, z, y, x), got {tuple(x.shape)}"
        )
    shapes.output_shape(tuple(x.shape[2:]), downsample_factors, head_kernel_size)


class UNet(nn.Module):
    """The bare 3D U-Net of funlib.learn.torch (valid padding, one decoder).

    Each level has a conv pass of two valid 3x3x3 convolutions with activations, on the way down
    and (except the lowest) on the way up. Level ``l`` has ``num_fmaps * fmap_inc_factor**l``
    feature maps. The output has ``num_fmaps`` channels and has been through the activation, so
    it is features, not logits.

    Parameter names match funlib: ``l_conv.{level}``, ``r_up.0.{level}`` and ``r_conv.0.{level}``
    (the 0 is funlib's decoder index).

    Args:
        in_channels: Channels of the input.
        num_fmaps: Feature maps at the top level.
        fmap_inc_factor: Factor by which the feature maps grow from one level to the next.
        downsample_factors: Max-pool factors, (z, y, x), from the top level down; there is one
            level more than factors.
        constant_upsample: Upsample by nearest neighbour (no weights) instead of a transposed
            convolution.
        activation: Name of the ``torch.nn`` activation after every convolution.
        normalisation: Of every conv pass: one of `NORMALISATIONS` (default ``"none"``).
        residual: Every conv pass adds its (cropped) input (default False).
    """

    def __init__(
        self,
        in_channels: int,
        num_fmaps: int,
        fmap_inc_factor: int,
        downsample_factors: Sequence[Sequence[int]] = shapes.DEFAULT_DOWNSAMPLE_FACTORS,
        constant_upsample: bool = True,
        activation: str = "ReLU",
        normalisation: str = "none",
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.downsample_factors = shapes.normalise_downsample_factors(downsample_factors)
        num_levels = len(self.downsample_factors) + 1
        fmaps = [num_fmaps * fmap_inc_factor**level for level in range(num_levels)]
        kernels = (3, 3)
        # Per decoder level, the product of its own and all coarser factors, (z, y, x).
        crop_factors = [
            tuple(math.prod(axis) for axis in zip(*self.downsample_factors[level:], strict=True))
            for level in range(num_levels - 1)
        ]

        conv_options = {"normalisation": normalisation, "residual": residual}
        self.l_conv = nn.ModuleList(
            ConvPass(
                fmaps[level - 1] if level else in_channels,
                fmaps[level],
                kernels,
                activation,
                **conv_options,
            )
            for level in range(num_levels)
        )
        self.l_down = nn.ModuleList(
            nn.MaxPool3d(factor, stride=factor) for factor in self.downsample_factors
        )
        decoder_up = nn.ModuleList(
            Upsample(
                self.downsample_factors[level],
                fmaps[level + 1],
                crop_factors[level],
                conv_crop=sum(k - 1 for k in kernels),
                constant=constant_upsample,
            )
            for level in range(num_levels - 1)
        )
        decoder_conv = nn.ModuleList(
            ConvPass(
                fmaps[level] + fmaps[level + 1], fmaps[level], kernels, activation, **conv_options
            )
            for level in range(num_levels - 1)
        )
        self.r_up = nn.ModuleList([decoder_up])
        self.r_conv = nn.ModuleList([decoder_conv])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features of shape (batch, num_fmaps, z, y, x) for input (batch, in_channels, z, y, x).

        Raises:
            ValueError: If the spatial input size is not valid for this network (see
                :func:`incasem.torch.models.shapes.output_shape`).
        """
        return self.decoder_features(x)[0]

    def decoder_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every decoder level for input (batch, in_channels, z, y, x).

        Entry ``l`` is level ``l``'s features, (batch, fmaps of level l, z, y, x) at ``l``'s
        voxel size (the top level's times the factors above it); entry 0 is `forward`'s
        output. Deep supervision puts a head on the coarser entries.

        Raises:
            ValueError: If the spatial input size is not valid for this network.
        """
        _check_input(x, self.in_channels, self.downsample_factors, head_kernel_size=1)
        skips = []
        for conv, down in zip(self.l_conv, self.l_down, strict=False):
            x = conv(x)
            skips.append(x)
            x = down(x)
        x = self.l_conv[-1](x)
        features: list[torch.Tensor] = []
        for level in reversed(range(len(skips))):
            x = self.r_up[0][level](skips[level], x)
            x = self.r_conv[0][level](x)
            features.insert(0, x)
        return features


#: The recipe options of `ASEMUNet` at the values of ASEM's network.
ARCHITECTURE_DEFAULTS: dict[str, Any] = {
    "normalisation": "none",
    "residual": False,
    "deep_supervision": False,
}


class ASEMUNet(nn.Module):
    """The incasem segmentation network: :class:`UNet` followed by a valid convolution to logits.

    ``unet`` and ``final_conv_pass`` are named as in incasem, so its checkpoints load with
    :func:`load_model_state`. With the defaults (those of the published models) a 204³ input
    gives 110³ logits, 47 voxels of context per side; apply a softmax over the channel axis for
    class probabilities.

    Args:
        in_channels: Channels of the input (1 for FIB-SEM).
        num_classes: Channels of the output logits.
        num_fmaps: Feature maps at the top level of the U-Net.
        fmap_inc_factor: Factor by which the feature maps grow from one level to the next.
        downsample_factors: Max-pool factors, (z, y, x), from the top level down.
        constant_upsample: Upsample by nearest neighbour (no weights) instead of a transposed
            convolution.
        activation: Name of the ``torch.nn`` activation inside the U-Net.
        head_kernel_size: Edge length in voxels of the final convolution: 3 as in incasem,
            or 1.
        normalisation: A normalisation layer after every convolution of the U-Net, one of
            `NORMALISATIONS`: ``"none"`` (default, ASEM's network), ``"batch"`` (running
            statistics: block-wise prediction stays seam-free), ``"instance"`` or ``"group"``
            (`GROUP_CHANNELS` channels per group; both use each block's own statistics).
        residual: Residual conv passes: each adds its input, cropped to its output (default
            False, ASEM's network).
        deep_supervision: Add a 1x1x1 logits head (``aux_heads``) to every decoder level but
            the top one, for a training loss at coarser voxel sizes (`forward_with_aux`;
            default False, ASEM's network). `forward`, and so prediction, does not use them.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        num_fmaps: int = 32,
        fmap_inc_factor: int = 2,
        downsample_factors: Sequence[Sequence[int]] = shapes.DEFAULT_DOWNSAMPLE_FACTORS,
        constant_upsample: bool = True,
        activation: str = "ReLU",
        head_kernel_size: int = 3,
        normalisation: str = "none",
        residual: bool = False,
        deep_supervision: bool = False,
    ) -> None:
        super().__init__()
        if head_kernel_size < 1 or head_kernel_size % 2 == 0:
            raise ValueError(
                f"head kernel size must be a positive odd integer, got {head_kernel_size}"
            )
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.num_fmaps = num_fmaps
        self.fmap_inc_factor = fmap_inc_factor
        self.constant_upsample = constant_upsample
        self.activation = activation
        self.head_kernel_size = head_kernel_size
        self.normalisation = normalisation
        self.residual = residual
        self.deep_supervision = deep_supervision
        #: Run convolutions in channels-last memory layout (set by `place_model`; not part of the
        #: architecture, so not in `hparams`).
        self.channels_last = False
        self.unet = UNet(
            in_channels,
            num_fmaps,
            fmap_inc_factor,
            downsample_factors,
            constant_upsample=constant_upsample,
            activation=activation,
            normalisation=normalisation,
            residual=residual,
        )
        self.final_conv_pass = ConvPass(num_fmaps, num_classes, [head_kernel_size], "Identity")
        if deep_supervision:
            self.aux_heads = nn.ModuleList(
                nn.Conv3d(num_fmaps * fmap_inc_factor**level, num_classes, 1)
                for level in self._aux_levels()
            )

    def _aux_levels(self) -> range:
        """The decoder levels that carry a deep-supervision head: all but the top one."""
        return range(1, len(self.downsample_factors)) if self.deep_supervision else range(0)

    @property
    def aux_factors(self) -> list[tuple[int, int, int]]:
        """Per head of `forward_with_aux`, its voxel size over the output's, (z, y, x)."""
        return [
            shapes.total_downsampling(self.downsample_factors[:level])
            for level in self._aux_levels()
        ]

    @property
    def downsample_factors(self) -> tuple[tuple[int, ...], ...]:
        """Max-pool factors per level, (z, y, x), from the top level down."""
        return self.unet.downsample_factors

    def hparams(self) -> dict[str, Any]:
        """The constructor arguments as a JSON-serialisable dict.

        ``ASEMUNet(**model.hparams())`` builds the same architecture, so a checkpoint that stores
        this dict describes itself. The recipe options (``normalisation``, ``residual``,
        ``deep_supervision``) appear
        only when they differ from ASEM's network, so its cards read as before (and in older
        versions of incasem).
        """
        options = {
            key: value
            for key, value in (
                ("normalisation", self.normalisation),
                ("residual", self.residual),
                ("deep_supervision", self.deep_supervision),
            )
            if value != ARCHITECTURE_DEFAULTS[key]
        }
        return {
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "num_fmaps": self.num_fmaps,
            "fmap_inc_factor": self.fmap_inc_factor,
            "downsample_factors": [list(level) for level in self.downsample_factors],
            "constant_upsample": self.constant_upsample,
            "activation": self.activation,
            "head_kernel_size": self.head_kernel_size,
            **options,
        }

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, int, int]:
        """Spatial output shape (z, y, x) in voxels for a spatial input shape (z, y, x).

        Raises:
            ValueError: If ``input_shape`` is not valid; the message names the nearest valid
                sizes.
        """
        return shapes.output_shape(input_shape, self.downsample_factors, self.head_kernel_size)

    @property
    def context(self) -> tuple[int, int, int]:
        """Voxels of input needed on each side of the output, (z, y, x)."""
        return shapes.context(self.downsample_factors, self.head_kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, num_classes, z, y, x) for input (batch, in_channels, z, y, x).

        Input of another floating-point type (training sends 8-bit raw as float16, see
        `incasem.pipeline.batch_pipeline`) is cast to the type of the weights first.

        Raises:
            ValueError: If the spatial input size is not valid for this network.
        """
        return self.final_conv_pass(self.unet(self._prepare(x)))

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """`forward`'s logits and, with ``deep_supervision``, each aux head's logits.

        Aux head ``i`` gives (batch, num_classes, z, y, x) logits at ``aux_factors[i]`` times
        the output's voxel size, over a larger region than the output, centred on it (the loss
        aligns them with `incasem.torch.loss.upsample_logits`). Without deep supervision the
        list is empty.

        Raises:
            ValueError: If the spatial input size is not valid for this network.
        """
        if not self.deep_supervision:
            return self(x), []
        features = self.unet.decoder_features(self._prepare(x))
        aux = [head(level) for head, level in zip(self.aux_heads, features[1:], strict=True)]
        return self.final_conv_pass(features[0]), aux

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` checked, cast to the weights' type and in the convolutions' memory layout."""
        _check_input(x, self.in_channels, self.downsample_factors, self.head_kernel_size)
        x = x.to(self.final_conv_pass.conv_pass[0].weight.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return x


def place_model(model: ASEMUNet, device: str | torch.device) -> ASEMUNet:
    """Move ``model`` to ``device`` in the memory layout its convolutions run fastest in there.

    On the CPU that is channels-last (``torch.channels_last_3d``): oneDNN's 3D convolutions are
    faster in it than in the default layout (training step of the 8-fmap network 1.35x, forward
    passes of the 8- and 32-fmap networks 1.7x and 1.1x; 2 AMD EPYC cores, torch 2.13;
    ``benchmarks/results/cpu_step_levers.md``).
    On a GPU the default layout is kept until the same has been measured there. Values are
    identical either way; checkpoints store the weights, not the layout.

    Returns the model (moved in place).
    """
    model = model.to(device)
    model.channels_last = torch.device(device).type == "cpu"
    if model.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    return model


def _name_some(keys: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown} and {len(keys) - limit} more" if len(keys) > limit else shown


def load_model_state(
    model: nn.Module,
    checkpoint: str | os.PathLike[str] | Mapping[str, Any],
) -> None:
    """Load weights into ``model`` from an incasem-style checkpoint.

    Args:
        model: The model to fill, e.g. an :class:`ASEMUNet` built with the checkpoint's
            hyperparameters.
        checkpoint: A path to a file written by ``torch.save``, or the loaded object: either a
            state dict or a dict with the state dict under ``"model_state_dict"`` (as written by
            incasem's and gunpowder's Train nodes).

    Raises:
        ValueError: If the parameter names or shapes do not match the model; the message names
            the missing, unexpected and mis-shaped keys.
    """
    source = ""
    if not isinstance(checkpoint, Mapping):
        source = f" {os.fspath(checkpoint)}"
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = checkpoint.get("model_state_dict", checkpoint)
    expected = model.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    misshapen = [
        f"{key} {tuple(state[key].shape)} (model {tuple(value.shape)})"
        for key, value in expected.items()
        if key in state and state[key].shape != value.shape
    ]
    problems = [
        f"{what}: {_name_some(keys)}"
        for what, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", misshapen),
        )
        if keys
    ]
    if problems:
        raise ValueError(f"checkpoint{source} does not fit the model: {'; '.join(problems)}")
    model.load_state_dict(state)


#: Weight initialisations `initialise_weights` knows.
INITIALISATIONS = ("kaiming", "pytorch")


def initialise_weights(model: nn.Module, scheme: str = "kaiming") -> nn.Module:
    """Initialise every 3D convolution of ``model`` for training from scratch; returns it.

    ``"kaiming"``: weights from He et al.'s normal distribution for ReLU (fan in), biases zero.
    PyTorch's default (``"pytorch"``, uniform with a third of that variance) lets the signal
    shrink by about half at each of the U-Net's 14 convolutions: an untrained 8-fmap ASEM U-Net
    then gives logit differences with a standard deviation of 0.002 on Lucchi raw (0.11 with
    ``"kaiming"``), and its first hundred iterations on a CPU barely move the loss. Only the
    starting point changes, not the architecture: published weights load either way.
    """
    if scheme not in INITIALISATIONS:
        raise ValueError(f"unknown initialisation {scheme!r}; expected one of {INITIALISATIONS}")
    if scheme == "kaiming":
        for module in model.modules():
            if isinstance(module, nn.Conv3d | nn.ConvTranspose3d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    return model
