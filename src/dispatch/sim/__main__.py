"""``python -m dispatch.sim ...``: see :mod:`dispatch.sim.cli`."""

import sys

from dispatch.sim.cli import main

sys.exit(main())
