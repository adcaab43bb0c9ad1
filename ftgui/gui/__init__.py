"""PySide6 front end of ftgui: all Qt code lives here."""
