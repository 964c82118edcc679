"""`python -m worker`: run a worker process."""

import sys

from worker.main import main

sys.exit(main())
