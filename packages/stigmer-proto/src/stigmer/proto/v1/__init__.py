"""Generated from proto/stigmer/v1 by `nox -s proto`. Do not edit."""
