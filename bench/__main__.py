"""``python -m bench [--short] [--output PATH]``: see :mod:`bench.run`."""

from bench.run import main

raise SystemExit(main())
