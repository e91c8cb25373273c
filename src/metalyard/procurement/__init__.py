"""Procurement: vendors, versioned hardware profiles, purchase orders, and matching."""
