"""The re-implemented funlib/incasem U-Net: geometry, parameters, equivariance, checkpoints.

Forward passes use 2-4 feature maps and inputs near the smallest valid size to stay fast on CPU.
"""

import json
from pathlib import Path

import pytest
import torch

from incasem.torch.models import ASEMUNet, UNet, initialise_weights, load_model_state, place_model

TWO_LEVELS = ((2, 2, 2),) * 2
ANISOTROPIC = ((1, 2, 2), (1, 2, 2), (2, 2, 2))


def num_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def spatial_output(model: torch.nn.Module, shape: tuple[int, int, int]) -> tuple[int, ...]:
    with torch.no_grad():
        return tuple(model(torch.rand(1, 1, *shape)).shape[2:])


@pytest.mark.parametrize(
    ("constant_upsample", "unet", "total"),
    [(True, 5_836_000, 5_837_730), (False, 6_524_576, 6_526_306)],
)
def test_incasem_parameter_count(constant_upsample: bool, unet: int, total: int) -> None:
    model = ASEMUNet(constant_upsample=constant_upsample)
    assert num_parameters(model.unet) == unet
    assert num_parameters(model.final_conv_pass) == 1_730
    assert num_parameters(model) == total


def test_parameter_names_match_incasem_checkpoints() -> None:
    def conv_pass(prefix: str, indices: tuple[int, ...]) -> set[str]:
        return {f"{prefix}.conv_pass.{i}.{p}" for i in indices for p in ("weight", "bias")}

    expected = conv_pass("final_conv_pass", (0,))
    for level in range(4):
        expected |= conv_pass(f"unet.l_conv.{level}", (0, 2))
    for level in range(3):
        expected |= conv_pass(f"unet.r_conv.0.{level}", (0, 2))
    assert set(ASEMUNet().state_dict()) == expected

    transposed = {f"unet.r_up.0.{level}.up.{p}" for level in range(3) for p in ("weight", "bias")}
    assert set(ASEMUNet(constant_upsample=False).state_dict()) == expected | transposed


@pytest.mark.parametrize("constant_upsample", [True, False])
def test_bare_unet_funlib_test_vector(constant_upsample: bool) -> None:
    unet = UNet(1, 3, 2, TWO_LEVELS, constant_upsample=constant_upsample)
    with torch.no_grad():
        features = unet(torch.rand(1, 1, 100, 80, 48))
    assert features.shape == (1, 3, 60, 40, 8)
    assert features.min() >= 0  # the U-Net ends in a ReLU: features, not logits


@pytest.mark.parametrize(("size", "expected"), [(196, 102), (204, 110), (212, 118)])
def test_incasem_output_sizes(size: int, expected: int) -> None:
    model = ASEMUNet(num_fmaps=2)
    assert spatial_output(model, (size, 100, 100)) == (expected, 6, 6)
    assert model.output_shape((size, 100, 100)) == (expected, 6, 6)


def test_bare_unet_output_size() -> None:
    assert spatial_output(UNet(1, 2, 2), (204, 100, 100)) == (112, 8, 8)


def test_train_and_eval_mode_share_geometry() -> None:
    """Unlike current funlib, the equivariance crop applies in training too (108 -> 14, not 18)."""
    torch.manual_seed(0)
    model = ASEMUNet(num_fmaps=2)
    x = torch.rand(1, 1, 100, 100, 108)
    with torch.no_grad():
        trained = model.train()(x)
        evaluated = model.eval()(x)
    assert trained.shape[2:] == (6, 6, 14)
    torch.testing.assert_close(trained, evaluated, rtol=0, atol=0)


@pytest.mark.parametrize("constant_upsample", [True, False])
def test_anisotropic_factors(constant_upsample: bool) -> None:
    model = ASEMUNet(
        num_fmaps=2, downsample_factors=ANISOTROPIC, constant_upsample=constant_upsample
    )
    assert spatial_output(model, (38, 100, 108)) == (4, 6, 14)
    assert model.context == (17, 47, 47)


def test_invalid_size_raises_clear_error() -> None:
    model = ASEMUNet(num_fmaps=2)
    with pytest.raises(ValueError, match="input size 205 along z is not valid .* 204 and 212"):
        model(torch.rand(1, 1, 205, 100, 100))
    with pytest.raises(ValueError, match="input size 80 along y is not valid"):
        UNet(1, 2, 2, [[2, 3, 2], [2, 2, 2]])(torch.rand(1, 1, 100, 80, 48))


def test_wrong_layout_raises_clear_error() -> None:
    model = ASEMUNet(num_fmaps=2)
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, 1, z, y, x\)"):
        model(torch.rand(1, 100, 100, 100))
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, 1, z, y, x\)"):
        model(torch.rand(1, 2, 100, 100, 100))


@pytest.mark.parametrize(("constant_upsample", "axis"), [(True, 2), (False, 4)])
def test_translation_equivariance(constant_upsample: bool, axis: int) -> None:
    """Tiles offset by a multiple of 8 voxels reproduce the untiled prediction; others do not."""
    torch.manual_seed(1)
    model = ASEMUNet(num_fmaps=2, constant_upsample=constant_upsample).eval()
    # He initialisation keeps the coarse levels' contribution large enough for a misaligned tile
    # to show (with torch's default initialisation it is ~1e-6).
    for parameter in model.parameters():
        if parameter.dim() > 1:
            torch.nn.init.kaiming_normal_(parameter, nonlinearity="relu")
    shape = [1, 1, 100, 100, 100]
    shape[axis] = 124
    x = torch.rand(*shape) * 2 - 1
    with torch.no_grad():
        whole = model(x)
        tiles = {offset: model(x.narrow(axis, offset, 116)) for offset in (0, 4, 8)}
    for offset in (0, 8):
        torch.testing.assert_close(tiles[offset], whole.narrow(axis, offset, 22), rtol=0, atol=1e-5)
    assert (tiles[4] - whole.narrow(axis, 4, 22)).abs().max() > 1e-2


def test_hparams_round_trip_through_json() -> None:
    model = ASEMUNet(num_fmaps=4, downsample_factors=ANISOTROPIC, constant_upsample=False)
    hparams = json.loads(json.dumps(model.hparams()))
    assert hparams["downsample_factors"] == [[1, 2, 2], [1, 2, 2], [2, 2, 2]]
    rebuilt = ASEMUNet(**hparams)
    assert rebuilt.hparams() == model.hparams()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


def test_load_original_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(2)
    hparams = {"num_fmaps": 2, "constant_upsample": False}
    names = ASEMUNet(**hparams).state_dict()
    # An incasem checkpoint: the state dict under its original names, next to optimizer state.
    original = {name: torch.randn_like(value) for name, value in names.items()}
    path = tmp_path / "model_checkpoint_1000"
    torch.save({"model_state_dict": original, "optimizer_state_dict": {"state": {}}}, path)

    from_file = ASEMUNet(**hparams)
    load_model_state(from_file, path)
    from_dict = ASEMUNet(**hparams)
    load_model_state(from_dict, original)
    for name, value in from_file.state_dict().items():
        torch.testing.assert_close(value, original[name], rtol=0, atol=0)
    x = torch.rand(1, 1, 100, 100, 108)
    with torch.no_grad():
        torch.testing.assert_close(from_file(x), from_dict(x), rtol=0, atol=0)


def test_load_mismatched_checkpoint_names_keys() -> None:
    state = ASEMUNet(num_fmaps=2).state_dict()
    state["unet.extra.weight"] = state.pop("final_conv_pass.conv_pass.0.bias")
    with pytest.raises(ValueError) as raised:
        load_model_state(ASEMUNet(num_fmaps=2), {"model_state_dict": state})
    message = str(raised.value)
    assert "\n" not in message
    assert "missing keys: final_conv_pass.conv_pass.0.bias" in message
    assert "unexpected keys: unet.extra.weight" in message


def test_load_checkpoint_with_other_width_names_shapes() -> None:
    with pytest.raises(
        ValueError, match=r"shape mismatches: unet\.l_conv\.0\.conv_pass\.0\.weight"
    ):
        load_model_state(ASEMUNet(num_fmaps=2), ASEMUNet(num_fmaps=3).state_dict())


def test_float16_input_is_cast_to_the_weights_dtype() -> None:
    """Training sends 8-bit raw as float16; the model computes in float32 and gives the result
    of the float32 values the float16 input stands for."""
    torch.manual_seed(0)
    model = ASEMUNet(num_fmaps=2)
    half = (torch.rand(1, 1, 100, 100, 100) * 2 - 1).half()
    with torch.no_grad():
        from_half = model(half)
        from_float = model(half.float())
    assert from_half.dtype == torch.float32
    torch.testing.assert_close(from_half, from_float, rtol=0, atol=0)


def test_kaiming_initialisation_keeps_the_signal() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 1, 108, 108, 108)
    spreads = {}
    for scheme in ("pytorch", "kaiming"):
        torch.manual_seed(0)
        model = initialise_weights(ASEMUNet(num_fmaps=4), scheme)
        with torch.no_grad():
            logits = model(x)
        spreads[scheme] = float((logits[:, 1] - logits[:, 0]).std())
        if scheme == "kaiming":
            conv = model.unet.l_conv[0].conv_pass[0]
            fan_in = conv.weight[0].numel()
            assert float(conv.weight.std()) == pytest.approx((2 / fan_in) ** 0.5, rel=0.1)
            assert all(
                float(m.bias.abs().max()) == 0
                for m in model.modules()
                if hasattr(m, "bias") and m.bias is not None
            )
    # torch's default init lets an untrained U-Net's output collapse; He init keeps it alive
    assert spreads["kaiming"] > 10 * spreads["pytorch"]
    with pytest.raises(ValueError, match="unknown initialisation"):
        initialise_weights(ASEMUNet(num_fmaps=2), "xavier")


def test_place_model_runs_channels_last_on_the_cpu_with_the_same_values() -> None:
    torch.manual_seed(0)
    reference = initialise_weights(ASEMUNet(num_fmaps=2)).eval()
    placed = place_model(ASEMUNet(num_fmaps=2), "cpu").eval()
    placed.load_state_dict(reference.state_dict())
    # the convolutions' weights are channels-last, also after loading a checkpoint's weights
    weight = placed.unet.l_conv[1].conv_pass[0].weight
    assert placed.channels_last and weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert not weight.is_contiguous()
    x = torch.randn(1, 1, 100, 100, 100)
    with torch.no_grad():
        torch.testing.assert_close(placed(x), reference(x), rtol=1e-4, atol=1e-5)
    # the state dict is the plain model's: it loads into a model that was never placed
    plain = ASEMUNet(num_fmaps=2)
    plain.load_state_dict(placed.state_dict())
    assert not plain.channels_last


@pytest.mark.parametrize(
    ("normalisation", "residual", "layer"),
    [
        ("batch", False, torch.nn.BatchNorm3d),
        ("instance", False, torch.nn.InstanceNorm3d),
        ("group", True, torch.nn.GroupNorm),
        ("none", True, None),
    ],
)
def test_recipe_options_keep_the_geometry_and_describe_themselves(
    normalisation: str, residual: bool, layer: type | None
) -> None:
    """Normalisation layers and residual passes: same output size, rebuilt from the card."""
    torch.manual_seed(0)
    model = initialise_weights(
        ASEMUNet(num_fmaps=4, downsample_factors=TWO_LEVELS, normalisation=normalisation,
                 residual=residual)
    ).eval()  # fmt: skip
    plain = ASEMUNet(num_fmaps=4, downsample_factors=TWO_LEVELS)
    assert spatial_output(model, (60, 60, 60)) == spatial_output(plain, (60, 60, 60))
    layers = [m for m in model.modules() if layer is not None and isinstance(m, layer)]
    assert len(layers) == (2 * 5 if layer is not None else 0)  # 2 convolutions x 5 passes
    if layer is torch.nn.GroupNorm:
        assert [layers[i].num_groups for i in (0, 2, 4)] == [1, 2, 4]  # 4, 8, 16 channels
    hparams = json.loads(json.dumps(model.hparams()))
    rebuilt = ASEMUNet(**hparams)
    rebuilt.load_state_dict(model.state_dict())
    x = torch.rand(1, 1, 60, 60, 60)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), model(x))
    assert {k: hparams.get(k) for k in ("normalisation", "residual")} == {
        "normalisation": None if normalisation == "none" else normalisation,
        "residual": residual or None,
    }


def test_asem_network_is_unchanged_by_the_recipe_options() -> None:
    """The default network's card and parameter names are those published weights carry."""
    model = ASEMUNet()
    assert "normalisation" not in model.hparams() and "residual" not in model.hparams()
    assert "unet.l_conv.0.conv_pass.2.weight" in model.state_dict()
    assert not any("skip" in key for key in model.state_dict())
    with pytest.raises(ValueError, match="unknown normalisation 'layer'"):
        ASEMUNet(normalisation="layer")


def test_residual_pass_adds_its_cropped_input() -> None:
    """With zero convolutions a residual pass returns relu(its input, centre-cropped by 2)."""
    from incasem.torch.models.unet import ConvPass

    conv = ConvPass(3, 3, (3, 3), "ReLU", residual=True)
    for parameter in conv.conv_pass.parameters():
        torch.nn.init.zeros_(parameter)
    x = torch.randn(1, 3, 9, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), torch.relu(x[..., 2:7, 2:7, 2:7]))


def test_batch_normalised_network_stays_translation_equivariant() -> None:
    """Eval-mode batch normalisation uses running statistics: tiles reproduce one pass."""
    torch.manual_seed(2)
    model = initialise_weights(ASEMUNet(num_fmaps=2, normalisation="batch", residual=True))
    with torch.no_grad():
        model.train()(torch.rand(1, 1, 100, 100, 100))  # running statistics that are not 0/1
    model.eval()
    x = torch.rand(1, 1, 100, 100, 124) * 2 - 1
    with torch.no_grad():
        whole = model(x)
        tile = model(x.narrow(4, 8, 116))
    torch.testing.assert_close(tile, whole.narrow(4, 8, 22), rtol=0, atol=1e-5)


def test_deep_supervision_heads_sit_on_the_coarser_levels_and_leave_prediction_alone() -> None:
    """Aux logits come at 2x and 4x the output's voxel size and cover it once upsampled; the
    network's output is the plain network's with the same weights, and the card rebuilds it."""
    from incasem.torch.loss import upsample_logits

    torch.manual_seed(3)
    model = initialise_weights(ASEMUNet(num_fmaps=2, deep_supervision=True)).eval()
    assert model.aux_factors == [(2, 2, 2), (4, 4, 4)]
    assert [tuple(head.weight.shape[:2]) for head in model.aux_heads] == [(2, 4), (2, 8)]
    x = torch.rand(1, 1, 108, 108, 108)
    with torch.no_grad():
        logits, aux = model.forward_with_aux(x)
        plain = ASEMUNet(num_fmaps=2)
        plain.load_state_dict(
            {k: v for k, v in model.state_dict().items() if not k.startswith("aux_heads")}
        )
        torch.testing.assert_close(model(x), plain.eval()(x))
        torch.testing.assert_close(logits, plain(x))
    assert tuple(logits.shape) == (1, 2, 14, 14, 14)
    for head, factor in zip(aux, model.aux_factors, strict=True):
        assert head.shape[1] == 2
        assert all(size * f >= 14 for size, f in zip(head.shape[2:], factor, strict=True))
        assert tuple(upsample_logits(head, factor, (14, 14, 14)).shape) == (1, 2, 14, 14, 14)
    hparams = json.loads(json.dumps(model.hparams()))
    assert hparams["deep_supervision"] is True
    ASEMUNet(**hparams).load_state_dict(model.state_dict())
    assert "deep_supervision" not in ASEMUNet().hparams()
    assert ASEMUNet().forward_with_aux(torch.rand(1, 1, 204, 204, 204))[1] == []
