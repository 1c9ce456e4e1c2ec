"""Variants of our side: the shape's model config with some `ModelConfig` fields replaced.

`--variant NAME:key=value[,key=value...]` adds a side `ours-NAME` timed in the same process as
ours and the peer, so a GPU lever (an attention kernel, remat, a compute dtype, a chunked loss)
is A/B'd against the plain step under the same load. Any `ModelConfig` field can be set; each
value is parsed to the field's type and the result is checked by `scaling.config.validate`
before anything is built, so a bad variant fails in the parent with a message naming it.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

from scaling.bench.shapes import Shape
from scaling.config import ConfigError, DataConfig, ModelConfig, PretrainConfig, TrainConfig
from scaling.config import validate as validate_config

PREFIX = "ours-"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+]*$")  # a table cell and a JSON key, no separator
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def side_name(variant: str) -> str:
    return PREFIX + variant


def is_ours(side: str) -> bool:
    """Our plain side or one of its variants (everything that is not a peer)."""
    return side == "ours" or side.startswith(PREFIX)


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """`NAME:key=value,...` -> (NAME, {field: typed value}); ValueError naming the bad part."""
    name, sep, body = text.partition(":")
    if not sep or not _NAME.match(name):
        raise ValueError(
            f"--variant {text!r}: expected NAME:key=value[,key=value...] with NAME of letters, "
            "digits and _.+"
        )
    hints = typing.get_type_hints(ModelConfig)
    overrides: dict[str, Any] = {}
    for item in body.split(","):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"--variant {text!r}: {item!r} is not key=value")
        if key not in hints:
            raise ValueError(
                f"--variant {text!r}: {key!r} is not a ModelConfig field; known: {sorted(hints)}"
            )
        if key in overrides:
            raise ValueError(f"--variant {text!r}: {key!r} given twice")
        overrides[key] = _parse_value(text, key, value.strip(), hints[key])
    return name, overrides


def _parse_value(text: str, key: str, value: str, hint: Any) -> Any:
    """`value` as the field's type: int, float, bool or str, or None where the field allows it."""
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if type(None) in args and value.lower() in ("none", "null"):
        return None
    kinds = [a for a in args if a is not type(None)]
    if len(kinds) != 1 or kinds[0] not in (bool, int, float, str):
        raise ValueError(f"--variant {text!r}: {key} ({hint}) cannot be set from the command line")
    kind = kinds[0]
    try:
        if kind is bool:
            if value.lower() not in _TRUE + _FALSE:
                raise ValueError
            return value.lower() in _TRUE
        return kind(value)
    except ValueError:
        raise ValueError(
            f"--variant {text!r}: {key}={value!r} is not a valid {kind.__name__}"
        ) from None


def check_variant(name: str, overrides: dict[str, Any], shape: Shape) -> None:
    """ValueError when this shape's model with these fields replaced would not train: the
    checks every entry point runs (scaling.config.validate), on a config of this shape."""
    cfg = PretrainConfig(
        model=shape.model_config(overrides=overrides),
        data=DataConfig(seq_len=shape.seq_len),
        train=TrainConfig(batch_size=shape.batch_size),
        run_name="bench",
    )
    try:
        validate_config(cfg)
    except ConfigError as err:
        raise ValueError(f"--variant {name} on {shape.name}: {err}") from None


def parse_variants(texts: list[str], shapes: list[Shape]) -> dict[str, dict[str, Any]]:
    """Every `--variant` parsed and checked on every shape: {NAME: {field: value}}."""
    variants: dict[str, dict[str, Any]] = {}
    for text in texts:
        name, overrides = parse_variant(text)
        if name in variants:
            raise ValueError(f"--variant {text!r}: the name {name!r} is given twice")
        for shape in shapes:
            check_variant(name, overrides, shape)
        variants[name] = overrides
    return variants
