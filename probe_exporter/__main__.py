"""`python -m probe_exporter`: the same as the kamailio-probe-exporter command."""

import sys

from .cli import main

sys.exit(main())
