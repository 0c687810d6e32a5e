"""The conformance test classes, one module per part of the contract (re-exported by the package)."""
