"""Policies behind one interface, registered by name (`--policy NAME`)."""

from tgrpo.policies.base import Policy, PolicyOutput
from tgrpo.policies.registry import POLICY_NAMES, make_policy

__all__ = ["POLICY_NAMES", "Policy", "PolicyOutput", "make_policy"]
