"""The ``incasem`` command line: thin shells over library functions, one module per command."""
