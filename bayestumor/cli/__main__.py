"""``python -m bayestumor.cli``: the same as the `bayestumor` command."""

import sys

from bayestumor.cli import main

sys.exit(main())
