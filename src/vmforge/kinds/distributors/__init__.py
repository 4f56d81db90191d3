"""Distributors: ManagedImage, SharedImage, VHD. Each produces its own run output; one failing does not stop
the others."""
