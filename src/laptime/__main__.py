import sys

from laptime.cli.main import main

sys.exit(main())
