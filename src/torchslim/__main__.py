import sys

from torchslim.cli.main import main

sys.exit(main())
