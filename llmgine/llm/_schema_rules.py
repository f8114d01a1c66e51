"""One JSON-schema walker, and each provider's rules for the schemas it accepts.

Tool parameters and structured-output schemas are written once, as plain JSON Schema; each
API accepts a dialect of it. `rewrite` walks a schema and applies one provider's `Rules` to
every subschema, bottom up (children are rewritten before their parent sees them). Which
keywords hold subschemas is part of the rules, because each API reads a different set:
what a provider does not walk into it leaves as it is. Keys under ``properties`` or
``$defs`` are names, not keywords, so no rule ever touches them. The input is not modified.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ANTHROPIC",
    "GEMINI",
    "OPENAI_STRICT",
    "Rules",
    "anthropic_json_schema",
    "gemini_json_schema",
    "rewrite",
    "strict_json_schema",
]


@dataclass(frozen=True, slots=True)
class Rules:
    """How one provider rewrites a schema: the keywords whose values are subschemas
    (``maps``: name -> schema; ``singles``: one schema; ``lists``: a list of schemas), and
    ``node``, which rewrites one subschema whose children are already rewritten."""

    maps: tuple[str, ...]
    singles: tuple[str, ...]
    lists: tuple[str, ...]
    node: Callable[[dict[str, Any]], dict[str, Any]]


def rewrite(schema: Mapping[str, Any], rules: Rules) -> dict[str, Any]:
    """A copy of ``schema`` with ``rules`` applied to every subschema it walks into."""
    out = _visit(schema, rules)
    assert isinstance(out, dict)  # a mapping in, a mapping out
    return out


def _visit(node: Any, rules: Rules) -> Any:
    if not isinstance(node, Mapping):
        return node  # a boolean schema, a malformed value: the API will say
    out = dict(node)
    for key in rules.maps:
        if isinstance(out.get(key), Mapping):
            out[key] = {name: _visit(sub, rules) for name, sub in out[key].items()}
    for key in rules.singles:
        if isinstance(out.get(key), Mapping):
            out[key] = _visit(out[key], rules)
    for key in rules.lists:
        if isinstance(out.get(key), list):
            out[key] = [_visit(sub, rules) for sub in out[key]]
    return rules.node(out)


def _is_object(node: Mapping[str, Any]) -> bool:
    kind = node.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in node


# -- OpenAI strict mode -----------------------------------------------------------------------


def _openai_strict(node: dict[str, Any]) -> dict[str, Any]:
    if _is_object(node):
        node["additionalProperties"] = False
        node["required"] = list(node.get("properties") or {})
    return node


OPENAI_STRICT = Rules(
    maps=("properties", "$defs", "definitions", "patternProperties"),
    singles=("items", "not", "if", "then", "else"),
    lists=("items", "prefixItems", "anyOf", "allOf", "oneOf"),
    node=_openai_strict,
)


def strict_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` that OpenAI strict mode accepts.

    Strict mode (strict tools, ``json_schema`` output with ``strict: true``) demands that
    every object schema lists all its properties in ``required`` and sets
    ``additionalProperties: false``; this closes every object, nested ones (``properties``,
    ``items``, ``anyOf``, ``$defs``, ...) included. A schema that already complies comes
    back equal. A free-form object (no ``properties``) becomes an empty closed object,
    because strict mode has no way to express one.
    """
    return rewrite(schema, OPENAI_STRICT)


# -- Anthropic structured outputs -------------------------------------------------------------

# What Anthropic's structured outputs accept as they are; other keywords (numeric and length
# bounds, ...) are folded into the description so the model may still follow them.
_ANTHROPIC_KEEP = frozenset(
    {"$ref", "type", "enum", "const", "title", "description", "required", "default", "pattern"}
)
_STRING_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)


def _anthropic(rest: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(rest.get(key), Mapping):
            out[key] = rest.pop(key)
    for key in _ANTHROPIC_KEEP & rest.keys():
        out[key] = rest.pop(key)
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(rest.get(key), list):
            target = "allOf" if key == "allOf" else "anyOf"
            out[target] = out.get(target, []) + rest.pop(key)
    if "items" in rest:
        out["items"] = rest.pop("items")
    if rest.get("minItems") in (0, 1):
        out["minItems"] = rest.pop("minItems")
    if rest.get("format") in _STRING_FORMATS:
        out["format"] = rest.pop("format")
    if _is_object(out) or "properties" in rest:
        out["properties"] = dict(rest.pop("properties", {}))
        rest.pop("additionalProperties", None)
        out["additionalProperties"] = False
    if rest:
        hints = "{" + ", ".join(f"{key}: {value}" for key, value in rest.items()) + "}"
        described = out.get("description")
        out["description"] = f"{described}\n\n{hints}" if described else hints
    return out


ANTHROPIC = Rules(
    maps=("$defs", "definitions", "properties"),
    singles=("items",),
    lists=("anyOf", "oneOf", "allOf"),
    node=_anthropic,
)


def anthropic_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` rewritten for Anthropic's structured outputs: every object gets
    ``additionalProperties: false`` (required), ``oneOf`` becomes ``anyOf``, and keywords the
    API rejects (``minimum``, ``maxLength``, ``minItems`` above 1, unknown ``format`` ...) move
    into the ``description`` as ``{key: value}`` hints. The input is not modified."""
    return rewrite(schema, ANTHROPIC)


# -- Gemini function declarations -------------------------------------------------------------

# Keywords Gemini's function-declaration schemas reject (title: python-genai#1732).
_GEMINI_DROP = frozenset(
    ("$schema", "$id", "title", "examples", "discriminator", "exclusiveMinimum", "exclusiveMaximum")
)


def _gemini(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _GEMINI_DROP:
            continue
        if key == "const":
            out["enum"] = [value]
        else:
            out[key] = value
    if out.get("type") == "string" and "format" in out:
        fmt = out.pop("format")
        description = out.get("description")
        out["description"] = f"{description} (format: {fmt})" if description else f"Format: {fmt}"
    return out


GEMINI = Rules(
    maps=("properties", "$defs", "definitions", "patternProperties"),
    singles=("items", "additionalProperties", "not", "contains", "propertyNames"),
    lists=("anyOf", "oneOf", "allOf", "prefixItems"),
    node=_gemini,
)


def gemini_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a tool's JSON schema that Gemini's function declarations accept.

    Drops the keywords Gemini rejects, turns ``const`` into a one-value ``enum``, and moves
    a string ``format`` into the description. Property *names* are left alone: only
    keywords of (sub)schemas change.
    """
    return rewrite(schema, GEMINI)
