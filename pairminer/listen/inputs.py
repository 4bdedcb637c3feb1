"""What a listening test is built from: systems' output folders, the mixes, references, mined stems.

A *track folder* holds `vocals.*`, `instrumental.*` (or `accompaniment.*`) and maybe `mixture.*`;
`pairminer separate` writes one per track, and `OUT/stems/<split>/<pair>/` is one per pair. A *source
folder* holds track folders, directly or one level down (the split folders of OUT/stems).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, InputError

AUDIO_EXTS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".aiff", ".aif")
ROLE_NAMES = {"vocals": ("vocals",), "instrumental": ("instrumental", "accompaniment"), "mixture": ("mixture", "mix")}


def _audio_in(folder: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        hits = sorted(p for p in folder.glob(f"{name}.*") if p.suffix.lower() in AUDIO_EXTS and p.is_file())
        if hits:
            return hits[0]
    return None


def _roles(folder: Path) -> dict[str, Path]:
    return {role: p for role, names in ROLE_NAMES.items() if (p := _audio_in(folder, names)) is not None}


def track_folders(root: str | Path, what: str) -> dict[str, dict[str, Path]]:
    """track name -> {role: file} for every track folder in `root` (or one level down).

    Raises:
        InputError: `root` is missing, not a folder, or holds no track folder.
    """
    root = Path(root)
    if not root.exists():
        raise InputError(f"{what} {root} does not exist")
    if not root.is_dir():
        raise InputError(f"{what} {root} is not a folder (give a folder with one <track>/vocals.wav, "
                         "<track>/instrumental.wav per track, as `pairminer separate` writes)")
    out: dict[str, dict[str, Path]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        roles = _roles(sub)
        if roles:
            out.setdefault(sub.name, roles)
            continue
        for sub2 in sorted(p for p in sub.iterdir() if p.is_dir() and not p.name.startswith(".")):
            roles = _roles(sub2)
            if roles and sub2.name not in out:
                out[sub2.name] = roles
    if not out:
        raise InputError(f"{what} {root} holds no track folder (<track>/vocals.*, <track>/instrumental.*)")
    return out


def mix_files(root: str | Path) -> dict[str, Path]:
    """track name -> mix file, from `<track>.*` audio files or `<track>/mixture.*` folders in `root`."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"--mix-dir {root} is not a folder of mixes (<track>.wav or <track>/mixture.wav)")
    out = {p.stem: p for p in sorted(root.iterdir()) if p.is_file() and p.suffix.lower() in AUDIO_EXTS}
    for track, roles in (track_folders(root, "--mix-dir") if any(p.is_dir() for p in root.iterdir()) else {}).items():
        if "mixture" in roles:
            out.setdefault(track, roles["mixture"])
    if not out:
        raise InputError(f"--mix-dir {root} holds no audio (<track>.wav or <track>/mixture.wav)")
    return out


@dataclass
class Inputs:
    """Everything found, by track: systems' files, the mixes, the references."""

    systems: dict[str, dict[str, dict[str, Path]]]          # system -> track -> role -> file
    mixes: dict[str, Path] = field(default_factory=dict)     # track -> mix
    references: dict[str, dict[str, Path]] = field(default_factory=dict)  # track -> role -> file


def system_names(dirs: list[str], names: list[str]) -> list[str]:
    """A name per system folder: `--name` in order, else the folder's name (made unique)."""
    if names and len(names) != len(dirs):
        raise ConfigError(f"--name was given {len(names)} time(s) for {len(dirs)} system folder(s); give one per folder")
    out = []
    for i, d in enumerate(dirs):
        base = names[i] if names else (Path(d).resolve().name or f"system{i + 1}")
        base = re.sub(r"[\x00-\x1f\x7f]", "", str(base)).strip() or f"system{i + 1}"
        name, k = base, 2
        while name in out:
            name, k = f"{base}-{k}", k + 1
        out.append(name)
    reserved = {"hidden reference", "anchor"}
    if reserved & set(out):
        raise ConfigError(f"system name {sorted(reserved & set(out))[0]!r} is reserved; rename it with --name")
    return out


def gather(system_dirs: list[str], names: list[str], *, mix_dir: str | None, references: str | None,
           stems: str | None, mixture_system: bool) -> Inputs:
    """Read every input folder (InputError/ConfigError with the reason when one is unusable)."""
    if len(set(map(str, system_dirs))) != len(system_dirs):
        raise ConfigError("a system folder was given twice")
    all_dirs = list(system_dirs) + ([stems] if stems else [])
    all_names = list(names) + (["mined stems"] if stems and names else [])
    labels = system_names(all_dirs, all_names)
    if stems and not names:
        labels[-1] = "mined stems" if "mined stems" not in labels[:-1] else labels[-1]
    systems = {lab: track_folders(d, "system folder" if d != stems else "--stems") for lab, d in zip(labels, all_dirs)}
    if mixture_system and "mixture" in systems:
        raise ConfigError("a system is already named 'mixture'; rename it with --name or drop --mixture-system")
    refs = track_folders(references, "--references") if references else {}
    mixes: dict[str, Path] = {}
    if mix_dir:
        mixes.update(mix_files(mix_dir))
    for folders in ([refs] + ([systems[labels[-1]]] if stems else [])):
        for track, roles in folders.items():
            if "mixture" in roles:
                mixes.setdefault(track, roles["mixture"])
    if not mixes:
        raise InputError("no mixes found: the page plays the mix as the reference; give --mix-dir (<track>.wav or "
                         "<track>/mixture.wav), or --references/--stems folders that hold mixture.wav")
    return Inputs(systems=systems, mixes=mixes, references=refs)
