"""Stage configs: frozen dataclasses that load from and dump to YAML.

A workflow file's stage section uses exactly the field names below, which are also the CLI option
names (with `-` for `_`). Unknown keys are an error that names the nearest valid key.

YAML is imported lazily (and always with the safe loader) so that `pairminer.train` can use this
module on machines that have only torch, numpy, pandas and pyarrow.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
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


MAX_YAML_BYTES = 1 << 20
"""A workflow or config file larger than this (1 MiB) is refused before it is parsed."""


class _Refused(Exception):
    """A YAML construct pairminer does not accept (raised inside the loader, reported with the file name)."""


def _loader_class() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        """yaml.SafeLoader that refuses aliases (a YAML bomb expands them exponentially) and duplicate keys
        (the last one would silently win)."""

        def compose_node(self, parent, index):  # noqa: ANN001
            if self.check_event(yaml.AliasEvent):
                ev = self.peek_event()
                raise _Refused(f"line {ev.start_mark.line + 1}: YAML aliases (*{ev.anchor}) are not accepted; "
                               "write the value out in full")
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):  # noqa: ANN001
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for key_node, _ in node.value:
                    try:
                        key = self.construct_object(key_node, deep=True)
                        hash(key)
                    except TypeError:
                        continue  # unhashable: SafeLoader's own error says so
                    line = key_node.start_mark.line + 1
                    if key in seen:
                        raise _Refused(f"line {line}: key {key!r} appears twice (first on line {seen[key]}); "
                                       "keep one of them")
                    seen[key] = line
            return super().construct_mapping(node, deep=deep)

    return Loader


def load_yaml(text: str, where: str = "config") -> Any:
    """Parse YAML text: the one YAML loader of pairminer (workflow files, `--config` files).

    Always the safe loader (a file cannot build Python objects); YAML aliases and duplicate keys are
    refused, and so is a text over MAX_YAML_BYTES, so a small file cannot expand into gigabytes.

    Raises:
        ConfigError: naming `where` (the file), the line and the fix.
    """
    import yaml

    if len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        raise ConfigError(f"{where}: {len(text):,} characters is too large for a config file "
                          f"(at most {MAX_YAML_BYTES:,} bytes); is it the right file?")
    try:
        return yaml.load(text, Loader=_loader_class())  # noqa: S506 - a SafeLoader subclass
    except _Refused as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({str(exc).splitlines()[0]}); fix the file") from exc
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply to be a config file; is it the right file?") from None


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check and convert a YAML/CLI value to the declared field type; refuse what does not fit.

    Integers refuse fractions (2.7) and booleans; floats refuse NaN and infinity; mappings and lists
    must have the declared shape (dict[str, list[str]]...).
    """
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
    if origin is tuple or annotation is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, dict):
            value = list(value.items())
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        item_t = args[0] if args else Any
        return tuple(_coerce(v, item_t, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}, e.g. [a, b]")
        item_t = args[0] if args else Any
        return [_coerce(v, item_t, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping (name: value), got {type(value).__name__} {value!r}")
        if len(args) == 2:
            return {_coerce(k, args[0], f"{key} key"): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
        return dict(value)
    if annotation is bool:
        if isinstance(value, str):
            low = value.strip().lower()
            if low in ("true", "yes", "1", "on"):
                return True
            if low in ("false", "no", "0", "off"):
                return False
            raise ConfigError(f"{key}: {value!r} is not a boolean (use true or false)")
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return bool(value)
        raise ConfigError(f"{key}: {value!r} is not a boolean (use true or false)")
    if annotation is int:
        return _to_int(value, key)
    if annotation is float:
        return _to_float(value, key)
    if annotation is str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ConfigError(f"{key}: expected a text value, got {type(value).__name__} {value!r}")
        return str(value)
    return value


def _to_int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: {value!r} is not a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value):
            return int(value)
        raise ConfigError(f"{key}: {value!r} is not a whole number (it would be truncated); give e.g. {int(value) if math.isfinite(value) else 1}")
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{key}: {value!r} is not a whole number")


def _to_float(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{key}: {value!r} is not a number")
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"{key}: {value!r} is not a number") from exc
    if not math.isfinite(out):
        raise ConfigError(f"{key}: {value!r} is not a finite number; give a finite value (or leave the option out "
                          "for its default)")
    return out


_HINTS: dict[type, dict[str, Any]] = {}


def _field_hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of a config class (cached; a hint that cannot be resolved is not checked)."""
    hints = _HINTS.get(cls)
    if hints is None:
        try:
            hints = typing.get_type_hints(cls)
        except (NameError, TypeError):  # a forward reference to a name the class's module lacks
            hints = {}
        _HINTS[cls] = hints
    return hints


def _allows_none(annotation: Any) -> bool:
    if annotation is Any or annotation is type(None):
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        return type(None) in typing.get_args(annotation)
    return False


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """Base class for stage configs. Subclasses are frozen dataclasses with defaults for every field.

    Every config is validated when it is built, however it is built (`Config(...)`, `from_dict`,
    `from_yaml`, `replace`, `dataclasses.replace`): each value is checked against its field's type
    and converted the way the CLI and workflow files convert it (an int for a float field becomes a
    float, a list for a tuple field a tuple; NaN, infinity, fractions for whole numbers and None for
    a field that does not take it are refused), then the subclass's `check()` refuses out-of-range
    values and inconsistent combinations. The errors are the CLI's one-line `ConfigError`s, naming
    the field. A subclass that needs its own `__post_init__` must call `super().__post_init__()`.
    """

    stage: ClassVar[str] = "stage"

    def __post_init__(self) -> None:
        hints = _field_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            key = f"{self.stage}.{f.name}"
            annotation = hints.get(f.name, Any)
            if value is None:
                if not _allows_none(annotation):
                    default = f.default if f.default is not dataclasses.MISSING else None
                    raise ConfigError(f"{key}: a value is required (None is not accepted); leave the option out "
                                      f"for its default ({default!r})")
                continue
            coerced = _coerce(value, annotation, key)
            if coerced is not value:
                object.__setattr__(self, f.name, coerced)
        self.check()

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
                raise ConfigError(f"{prefix}{did_you_mean(f'{cls.stage} option', key, names)}")
        hints = typing.get_type_hints(cls)
        kwargs = {k: _coerce(v, hints[k], f"{prefix}{cls.stage}.{k}") for k, v in data.items()}
        try:
            return cls(**kwargs)  # __post_init__ checks the values (check())
        except TypeError as exc:
            raise ConfigError(f"{prefix}{exc}") from exc

    def check(self) -> None:
        """Validate values and their combinations; subclasses raise ConfigError with a fix-it message.

        Called by `__post_init__` on every construction; the field types are already checked then.
        """

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
    def from_yaml(cls: type[T], text: str, *, where: str = "") -> T:
        """From YAML holding this stage's options, either at the top level or in its section.

        A file with stage sections (a workflow file, a `discover --config` file) gives this stage's
        section; its other top-level keys must be workflow keys or stage names (a misspelt `verfy:`
        is an error naming the nearest key, never silently ignored).
        """
        from .stages import STAGE_NAMES, WORKFLOW_KEYS

        label = where or f"{cls.stage} config"
        doc = load_yaml(text, label)
        if doc is None:
            doc = {}
        if not isinstance(doc, dict):
            raise ConfigError(f"{label}: expected a mapping of option: value (or a `{cls.stage}:` section)")
        top = (*WORKFLOW_KEYS, *STAGE_NAMES)
        if any(k in top for k in doc):
            for key in doc:
                if key not in top:
                    raise ConfigError(f"{label}: {did_you_mean('top-level key', key, top)}")
            section = doc.get(cls.stage)
        else:
            section = doc
            fields = cls.field_names()
            for key in doc:  # a misspelt section (`targest:`) rather than a misspelt option
                if key not in fields and difflib.get_close_matches(str(key), top, n=1, cutoff=0.75) \
                        and not difflib.get_close_matches(str(key), fields, n=1, cutoff=0.75):
                    raise ConfigError(f"{label}: {did_you_mean('top-level key', key, top)}")
        if section is None:
            section = {}
        if not isinstance(section, dict):
            raise ConfigError(f"{label}: the `{cls.stage}:` section must be a mapping of option: value")
        return cls.from_dict(section, where=where)
