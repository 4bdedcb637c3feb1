"""The CLI reference, docs/cli.md, generated from the commands themselves (tests/cli/test_cli.py checks it is current).

Regenerate after changing a command or a config field:

    python -m pairminer.cli._reference > docs/cli.md
"""

from __future__ import annotations

import click

WIDTH = 100


def _help(cmd: click.Command, name: str, parent: click.Context | None) -> str:
    ctx = click.Context(cmd, info_name=name, parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)
    return cmd.get_help(ctx)


def cli_reference() -> str:
    """Markdown: the `pairminer --help` text, then every command's, in order."""
    from . import main

    settings = {**main.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    root = click.Context(main, info_name="pairminer", **settings)
    parts = ["# Command-line reference", "",
             "Generated from the commands by `python -m pairminer.cli._reference > docs/cli.md`; "
             "`tests/cli/test_cli.py` fails when it is out of date. Options of the stage commands are generated "
             "from the stage config dataclasses (see docs/architecture.md), so each one is also a key of that "
             "stage's section in a workflow file (with `_` for `-`).", "",
             "## pairminer", "", "```text", main.get_help(root), "```", ""]
    for name in main.list_commands(root):
        cmd = main.get_command(root, name)
        parts += [f"## pairminer {name}", "", "```text", _help(cmd, name, root), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    click.echo(cli_reference(), nl=False)
