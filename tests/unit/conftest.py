"""Collection fix for the property-based (hypothesis) tests of this folder.

Hypothesis's pytest plugin reads ``getattr(module, "__file__", None)`` of every
module in ``sys.modules`` while collecting. SpeechBrain registers lazy
placeholders for optional integrations (e.g. ``speechbrain.integrations.k2_fsa``)
that raise ``ImportError`` (not ``AttributeError``) there when the dependency is
not installed, which aborted the whole collection with an INTERNALERROR as soon
as a hypothesis test and ``import speechbrain`` met in one session.
"""

import sys

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Drop lazy placeholders of optional modules that cannot be imported here."""
    for name, module in list(sys.modules.items()):
        try:
            getattr(module, "__file__", None)
        except ImportError:
            del sys.modules[name]  # importing it again raises the same clear ImportError
