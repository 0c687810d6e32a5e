"""Code-first authoring: builders for every resource kind and workflow task, expressions, and the
generator that writes them back as Python (re-exported by ``stigmer.sdk``)."""
