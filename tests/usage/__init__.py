"""Tests of eafix_capacity.usage (a package, so their basenames may repeat those in tests/)."""
