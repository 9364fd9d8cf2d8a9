import sys

from onnxparity.cli import main

sys.exit(main())
