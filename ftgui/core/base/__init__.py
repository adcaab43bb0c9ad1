"""Foundation with no ftgui imports above it: errors, events, options, paths, safe file writes, text."""
