"""Reading YAML config files: one reader that refuses what YAML would silently accept.

YAML keeps the last of two equal keys and drops the first without a word (a second ``training:`` section
replaces the first, learning rate and device included); here a key given twice in one mapping is a
:class:`~ictal.errors.ConfigError` naming the key and both lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ictal.errors import ConfigError

__all__ = ["read_yaml_mapping"]


class _DuplicateKey(Exception):
    def __init__(self, key: object, first_line: int, second_line: int) -> None:
        super().__init__(key)
        self.key, self.first_line, self.second_line = key, first_line, second_line


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader whose mappings refuse a key given twice."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[object, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise _DuplicateKey(key, seen[key], line)
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of the YAML file at ``path`` (``{}`` for an empty file).

    Raises:
        ConfigError: the file is missing, not valid YAML, not a mapping at the top, or gives a key twice.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, ["file not found; give the path of a YAML config (see configs/)"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"cannot be read as text ({exc})"]) from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  (a SafeLoader subclass)
    except _DuplicateKey as dup:
        raise ConfigError(
            path,
            [
                f"key {dup.key!r} is given twice (line {dup.first_line} and line {dup.second_line}); YAML would keep "
                "the second and silently drop the first: merge them into one"
            ],
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, [f"not valid YAML: {exc}"]) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            path, [f"the file holds a {type(raw).__name__}, not a mapping of sections (data:, model:, ...)"]
        )
    return raw
