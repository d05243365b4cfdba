"""Test and benchmark helpers. ``LIMNER_PLUGINS=limner.testing`` registers the ``fake`` provider."""

from limner.testing.fake_provider import FakeProvider, register_providers

__all__ = ["FakeProvider", "register_providers"]
