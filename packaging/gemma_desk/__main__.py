"""Run by Briefcase's launcher: the same entry point as the ``gemma-desk`` console script."""

from app.cli import main

raise SystemExit(main())
