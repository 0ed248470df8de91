"""Offline teacher models that label faces before anyone has: their values, `teach` and `models bootstrap`."""
