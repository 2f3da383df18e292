"""
Runs the crmflow command line: ``python -m crmflow demo`` is the same as
``crmflow demo``.
"""

import sys

from crmflow.cli import main

sys.exit(main())
