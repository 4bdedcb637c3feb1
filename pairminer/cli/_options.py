"""Option decorators shared by the commands, and options generated from the stage config dataclasses.

`config_options("verify")` adds one option per field of the stage's config class: its type (choices
from a Literal), its help from the class's `Attributes:` docstring and `[default: X]` from the field.
A field added to a config therefore appears on its command with no change here. OVERRIDES holds
the few fields whose command-line spelling differs (a flag named after the field, KIND=WORD lists).
Every generated option defaults to None, so only the values given on the command line override a
`--config` file or the config's defaults.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from pathlib import Path
from typing import Any, Callable

import click

from . import setup_logging


def scheduler_option(f):
    return click.option(
        "--scheduler",
        default="threads",
        show_default=True,
        help="Dask scheduler: threads, processes, synchronous, or tcp://host:port of a dask.distributed cluster. "
             "threads is the fastest on one machine: Arrow, rapidfuzz and the audio decoders release the GIL, so "
             "threads already use every core; processes pays for starting worker processes (each imports "
             "pyarrow, pandas and rapidfuzz, ~2 s) and for copying data between them (about 2x slower for "
             "discover).",
    )(f)


def quiet_verbose_options(f):
    """--quiet turns progress off; -v adds detail. Logging is configured when the command runs."""
    f = click.option("-q", "--quiet", is_flag=True, help="No progress display; warnings and errors only.")(f)
    f = click.option("-v", "--verbose", count=True, help="More detail; also shows tracebacks of errors.")(f)
    return f


def init_logging(verbose: int, quiet: bool) -> None:
    setup_logging(verbose, quiet)


def url_backend_checked(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """click callback: a URL whose fsspec backend is missing (s3:// without s3fs) is refused before any work."""
    if isinstance(value, str) and "://" in value:
        from ..errors import ConfigError
        from ..storage import check_url_backend

        try:
            check_url_backend(value, what=param.opts[0] if getattr(param, "opts", None) else param.name)
        except ConfigError as exc:
            raise click.BadParameter(str(exc).split(": ", 2)[-1], ctx=ctx, param=param) from None
    return value


# ----------------------------------------------------------------------------------------------
# Options generated from a config dataclass


def _pairs(what: str, example: str, many: bool) -> Callable[[click.Context, click.Parameter, tuple], Any]:
    """A click callback turning repeated NAME=VALUE options into a mapping (lists of values when `many`)."""

    def parse(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict | None:
        out: dict[str, Any] = {}
        for v in values or ():
            if "=" not in v:
                raise click.BadParameter(f"{v!r}: use {what}, e.g. {example}", param=param)
            k, val = (s.strip() for s in v.split("=", 1))
            if many:
                out.setdefault(k, []).append(val)
            else:
                out[k] = val
        return out or None

    return parse


OVERRIDES: dict[tuple[str, str], dict[str, Any]] = {
    ("discover", "keywords"): {"decls": ("--keyword", "keywords"), "multiple": True, "metavar": "KIND=WORD",
                               "callback": _pairs("KIND=WORD", "instrumental=instru", many=True),
                               "help": "Extra version keyword for a kind (repeatable), e.g. --keyword "
                                       "instrumental=instru."},
    ("discover", "columns"): {"decls": ("--column", "columns"), "multiple": True, "metavar": "NAME=SOURCE",
                              "callback": _pairs("NAME=SOURCE", "title=track_name", many=False),
                              "help": "Map a catalog column (repeatable), e.g. --column title=track_name."},
    ("discover", "audio_root"): {"default_text": "the catalog's folder"},
    ("discover", "scorer"): {"choices_from": "pairminer.discover.config:SCORERS"},
    ("discover", "duration_unit"): {"choices": ("s", "ms")},
    ("verify", "no_cache"): {"decls": ("--no-cache", "no_cache"), "flag": True},
    ("verify", "cache_dir"): {"default_text": "OUT/fingerprint-cache"},
    ("verify", "audio_root"): {"default_text": "the candidates' folder"},
    ("verify", "max_seconds"): {"default_text": "the whole track"},
    ("train", "compile"): {"decls": ("--compile/--no-compile", "compile")},
    ("train", "skip_silent_target_db"): {"default_text": "off"},
    ("report", "examples_per_status"): {"decls": ("--examples", "examples_per_status")},
    ("report", "clips_per_status"): {"decls": ("--clips", "clips_per_status")},
    ("report", "audio_root"): {"default_text": "verify's audio_root"},
}
"""(stage, field) -> how its option differs from the generated one: `decls` (the option's spelling and
parameter name), `flag` (a plain on-flag), `callback`/`multiple`/`metavar`, `help`, `default_text`
(what `[default: X]` says) and `choices_from` ("module:NAME" of a tuple of allowed values)."""


def field_help(cls: type) -> dict[str, str]:
    """field name -> its description in the class docstring's `Attributes:` section (one line each)."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    out: dict[str, str] = {}
    in_attrs, current, indent = False, None, None
    for line in doc.splitlines():
        if line.strip() == "Attributes:":
            in_attrs = True
            continue
        if not in_attrs:
            continue
        if line.strip() and not line.startswith(" "):
            break  # the next section
        m = re.match(r"^(\s+)([A-Za-z_][A-Za-z0-9_, ]*):\s*(.*)$", line)
        if m and (indent is None or len(m.group(1)) <= indent):
            indent = len(m.group(1))
            names = [n.strip() for n in m.group(2).split(",")]
            current = names
            for n in names:
                out[n] = m.group(3).strip()
        elif current and line.strip():
            for n in current:
                out[n] = f"{out[n]} {line.strip()}"
    return out


def _format_default(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def _click_type(annotation: Any) -> tuple[Any, bool]:
    """(click type, whether it is a bool) for a field annotation; None type for a mapping."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _click_type(non_none[0])
    if origin is typing.Literal:
        return click.Choice([str(a) for a in args]), False
    if annotation is bool:
        return None, True
    if annotation is int:
        return click.INT, False
    if annotation is float:
        return click.FLOAT, False
    if annotation is str:
        return click.STRING, False
    if origin is tuple or annotation is tuple:
        return click.STRING, False  # comma-separated; the config splits it
    return None, False


def _load_ref(ref: str) -> Any:
    import importlib

    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def option_specs(stage: str) -> list[tuple[str, tuple[str, ...], dict[str, Any]]]:
    """(field, click param decls, click.option kwargs) for every field of `stage`'s config that has an option."""
    from .. import stages as registry

    cls = registry.config_class(stage)
    hints = typing.get_type_hints(cls)
    helps = field_help(cls)
    specs = []
    for f in dataclasses.fields(cls):
        over = OVERRIDES.get((stage, f.name), {})
        ctype, is_bool = _click_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if "choices_from" in over or "choices" in over:
            ctype = click.Choice(list(over.get("choices") or _load_ref(over["choices_from"])))
        help_text = over.get("help") or helps.get(f.name) or f.name.replace("_", " ")
        help_text = help_text.rstrip()
        help_text = help_text[:1].upper() + help_text[1:]
        kwargs: dict[str, Any] = {"default": None, "help": help_text}
        decls = over.get("decls")
        if over.get("flag"):
            kwargs.update(is_flag=True, default=None)
        elif is_bool:
            decls = decls or (f"--{f.name.replace('_', '-')}/--no-{f.name.replace('_', '-')}", f.name)
        elif "callback" in over:
            kwargs.update(callback=over["callback"], multiple=over.get("multiple", False),
                          metavar=over.get("metavar"))
            kwargs["default"] = ()
        elif ctype is None:
            continue  # a mapping without an override: set it in a --config file
        else:
            kwargs["type"] = ctype
            if typing.get_origin(hints[f.name]) is tuple or hints[f.name] is tuple:
                kwargs["metavar"] = "A,B,..."
        if "callback" not in over:
            kwargs["help"] = f"{help_text}  [default: {over.get('default_text') or _format_default(default)}]"
        specs.append((f.name, decls or (f"--{f.name.replace('_', '-')}", f.name), kwargs))
    return specs


def config_options(stage: str, *, only: tuple[str, ...] | None = None, skip: tuple[str, ...] = ()):
    """Decorator: one option per field of `stage`'s config (see the module docstring).

    Put it directly under `@main.command()`: it then sees the command's own options and leaves out a
    field that one of them already spells. The command receives the values in `**options` and turns
    them into its config with `stage_config(stage, config_path, options)`.
    """

    def deco(f):
        taken = {p.name for p in getattr(f, "__click_params__", [])}
        taken |= {o for p in getattr(f, "__click_params__", []) for o in getattr(p, "opts", [])}
        # click applies decorators bottom-up and lists options in reverse application order.
        for name, decls, kwargs in reversed(option_specs(stage)):
            if (only is not None and name not in only) or name in skip or name in taken \
                    or any(d in taken for d in decls if d.startswith("-")):
                continue
            f = click.option(*decls, **kwargs)(f)
        return f

    return deco


def config_file_option(stage: str):
    return click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
                        help=f"YAML file with a `{stage}:` section (a workflow file works); command-line options "
                             "override it.")


def stage_config(stage: str, config_path: str | None, options: dict[str, Any]) -> Any:
    """The stage's config: defaults, then the --config file, then the options given on the command line.

    `options` holds the command's keyword arguments; the ones that are config fields are used (and
    removed from it), None and empty values are ignored.
    """
    from .. import stages as registry

    cls = registry.config_class(stage)
    values = {}
    for name in cls.field_names():
        if name in options:
            v = options.pop(name)
            if v is not None and v != ():
                values[name] = v
    base = cls()
    if config_path:
        from ..errors import ConfigError
        from ..workflow.file import read_config_text

        try:
            base = cls.from_yaml(read_config_text(config_path, "--config file"), where=str(config_path))
        except RecursionError:
            raise ConfigError(f"{config_path}: nested too deeply to be a config file; is it the right file?") from None
    return base.replace(**values) if values else base
