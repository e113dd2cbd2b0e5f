"""Option parsing and error handling shared by several commands."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click
import yaml

from diffbench.errors import ConfigError
from diffbench.resources import include_paths
from diffbench.yamlio import load_yaml


def parse_model_args(items: tuple[str, ...], option: str = "--model-arg",
                     example: str = "path=/data/samples", form: str = "KEY=VALUE",
                     ) -> dict[str, Any]:
    """Repeated ``--model-arg KEY=VALUE`` (or `option`; value read as YAML, bounded by
    `load_yaml`) → a mapping."""
    args: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} '{item}': expected {form}, e.g. {example}")
        try:
            args[key.strip()] = load_yaml(value, f"{option} {key.strip()}")
        except yaml.YAMLError:
            raise ConfigError(f"{option} '{item}': the value is not valid YAML") from None
    return args


protocol_arg_option = click.option(
    "--protocol-arg", "protocol_args", multiple=True, metavar="KEY=VALUE",
    help="A protocol input setting (repeatable; `diffbench protocols` lists them), e.g. "
         "clean_resize=true, max_images=50000, arch=vitb14 under dgm-eval. It changes the "
         "protocol's settings (recorded, judged).")


def parse_metric_args(pairs: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Repeated ``--metric-arg METRIC.ARG=VALUE`` (`parse_model_args`'s parsing, then the key
    split at its dot) → {metric: {arg: value}}."""
    out: dict[str, dict[str, Any]] = {}
    form, example = "METRIC.ARG=VALUE", "kid.subset_size=100"
    for target, value in parse_model_args(pairs, "--metric-arg", example, form).items():
        metric, dot, arg = target.partition(".")
        if not (metric.strip() and dot and arg.strip() and "." not in arg):
            raise ConfigError(f"--metric-arg '{target}=…': expected {form}, e.g. {example}")
        out.setdefault(metric.strip(), {})[arg.strip()] = value
    return out


metric_arg_option = click.option(
    "--metric-arg", "metric_args", multiple=True, metavar="METRIC.ARG=VALUE",
    help="A metric argument, as a suite's args give it (repeatable; see `diffbench metrics`), "
         "e.g. kid.subset_size=100. It changes the protocol's settings (recorded, judged).")


def _set_max_pixels(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    from diffbench.data.images import max_pixels, set_max_pixels

    if value is not None:
        set_max_pixels(value)
    max_pixels()  # a bad DIFFBENCH_MAX_PIXELS is an error now, not in a loader worker
    return value


include_path_option = click.option(
    "--include-path", "include", multiple=True, metavar="DIR",
    callback=lambda ctx, param, value: include_paths(value),
    help="Folder of user suites and published-numbers files, searched before the shipped ones "
         "(repeatable; also $DIFFBENCH_INCLUDE_PATH and config include.path).")

max_pixels_option = click.option(
    "--max-pixels", type=click.IntRange(min=1), default=None, expose_value=False,
    callback=_set_max_pixels, metavar="N",
    help="Refuse images larger than N pixels (decompression bombs); default 178956970 "
         "(PIL's limit) or $DIFFBENCH_MAX_PIXELS.")


class LazyHelp(click.Option):
    """An option whose help text is made when help is shown, not when the CLI loads: lists read
    from the registries (every protocol, every metric, plugins included)."""

    def __init__(self, *args, help_from, **kwargs):
        self.help_from = help_from
        super().__init__(*args, **kwargs)

    def get_help_record(self, ctx: click.Context):
        self.help = self.help_from()
        return super().get_help_record(ctx)


def _listed(registry: str, what: str, command: str):
    """The help of an option naming an entry of `registry` (a `diffbench.registry` name)."""
    def make() -> str:
        from diffbench import registry as registries

        names = getattr(registries, registry).names()
        return f"{what}: {', '.join(names)} (`diffbench {command}`)."

    return make


def protocol_option(default: str = "torch-fidelity"):
    """``--protocol NAME``, its help listing every registered protocol."""
    return click.option("--protocol", "protocol_name", default=default, show_default=True,
                        cls=LazyHelp, help_from=_listed("PROTOCOLS", "Protocol", "protocols"))


device_option = click.option(
    "--device", default="cpu", show_default=True, metavar="DEVICE",
    help="cpu, cuda or cuda:N (checked before any work).")

dtype_option = click.option(
    "--dtype", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True,
    help="Precision of the model while generating (scoring runs in the protocol's precision).")

workers_option = click.option(
    "--workers", type=int, default=None,
    help="Loader workers (default: chosen per pass and device; CPU 0 on ≤2 cores else 1, GPU "
         "cores - 1, ≤8).")

extract_batch_option = click.option(
    "--batch-size", default=50, show_default=True, type=click.IntRange(min=1),
    help="Images per feature-extractor batch.")

weights_option = click.option(
    "--weights", multiple=True, metavar="NAME=PATH",
    help="A local file for the network weights NAME (`diffbench weights list`; repeatable).")


def model_option(required: bool = False):
    """``--model NAME``, its help listing every registered adapter."""
    return click.option("--model", required=required, default=None, cls=LazyHelp,
                        help_from=_listed("ADAPTERS", "Model adapter", "models"))


def add_fetch_import(group: click.Group, module: str, fetch_help: str, import_help: str) -> None:
    """Add `fetch NAMES...` and `import NAME FILE` to `group`: the same two commands over the
    ``fetch`` and ``import_file`` of `module` (`diffbench.weights`, `diffbench.refdata`)."""

    @group.command("fetch", help=fetch_help)
    @click.argument("names", nargs=-1, required=True)
    @click.option("--force", is_flag=True, help="Download again even if present.")
    def fetch_cmd(names: tuple[str, ...], force: bool) -> None:
        for name in names:
            click.echo(f"{name}: {importlib.import_module(module).fetch(name, force=force)}")

    @group.command("import", help=import_help)
    @click.argument("name")
    @click.argument("file", type=click.Path(path_type=Path))
    def import_cmd(name: str, file: Path) -> None:
        click.echo(f"{name}: {importlib.import_module(module).import_file(name, file)}")
