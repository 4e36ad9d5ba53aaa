"""Embedding flags -> :class:`EmbedderConfig`: the CLI's one mapping, shared by build and evaluate.

Each pooling's parameters become flags from its declaration (``--<pooling>-<param>``, plus any
declared aliases such as ``--vlad-k``), so a new pooling gets its flags without an edit here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from indexer.argtypes import positive
from retrieval import ConfigError
from retrieval.features import BACKBONES, EmbedderConfig, check_scales
from retrieval.pooling import POOLINGS, Param, ParamValue, Pooling, pooling_class

__all__ = ["add_embedding_flags", "config_from_args", "pooling_params", "positive", "scales"]


def scales(text: str) -> tuple[float, ...]:
    """argparse type: comma-separated scales relative to --max-side, e.g. ``1,0.707,0.5``."""
    try:
        return check_scales([float(s) for s in text.split(",") if s.strip()])
    except (ValueError, ConfigError) as exc:
        raise argparse.ArgumentTypeError(f"scales must be numbers in (0, 2] separated by "
                                         f"commas, got {text!r} ({exc})") from None


def _dest(pooling: str, param: str) -> str:
    return f"pooling__{pooling}__{param}"


def _parser(cls: type[Pooling], param: Param) -> Callable[[str], ParamValue]:
    def parse(text: str) -> ParamValue:
        try:
            return param.parse(text, cls.name)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = param.kind.__name__  # argparse names the type in "invalid <type> value"
    return parse


def _add_pooling_params(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("pooling parameters (each applies to its pooling only)")
    for cls in POOLINGS.values():
        for param in cls.params:
            flags = [f"--{cls.name}-{param.name.replace('_', '-')}"]
            flags += [f"--{alias}" for alias in param.aliases]
            if param.kind is bool:
                group.add_argument(*flags, dest=_dest(cls.name, param.name), default=None,
                                   action=argparse.BooleanOptionalAction, help=param.help)
            else:
                group.add_argument(*flags, dest=_dest(cls.name, param.name), default=None,
                                   type=_parser(cls, param),
                                   help=f"{param.help} (default {param.default})")


def add_embedding_flags(p: argparse.ArgumentParser, *, pooling_default: str,
                        pooling_help: str, one_pooling: bool) -> None:
    """What decides a vector: backbone, weights, image size, pooling(s), whitening, seed."""
    p.add_argument("--backbone", default="vgg16", choices=sorted(BACKBONES))
    p.add_argument("--weights", default="imagenet",
                   help="imagenet (torchvision cache/download), random (tests only) or a "
                        "state-dict file")
    choices = sorted(POOLINGS) if one_pooling else None
    p.add_argument("--pooling", default=pooling_default, choices=choices, help=pooling_help)
    p.add_argument("--max-side", dest="max_side", type=positive, default=None,
                   help="longer image side fed to the network (default: the backbone's, 1024)")
    p.add_argument("--scales", type=scales, default=(1.0,),
                   help="image scales relative to --max-side, comma-separated (e.g. 1,0.5): the "
                        "network runs at each, the L2-normalised vectors are summed (default 1)")
    p.add_argument("--whiten-dim", dest="whiten_dim", type=positive, default=None)
    p.add_argument("--seed", type=int, default=0, help="seed for random weights and sampling")
    _add_pooling_params(p)


def pooling_params(args: argparse.Namespace, pooling: str) -> dict[str, ParamValue]:
    """The parameters of ``pooling`` given on the command line (the rest take defaults)."""
    cls = pooling_class(pooling)
    given = {param.name: getattr(args, _dest(pooling, param.name), None) for param in cls.params}
    return {name: value for name, value in given.items() if value is not None}


def config_from_args(args: argparse.Namespace, pooling: str, *, whiten: bool) -> EmbedderConfig:
    """The :class:`EmbedderConfig` the flags describe, for ``pooling``."""
    return EmbedderConfig(
        backbone=args.backbone, weights=args.weights, max_side=args.max_side, pooling=pooling,
        pooling_params=pooling_params(args, pooling), whiten=whiten,
        whiten_dim=args.whiten_dim, seed=args.seed, scales=args.scales,
    )
