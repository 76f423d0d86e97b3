"""Process exit codes shared by every command (``verity --help`` lists them).

0 success, 1 internal error, 2 usage error, 3 one or more inputs unreadable, 4 a missing optional
dependency or data, 130 interrupted. They sit at the bottom of the layering (docs/architecture.md)
and import nothing, so code below the CLI (a trainer's ``main``, for example) can return them
without importing the interface layer, and ``verity --help`` stays free of numpy.
"""

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INPUT, EXIT_MISSING, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
