"""Settings models, and the command-line flags generated from them.

A settings model (`Settings`) declares each field once with `setting`: its type (constraints
are types: ``Literal``, ``PositiveInt``, ...), default, description, and optionally its Sacred
configuration key, extra flag spellings and old names. From that one declaration follow:

- the model's own checks: a bad value is one line naming the field (or flag) and the value
  (`IncasemError`), never a pydantic report;
- old names: still read as keyword arguments, configuration keys and flags, each with one
  deprecation line (``logging.warning``) naming the old and the new spelling;
- the command line (`add_flags`): a flag per field, ``--name`` and ``--name-with-dashes``,
  typed and checked by the model (a bad value is argparse's one error line naming the flag),
  its help the field's description and default.

Used by `incasem.predict.settings`, `incasem.annotate.settings` and the commands that take
them (`incasem.cli`).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo

from incasem.errors import IncasemError

logger = logging.getLogger(__name__)

#: ``nargs`` of a list field given as one word (``--gpus 0,1``), which its type parses.
ONE_WORD = "one word"


def setting(
    default: Any,
    description: str,
    *,
    key: str | None = None,
    flags: Iterable[str] = (),
    old: Iterable[str] = (),
    expects: str | None = None,
    metavar: str | tuple[str, ...] | None = None,
    nargs: int | str | None = None,
    const: Any = None,
    cli: bool = True,
) -> Any:
    """A settings field (use as the field's default in a `Settings` model).

    Args:
        default: the value when none is given.
        description: what the value means, with its units; the flag's help.
        key: dotted Sacred configuration key (``prediction.num_workers``), or None.
        flags: extra flag spellings beside ``--name`` and ``--name-with-dashes`` (``-r``).
        old: earlier names, still read (keyword, configuration key with the last part
            replaced, ``--old`` / ``--old-with-dashes`` flag) with a deprecation line.
        expects: what a bad value is told it must be (``"must be an integer or 'best'"``);
            default worded from the type.
        metavar, nargs, const: argparse's, for the field's flag (nargs: default from a fixed
            list length in the type, ``"+"`` for other lists; `ONE_WORD`: one word, which the
            type parses).
        cli: False: no flag (set by the program, not the user).
    """
    extra = {
        "key": key,
        "flags": list(flags),
        "old": list(old),
        "expects": expects,
        "metavar": list(metavar) if isinstance(metavar, tuple) else metavar,
        "nargs": nargs,
        "const": const,
        "cli": cli,
    }
    return Field(default=default, description=description, json_schema_extra=extra)


def _extra(field: FieldInfo) -> dict[str, Any]:
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def _dashed(name: str) -> str:
    return name.replace("_", "-")


class Settings(BaseModel):
    """Base of the settings models: old names, one-line problems, `flag_spellings`.

    Subclasses declare fields with `setting`; a value that fails a field's type raises
    `IncasemError` whose line names the field as `describe_problem` words it.
    """

    #: How problems name a field: ``"field"`` (its name as given) or ``"flag"`` (its flags).
    problem_names: ClassVar[str] = "field"

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Old names become validation aliases (the name itself first)."""
        super().__pydantic_init_subclass__(**kwargs)
        changed = False
        for name, field in cls.model_fields.items():
            old = _extra(field).get("old") or []
            if old and field.validation_alias is None:
                field.validation_alias = AliasChoices(name, *old)
                changed = True
        if changed:
            cls.model_rebuild(force=True)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise IncasemError(self.describe_problem(e)) from None

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, values: Any) -> Any:
        """One deprecation line per old name given."""
        if isinstance(values, Mapping):
            for name, field in cls.model_fields.items():
                for old in _extra(field).get("old") or []:
                    if old in values and name not in values:
                        deprecated(repr(old), repr(name))
        return values

    @classmethod
    def field_of(cls, name: str) -> str | None:
        """The field that ``name`` (a field name or an old name) sets, or None."""
        if name in cls.model_fields:
            return name
        for field_name, field in cls.model_fields.items():
            if name in (_extra(field).get("old") or []):
                return field_name
        return None

    @classmethod
    def config_key(cls, name: str) -> str | None:
        """The dotted Sacred key of the field ``name`` (None: no key, or no such field)."""
        field = cls.model_fields.get(name)
        return _extra(field).get("key") if field is not None else None

    @classmethod
    def old_config_keys(cls, name: str) -> list[str]:
        """The field's configuration keys under its old names (read with a deprecation line)."""
        key = cls.config_key(name)
        if key is None:
            return []
        parent = key.rpartition(".")[0]
        olds = _extra(cls.model_fields[name]).get("old") or []
        return [f"{parent}.{old}" if parent else old for old in olds]

    @classmethod
    def flag_spellings(cls, name: str) -> tuple[list[str], list[str]]:
        """The field's flags: current ones (the first is the main one) and old ones."""
        extra = _extra(cls.model_fields[name])
        current = [*_both(name), *(extra.get("flags") or [])]
        if cls.model_fields[name].annotation is bool and cls.model_fields[name].default is True:
            current = [f"--no-{_dashed(name)}", *(extra.get("flags") or [])]
        old = [flag for each in extra.get("old") or [] for flag in _both(each)]
        return current, old

    @classmethod
    def describe_problem(cls, error: ValidationError) -> str:
        """One line for the first problem of ``error``: the field (or its flags), what it
        must be, the value given."""
        first = error.errors()[0]
        given = str(first["loc"][0]) if first["loc"] else "value"
        if first["type"] == "extra_forbidden":
            return f"unknown setting {given!r}"
        name = cls.field_of(given)
        expects = _expects(first, cls.model_fields[name] if name else None)
        if cls.problem_names == "flag" and name is not None:
            olds = _extra(cls.model_fields[name]).get("old") or []
            flags = "/".join(f"--{_dashed(each)}" for each in [name, *olds])
            return f"{flags} {first.get('input')!r} {expects}"
        return f"{given} {expects}, got {first.get('input')!r}"


def _both(name: str) -> list[str]:
    """``--name`` and ``--name-with-dashes`` (one of them if they are the same)."""
    return list(dict.fromkeys([f"--{name}", f"--{_dashed(name)}"]))


def deprecated(old: str, new: str) -> None:
    """Log the one line for an old spelling used."""
    logger.warning("%s is deprecated: use %s", old, new)


_PHRASES: dict[str, Callable[[dict[str, Any]], str]] = {
    "literal_error": lambda ctx: f"must be one of {ctx['expected']}",
    "greater_than": lambda ctx: (
        ("must be a positive integer" if isinstance(ctx["gt"], int) else "must be positive")
        if ctx["gt"] == 0
        else f"must be > {ctx['gt']}"
    ),
    "greater_than_equal": lambda ctx: f"must be >= {ctx['ge']:g}",
    "less_than": lambda ctx: f"must be < {ctx['lt']}",
    "less_than_equal": lambda ctx: f"must be <= {ctx['le']}",
    "int_parsing": lambda ctx: "must be an integer",
    "int_type": lambda ctx: "must be an integer",
    "int_from_float": lambda ctx: "must be an integer",
    "float_parsing": lambda ctx: "must be a number",
    "float_type": lambda ctx: "must be a number",
    "bool_parsing": lambda ctx: "must be true or false",
    "bool_type": lambda ctx: "must be true or false",
    "string_type": lambda ctx: "must be text",
}


def _expects(error: Any, field: FieldInfo | None) -> str:
    """What the value must be: a check's own words, the field's ``expects``, the type's."""
    ctx = error.get("ctx") or {}
    if error["type"] == "value_error":
        return str(ctx.get("error"))
    if field is not None and _extra(field).get("expects"):
        return _extra(field)["expects"]
    phrase = _PHRASES.get(error["type"])
    return phrase(ctx) if phrase else error["msg"][:1].lower() + error["msg"][1:]


def checked(check: Callable[[Any], None]) -> AfterValidator:
    """A type's extra check: ``check(value)`` raises ValueError with what the value must be."""

    def validate(value: Any) -> Any:
        if value is not None:
            check(value)
        return value

    return AfterValidator(validate)


def _open_unit(value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError("must lie in (0, 1)")


def _unit_fraction(value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError("must be a fraction in [0, 1)")


#: A probability strictly between 0 and 1.
OpenUnitFloat = Annotated[float, checked(_open_unit)]
#: A fraction in [0, 1).
Fraction = Annotated[float, checked(_unit_fraction)]


class _FlagAction(argparse.Action):
    """Stores a field's value checked by its type; logs the deprecation line for old flags."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        self.old = kwargs.pop("old")
        self.new = kwargs.pop("new")
        self.adapter = kwargs.pop("adapter")
        self.describe = kwargs.pop("describe")
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if option_string in self.old:
            deprecated(option_string, self.new)
        value = self.const if self.nargs == 0 else values
        # argparse's wording: every spelling of the flag; an old one: the one typed
        flags = option_string if self.old else "/".join(self.option_strings)
        if self.adapter is not None and value is not self.const:
            try:
                value = self.adapter.validate_python(value)
            except ValidationError as e:
                parser.error(f"argument {flags}: {self.describe(e)}, got {values!r}")
            except IncasemError as e:
                parser.error(f"argument {flags}: {e}")
        setattr(namespace, self.dest, value)


def add_flags(
    parser: argparse.ArgumentParser | Any,
    model: type[Settings],
    names: Iterable[str] | None = None,
    *,
    leave_unset: bool = False,
) -> None:
    """Add a flag per field of ``model`` (or of ``names``) to ``parser`` (or an argument group).

    Each flag's destination is the field's name, its help the field's description with its
    default, its value checked by the field's type. ``leave_unset``: a flag not given is
    absent from the parsed namespace (so it leaves a configuration alone); otherwise it is
    the field's default.
    """
    for name in names if names is not None else model.model_fields:
        field = model.model_fields[name]
        extra = _extra(field)
        if not extra.get("cli", True):
            continue
        current, old = model.flag_spellings(name)
        kwargs = _flag_kwargs(model, name, field, extra)
        kwargs["default"] = argparse.SUPPRESS if leave_unset else field.default
        parser.add_argument(*current, dest=name, action=_FlagAction, old=[], new=None, **kwargs)
        if old:  # read, not shown
            kwargs["help"] = argparse.SUPPRESS
            parser.add_argument(
                *old, dest=name, action=_FlagAction, old=old, new=current[0], **kwargs
            )


def _flag_kwargs(
    model: type[Settings], name: str, field: FieldInfo, extra: dict[str, Any]
) -> dict[str, Any]:
    """argparse's nargs, const, metavar and help for one field, and its checking type."""
    default = field.default
    help_text = (field.description or "").replace("%", "%%")
    if field.annotation is bool:
        if default:
            help_text = f"off: {help_text} (default: on)"
        return {"nargs": 0, "const": not default, "adapter": None, "describe": None,
                "help": help_text}  # fmt: skip
    metadata = tuple(field.metadata)
    adapter = TypeAdapter(
        Annotated[(field.annotation, *metadata)] if metadata else field.annotation
    )
    nargs = extra.get("nargs")
    if nargs is None:
        nargs = _list_length(adapter)
    metavar = extra.get("metavar")
    kwargs: dict[str, Any] = {
        "adapter": adapter,
        "describe": lambda error: _expects(error.errors()[0], field),
        "help": f"{help_text} (default: {default})" if default is not None else help_text,
        "metavar": tuple(metavar) if isinstance(metavar, list) else metavar,
    }
    if get_origin(field.annotation) is Literal:
        kwargs["choices"] = get_args(field.annotation)
    if nargs not in (None, ONE_WORD):
        kwargs["nargs"] = nargs
    if extra.get("const") is not None:
        kwargs["const"] = extra["const"]
    return kwargs


def _list_length(adapter: TypeAdapter) -> int | str | None:
    """A list type's flag nargs: its fixed length, ``"+"`` for another list, else None."""
    schema = adapter.json_schema()
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "array":
            low, high = option.get("minItems"), option.get("maxItems")
            return low if low is not None and low == high else "+"
    return None
