"""The class mapping as the playground edits it: table rows from GET /models, checked, back to PUT /config.

Rules (the server enforces the same ones and answers 400 otherwise): a V7 class name is non-empty
and has no surrounding spaces; on one endpoint a name stands for one annotation type (and, for
skeletons, one list of nodes), because V7 matches results to its classes by name alone. Several model
classes of the same type may share a name (for example left_eye and right_eye both as "eye").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Table columns: key -> heading shown in the editor.
COLUMNS = {
    "model": "Model",
    "model_class": "Model class",
    "v7_name": "V7 class name",
    "type": "Type",
    "enabled": "Enabled",
    "threshold": "Threshold",
}
EDITABLE_COLUMNS = ("v7_name", "enabled", "threshold")


@dataclass(frozen=True)
class EndpointClass:
    """A class as V7 sees it on one endpoint: its name, type and (skeletons) node names and edges."""

    name: str
    type: str
    nodes: tuple[str, ...] = ()
    edges: tuple[tuple[str, str], ...] = ()
    sources: tuple[str, ...] = ()


def _models_by_name(models_json: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {m["name"]: m for m in models_json.get("models", [])}


def endpoint_classes(models_json: Mapping[str, Any], model: str | None = None) -> list[EndpointClass]:
    """The enabled classes of one model's endpoint, or of the default endpoint (model None), by V7 name."""
    by_model = _models_by_name(models_json)
    names = list(models_json.get("default_models", [])) if model is None else [model]
    found: dict[str, EndpointClass] = {}
    for model_name in names:
        for c in by_model.get(model_name, {}).get("classes", []):
            if not c.get("enabled", True):
                continue
            skeleton = c.get("skeleton") or {}
            source = f"{model_name}/{c['model_class']}"
            if c["name"] in found:
                existing = found[c["name"]]
                found[c["name"]] = EndpointClass(
                    existing.name, existing.type, existing.nodes, existing.edges, existing.sources + (source,)
                )
                continue
            found[c["name"]] = EndpointClass(
                c["name"],
                c["type"],
                tuple(skeleton.get("nodes", ())),
                tuple((a, b) for a, b in skeleton.get("edges", ())),
                (source,),
            )
    return list(found.values())


def rows_from_models(models_json: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One editable row per model class, in the server's order."""
    rows = []
    for model in models_json.get("models", []):
        for c in model.get("classes", []):
            rows.append(
                {
                    "model": model["name"],
                    "model_class": c["model_class"],
                    "v7_name": c["name"],
                    "type": c["type"],
                    "enabled": bool(c.get("enabled", True)),
                    "threshold": c.get("threshold"),
                }
            )
    return rows


def _clean_threshold(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, float) and math.isnan(value):  # an emptied cell in the table
        return None
    return float(value)


def _clean_name(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _skeleton_nodes(models_json: Mapping[str, Any]) -> dict[tuple[str, str], tuple[str, ...]]:
    return {
        (m["name"], c["model_class"]): tuple((c.get("skeleton") or {}).get("nodes", ()))
        for m in models_json.get("models", [])
        for c in m.get("classes", [])
    }


def validate_rows(
    rows: Iterable[Mapping[str, Any]], default_models: Sequence[str], models_json: Mapping[str, Any]
) -> list[str]:
    """Every problem with an edited table, as sentences (empty list: the table can be saved)."""
    rows = list(rows)
    problems = []
    known_models = [m["name"] for m in models_json.get("models", [])]
    if not default_models:
        problems.append("the default endpoint needs at least one model")
    problems += [f"the default endpoint names an unknown model {m!r}" for m in default_models if m not in known_models]
    for row in rows:
        where = f"{row['model']}/{row['model_class']}"
        if not _clean_name(row.get("v7_name")):
            problems.append(f"{where}: the V7 class name is empty")
        try:
            threshold = _clean_threshold(row.get("threshold"))
        except (TypeError, ValueError):
            problems.append(f"{where}: the threshold must be a number from 0 to 1, or empty")
            continue
        if threshold is not None and not 0 <= threshold <= 1:
            problems.append(f"{where}: the threshold {threshold:g} is outside 0..1")

    nodes = _skeleton_nodes(models_json)
    endpoints = {f"model {m}": [m] for m in known_models}
    endpoints["the default endpoint"] = list(default_models)
    reported = set()
    for endpoint, members in endpoints.items():
        seen: dict[str, tuple[str, str, tuple[str, ...]]] = {}
        for row in rows:
            name = _clean_name(row.get("v7_name"))
            if row["model"] not in members or not row.get("enabled") or not name:
                continue
            where = f"{row['model']}/{row['model_class']}"
            shape = (row["type"], nodes.get((row["model"], row["model_class"]), ()))
            if name not in seen:
                seen[name] = (where, *shape)
                continue
            first_where, first_type, first_nodes = seen[name]
            if (first_type, first_nodes) != shape and (name, first_where, where) not in reported:
                reported.add((name, first_where, where))
                if first_type != shape[0]:
                    detail = f"{first_where} ({first_type}) and {where} ({shape[0]})"
                else:
                    detail = f"{first_where} and {where}, skeletons with different nodes"
                problems.append(f"V7 class name {name!r} is used on {endpoint} for {detail}: one name, one type")
    return problems


def mapping_from_rows(rows: Iterable[Mapping[str, Any]], default_models: Sequence[str]) -> dict[str, Any]:
    """The class-mapping JSON that PUT /config takes."""
    classes: dict[str, dict[str, Any]] = {}
    for row in rows:
        classes.setdefault(row["model"], {})[row["model_class"]] = {
            "v7_name": _clean_name(row.get("v7_name")),
            "enabled": bool(row.get("enabled")),
            "threshold": _clean_threshold(row.get("threshold")),
        }
    return {"version": 1, "default_models": list(default_models), "classes": classes}
