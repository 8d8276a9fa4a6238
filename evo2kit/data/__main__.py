import sys

from evo2kit.data.registry import main

sys.exit(main())
