"""``python -m npgbook`` runs the command line (see :mod:`npgbook.cli`)."""

from .cli import main

raise SystemExit(main())
