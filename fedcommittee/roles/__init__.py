"""Role agents: publisher, provider, committee member (processes driven by chaincode events) and the
auditor (a read-only replay). See docs/agents.md.

Each agent is one process with its own Fabric identity (a profile user); ``fedcommittee publish |
provider | committee`` start them, ``fedcommittee run CONFIG`` starts a whole consortium.

Layout: ``driver`` (connect an agent; the one run loop every role shares), ``runtime`` (Agent, log,
event pump, idempotent submit),
``reader`` (the one fetch-and-verify path; aggregates and gossip bases), ``envelopes`` (identities,
keys, sealing contexts and recipients), ``data`` (shards, data kind, profile, registration),
``protocol`` (rules more than one role uses); one file per role, none importing another.
"""

from fedcommittee.roles.auditor import AuditReport, Finding, audit_model
from fedcommittee.roles.driver import connect_agent
from fedcommittee.roles.envelopes import identity_key
from fedcommittee.roles.reader import Reader
from fedcommittee.roles.runtime import Agent, JsonLog, run_dir

__all__ = [
    "Agent",
    "AuditReport",
    "Finding",
    "JsonLog",
    "Reader",
    "audit_model",
    "connect_agent",
    "identity_key",
    "run_dir",
]
