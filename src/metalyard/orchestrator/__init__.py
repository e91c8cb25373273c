"""The flow engine: flows of idempotent beans, runs, leases, capacity pools and workers.

It knows nothing of assets or firmware; each concept builds its flows from these parts.
"""
