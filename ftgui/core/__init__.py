"""The Qt-free engine of ftgui: models, layer freezing, data, training, export."""
