"""Real peers the tests start themselves."""
