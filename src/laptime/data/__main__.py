import sys

from laptime.data.cli import main

sys.exit(main())
