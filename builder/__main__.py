"""`python -m builder`: the command-line entry point."""
from builder.cli import main

raise SystemExit(main())
