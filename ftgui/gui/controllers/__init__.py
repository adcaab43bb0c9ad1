"""What the window does, one concern each, as bases of ``MainWindow``; ``window_base`` declares the parts they share."""
