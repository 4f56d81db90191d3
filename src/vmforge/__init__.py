"""vmforge: a self-hosted, Azure VM Image Builder-compatible image build service."""

__version__ = "0.1.0"
