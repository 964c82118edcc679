"""`python -m imagebatch.worker`: run a worker process."""

import sys

from imagebatch.worker.main import main

sys.exit(main())
