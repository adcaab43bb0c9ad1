"""Image folders: scanning, header checks, splitting, decoding, row stores, the user's fixes."""
