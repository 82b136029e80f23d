"""The ``raybandit`` command line (see ``raybandit --help``)."""
