"""Discovery: the agent's endpoints, evaluation rules, and the flow that takes a newly racked
server from its first boot to SPARE (or to QUARANTINED, with its reasons)."""
