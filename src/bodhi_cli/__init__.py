"""The ``bodhi`` command: run the whole gateway on the embedded default, or each part alone."""
