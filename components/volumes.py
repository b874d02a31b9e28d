"""Stateful volumes are declared once; protection and the backup set derive from that.

:func:`stateful_pvc` creates a PersistentVolumeClaim that Pulumi protects (``pulumi destroy``
or a rename cannot delete it) and records it in the :class:`VolumeRegistry`, which the backup
component reads to know what to copy off the node. A throwaway stack (setting
``ephemeralVolumes``: the reason) gets them unprotected and annotated with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components import k8s as kb


@dataclass(frozen=True)
class StatefulVolume:
    namespace: str
    name: str
    size: str
    node: str | None  # the node a local-path volume lives on (None: network storage)
    sqlite: bool = False  # holds a SQLite database (restore drills run an integrity check)


@dataclass
class VolumeRegistry:
    volumes: list[StatefulVolume] = field(default_factory=list)
    frozen: bool = False
    # Settings.ephemeral_volumes: why no stateful volume of this stack is protected ("": all are).
    ephemeral_reason: str = ""

    def protection(self) -> pulumi.ResourceOptions:
        """The options of every stateful volume: protected, unless the stack says why not."""
        return pulumi.ResourceOptions(protect=not self.ephemeral_reason)

    def annotations(self) -> dict[str, str] | None:
        """What a stateful volume carries when it is not protected: the policy pack's reason."""
        return kb.ephemeral_annotations(self.ephemeral_reason)

    def add(self, volume: StatefulVolume) -> None:
        if self.frozen:
            raise ValueError(
                f"stateful volume {volume.namespace}/{volume.name} declared after backups read the "
                "registry; build Backups after every component that declares volumes"
            )
        if any(v.namespace == volume.namespace and v.name == volume.name for v in self.volumes):
            raise ValueError(f"stateful volume {volume.namespace}/{volume.name} declared twice")
        self.volumes.append(volume)

    def freeze(self) -> tuple[StatefulVolume, ...]:
        """Close the registry (later declarations fail loudly) and return every volume."""
        self.frozen = True
        return tuple(self.volumes)

    def on_node(self, node: str) -> list[StatefulVolume]:
        return [v for v in self.volumes if v.node == node]


def stateful_pvc(
    registry: VolumeRegistry,
    *,
    name: str,
    namespace: str,
    size: str,
    node: str | None,
    resource_name: str,
    opts: pulumi.ResourceOptions,
    app: str | None = None,
    sqlite: bool = False,
    storage_class: str | None = "local-path",
    access_mode: str = "ReadWriteOnce",
    volume_name: str | None = None,
) -> k8s.core.v1.PersistentVolumeClaim:
    """A protected PVC holding data we cannot lose, recorded for backups (unprotected, with the
    registry's reason as its ephemeral annotation, in a throwaway stack)."""
    registry.add(StatefulVolume(namespace, name, size, node, sqlite))
    return kb.pvc(
        name,
        namespace,
        size,
        app=app,
        storage_class=storage_class,
        access_mode=access_mode,
        volume_name=volume_name,
        resource_name=resource_name,
        ephemeral_reason=registry.ephemeral_reason,
        opts=pulumi.ResourceOptions.merge(opts, registry.protection()),
    )
