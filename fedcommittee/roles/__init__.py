"""Role agents: publisher, provider, committee member (processes driven by chaincode events) and the
auditor (a read-only replay). See docs/agents.md.

Each agent is one process with its own Fabric identity (a profile user); ``fedcommittee publish |
provider | committee`` start them, ``fedcommittee run CONFIG`` starts a whole consortium.
"""

from fedcommittee.roles.auditor import AuditReport, Finding, audit_model
from fedcommittee.roles.common import Agent, JsonLog, Reader, identity_key, run_dir

__all__ = ["Agent", "AuditReport", "Finding", "JsonLog", "Reader", "audit_model", "identity_key", "run_dir"]
