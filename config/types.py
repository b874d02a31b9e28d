"""Validated scalar types shared by every settings section.

Each type rejects bad input with a message that names the bad value; pydantic adds the config
key path, so a user sees e.g. ``pi-cluster:nodes[1].address: '10.0.0.500' is not an IPv4 address``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?)(Ki|Mi|Gi|Ti|K|M|G|T)$")
_CPU = re.compile(r"^([0-9]+(\.[0-9]+)?|[0-9]+m)$")
_UNITS = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}


class Model(BaseModel):
    """Base for settings sections: camelCase keys as in the stack file, unknown keys refused."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
    )


def _dns_label(value: str) -> str:
    if not DNS_LABEL.match(value):
        raise ValueError(f"{value!r} is not a DNS label (lowercase letters, digits and '-', at most 63)")
    return value


def _domain(value: str) -> str:
    if not _DOMAIN.match(value):
        raise ValueError(f"{value!r} is not a valid lowercase DNS domain such as lab.example.dev")
    return value


def _ipv4(value: str) -> str:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address") from None
    return value


def _cidr(value: str) -> str:
    try:
        ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 network in CIDR form (e.g. 192.168.1.0/24)") from None
    return value


def _memory(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError(
            f"{value!r} is not a memory quantity with a unit (e.g. 512Mi, 8Gi); a bare number is ambiguous"
        )
    return value


def _cpu(value: str) -> str:
    if not _CPU.match(value):
        raise ValueError(f"{value!r} is not a CPU quantity (e.g. 250m or 2)")
    return value


def _version(value: str) -> str:
    if not value or not value.strip():
        raise ValueError("a version must not be empty")
    if value.strip().lower() in {"latest", "stable", "main", "master", "edge", "nightly"}:
        raise ValueError(f"{value!r} is a floating version; pin an exact release")
    if any(c.isspace() for c in value):
        raise ValueError(f"{value!r} contains whitespace")
    return value


def _k3s_version(value: str) -> str:
    _version(value)
    if not re.match(r"^v\d+\.\d+\.\d+\+k3s\d+$", value):
        raise ValueError(f"{value!r} is not a K3s release such as v1.33.6+k3s1")
    return value


def _image(value: str) -> str:
    """An image reference with an explicit tag (or digest) that is not a floating one."""
    if "@sha256:" in value:
        return value
    name, _, tag = value.rpartition(":")
    if not name or "/" in tag:
        raise ValueError(f"{value!r} has no tag; pin an exact image tag")
    _version(tag)
    return value


def _label_key(value: str) -> str:
    prefix, slash, name = value.rpartition("/")
    ok = bool(_LABEL_NAME.match(name)) and len(name) <= 63
    if slash:
        ok = ok and bool(_DOMAIN.match(prefix) or DNS_LABEL.match(prefix)) and len(prefix) <= 253
    if not ok:
        raise ValueError(f"{value!r} is not a valid Kubernetes label key")
    return value


def _label_value(value: str) -> str:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise ValueError(f"{value!r} is not a valid Kubernetes label value")
    return value


_ABS_PATH = re.compile(r"^(/[A-Za-z0-9._-]+)+$")
# Cron fields: minute, hour, day of month, month, day of week (0 and 7 are Sunday).
_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)


def _abs_path(value: str) -> str:
    """An absolute path of plain characters (it is passed to NFS mounts and remote shells)."""
    if not _ABS_PATH.match(value) or "/../" in f"{value}/" or "/./" in f"{value}/":
        raise ValueError(
            f"{value!r} is not an absolute path such as /volume1/video (letters, digits, '.', '_', '-')"
        )
    return value


def _cron_number(text: str, low: int, high: int) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(text)
    return int(text)


def _cron_field(text: str, low: int, high: int) -> None:
    for part in text.split(","):
        base, slash, step = part.partition("/")
        if slash:
            _cron_number(step, 1, high)
        if base == "*":
            continue
        first, dash, last = base.partition("-")
        a = _cron_number(first, low, high)
        if dash and _cron_number(last, low, high) < a:
            raise ValueError(part)
        if slash and not dash:
            raise ValueError(part)


def _cron(value: str) -> str:
    fields = value.split()
    if len(fields) != 5:
        raise ValueError(f"{value!r} is not a cron schedule: it needs 5 fields, has {len(fields)}")
    for text, (name, low, high) in zip(fields, _CRON_FIELDS, strict=True):
        try:
            _cron_field(text, low, high)
        except ValueError:
            raise ValueError(f"{value!r} is not a valid cron schedule: {name} field {text!r}") from None
    return value


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
AbsPath = Annotated[str, AfterValidator(_abs_path)]
CronSchedule = Annotated[str, AfterValidator(_cron)]
Domain = Annotated[str, AfterValidator(_domain)]
IPv4 = Annotated[str, AfterValidator(_ipv4)]
Cidr = Annotated[str, AfterValidator(_cidr)]
Memory = Annotated[str, AfterValidator(_memory)]
Cpu = Annotated[str, AfterValidator(_cpu)]
Version = Annotated[str, AfterValidator(_version)]
K3sVersion = Annotated[str, AfterValidator(_k3s_version)]
Image = Annotated[str, AfterValidator(_image)]
LabelKey = Annotated[str, AfterValidator(_label_key)]
LabelValue = Annotated[str, AfterValidator(_label_value)]


def memory_bytes(quantity: str) -> int:
    """Bytes in a Kubernetes memory quantity such as ``512Mi``."""
    match = _QUANTITY.match(quantity)
    if not match:
        raise ValueError(f"{quantity!r} is not a memory quantity")
    return int(float(match.group(1)) * _UNITS[match.group(3)])


def cpu_millis(quantity: str) -> int:
    """Millicores in a Kubernetes CPU quantity such as ``250m`` or ``2``."""
    if quantity.endswith("m"):
        return int(quantity[:-1])
    return int(float(quantity) * 1000)


class Chart(Model):
    """A Helm chart pinned to one version."""

    repo: str
    chart: str
    version: Version


class Resources(Model):
    """Requests and limits of one container. A CPU limit is optional (throttling hurts DNS)."""

    cpu_request: Cpu
    memory_request: Memory
    memory_limit: Memory
    cpu_limit: Cpu | None = None

    @model_validator(mode="after")
    def _request_within_limit(self) -> Resources:
        if memory_bytes(self.memory_request) > memory_bytes(self.memory_limit):
            raise ValueError(f"memoryRequest {self.memory_request} is above memoryLimit {self.memory_limit}")
        if self.cpu_limit and cpu_millis(self.cpu_request) > cpu_millis(self.cpu_limit):
            raise ValueError(f"cpuRequest {self.cpu_request} is above cpuLimit {self.cpu_limit}")
        return self

    def spec(self) -> dict[str, Any]:
        limits = {"memory": self.memory_limit}
        if self.cpu_limit:
            limits["cpu"] = self.cpu_limit
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": limits,
        }
