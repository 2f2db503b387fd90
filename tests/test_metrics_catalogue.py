"""docs/observability.md's metric catalogue is the metrics the code exports: every metric of
the edge (nexuscart.web.EDGE_METRICS) and of the services (nexuscart.observability, the
payments collector included) is listed with its type and labels, and nothing else is."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import REGISTRY

from nexuscart import observability
from nexuscart.adapters.payments_stripe import LATENCY_BUCKETS, CallStats
from nexuscart.web import EDGE_METRICS

ROOT = Path(__file__).resolve().parent.parent
EDGE_LABELS = {
    "http_requests_total": "route, status",
    "http_request_duration_seconds": "route",
    "dependency_failures_total": "dependency",
    "flash_sale_gate_decisions_total": "decision",
    "payments_webhooks_total": "outcome",
    "catalog_page_builds_total": "source",
}


class _Provider:
    def __init__(self) -> None:
        self.stats = CallStats()
        self.stats.attempt("create_intent")
        self.stats.outcome("create_intent", "ok", 0.01)

    def breaker_state(self) -> str:
        return "closed"


def documented() -> dict[str, tuple[str, str]]:
    text = (ROOT / "docs" / "observability.md").read_text()
    rows = re.findall(r"^\| `(nexuscart_\w+)` \| (\w+) \|([^|]*)\|", text, re.M)
    return {name: (kind, labels.strip().replace("`", "")) for name, kind, labels in rows}


def exported() -> dict[str, tuple[str, str]]:
    out = {
        f"nexuscart_{name}": (kind, EDGE_LABELS.get(name, ""))
        for name, (kind, _) in EDGE_METRICS.items()
    }
    families = [m for m in REGISTRY.collect() if m.name.startswith("nexuscart_")]
    families += observability.PaymentsCollector(_Provider(), LATENCY_BUCKETS).collect()
    for fam in families:
        name = f"{fam.name}_total" if fam.type == "counter" else fam.name
        labels = set()
        for s in fam.samples:
            labels |= set(s.labels) - {"le"}
        out[name] = (fam.type, ", ".join(sorted(labels)))
    # labelled metrics without children show no labels: take them from their definitions
    for metric in vars(observability).values():
        if hasattr(metric, "_labelnames") and metric._labelnames:
            kind = metric._type
            name = f"{metric._name}_total" if kind == "counter" else metric._name
            out[name] = (kind, ", ".join(sorted(metric._labelnames)))
    return out


def test_the_docs_list_every_exported_metric_with_its_type_and_labels() -> None:
    docs, code = documented(), exported()
    assert sorted(set(code) - set(docs)) == [], "exported but not documented"
    assert sorted(set(docs) - set(code)) == [], "documented but not exported"
    wrong = {n: (docs[n], code[n]) for n in code if docs[n][0] != code[n][0]}
    assert wrong == {}, "types differ"
    labels = {
        n: (docs[n][1], code[n][1])
        for n in code
        if sorted(filter(None, docs[n][1].replace(" ", "").split(",")))
        != sorted(filter(None, code[n][1].replace(" ", "").split(",")))
    }
    assert labels == {}, "labels differ"
