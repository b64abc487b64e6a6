"""Study specs: presets and TOML configs validated by the study's pydantic model.

A config is a TOML file whose top-level keys are the fields of the study's ``spec_model``; an
optional top-level ``study = "name"`` must match the study it is run with. Presets are such files
shipped with the package (``symlab/configs/<study>/<preset>.toml``, or the study's ``config_dir``).
Every problem becomes a :class:`SpecError` (a ValueError) whose message is one sentence naming the
field and what was expected, e.g. ``config field 'depths': expected a list of integers >= 1, got
'three'.``
"""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from symlab.engine.errors import SpecError
from symlab.engine.experiment import Experiment, get_experiment

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

DEFAULT_PRESET = "quick"
_PRESET_ORDER = ("quick", "paper")


# ---------------------------------------------------------------- presets


def distinct(values: list, what: str = "values") -> list:
    """A spec list validator's body: ``values`` sorted (strings keep their order, which may
    carry meaning, e.g. a plotting order), or ValueError "expected distinct <what>" on a repeat."""
    if len(set(values)) != len(values):
        raise ValueError(f"expected distinct {what}")
    return list(values) if values and isinstance(values[0], str) else sorted(values)


def _preset_files(experiment: Experiment) -> dict[str, Any]:
    """Preset name -> file (a Path or an importlib Traversable) for ``experiment``."""
    if experiment.config_dir is not None:
        folder: Any = Path(experiment.config_dir)
    else:
        folder = resources.files("symlab").joinpath("configs", experiment.name)
    if not folder.is_dir():
        return {}
    files = {f.name[: -len(".toml")]: f for f in folder.iterdir() if f.name.endswith(".toml")}
    order = [p for p in _PRESET_ORDER if p in files] + sorted(set(files) - set(_PRESET_ORDER))
    return {name: files[name] for name in order}


def list_presets(study: str | Experiment) -> list[str]:
    """The preset names of ``study``: quick and paper first, then the others sorted."""
    experiment = study if isinstance(study, Experiment) else get_experiment(study)
    return list(_preset_files(experiment))


# ---------------------------------------------------------------- loading


def load_spec(
    study: str | Experiment,
    *,
    preset: str | None = None,
    config: str | Path | None = None,
) -> BaseModel:
    """The validated spec of ``study`` from a preset (default ``quick``) or a TOML ``config`` file.

    Raises :class:`SpecError` (one sentence naming the field) on an unknown preset, a missing or
    malformed file, a ``study`` key that names another study, or a value the spec model rejects.
    """
    experiment = study if isinstance(study, Experiment) else get_experiment(study)
    if preset is not None and config is not None:
        raise SpecError("preset and config: expected one of them, got both.")
    if config is not None:
        path = Path(config)
        if path.is_dir():
            raise SpecError(f"config: '{path}' is a folder; expected a TOML file.")
        if not path.is_file():
            raise SpecError(f"config: file '{path}' does not exist.")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise SpecError(
                f"config: '{path}' is not UTF-8 text (byte {error.start}); expected a TOML file "
                "saved as UTF-8."
            ) from None
        except OSError as error:
            raise SpecError(f"config: '{path}' cannot be read ({error.strerror}).") from None
        return spec_from_toml(experiment, text, source=f"'{path}'")
    name = DEFAULT_PRESET if preset is None else preset
    files = _preset_files(experiment)
    if name not in files:
        if not files:
            raise SpecError(
                f"preset {name!r}: study {experiment.name} has no presets (pass a config file)."
            )
        raise SpecError(f"preset {name!r}: expected one of {', '.join(files)}.")
    text = files[name].read_text(encoding="utf-8")
    return spec_from_toml(experiment, text, source=f"preset {name!r}")


def spec_from_toml(study: str | Experiment, text: str, *, source: str = "config") -> BaseModel:
    """Parse and validate TOML ``text`` as a spec of ``study`` (see :func:`load_spec`)."""
    experiment = study if isinstance(study, Experiment) else get_experiment(study)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{source} is not valid TOML: {str(error).rstrip('.')}.") from error
    return spec_from_mapping(experiment, data)


def spec_from_mapping(study: str | Experiment, data: Mapping[str, Any]) -> BaseModel:
    """Validate the mapping ``data`` (a parsed config) with the study's spec model."""
    experiment = study if isinstance(study, Experiment) else get_experiment(study)
    data = dict(data)
    named = data.pop("study", experiment.name)
    if named != experiment.name:
        raise SpecError(f"config field 'study': expected {experiment.name!r}, got {named!r}.")
    model = experiment.spec_model
    # TOML true is not 1 and "3" is not 3: such values are replaced by an object every
    # validator rejects, so the field's error (and the count of problems) comes from pydantic
    checked = {
        name: _REJECTED
        if name in model.model_fields and _wrong_scalar(value, model.model_fields[name].annotation)
        else value
        for name, value in data.items()
    }
    try:
        spec = model.model_validate(checked)
    except ValidationError as error:
        raise SpecError(_one_sentence(error, model, experiment.name, data)) from None
    for name, info in model.model_fields.items():
        # inf and nan are refused, except in a field whose default is one (it means something)
        value = getattr(spec, name)
        if _non_finite(value) and not _non_finite(info.default):
            expected = describe_type(info.annotation, info.metadata)
            expected = expected.replace("a number", "a finite number", 1).replace(
                "numbers", "finite numbers", 1
            )
            raise SpecError(
                f"config field {name!r}: expected {expected}, got {_short(data.get(name, value))}."
            )
    return spec


class _Rejected:
    """A value that no pydantic validator of a spec field accepts."""


_REJECTED = _Rejected()


def _wrong_scalar(value: Any, annotation: Any) -> bool:
    """True if ``value`` (parsed TOML) holds a boolean or a string where ``annotation`` takes
    only numbers, or a non-boolean where it takes only booleans (pydantic's lax mode would read
    ``true`` as 1 and ``"3"`` as 3)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _wrong_scalar(value, args[0])
    if annotation in (int, float):
        return isinstance(value, bool | str)
    if annotation is bool:
        return not isinstance(value, bool)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return False
        return all(_wrong_scalar(value, option) for option in args if option is not type(None))
    if origin in (list, set, frozenset) and isinstance(value, list) and args:
        return any(_wrong_scalar(item, args[0]) for item in value)
    if origin is tuple and isinstance(value, list) and args:
        items = [args[0]] * len(value) if args[-1] is Ellipsis else list(args)
        return any(_wrong_scalar(v, a) for v, a in zip(value, items, strict=False))
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        return any(_wrong_scalar(item, args[1]) for item in value.values())
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if isinstance(value, dict):
            fields = annotation.model_fields
            return any(
                _wrong_scalar(v, fields[k].annotation) for k, v in value.items() if k in fields
            )
    return False


def _non_finite(value: Any) -> bool:
    """True if ``value`` (a validated field) is or holds a float inf or nan."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list | tuple | set | frozenset):
        return any(_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, BaseModel):
        return any(_non_finite(getattr(value, n)) for n in type(value).model_fields)
    return False


def _one_sentence(
    error: ValidationError, model: type[BaseModel], study: str, data: Mapping[str, Any]
) -> str:
    """The first validation problem as one sentence naming the field (and how many more)."""
    problems = error.errors()
    first = problems[0]
    more = len(problems) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    loc = first.get("loc", ())
    field = str(loc[0]) if loc else None
    kind = first.get("type", "")
    if field is None or field not in model.model_fields and kind != "extra_forbidden":
        message = first.get("msg", "invalid").removeprefix("Value error, ")
        named, colon, rest = message.partition(": ")  # a model validator naming its field
        if colon and named in model.model_fields:
            return f"config field {named!r}: {rest.rstrip('.')}{tail}."
        return f"config: {message.rstrip('.')}{tail}."
    if kind == "extra_forbidden":
        known = ", ".join(model.model_fields)
        return f"config field {field!r} is not a field of {study} (known: {known}){tail}."
    info = model.model_fields[field]
    expected = describe_type(info.annotation, info.metadata)
    if kind == "missing":
        return f"config field {field!r} is missing: expected {expected}{tail}."
    got = _short(data.get(field))
    if kind in ("value_error", "assertion_error"):
        message = (
            first.get("msg", "").removeprefix("Value error, ").removeprefix("Assertion failed, ")
        )
        return f"config field {field!r}: {message.rstrip('.')}, got {got}{tail}."
    return f"config field {field!r}: expected {expected}, got {got}{tail}."


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------- type descriptions

_SINGULAR = {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}
_PLURAL = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}


def _constraints(metadata: list[Any]) -> str:
    parts = []
    for m in metadata:
        for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(m, attr, None)
            if value is not None and isinstance(
                m, annotated_types.BaseMetadata | annotated_types.Interval
            ):
                # typing caches Annotated[float, Ge(0)] and Ge(0.0) as one (they compare equal),
                # so print whole numbers one way whatever the field wrote.
                shown = int(value) if isinstance(value, float) and value.is_integer() else value
                parts.append(f"{sym} {shown}")
        if isinstance(m, annotated_types.MinLen) and m.min_length > 0:
            parts.append(f"with at least {m.min_length} item{'s' if m.min_length > 1 else ''}")
        if isinstance(m, annotated_types.MaxLen):
            parts.append(f"with at most {m.max_length} items")
    return " and ".join(parts)


def describe_type(annotation: Any, metadata: list[Any] | None = None, plural: bool = False) -> str:
    """A phrase for what a field of type ``annotation`` accepts, e.g. 'a list of integers >= 1'."""
    metadata = list(metadata or [])
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:  # Field(ge=1) in Annotated carries its bounds in .metadata
        extra = [m for a in args[1:] for m in (a.metadata if isinstance(a, FieldInfo) else [a])]
        return describe_type(args[0], metadata + extra, plural)
    constraint = _constraints(metadata)
    suffix = f" {constraint}" if constraint else ""
    if annotation in _SINGULAR:
        return (_PLURAL if plural else _SINGULAR)[annotation] + suffix
    if origin is typing.Literal:
        return ("values among " if plural else "one of ") + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        text = " or ".join(describe_type(a, plural=plural) for a in options)
        return text + (" (or omitted)" if len(options) < len(args) else "")
    if origin in (list, tuple, set, frozenset):
        item = args[0] if args else Any
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return f"a list of {len(args)} values" + suffix
        inner = describe_type(item, plural=True) if item is not Any else "values"
        return ("lists" if plural else "a list") + f" of {inner}" + suffix
    if origin is dict:
        return "tables" if plural else "a table"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = ", ".join(annotation.model_fields)
        return ("tables" if plural else "a table") + f" with keys {fields}"
    return getattr(annotation, "__name__", str(annotation)) + suffix


# ---------------------------------------------------------------- writing TOML


def spec_to_toml(spec: BaseModel, study: str | None = None) -> str:
    """The resolved ``spec`` as TOML text that :func:`load_spec` reads back to an equal spec.

    A field that is None is written as a comment (TOML has no null), so it takes its default
    when read back; ``study`` (if given) is written first as ``study = "..."``.
    """
    data = spec.model_dump(mode="json")
    lines: list[str] = []
    if study is not None:
        lines.append(f"study = {_toml_value(study)}")
    tables: list[tuple[str, dict]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif value is None:
            lines.append(f"# {_toml_key(key)} = (none)")
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, table in tables:
        lines.append("")
        lines.append(f"[{_toml_key(key)}]")
        for k, v in table.items():
            if v is None:
                lines.append(f"# {_toml_key(k)} = (none)")
            else:
                lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    bare = key and all(c.isalnum() or c in "-_" for c in key) and key.isascii()
    return key if bare else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    raise SpecError(f"spec: cannot write a value of type {type(value).__name__} to TOML.")
