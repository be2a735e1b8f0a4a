"""``python -m evl_lite``: see :mod:`evl_lite.cli`."""

import sys

from evl_lite.cli import main

sys.exit(main())
