"""`python -m semifer` (also what `torchrun -m semifer train ...` starts on every rank)."""

from .cli import main

raise SystemExit(main())
