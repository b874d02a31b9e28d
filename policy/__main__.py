"""The pi-cluster policy pack: `pulumi preview --policy-pack policy`."""

import sys
from pathlib import Path

# The pack runs as a script from policy/; its modules import as the package `policy`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import Policy, PolicyPack

from policy.policies import POLICIES

policies: list[Policy] = list(POLICIES)
PolicyPack(name="pi-cluster-guardrails", policies=policies)
