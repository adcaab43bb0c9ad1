import sys

from ftgui.app import main

sys.exit(main())
