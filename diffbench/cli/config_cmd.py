"""`diffbench config set|get|unset|show|path`."""

from __future__ import annotations

import click
import yaml

from diffbench.config import config_path, get_value, load_config, set_value


@click.group("config")
def config() -> None:
    """Read and write the user config: data.NAME (where a dataset lives), weights.NAME (a
    weights file), include.path (folders of suites and published numbers, ':'-separated).

    \b
    Examples:
      diffbench config set data.vitonhd /data/VITON-HD
      diffbench config set weights.inception-2015-12-05 ./weights-inception-2015-12-05-6726825d.pth
      diffbench config set include.path my_suites/
      diffbench config get data.vitonhd
      diffbench config show
    """


@config.command("set")
@click.argument("key")
@click.argument("value")
def set_cmd(key: str, value: str) -> None:
    """Set KEY (data.NAME, weights.NAME or include.path) to VALUE.

    \b
    Example:
      diffbench config set data.imagenet256-ref /data/VIRTUAL_imagenet256_labeled.npz
    """
    path = set_value(key, value)
    click.echo(f"{key} = {value}  ({path})")


@config.command("unset")
@click.argument("key")
def unset_cmd(key: str) -> None:
    """Remove KEY from the user config.

    \b
    Example:
      diffbench config unset data.vitonhd
    """
    set_value(key, None)
    click.echo(f"removed {key}")


@config.command("get")
@click.argument("key")
def get_cmd(key: str) -> None:
    """Print the value of KEY (empty when unset).

    \b
    Example:
      diffbench config get data.vitonhd
    """
    value = get_value(key)
    click.echo("" if value is None else value)


@config.command("show")
def show_cmd() -> None:
    """Print the user config and its path.

    \b
    Example:
      diffbench config show
    """
    click.echo(f"# {config_path()}")
    data = load_config()
    click.echo(yaml.safe_dump(data, sort_keys=True).rstrip() if data else "# (empty)")


COMMANDS = [config]
