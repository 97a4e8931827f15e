"""Validate OpenLineage events against the spec's JSON schemas.

openlineage-python does not ship the spec's JSON files (``spec/OpenLineage.json`` and
``spec/facets/*.json`` stay in the OpenLineage repository); it ships the spec compiled:
``openlineage.client.generated``, one attrs class per ``$defs`` entry, generated from those
files, each naming its schema by ``_get_schema()`` (the spec's ``$id`` + ``#/$defs/Name``).
:func:`client_schemas` turns those classes back into JSON Schema documents under the
spec's own ``$id``s: properties and their types, required properties (a field without a
default; a facet's ``_producer`` and ``_schemaURL``), enums, and the formats the classes
check (``uuid`` run ids, ``date-time`` event times, ``uri`` producers and schema URLs).

Given the spec's own files (``SAFELOAD_OPENLINEAGE_SPEC``: a directory holding
``OpenLineage.json`` and ``facets/``), :func:`spec_schemas` loads those instead, so the
same checks run against the spec verbatim.

:func:`validate` checks an event as the spec's tooling does: the event against
``RunEvent``; then every facet against the schema its ``_schemaURL`` names (safeload's
custom facets against the schemas safeload ships), and that it sits where its kind
belongs (an ``InputDatasetFacet`` in ``inputFacets``, ...). It returns the problems found.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import pkgutil
import typing
from enum import Enum
from pathlib import Path
from types import NoneType, UnionType
from typing import Any
from urllib.parse import urlsplit

CORE = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
_FORMATS = {"runId": "uuid", "eventTime": "date-time", "producer": "uri", "schemaURL": "uri", "_producer": "uri",
            "_schemaURL": "uri"}
#: where each kind of facet may sit in an event
PLACES = {"RunFacet": "run.facets", "JobFacet": "job.facets", "DatasetFacet": "facets",
          "InputDatasetFacet": "inputFacets", "OutputDatasetFacet": "outputFacets"}


def _split(url: str) -> tuple[str, str]:
    document, _, pointer = url.partition("#")
    return document, pointer.rsplit("/", 1)[-1]


def _client_classes() -> list[type]:
    import attr
    import openlineage.client.generated as generated

    classes = []
    for info in pkgutil.iter_modules(generated.__path__):
        module = importlib.import_module(f"{generated.__name__}.{info.name}")
        classes += [c for c in vars(module).values()
                    if isinstance(c, type) and attr.has(c) and c.__module__ == module.__name__]
    return classes


def _url(cls: type) -> str:
    getter = getattr(cls, "_get_schema", None)
    return getter() if getter is not None else f"urn:openlineage-python:{cls.__module__}#/$defs/{cls.__qualname__}"


def client_schemas() -> tuple[dict[str, dict], dict[str, str]]:
    """(documents by ``$id``, facet kind by schema URL) from openlineage-python's classes."""
    import attr
    from openlineage.client.generated.base import BaseFacet

    documents: dict[str, dict] = {}
    kinds: dict[str, str] = {}
    for cls in _client_classes():
        document, name = _split(_url(cls))
        hints = typing.get_type_hints(cls)
        properties, required = {}, []
        for f in attr.fields(cls):
            prop = _type_schema(hints.get(f.name, Any))
            if f.name in _FORMATS:
                prop["format"] = _FORMATS[f.name]
            properties[f.name] = prop
            if f.default is attr.NOTHING or (issubclass(cls, BaseFacet) and f.name in ("_producer", "_schemaURL")):
                required.append(f.name)
        documents.setdefault(document, {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": document,
                                        "$defs": {}})["$defs"][name] = {
            "type": "object", "properties": properties, "required": required}
        kind = next((k for k in PLACES if any(b.__name__ == k for b in cls.__mro__)), None)
        if issubclass(cls, BaseFacet) and kind is not None:
            kinds[_url(cls)] = kind
    return documents, kinds


def _type_schema(t: Any) -> dict[str, Any]:
    import attr

    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin in (typing.Union, UnionType):
        options = [a for a in args if a is not NoneType]  # None is never serialised: optional, not null
        return _type_schema(options[0]) if len(options) == 1 else {"anyOf": [_type_schema(a) for a in options]}
    if origin is list:
        return {"type": "array", "items": _type_schema(args[0]) if args else {}}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1]) if args else {}}
    if isinstance(t, type) and issubclass(t, Enum):
        return {"enum": [m.value for m in t]}
    if isinstance(t, type) and attr.has(t):
        return {"$ref": _url(t)}
    return {str: {"type": "string"}, int: {"type": "integer"}, float: {"type": "number"},
            bool: {"type": "boolean"}}.get(t, {})


def spec_schemas(spec_dir: Path) -> tuple[dict[str, dict], dict[str, str]]:
    """(documents by ``$id``, facet kind by schema URL) from the spec's own JSON files."""
    documents = {}
    for path in [spec_dir / "OpenLineage.json", *sorted((spec_dir / "facets").glob("*.json"))]:
        doc = json.loads(path.read_text())
        documents[doc["$id"]] = doc
    return documents, _kinds(documents)


def safeload_schemas() -> dict[str, dict]:
    """The JSON schemas of safeload's custom facets, as shipped."""
    from safeload.lineage.facets import SCHEMA_DIR

    docs = [json.loads(p.read_text()) for p in sorted(SCHEMA_DIR.glob("*.json"))]
    return {d["$id"]: d for d in docs}


def _kinds(documents: dict[str, dict]) -> dict[str, str]:
    """Facet kind by schema URL, from each ``$defs`` entry's ``allOf`` reference to a core facet."""
    kinds = {}
    for doc_id, doc in documents.items():
        for name, definition in doc.get("$defs", {}).items():
            for part in definition.get("allOf", []):
                ref = part.get("$ref", "")
                if ref.startswith(CORE) and _split(ref)[1] in PLACES:
                    kinds[f"{doc_id}#/$defs/{name}"] = _split(ref)[1]
    return kinds


class Validator:
    """Validates events against a set of schema documents (see the module's docstring)."""

    def __init__(self, documents: dict[str, dict], kinds: dict[str, str]):
        from jsonschema import Draft202012Validator, FormatChecker
        from referencing import Registry, Resource

        custom = safeload_schemas()
        self.documents = {**documents, **custom}
        self.kinds = {**kinds, **_kinds(custom)}
        self.registry = Registry().with_resources(
            (doc_id, Resource.from_contents(doc, default_specification=_draft()))
            for doc_id, doc in self.documents.items())
        checker = FormatChecker()
        checker.checks("date-time", raises=ValueError)(_date_time)
        checker.checks("uri", raises=ValueError)(_uri)
        self._validator_class = Draft202012Validator
        self._checker = checker

    def _errors(self, url: str, instance: Any) -> list[str]:
        document, name = _split(url)
        if document not in self.documents or name not in self.documents[document].get("$defs", {}):
            return [f"no schema {url}"]
        validator = self._validator_class({"$ref": url}, registry=self.registry, format_checker=self._checker)
        return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(instance)]

    def validate(self, event: dict[str, Any]) -> list[str]:
        """Every problem with ``event`` (an emitted RunEvent, as JSON); [] when it is valid."""
        problems = [f"event {p}" for p in self._errors(f"{CORE}#/$defs/RunEvent", event)]
        for where, place, facet_name, facet in _facets(event):
            url = facet.get("_schemaURL", "") if isinstance(facet, dict) else ""
            problems += [f"{where} {facet_name}: {p}" for p in self._errors(url, facet)]
            kind = self.kinds.get(url)
            if kind is not None and PLACES[kind] != place and not (kind == "DatasetFacet" and place == "facets"):
                problems.append(f"{where} {facet_name}: a {kind} ({url}) in {place}")
        return problems


def _facets(event: dict[str, Any]) -> typing.Iterator[tuple[str, str, str, Any]]:
    for name, facet in (event.get("run", {}).get("facets") or {}).items():
        yield "run", "run.facets", name, facet
    for name, facet in (event.get("job", {}).get("facets") or {}).items():
        yield "job", "job.facets", name, facet
    for side, own in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        for d in event.get(side) or []:
            where = f"{side[:-1]} {d.get('namespace')}/{d.get('name')}"
            for name, facet in (d.get("facets") or {}).items():
                yield where, "facets", name, facet
            for name, facet in (d.get(own) or {}).items():
                yield where, own, name, facet


def _draft():
    from referencing.jsonschema import DRAFT202012

    return DRAFT202012


def _date_time(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    if "t" not in value.lower():
        raise ValueError(f"{value!r} has no time")
    dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


def _uri(value: Any) -> bool:
    if isinstance(value, str) and not urlsplit(value).scheme:
        raise ValueError(f"{value!r} is not an absolute URI")
    return True


def validator() -> Validator:
    """The spec's own files where ``SAFELOAD_OPENLINEAGE_SPEC`` points to them, else the
    schemas of openlineage-python's generated model."""
    import os

    spec = os.environ.get("SAFELOAD_OPENLINEAGE_SPEC")
    return Validator(*(spec_schemas(Path(spec)) if spec else client_schemas()))
