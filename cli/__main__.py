"""``python -m cli`` is ``cnn-lens``."""

import sys

from cli import main

sys.exit(main())
