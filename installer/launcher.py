"""The bundle's one program (PyInstaller's entry script): ftgui.frozen picks what to run from
the name it was started by."""

import sys

from ftgui.frozen import main

if __name__ == "__main__":
    sys.exit(main())
