"""Flags generated from the settings models (`incasem.settings`): one per field, with the
field's default and description; old spellings still work with one deprecation line; a bad
value is one error line naming the flag."""

from __future__ import annotations

import argparse
import logging

import pytest

from incasem.annotate.settings import CutSettings
from incasem.cli.annotate import cut_settings
from incasem.cli.main import build_parser, main
from incasem.cli.predict import _config_updates, resolve_config
from incasem.predict.settings import PredictionSettings
from incasem.settings import Settings


def _subparser(*words: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for word in words:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[word]
    return parser


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The visible action of each destination."""
    return {a.dest: a for a in parser._actions if a.help != argparse.SUPPRESS}


@pytest.mark.parametrize(
    ("words", "model", "unset"),
    [
        (("predict",), PredictionSettings, argparse.SUPPRESS),
        (("annotate", "graphcut"), CutSettings, None),
    ],
)
def test_every_field_has_a_flag_with_its_default_and_description(words, model, unset):
    actions = _actions(_subparser(*words))
    for name, field in model.model_fields.items():
        if name == "sacred_run_id":  # set by the run, not the user
            assert name not in actions
            continue
        action = actions[name]
        help_text = action.help.replace("%%", "%")
        assert field.description and field.description in help_text
        if field.annotation is bool:
            assert action.const is (not field.default)
            continue
        if field.default is not None:
            assert f"(default: {field.default})" in help_text
        assert action.default == (field.default if unset is None else unset)
    # graph cut: the parsed defaults are the model's own
    args = build_parser().parse_args(["annotate", "graphcut", "-f", "x.zarr", "--seeds", "s",
                                      "-o", "volumes/labels/o"])  # fmt: skip
    assert cut_settings(args) == CutSettings()


def test_old_flag_spellings_work_with_one_deprecation_line(caplog):
    caplog.set_level(logging.WARNING, "incasem.settings")
    parser = build_parser()
    args = parser.parse_args(["predict", "--checkpoint", "m.pt", "--input", "c.zarr",
                              "--input_size", "auto", "--host", "10.0.0.1"])  # fmt: skip
    assert args.input_size_voxels == "auto" and args.scheduler_host == "10.0.0.1"
    assert caplog.messages == ["--input_size is deprecated: use --input_size_voxels"]
    caplog.clear()
    args = parser.parse_args(["annotate", "graphcut", "-f", "x.zarr", "--seeds", "s", "-o", "o",
                              "--lambda", "2", "--sigma", "15", "--smooth", "1.5",
                              "--edge-smooth", "0"])  # fmt: skip
    settings = cut_settings(args)
    assert (settings.pairwise_weight, settings.contrast) == (2.0, 15.0)
    assert (settings.feature_sigma, settings.edge_sigma) == (1.5, 0.0)
    assert caplog.messages == [
        "--lambda is deprecated: use --pairwise_weight",
        "--sigma is deprecated: use --contrast",
        "--smooth is deprecated: use --feature_sigma",
        "--edge-smooth is deprecated: use --edge_sigma",
    ]


def test_old_names_in_configs_and_keywords_are_read_with_one_deprecation_line(caplog):
    caplog.set_level(logging.WARNING)
    args = build_parser().parse_args(["predict", "--checkpoint", "m.pt", "--input", "c.zarr",
                                      "with", "prediction.probabilities=float32"])  # fmt: skip
    updates, named = _config_updates(args)
    settings = PredictionSettings.from_config(resolve_config(updates, named))
    assert settings.probability_dtype == "float32"
    assert caplog.messages == [
        "prediction.probabilities is deprecated: use prediction.probability_dtype"
    ]  # and no "configuration keys not used" warning
    caplog.clear()
    assert CutSettings(smoothness=0.5).pairwise_weight == 0.5
    assert PredictionSettings(checkpoint="m", input="c", input_size=[1, 2, 3]).input_size_voxels
    changed = settings.replace(probabilities="uint8")  # an old name wins over the current value
    assert changed.probability_dtype == "uint8" and settings.probability_dtype == "float32"
    assert caplog.messages == [
        "'smoothness' is deprecated: use 'pairwise_weight'",
        "'input_size' is deprecated: use 'input_size_voxels'",
        "'probabilities' is deprecated: use 'probability_dtype'",
    ]


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["predict", "--checkpoint", "m.pt", "--input", "c.zarr", "--num_workers", "0"],
         "incasem predict: error: argument --num_workers/--num-workers: must be a positive "
         "integer, got '0'"),
        (["predict", "--checkpoint", "m.pt", "--input", "c.zarr", "--threshold", "2"],
         "incasem predict: error: argument --threshold: must lie in (0, 1), got '2'"),
        (["predict", "--checkpoint", "m.pt", "--input", "c.zarr", "--input_size_voxels", "1", "x"],
         "incasem predict: error: argument --input_size_voxels/--input-size-voxels: must be 3 "
         "integers (voxels, z y x) or 'auto', got ['1', 'x']"),
        (["annotate", "graphcut", "-f", "x.zarr", "--seeds", "s", "-o", "o", "--outliers", "1"],
         "incasem annotate graphcut: error: argument --outliers: must be a fraction in [0, 1), "
         "got '1'"),
        (["annotate", "graphcut", "-f", "x.zarr", "--seeds", "s", "-o", "o", "--lambda", "-1"],
         "incasem annotate graphcut: error: argument --lambda: must be >= 0, got '-1'"),
    ],
)  # fmt: skip
def test_a_bad_value_is_one_line_naming_the_flag(argv, line, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    errors = [each for each in capsys.readouterr().err.splitlines() if "error" in each]
    assert errors == [line]


def test_a_bad_keyword_is_one_line_naming_the_field_or_flag():
    from incasem.errors import IncasemError

    with pytest.raises(IncasemError, match=r"^max_retries must be >= 0, got -1$"):
        PredictionSettings(checkpoint="m", input="c", max_retries=-1)
    with pytest.raises(IncasemError, match=r"^--context -2 must be >= 0$"):
        CutSettings(context=-2)
    assert issubclass(CutSettings, Settings) and issubclass(PredictionSettings, Settings)
