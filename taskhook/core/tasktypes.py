"""Task types: the parameters each one requires, and the synthetic response a test key gets.

The requirement table follows Scale's v1 task endpoints: each entry is a list of
alternatives, and every entry must be satisfied by at least one of its names (so
`("attachment", "attachments")` means "one of the two"). Parameters a project
defines (its current `params`) count as given.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from taskhook.core.errors import BadRequest

# Every TaskType of scaleapi 2.18.4, with the parameters its create call requires.
REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "annotation": (("attachment",), ("objects_to_annotate",)),
    "categorization": (("attachment",), ("categories",)),
    "comparison": (("attachments",), ("fields", "choices")),
    "cuboidannotation": (("attachment",), ("objects_to_annotate",)),
    "datacollection": (("attachment",), ("fields",)),
    "documentmodel": (("attachment",),),
    "documenttranscription": (("attachment",), ("features",)),
    "imageannotation": (("attachment",), ("geometries",)),
    "laneannotation": (("attachment",), ("geometries", "objects_to_annotate")),
    "lidarannotation": (("attachments",), ("labels",)),
    "lidarlinking": (("attachments",),),
    "lidarsegmentation": (("attachments",), ("labels",)),
    "lidartopdown": (("attachments",),),
    "lineannotation": (("attachment",), ("objects_to_annotate", "geometries")),
    "namedentityrecognition": (("text",), ("labels",)),
    "pointannotation": (("attachment",), ("objects_to_annotate", "geometries")),
    "polygonannotation": (("attachment",), ("objects_to_annotate", "geometries")),
    "segmentannotation": (("attachment",), ("labels",)),
    "transcription": (("attachment",),),
    "textcollection": (("attachments",), ("fields",)),
    "videoannotation": (("attachments", "attachment"), ("geometries",)),
    "videoboxannotation": (("attachments", "attachment"), ("objects_to_annotate",)),
    "videoplaybackannotation": (("attachments", "attachment"), ("geometries",)),
    "videocuboidannotation": (("attachments",), ("objects_to_annotate", "geometries")),
    "sensorfusion": (("attachments",),),
    "chat": (("instruction",),),
    "chatexperimental": (("instruction",),),
    "chatlite": (("instruction",),),
    "multichat": (("instruction",),),
    "multistage": (),
    "federal2dvideoannotation": (("attachments", "attachment"), ("geometries",)),
}

TASK_TYPES = frozenset(REQUIRED)


def check_required(task_type: str, given: dict[str, Any]) -> None:
    """400 naming the first missing parameter; empty strings and lists count as missing."""
    for alternatives in REQUIRED[task_type]:
        if not any(given.get(name) not in (None, "", [], {}) for name in alternatives):
            wanted = " or ".join(f"'{name}'" for name in alternatives)
            raise BadRequest(f"Missing required parameter {wanted} for task type '{task_type}'.")


def _first_label(value: Any, default: str = "label") -> str:
    """The first label of a list that holds strings or {"label"/"name"/...} objects."""
    if isinstance(value, list) and value:
        item = value[0]
        if isinstance(item, str):
            return item
        if isinstance(item, dict):
            for key in ("label", "name", "choice", "value"):
                if isinstance(item.get(key), str):
                    return str(item[key])
            return _first_label(item.get("subchoices"), default)
    return default


def _box(label: str) -> dict[str, Any]:
    return {"type": "box", "label": label, "left": 10, "top": 10, "width": 100, "height": 80}


def _geometry_annotations(geometries: Any) -> list[dict[str, Any]]:
    """One annotation per geometry kind asked for, labelled with its first object."""
    out: list[dict[str, Any]] = []
    if not isinstance(geometries, dict):
        return [_box("object")]
    for kind, spec in geometries.items():
        label = _first_label(spec.get("objects_to_annotate") if isinstance(spec, dict) else None)
        if kind == "box":
            out.append(_box(label))
        elif kind in ("polygon", "line"):
            vertices = [{"x": 10, "y": 10}, {"x": 60, "y": 10}, {"x": 60, "y": 60}]
            out.append({"type": kind, "label": label, "vertices": vertices})
        elif kind == "point":
            out.append({"type": "point", "label": label, "x": 25, "y": 25})
        elif kind == "cuboid":
            out.append({"type": "cuboid", "label": label, "points": [], "edges": []})
        else:
            out.append({"type": kind, "label": label})
    return out


def _fields_response(fields: Any) -> dict[str, Any]:
    """{field_id: a value of the right kind} for textcollection-style `fields`."""
    result: dict[str, Any] = {}
    if isinstance(fields, list):
        for field in fields:
            if isinstance(field, dict) and isinstance(field.get("field_id"), str):
                choices = field.get("choices")
                result[field["field_id"]] = _first_label(choices) if choices else "test response"
    elif isinstance(fields, dict):
        result = {str(name): "test response" for name in fields}
    return result


def synthetic_response(task_type: str, params: dict[str, Any]) -> dict[str, Any]:
    """The response a test-key task completes with at once: plausible for its type."""
    if task_type == "categorization":
        return {"category": _first_label(params.get("categories"), "category")}
    if task_type == "comparison":
        if params.get("choices"):
            return {"choice": _first_label(params.get("choices"))}
        return {"fields": _fields_response(params.get("fields"))}
    if task_type in ("textcollection", "datacollection", "transcription"):
        return {"fields": _fields_response(params.get("fields"))}
    if task_type in ("imageannotation", "laneannotation"):
        return {"annotations": _geometry_annotations(params.get("geometries"))}
    if task_type in (
        "annotation",
        "cuboidannotation",
        "lineannotation",
        "pointannotation",
        "polygonannotation",
    ):
        label = _first_label(params.get("objects_to_annotate"), "object")
        if params.get("geometries"):
            return {"annotations": _geometry_annotations(params["geometries"])}
        return {
            "annotations": [
                _box(label)
                if task_type == "annotation"
                else {"type": task_type.removesuffix("annotation"), "label": label}
            ]
        }
    if task_type == "segmentannotation":
        label = _first_label(params.get("labels"))
        return {
            "annotations": {"unlabeled": None, "labeled": {label: []}, "combined": None},
            "labelMapping": {label: {"color": "#ff0000", "index": 1}},
        }
    if task_type == "namedentityrecognition":
        given = params.get("text")
        text = given if isinstance(given, str) else ""
        return {
            "annotations": [
                {
                    "label": _first_label(params.get("labels")),
                    "start": 0,
                    "end": min(len(text), 4),
                    "text": text[:4],
                }
            ]
        }
    if task_type in ("documenttranscription", "documentmodel"):
        return {"annotations": [], "global_fields": {}}
    if task_type.startswith("chat") or task_type == "multichat":
        return {"responses": [{"role": "assistant", "content": "test response"}]}
    return {"annotations": {"url": "https://example.invalid/annotations/test.json"}}


# Loose shapes of the parameters each task type requires (tasktypes.REQUIRED); the server
# checks only that they are present and not empty.
_PARAM_SHAPES: dict[str, dict[str, Any]] = {
    "attachment": {"type": "string", "minLength": 1, "description": "URL or text to work on."},
    "attachments": {"type": "array", "minItems": 1},
    "text": {"type": "string", "minLength": 1},
    "instruction": {"type": "string", "minLength": 1, "maxLength": 100_000},
    "categories": {"type": "array", "minItems": 1},
    "choices": {"type": "array", "minItems": 1},
    "objects_to_annotate": {"type": "array", "minItems": 1},
    "geometries": {"type": "object", "minProperties": 1},
    "labels": {"type": "array", "minItems": 1},
    "features": {"type": "array", "minItems": 1},
}
_NON_EMPTY: dict[str, Any] = {"not": {"enum": [None, "", [], {}]}}


def _non_null(prop: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an `X | None` property schema."""
    branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"]
    return dict(branches[0])


def create_schema(base: dict[str, Any], task_type: str) -> dict[str, Any]:
    """The JSON Schema of a create call: TaskCreate's (`base`) plus what `task_type`
    requires, one name of each group of alternatives (`project` and `batch` are optional)."""
    schema = copy.deepcopy(base)
    schema["title"] = f"{task_type} task"
    schema["description"] = (
        f"Creates a {task_type} task. {base['description']} Required parameters may also "
        "come from the project's current params."
    )
    required: list[str] = []
    choices: list[tuple[str, ...]] = []
    for alternatives in REQUIRED[task_type]:
        for name in alternatives:
            schema["properties"][name] = dict(_PARAM_SHAPES.get(name, _NON_EMPTY))
        if len(alternatives) == 1:
            required.append(alternatives[0])
        else:
            choices.append(alternatives)
    if required:
        schema["required"] = required
    if choices:
        schema["anyOf"] = [
            {
                "required": list(pick),
                "properties": {name: _non_null(schema["properties"][name]) for name in pick},
            }
            for pick in itertools.product(*choices)
        ]
    return schema
