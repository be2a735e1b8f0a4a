"""``python -m evl_lite``: see :mod:`evl_lite.cli`."""

import sys

from evl_lite.cli import main

if __name__ == "__main__":
    sys.exit(main())
