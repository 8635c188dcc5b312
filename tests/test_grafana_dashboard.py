"""docs/grafana-dashboard.json against Grafana's own published dashboard schema, and against the README.

No Grafana server can be installed here (not in Debian, not on PyPI or npm as a
server), so the dashboard is read with ``grafana-foundation-sdk``: Python types
Grafana generates from its schemas (here Grafana 11.6's). Every field must be
one the schema has (nothing is lost when the SDK reads and writes it back), and
every value of the type, enum or literal the schema gives it.
"""

from __future__ import annotations

import enum
import json
import re
import types
import typing
from pathlib import Path

import pytest
from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.cog.runtime import UnknownDataquery
from grafana_foundation_sdk.models import prometheus
from grafana_foundation_sdk.models.dashboard import Dashboard, Panel

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

register_default_plugins()  # the panel types' options and the data sources' queries


def schema_errors(value: object, annotation: object, path: str) -> list[str]:
    """Where ``value`` (as the SDK read it) is not what the schema's ``annotation`` allows."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is typing.Any:
        return []
    if annotation is object:
        return model_errors(value, path) if hasattr(value, "to_json") else []
    if origin in (typing.Union, types.UnionType):
        options = [option for option in args if option is not type(None)] if value is not None else args
        models = [option for option in options if isinstance(option, type) and hasattr(option, "to_json")]
        options = [option for option in models if isinstance(value, option)] or options  # the type the SDK read
        found = [schema_errors(value, option, path) for option in options]
        if any(not errors for errors in found):
            return []
        # Report the option the value came closest to (fewest problems), not every option's.
        return min(found, key=len)
    if origin is typing.Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {args}"]
    if value is None:
        return [] if annotation is type(None) else [f"{path}: missing, the schema requires {annotation}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {value!r} is not a list"]
        return [e for i, item in enumerate(value) for e in schema_errors(item, args[0], f"{path}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {value!r} is not an object"]
        return [e for key, item in value.items() for e in schema_errors(item, args[1], f"{path}.{key}")]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        allowed = {member.value for member in annotation}
        return [] if value in allowed else [f"{path}: {value!r} is not one of {sorted(allowed, key=str)}"]
    if annotation is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r} is not a number"]
    if annotation in (str, int, bool):
        ok = isinstance(value, annotation) and not (annotation is int and isinstance(value, bool))
        return [] if ok else [f"{path}: {value!r} is not {annotation.__name__}"]
    if isinstance(annotation, type):
        if not isinstance(value, annotation):
            return [f"{path}: {type(value).__name__} where the schema has {annotation.__name__}"]
        return model_errors(value, path)
    raise AssertionError(f"{path}: no check for {annotation!r}")


def model_errors(model: object, path: str) -> list[str]:
    hints = typing.get_type_hints(type(model))
    return [
        e
        for name, annotation in hints.items()
        for e in schema_errors(getattr(model, name), annotation, f"{path}.{name}")
    ]


def lost_fields(original: object, written: object, path: str = "") -> list[str]:
    """Fields of ``original`` that are missing or changed in ``written`` (what the SDK wrote back)."""
    if isinstance(original, dict):
        if not isinstance(written, dict):
            return [f"{path}: became {written!r}"]
        return [
            e
            for key, value in original.items()
            for e in (
                [f"{path}.{key}: not in the schema"]
                if key not in written
                else lost_fields(value, written[key], f"{path}.{key}")
            )
        ]
    if isinstance(original, list):
        if not isinstance(written, list) or len(written) != len(original):
            return [f"{path}: became {written!r}"]
        return [
            e for i, (a, b) in enumerate(zip(original, written, strict=True)) for e in lost_fields(a, b, f"{path}[{i}]")
        ]
    return [] if original == written else [f"{path}: {original!r} became {written!r}"]


def validate(document: dict) -> list[str]:
    """Every way ``document`` is not a dashboard Grafana's schema describes."""
    dashboard = Dashboard.from_json(document)
    written = json.loads(json.dumps(dashboard, cls=JSONEncoder))
    return lost_fields(document, written) + model_errors(dashboard, "dashboard")


def readme_queries() -> dict[str, str]:
    """The README's Monitoring table of panels: panel -> PromQL."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| Panel | PromQL |") :].split("\n\n", 1)[0]
    return dict(re.findall(r"^\| ([^|`]+?) \| `(.+)` \|$", table, flags=re.MULTILINE))


def test_the_dashboard_is_valid_per_grafanas_schema() -> None:
    assert validate(json.loads(DASHBOARD.read_text())) == []


@pytest.mark.parametrize(
    ("break_it", "error"),
    [
        (lambda d: d["panels"][0]["options"]["legend"].update(displayMode="sideways"), "sideways"),
        (lambda d: d["panels"][0]["gridPos"].update(h="8"), "is not int"),
        (lambda d: d["panels"][0].update(colour="red"), "colour: not in the schema"),
        (lambda d: d["templating"]["list"][0].update(type="datasources"), "datasources"),
        (lambda d: d["panels"][-1]["fieldConfig"]["defaults"]["color"].update(mode="sparkly"), "sparkly"),
    ],
)
def test_the_schema_check_catches_a_broken_dashboard(break_it, error: str) -> None:
    document = json.loads(DASHBOARD.read_text())
    break_it(document)
    assert any(error in problem for problem in validate(document)), validate(document)


def test_every_panel_is_a_known_panel_type_querying_the_chosen_prometheus() -> None:
    dashboard = Dashboard.from_json(json.loads(DASHBOARD.read_text()))
    assert dashboard.panels and all(isinstance(panel, Panel) for panel in dashboard.panels)
    (variable,) = dashboard.templating.list_val
    assert (variable.type_val, variable.name, variable.query) == ("datasource", "datasource", "prometheus")
    for panel in dashboard.panels:
        assert panel.type_val in ("timeseries", "stat"), panel.title
        assert not isinstance(panel.options, dict), f"{panel.title}: options not read as {panel.type_val}'s"
        assert panel.datasource.to_json() == DATASOURCE, panel.title
        assert panel.targets, panel.title
        for target in panel.targets:
            assert isinstance(target, prometheus.Dataquery) and not isinstance(target, UnknownDataquery), panel.title
            assert isinstance(target, variants.Dataquery)
            assert target.datasource.to_json() == DATASOURCE, panel.title
    ids = [panel.id_val for panel in dashboard.panels]
    assert len(set(ids)) == len(ids)


def test_every_panels_promql_is_the_readmes() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert sorted(queries) == sorted(readme_queries().values())
    assert len(readme_queries()) == len(dashboard["panels"])
