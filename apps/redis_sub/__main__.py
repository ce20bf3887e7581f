"""Entry point: `python -m redis_sub`."""

import sys

from redis_sub.service import main

sys.exit(main())
