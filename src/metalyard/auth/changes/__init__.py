"""Maker-checker: state-changing commands that wait for a second person's approval."""
