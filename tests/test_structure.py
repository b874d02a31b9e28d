"""Structural rules of the registered program: providers, parents, names."""

from __future__ import annotations

from collections import Counter

from tools import mockrun


def test_every_kubernetes_resource_uses_the_cluster_provider(any_stack: mockrun.Result) -> None:
    k8s = [r for r in any_stack.registrations if r.custom and r.type.startswith("kubernetes:")]
    assert k8s
    wrong = [r.key for r in k8s if r.provider != "k3s-provider"]
    assert wrong == []


def test_type_name_pairs_are_unique(any_stack: mockrun.Result) -> None:
    dupes = [k for k, n in Counter(r.key for r in any_stack.registrations).items() if n > 1]
    assert dupes == []


def test_kubernetes_objects_have_explicit_unique_names(any_stack: mockrun.Result) -> None:
    seen: Counter[tuple[str, str, str]] = Counter()
    for obj in any_stack.manifests():
        meta = obj.get("metadata") or {}
        assert meta.get("name"), f"{obj.get('kind')} without metadata.name"
        seen[(obj["kind"], meta.get("namespace") or "", meta["name"])] += 1
    assert [k for k, n in seen.items() if n > 1] == []


def test_every_resource_belongs_to_a_component(any_stack: mockrun.Result) -> None:
    orphans = [
        r.key
        for r in any_stack.registrations
        if r.custom and (r.parent or "").startswith("pulumi:pulumi:Stack")
    ]
    assert orphans == []


def test_namespaced_objects_live_in_declared_namespaces(any_stack: mockrun.Result) -> None:
    declared = {o["metadata"]["name"] for o in any_stack.manifests("Namespace")}
    used = {o["metadata"].get("namespace") for o in any_stack.manifests()} - {None}
    assert used <= declared, used - declared
