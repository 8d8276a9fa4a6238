import sys

from evo2kit.training.train import main

sys.exit(main())
