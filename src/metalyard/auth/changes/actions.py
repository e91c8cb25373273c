"""The actions maker-checker can hold for a second person: the one list that the settings
check `maker_checker` against and that the services register executors under.

No database imports: the settings load it before anything else.
"""

ACTIONS = (
    "asset.decommission",
    "asset.leave_baremetal",
    "asset.delete",
    "purchase_request.approve",
)
