"""``python -m dsvae.cli``: the same as the ``dsvae`` command."""

import sys

from dsvae.cli import main

sys.exit(main())
