"""Stage configs: frozen dataclasses that load from and dump to YAML.

A workflow file's stage section uses exactly the field names below, which are also the CLI option
names (with `-` for `_`). Unknown keys are an error that names the nearest valid key.

YAML is imported lazily (and always with the safe loader) so that `pairminer.train` can use this
module on machines that have only torch, numpy, pandas and pyarrow.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any, ClassVar, TypeVar

from .errors import ConfigError

T = TypeVar("T", bound="StageConfig")


def did_you_mean(what: str, key: Any, valid: "list[str] | tuple[str, ...]") -> str:
    """"unknown stage 'verfy'; did you mean 'verify'?" (or the valid values when none is near).

    The one did-you-mean of pairminer: config keys, workflow keys, stage names all use it.
    """
    near = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.5)
    hint = f"; did you mean {near[0]!r}?" if near else f"; valid {what}s: {', '.join(valid)}"
    return f"unknown {what} {key!r}{hint}"


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Light type coercion from YAML/CLI values to the declared field type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if value is None:
        return None
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        non_none = [a for a in args if a is not type(None)]
        return _coerce(value, non_none[0], key) if len(non_none) == 1 else value
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, dict):
            value = list(value.items())
        item_t = args[0] if args else Any
        return tuple(_coerce(v, item_t, key) for v in value)
    if annotation is bool:
        if isinstance(value, str):
            low = value.strip().lower()
            if low in ("true", "yes", "1", "on"):
                return True
            if low in ("false", "no", "0", "off"):
                return False
            raise ConfigError(f"{key}: {value!r} is not a boolean (use true or false)")
        return bool(value)
    if annotation in (int, float, str):
        try:
            return annotation(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{key}: {value!r} is not a valid {annotation.__name__}") from exc
    return value


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """Base class for stage configs. Subclasses are frozen dataclasses with defaults for every field."""

    stage: ClassVar[str] = "stage"

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any] | None, *, where: str = "") -> T:
        """Build from a mapping; unknown keys raise ConfigError naming the nearest valid key."""
        data = dict(data or {})
        names = cls.field_names()
        prefix = f"{where}: " if where else ""
        for key in data:
            if key not in names:
                near = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
                hint = f"; did you mean {near[0]!r}?" if near else f"; valid keys: {', '.join(names)}"
                raise ConfigError(f"{prefix}unknown {cls.stage} option {key!r}{hint}")
        hints = typing.get_type_hints(cls)
        kwargs = {k: _coerce(v, hints[k], f"{prefix}{cls.stage}.{k}") for k, v in data.items()}
        try:
            cfg = cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"{prefix}{exc}") from exc
        cfg.check()
        return cfg

    def check(self) -> None:
        """Validate values; subclasses raise ConfigError with a fix-it message."""

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def replace(self: T, **changes: Any) -> T:
        """A copy with `changes` applied (None values are ignored, so CLI defaults pass through)."""
        merged = {**self.to_dict(), **{k: v for k, v in changes.items() if v is not None}}
        return type(self).from_dict(merged)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump({self.stage: self.to_dict()}, sort_keys=False, allow_unicode=True)

    @classmethod
    def from_yaml(cls: type[T], text: str) -> T:
        import yaml

        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{cls.stage} config is not valid YAML: {str(exc).splitlines()[0]}") from exc
        section = doc.get(cls.stage, doc) if isinstance(doc, dict) else None
        if not isinstance(section, dict):
            raise ConfigError(f"{cls.stage} config must be a mapping of option: value")
        return cls.from_dict(section)
