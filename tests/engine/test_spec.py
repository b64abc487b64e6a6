"""Specs: presets, TOML configs, one-sentence validation errors, and writing specs back."""

from __future__ import annotations

import math
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, confloat, conint

from symlab.engine import (
    Experiment,
    SpecError,
    list_presets,
    load_spec,
    spec_from_mapping,
    spec_to_toml,
)
from symlab.engine.spec import describe_type, spec_from_toml


def one_sentence(message: str) -> bool:
    return message.endswith(".") and "\n" not in message and "Traceback" not in message


def test_presets_are_listed_quick_first_and_load(toy):
    assert list_presets("toy") == ["quick", "paper"]
    quick = load_spec("toy")  # default preset
    assert quick == load_spec("toy", preset="quick")
    assert quick.xs == [0, 1, 2, 3] and quick.seeds == [0, 10]
    paper = load_spec(toy, preset="paper")
    assert paper.seeds == [0, 10, 20]


def test_config_file_loads_and_study_key_must_match(toy, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('study = "toy"\nxs = [5]\nsleep = 0.5\n')
    spec = load_spec("toy", config=config)
    assert spec.xs == [5] and spec.sleep == 0.5 and spec.seeds == [0]
    config.write_text('study = "hidden-symmetries"\nxs = [5]\n')
    with pytest.raises(SpecError) as info:
        load_spec("toy", config=config)
    assert str(info.value) == "config field 'study': expected 'toy', got 'hidden-symmetries'."


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"xs": "three"},
            "config field 'xs': expected a list of integers >= 0 with at least 1 item, "
            "got 'three'.",
        ),
        ({"xs": [1, -2]}, "config field 'xs': expected a list of integers >= 0"),
        (
            {"xs": [1], "widthz": 3},
            "config field 'widthz' is not a field of toy (known: xs, seeds, sleep, fail_on, mode).",
        ),
        ({"seeds": [1]}, "config field 'xs' is missing: expected a list of integers >= 0"),
        ({"xs": [1], "sleep": "slow"}, "config field 'sleep': expected a number >= 0, got"),
        ({"xs": [1], "mode": "fast"}, "config field 'mode': expected one of 'plain', 'bad-row'"),
    ],
)
def test_validation_errors_are_one_sentence_naming_the_field(toy, data, expected):
    with pytest.raises(SpecError) as info:
        spec_from_mapping("toy", data)
    message = str(info.value)
    assert message.startswith(expected)
    assert one_sentence(message)
    assert isinstance(info.value, ValueError)


def test_several_problems_are_counted_in_the_one_sentence(toy):
    with pytest.raises(SpecError) as info:
        spec_from_mapping("toy", {"xs": "a", "sleep": "b", "extra": 1})
    assert "(and 2 more problems)." in str(info.value)
    assert one_sentence(str(info.value))


def test_unknown_preset_missing_file_both_sources(toy, tmp_path):
    with pytest.raises(SpecError, match=r"^preset 'fast': expected one of quick, paper\.$"):
        load_spec("toy", preset="fast")
    with pytest.raises(SpecError, match="does not exist"):
        load_spec("toy", config=tmp_path / "missing.toml")
    with pytest.raises(SpecError, match="got both"):
        load_spec("toy", preset="quick", config=tmp_path / "missing.toml")


def test_malformed_toml_names_the_line(toy, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("xs = [1, 2]\nseeds = = 3\n")
    with pytest.raises(SpecError) as info:
        load_spec("toy", config=config)
    message = str(info.value)
    assert "is not valid TOML" in message and "line 2" in message
    assert one_sentence(message)


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lr: float = 0.1
    name: str = 'a "quoted" name'


class Zoo(BaseModel):
    """A spec with every kind of field the TOML writer must handle."""

    model_config = ConfigDict(extra="forbid")
    depths: list[conint(ge=1)] = Field(default=[1, 2], description="depths")
    widths: list[list[int]] = Field(default=[[2, 3], [4]], description="nested lists")
    scale: confloat(gt=0) = Field(default=math.inf, description="a float")
    ratio: float = Field(default=-1.5e-300, description="a tiny float")
    kind: Literal["a", "b"] = "b"
    maybe: int | None = Field(default=None, description="optional")
    flag: bool = True
    inner: Inner = Field(default_factory=Inner)


ZOO = Experiment(
    name="zoo",
    description="spec writer test",
    spec_model=Zoo,
    expand=lambda spec: [],
    run_job=lambda params: {},
    summarize=lambda rows, spec: None,
    plot=lambda rows, spec, out: [],
)


@pytest.mark.parametrize(
    "data",
    [{}, {"maybe": 3, "kind": "a", "flag": False, "inner": {"lr": 1e-3, "name": "x\\y\n"}}],
)
def test_spec_to_toml_round_trips(data):
    spec = spec_from_mapping(ZOO, data)
    text = spec_to_toml(spec, study="zoo")
    assert text.startswith('study = "zoo"\n')
    back = spec_from_toml(ZOO, text)
    assert back == spec
    assert back.model_dump() == spec.model_dump()


def test_describe_type_phrases():
    fields = Zoo.model_fields
    assert describe_type(fields["depths"].annotation) == "a list of integers >= 1"
    assert describe_type(fields["widths"].annotation) == "a list of lists of integers"
    scale = fields["scale"]  # pydantic moves a top-level constraint into the field's metadata
    assert describe_type(scale.annotation, scale.metadata) == "a number > 0"
    assert describe_type(fields["kind"].annotation) == "one of 'a', 'b'"
    assert describe_type(fields["maybe"].annotation) == "an integer (or omitted)"
    assert describe_type(fields["inner"].annotation) == "a table with keys lr, name"
