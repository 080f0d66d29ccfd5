"""The ``nmt`` sub-commands, one module each: ``add_arguments(parser)`` and ``main(args)``.

Command modules are leaves: only ``nmt/cli.py`` imports them, and they import the library
(``nmt/*.py``, ``nmt/data``, ``nmt/models``) and ``options.py`` (options that several
commands share), never each other.
"""
