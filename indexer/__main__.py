"""``python -m indexer`` is ``cbir``."""

import sys

from indexer.cli import main

sys.exit(main())
